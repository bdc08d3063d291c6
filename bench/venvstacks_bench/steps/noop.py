"""The no-op rebuild: the same build again, server up, nothing changed."""

from __future__ import annotations

import subprocess
import time
from typing import Any

from venvstacks_bench.bazel import BAZEL_SH
from venvstacks_bench.core import Bench
from venvstacks_bench.host import log
from venvstacks_bench.report import s, verdict
from venvstacks_bench.stats import median
from venvstacks_bench.workspace import TARGET

# The target: a no-op build under a second.
NOOP_TARGET_S = 1.0


def run(bench: Bench) -> None:
    """No-op rebuilds with the server up, and what tests/bazel.sh itself costs a command."""
    log(f"no-op rebuilds ({bench.runs})")
    bench.main.bazel("build", TARGET)  # same flags as the timed runs: server up, analysis cached
    runs = []
    for _ in range(bench.runs):
        result = bench.main.bazel("build", TARGET)
        runs.append({"wall": result.wall, "elapsed": result.elapsed})
    # What tests/bazel.sh itself costs per command here (namespace, mounts, Bazel's client).
    wrapper = []
    for _ in range(bench.runs):
        start = time.perf_counter()
        subprocess.run([str(BAZEL_SH), "--version"], capture_output=True, check=True, cwd=bench.main.root)
        wrapper.append(time.perf_counter() - start)
    bench.results["noop"] = {
        "runs": runs,
        "wall": median([r["wall"] for r in runs]),
        "elapsed": median([r["elapsed"] for r in runs if r["elapsed"] is not None]),
        "wrapper_version_call": median(wrapper),
    }


def report(results: dict[str, Any], runs: int, cold_runs: int) -> list[str]:
    """The no-op rebuild's row, against its target."""
    lines: list[str] = []
    row = lines.append
    noop = results.get("noop", {})
    if noop:
        row(
            f"| no-op rebuild (server up) | {s(noop['elapsed'], 2)} | {runs} |"
            f" Bazel elapsed; {verdict(noop['elapsed'], NOOP_TARGET_S, '{:.2f} s')}. Command wall {s(noop['wall'], 2)},"
            f" of which tests/bazel.sh + client ≈ {s(noop['wrapper_version_call'], 2)} |"
        )
    return lines
