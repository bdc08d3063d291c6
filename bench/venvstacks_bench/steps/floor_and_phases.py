"""The floor and the framework's `build-layer` outside Bazel by phase, alternating.

The floor: the framework's wheels unzipped into one directory and tarred through zstd at archive.py's
level and thread count. `build-layer` runs on the action's own inputs (bench/tool_phases.py), a timer
around each phase; the ratio to the floor is the median over the pairs.
"""

from __future__ import annotations

from typing import Any

from venvstacks_bench.bazel import remove_tree
from venvstacks_bench.core import Bench
from venvstacks_bench.host import log
from venvstacks_bench.report import mb, s, verdict
from venvstacks_bench.stats import median, ratio
from venvstacks_bench.workspace import FRAMEWORK

# The target: the framework layer within twice the floor.
FLOOR_TARGET_RATIO = 2.0


def run(bench: Bench) -> None:
    """The floor and build-layer outside Bazel, alternating (paired runs, same wheels)."""
    floors, builds = [], []
    for i in range(bench.runs):
        for kind in ("floor", "build") if i % 2 == 0 else ("build", "floor"):
            if kind == "floor":
                log(f"floor {i + 1}/{bench.runs}: unzip the framework's wheels, tar | zstd")
                wall, data = bench.tool_run("floor", str(bench.scratch / "floor"), *bench.tool["framework_wheels"])
                floors.append(data)
                remove_tree(bench.scratch / "floor")
            else:
                log(f"framework build-layer {i + 1}/{bench.runs} outside Bazel, by phase (same inputs)")
                out = bench.scratch / "phases"
                out.mkdir()
                wall, data = bench.tool_run("build-layer", bench.tool["framework_params"], str(out))
                builds.append({"wall": wall, **data})
                remove_tree(out)
    bench.results["floor"] = {
        "runs": floors,
        **{
            key: median([r[key] for r in floors])
            for key in ("unzip", "pack", "total", "cpu_floor", "bytecode_compile_all_cores")
        },
        "archive_bytes": floors[0]["archive_bytes"],
        "tree_files": floors[0]["tree_files"],
        "tree_bytes": floors[0]["tree_bytes"],
        "zstd": floors[0]["zstd"],
    }
    names = sorted({name for run in builds for name in run["phases"]})
    pairs = list(zip(builds, floors, strict=True))
    bench.results["phases"] = {
        "runs": builds,
        "total": median([r["total"] for r in builds]),
        "wall": median([r["wall"] for r in builds]),
        "cpu": median([r["cpu"] for r in builds]),
        "phases": {name: median([r["phases"].get(name, 0.0) for r in builds]) for name in names},
        "tree_files": builds[0].get("tree_files"),
        "tree_bytes": builds[0].get("tree_bytes"),
        "missing_hooks": builds[0].get("missing_hooks", []),
        # Per pair (run next to each other, so under the same load), then the median.
        "ratio_to_floor_wall": median([b["wall"] / f["total"] for b, f in pairs]),
        "ratio_to_floor_cpu": median([b["cpu"] / f["cpu_floor"] for b, f in pairs if f["cpu_floor"]]),
        "install_to_unzip": median([(b.get("install") or 0.0) / f["unzip"] for b, f in pairs if f["unzip"]]),
    }


def report(results: dict[str, Any], runs: int, cold_runs: int) -> list[str]:
    """The floor's rows, the framework layer against it (from the cold build and outside Bazel), by phase."""
    lines: list[str] = []
    row = lines.append
    per = results.get("cold", {}).get("per_target", {})
    floor = results.get("floor", {})
    phases = results.get("phases", {})
    if floor:
        row(
            f"| **floor**: unzip the {len(results['stack']['framework wheels'])} framework wheels + tar \\| zstd"
            f" -{floor['zstd'][0]} ({floor['zstd'][1]} threads) | {s(floor['total'])} | {runs} |"
            f" CPU {s(floor['cpu_floor'])}; unzip {s(floor['unzip'])}, pack {s(floor['pack'])};"
            f" {mb(floor['tree_bytes'])} in {floor['tree_files']} files -> {mb(floor['archive_bytes'])};"
            " bytecode compile of the same tree on all cores (not in the floor)"
            f" {s(floor['bytecode_compile_all_cores'])} |"
        )
        framework = per.get(f"//stacks:{FRAMEWORK}", {}).get("action")
        share = ratio(framework, floor["total"]) or 0
        row(
            f"| **framework layer build / floor** (cold Bazel action / floor) | {share:.2f}x |"
            f" | {verdict(ratio(framework, floor['total']), FLOOR_TARGET_RATIO, '{:.2f}x')} (action {s(framework)},"
            f" floor {s(floor['total'])}; not run side by side); against floor + bytecode compile"
            f" {ratio(framework, floor['total'] + floor['bytecode_compile_all_cores']) or 0:.2f}x |"
        )
    if phases:
        row(
            f"| **framework `build-layer` outside Bazel / floor** (median of paired runs) |"
            f" {phases['ratio_to_floor_wall']:.2f}x | {runs} |"
            f" {verdict(phases['ratio_to_floor_wall'], FLOOR_TARGET_RATIO, '{:.2f}x')}; in CPU time"
            f" {phases['ratio_to_floor_cpu'] or 0:.2f}x; installing the wheels (bytecode compile overlapping)"
            f" / plain unzip of the same wheels {phases.get('install_to_unzip') or 0:.2f}x |"
        )
        ordered = sorted(phases["phases"].items(), key=lambda kv: -kv[1])
        parts = [f"{name} {value:.2f} s ({value / phases['total']:.0%})" for name, value in ordered if value >= 0.01]
        row(
            f"| framework `build-layer` outside Bazel, by phase | {s(phases['total'])} | {runs} |"
            f" CPU {s(phases['cpu'])}; {'; '.join(parts)}; installed tree {mb(phases['tree_bytes'])}"
            f" in {phases['tree_files']} files |"
        )
    return lines
