"""The README's main job (examples/run_example.py) works end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from support.bazel_workspace import CHECKOUT

pytestmark = pytest.mark.integration


def test_run_example_builds_unpacks_and_runs_the_runtime_layer(tmp_path: Path) -> None:
    dest = tmp_path / "deployed"
    result = subprocess.run(
        [
            sys.executable,
            CHECKOUT / "examples" / "run_example.py",
            "--local-runtime",
            "--dest",
            dest,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert f"with sys.prefix {dest / 'cpython3_12'}" in result.stdout
