"""The bench's Bazel runner: tests/bazel.sh in a workspace with an output base of its own, timed.

Each command's wall time, and Bazel's own elapsed time and critical path read from its output.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

# The checkout this bench belongs to (bench/venvstacks_bench/ is two levels down).
CHECKOUT = Path(__file__).resolve().parents[2]

BAZEL_SH = CHECKOUT / "tests" / "bazel.sh"
# Startup options for every Bazel command of the run (`--bazel-startup-option`), e.g. a JVM flag.
STARTUP_OPTIONS: list[str] = []


_ELAPSED_RE = re.compile(r"Elapsed time: ([0-9.]+)s(?:, Critical Path: ([0-9.]+)s)?")


@dataclass
class BazelResult:
    """One Bazel command: its wall time, Bazel's elapsed time and critical path (None if not printed), output."""

    wall: float
    elapsed: float | None
    critical_path: float | None
    stdout: str
    stderr: str


@dataclass
class Workspace:
    """A scratch Bazel workspace and the output base its commands use."""

    root: Path
    output_base: Path
    started: list[Path] = field(default_factory=list)

    def bazel(self, *args: str, check: bool = True) -> BazelResult:
        """`bazel ARGS...` in the workspace with its output base, timed; raises if it fails and `check`."""
        command = [str(BAZEL_SH), f"--output_base={self.output_base}", *STARTUP_OPTIONS, *args]
        if self.output_base not in self.started:
            self.started.append(self.output_base)
        start = time.perf_counter()
        result = subprocess.run(command, cwd=self.root, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - start
        if check and result.returncode != 0:
            raise RuntimeError(
                f"bazel {' '.join(args)} failed ({result.returncode}) in {self.root}:\n{result.stderr[-6000:]}"
            )
        matches = list(_ELAPSED_RE.finditer(result.stderr))
        match = matches[-1] if matches else None
        elapsed = float(match.group(1)) if match else None
        critical = float(match.group(2)) if match and match.group(2) else None
        return BazelResult(wall, elapsed, critical, result.stdout, result.stderr)

    def shutdown(self, remove: bool) -> None:
        """Stops the output base's server, then removes the output base if `remove`."""
        subprocess.run(
            [str(BAZEL_SH), f"--output_base={self.output_base}", *STARTUP_OPTIONS, "shutdown"],
            cwd=self.root,
            capture_output=True,
            check=False,
        )
        if remove:
            remove_tree(self.output_base)

    def output(self, relative: str) -> Path:
        """A file under the workspace's bazel-bin, its link resolved."""
        return (self.root / "bazel-bin" / relative).resolve()

    def execroot(self) -> Path:
        """The main repository's execution root in the output base."""
        return self.output_base / "execroot" / "_main"


def remove_tree(path: Path) -> None:
    """rm -rf, also for Bazel's read-only output trees."""
    if path.exists():
        subprocess.run(["chmod", "-R", "u+w", str(path)], capture_output=True, check=False)
        shutil.rmtree(path, ignore_errors=True)
