"""The cold build: a fresh output base per run (new Bazel server, nothing built), the repository cache warm.

Total wall time of the command, Bazel's own elapsed time and critical path, and per layer the action's
wall time (from `--profile`) and the tool process's own time in it (the rest is sandbox set-up and
output handling).
"""

from __future__ import annotations

from typing import Any

from venvstacks_bench.bazel import Workspace
from venvstacks_bench.core import Bench, build_record
from venvstacks_bench.host import loadavg, log, quiesce
from venvstacks_bench.report import s, verdict
from venvstacks_bench.stats import median, ratio


def run(bench: Bench) -> None:
    """Cold builds of the main stack, each in a fresh output base; the medians, per action too."""
    runs = []
    for i in range(bench.cold_runs):
        log(f"cold build {i + 1}/{bench.cold_runs} (fresh output base)")
        ws = Workspace(bench.main.root, bench.scratch / f"ob-cold-{i}")
        load = loadavg()
        quiesce()
        # No convenience symlinks: bazel-bin of the workspace keeps pointing at the main output base.
        result, actions, ran = bench.timed_build(ws, f"cold-{i}", "--symlink_prefix=/")
        ws.shutdown(remove=not bench.keep)
        runs.append(build_record(result, actions, ran, load=load))
    per_layer = {}
    for label in sorted({label for run in runs for label in run["actions"]}):
        per_layer[label] = {
            key: median([run["actions"][label][key] for run in runs if label in run["actions"]])
            for key in ("action", "process", "sandbox_setup")
        }
    bench.results["cold"] = {
        "runs": runs,
        "wall": median([r["wall"] for r in runs]),
        "elapsed": median([r["elapsed"] for r in runs if r["elapsed"] is not None]),
        "critical_path": median([r["critical_path"] for r in runs if r["critical_path"] is not None]),
        "per_target": per_layer,
    }


def report(results: dict[str, Any], runs: int, cold_runs: int) -> list[str]:
    """The cold build's rows: the whole stack, then each action."""
    lines: list[str] = []
    row = lines.append
    cold = results.get("cold", {})
    per = cold.get("per_target", {})
    if cold:
        row(
            f"| cold build, whole stack (fresh output base, warm repository cache) | {s(cold['wall'])} | {cold_runs} |"
            f" Bazel elapsed {s(cold['elapsed'])}, critical path {s(cold['critical_path'])};"
            " wall includes server start |"
        )
        for label, entry in per.items():
            row(
                f"| &nbsp;&nbsp;cold: action `{label}` | {s(entry['action'])} | {cold_runs} |"
                f" tool process {s(entry['process'])}, sandbox set-up {s(entry['sandbox_setup'])} |"
            )
        lines += loader_check_rows(per, cold_runs)
    return lines


def loader_check_rows(per: dict[str, dict[str, float]], cold_runs: int) -> list[str]:
    """Each layer's loader check against its archive action (target: under 5%); it runs beside it."""
    rows = []
    for label, entry in per.items():
        archive = per.get(label.removesuffix(" (loader check)"), {}).get("action")
        if label.endswith(" (loader check)") and archive:
            rows.append(
                f"| &nbsp;&nbsp;cold: loader check of `{label.removesuffix(' (loader check)')}` / its archive action"
                f" | {verdict(ratio(entry['action'], archive), 0.05, '{:.1%}')} | {cold_runs} |"
                f" {s(entry['action'])} against {s(archive)};"
                " a validation action beside the archive action, not after it |"
            )
    return rows
