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
