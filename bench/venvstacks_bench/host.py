"""The machine the bench runs on: its progress lines, load, children's CPU time, and what it is."""

from __future__ import annotations

import os
import platform
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

from venvstacks_bench.bazel import BAZEL_SH, STARTUP_OPTIONS


def log(message: str) -> None:
    """A progress line on stderr."""
    print(f"run_bench: {message}", file=sys.stderr, flush=True)


def loadavg() -> list[float]:
    """The 1, 5 and 15-minute load averages (none where the system has no such figure)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def children_cpu() -> float:
    """User + system CPU seconds of every child process waited for so far (and their children)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def quiesce() -> None:
    """Flush dirty pages before a timed step, so one step's writeback is not billed to the next."""
    os.sync()


def machine_info(runtime_version: str) -> dict[str, Any]:
    """The CPU, cores, memory, kernel, Pythons and Bazel of this run, and the load at its start."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    bazel = subprocess.run([str(BAZEL_SH), "--version"], capture_output=True, text=True, check=False).stdout.strip()
    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "cores_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory": memory,
        "kernel": platform.release(),
        "host_python": platform.python_version(),
        "runtime_python": runtime_version,
        "bazel": bazel + "".join(f" {option}" for option in STARTUP_OPTIONS),
        "load_at_start": loadavg(),
    }
