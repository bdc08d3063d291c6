"""The incremental rebuild: app_report's requirements switched between two locked variants.

Both locks are made once beforehand (set-up), so relocking is not timed; the actions that ran are listed.
"""

from __future__ import annotations

from typing import Any

from venvstacks_bench.core import Bench, build_record
from venvstacks_bench.host import log
from venvstacks_bench.report import s
from venvstacks_bench.stats import median
from venvstacks_bench.workspace import APP_REPORT_VARIANTS, TARGET


def run(bench: Bench) -> None:
    """Incremental rebuilds, app_report's variant switched before each; the main stack left on variant 0."""
    runs = []
    for i in range(bench.runs):
        bench.set_variant(1 - bench.variant)
        log(f"incremental rebuild {i + 1}/{bench.runs} (app_report requirements: {APP_REPORT_VARIANTS[bench.variant]})")
        result, actions, ran = bench.timed_build(bench.main, f"incremental-{i}")
        runs.append(build_record(result, actions, ran, variant=bench.variant))
    if bench.variant != 0:
        bench.set_variant(0)
        bench.main.bazel("build", TARGET)
    bench.results["incremental"] = {
        "runs": runs,
        "wall": median([r["wall"] for r in runs]),
        "elapsed": median([r["elapsed"] for r in runs if r["elapsed"] is not None]),
    }


def report(results: dict[str, Any], runs: int, cold_runs: int) -> list[str]:
    """The incremental rebuild's row, with the actions it ran."""
    lines: list[str] = []
    row = lines.append
    incremental = results.get("incremental", {})
    if incremental:
        ran = sorted({a for r in incremental["runs"] for a in r["ran"]["executed"]})
        row(
            f"| incremental: app_report requirements changed (relock not timed) | {s(incremental['wall'])} | {runs} |"
            f" Bazel elapsed {s(incremental['elapsed'])}; actions run: {', '.join(ran)} |"
        )
    return lines
