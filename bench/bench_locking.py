"""Locking the bench's stack with these rules against uv, the resolver venvstacks locks with.

`bench/run_bench.py --only lock_vs_uv` times, in pairs whose order alternates:

- **ours**: `bazel run //stacks:stack.lock` with every lock file of the stack removed first, so
  each layer is resolved from scratch against the index (Bazel's server already up, as for a
  user who has built before; pip's cache is never used);
- **uv**: what venvstacks' `lock` does for the same layers, one `uv pip compile --no-cache
  --generate-hashes` per layer for the target platform, bottom up, each upper layer constrained
  by the lower layer's result (`-c`), as venvstacks constrains it.

venvstacks itself cannot run here (it fetches its runtimes from GitHub); its lock is uv plus
bookkeeping, so uv alone is the stricter baseline.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from venvstacks_bench.workspace import APPS, FRAMEWORK, FRAMEWORK_REQUIREMENTS
from venvstacks_tool.core.platforms import DEFAULT_GLIBC_MINIMUM

# uv's target for the host (Linux x86_64) at the lock's default glibc floor: both sides pick
# from the same wheels.
UV_HOST_PLATFORM = "x86_64-manylinux_{}_{}".format(*DEFAULT_GLIBC_MINIMUM)


def uv_command(scratch: Path) -> list[str]:
    """How to run uv: the one on PATH, else one installed from PyPI into `scratch` (once)."""
    found = shutil.which("uv")
    if found:
        return [found]
    target = scratch / "uv-install"
    if not target.exists():
        pip = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        subprocess.run([*pip, "--target", str(target), "uv"], check=True)
    return [str(target / "bin" / "uv")]  # the uv wheel puts its binary in the scheme's scripts


def uv_lock_layers(
    uv: Sequence[str],
    layers: Mapping[str, Sequence[str]],
    lower: Mapping[str, str],
    python_version: str,
    python_platform: str,
    workdir: Path,
) -> dict[str, float]:
    """Lock each layer of `layers` ({name -> requirements}, bottom up) with uv; seconds per layer.

    `lower` maps an upper layer to the layer whose result constrains it.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    for name, requirements in layers.items():
        source = workdir / f"{name}.in"
        source.write_text("".join(f"{r}\n" for r in requirements) or "\n")
        command = [
            *uv,
            "pip",
            "compile",
            "--quiet",
            "--no-cache",
            "--generate-hashes",
            "--python-version",
            python_version,
            "--python-platform",
            python_platform,
            "--output-file",
            str(workdir / f"{name}.txt"),
            str(source),
        ]
        if name in lower:
            command += ["--constraint", str(workdir / f"{lower[name]}.txt")]
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        seconds[name] = time.perf_counter() - start
    return seconds


def uv_lock_bench_stack(
    uv: Sequence[str], app_report: Sequence[str], python_version: str, workdir: Path
) -> dict[str, float]:
    """The baseline of the bench's stack: each layer locked by uv for the host, bottom up; seconds per layer.

    `app_report` is app_report's requirements (the variant the workspace has); both
    applications are constrained by the framework's result.
    """
    layers = {FRAMEWORK: list(FRAMEWORK_REQUIREMENTS), **{app: [] for app in APPS}, "app_report": list(app_report)}
    lower = dict.fromkeys(APPS, FRAMEWORK)
    return uv_lock_layers(uv, layers, lower, python_version, UV_HOST_PLATFORM, workdir)


def ratio_line(what: str, ratio: float | None, target: float | None = None) -> str:
    """One plain line of a lock bench's result: `what: 1.23x` and, with a target, whether it is met."""
    if ratio is None:
        return f"{what}: n/a"
    verdict = "" if target is None else f" (target < {target:.2f}x: {'met' if ratio < target else 'not met'})"
    return f"{what}: {ratio:.2f}x{verdict}"
