"""examples/run_example.py run once for the tests built on it (tests/integration/conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from venvstacks_testing.bazel_workspace import CHECKOUT


@dataclass(frozen=True)
class ExampleRun:
    """examples/run_example.py run once: its output, and where it left the example's workspace and stack."""

    result: subprocess.CompletedProcess[str]
    workdir: Path
    dest: Path
    run_cache: Path

    @property
    def workspace(self) -> Path:
        """The built copy of examples/stack (its Bazel output base keeps every layer built)."""
        return self.workdir / "example"


def run_example(root: Path) -> ExampleRun:
    """Run the README's main job with the local runtime, everything under `root`."""
    dest, workdir, run_cache = root / "deployed elsewhere", root / "work", root / "run cache"
    # -S: without site-packages, as on a fresh machine where nothing is installed for the tests.
    command = [sys.executable, "-S", CHECKOUT / "examples" / "run_example.py", "--local-runtime"]
    result = subprocess.run(
        [*command, "--workdir", workdir, "--dest", dest],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "VENVSTACKS_RUN_CACHE": str(run_cache)},
    )
    return ExampleRun(result, workdir, dest, run_cache)
