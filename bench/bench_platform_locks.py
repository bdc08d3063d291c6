"""`python3 bench/bench_platform_locks.py [--runs N] [--before DIR]`: the stack locked for five platforms and for one.

The two workspaces of run_bench.py's `platforms` step (a scikit-learn framework, two applications
on it; the host's CPython for linux_x86_64, fixture PBS archives for the four other platforms,
all served on 127.0.0.1): one whose runtime targets the host platform only, one all five. Each
run, the two alternating, times `bazel run //stacks:stack.lock` with every lock file removed
(resolved from scratch against PyPI). With `--before DIR` (another tree of this repository, e.g.
`git archive main | tar -x -C DIR`), two more workspaces on DIR's rules alternate with them: the
code before a change, in the same session. It prints the medians and the median of the paired
ratios (five platforms / one) as JSON, then each ratio on a plain line (issue 21's target: under
2x), also in CPU time (Bazel's client, the tool and uv; not Bazel's server). Lock only: the
`platforms` step also cold-builds every platform, which takes far longer.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_locking
import run_bench

from venvstacks_bench.bazel import Workspace
from venvstacks_bench.core import Bench
from venvstacks_bench.host import children_cpu, loadavg, log, quiesce
from venvstacks_bench.stats import median
from venvstacks_bench.steps.platforms import ALL_PLATFORMS, platform_workspace
from venvstacks_bench.workspace import copy_other_rules, snapshot_rules
from venvstacks_testing.http_server import serve_directory
from venvstacks_testing.local_pbs import make_local_runtime

# Issue 21: the five-platform lock within this many times the host-only one.
TARGET = 2.0


def main(argv: list[str]) -> int:
    """Time the workspaces' `stack.lock` `--runs` times and print the result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each (default 3)")
    parser.add_argument("--before", type=Path, help="another tree of the rules, measured beside this checkout")
    args = parser.parse_args(argv)
    with run_bench.scratch_dir(keep=False) as scratch:
        bench = Bench(scratch, args.runs, 0, keep=False, xz=False)
        bench.runtime = make_local_runtime(scratch)
        code = {"": snapshot_rules(bench.rules)}
        if args.before:
            code["before"] = copy_other_rules(args.before.resolve(), scratch / "rules_before")
        with serve_directory(scratch) as runtime_url:
            bench.runtime_url = runtime_url
            workspaces = {}
            for variant in code:
                rules = scratch / "rules_before" if variant else None
                suffix = f"-{variant}" if variant else ""
                for kind, count in (("one", 1), ("all", len(ALL_PLATFORMS))):
                    workspaces[f"{kind}{suffix}"] = platform_workspace(bench, count, rules, suffix)
            try:
                result = _measure(workspaces, [f"-{variant}" if variant else "" for variant in code], args.runs)
            finally:
                for ws in workspaces.values():
                    ws.shutdown(remove=True)
    result["code"] = code
    result["platforms"] = list(ALL_PLATFORMS)
    print(json.dumps(result, indent=2, sort_keys=True))
    for suffix, ratio in result["ratio_all_to_one"].items():
        what = "stack.lock, five platforms / the host's only" + (f" ({suffix[1:]})" if suffix else "")
        print(bench_locking.ratio_line(what, ratio, TARGET))
        print(bench_locking.ratio_line("  in CPU time (client, tool and uv)", result["cpu_ratio_all_to_one"][suffix]))
    return 0


def _measure(workspaces: dict[str, Workspace], suffixes: list[str], runs: int) -> dict[str, Any]:
    for ws in workspaces.values():  # untimed: the launchers built, uv fetched, the locks written once
        ws.bazel("run", "//stacks:stack.lock")
    walls: dict[str, list[float]] = {kind: [] for kind in workspaces}
    cpus: dict[str, list[float]] = {kind: [] for kind in workspaces}
    loads = []
    for i in range(runs):
        for suffix in suffixes[i % len(suffixes) :] + suffixes[: i % len(suffixes)]:
            for kind in ("one", "all") if i % 2 == 0 else ("all", "one"):
                ws = workspaces[kind + suffix]
                for path in [*ws.root.glob("stacks/pylock.*.toml"), *ws.root.glob("stacks/*.requirements.txt")]:
                    path.unlink()
                quiesce()
                loads.append(loadavg())
                log(f"stack.lock, {kind}{suffix} platform(s) {i + 1}/{runs}: lock files removed")
                cpu = children_cpu()
                walls[kind + suffix].append(ws.bazel("run", "//stacks:stack.lock").wall)
                cpus[kind + suffix].append(children_cpu() - cpu)  # client, tool, uv; not Bazel's server
    return {
        "runs": walls,
        "median": {kind: median(values) for kind, values in walls.items()},
        "ratio_all_to_one": _all_to_one(walls, suffixes),
        "cpu": cpus,
        "cpu_ratio_all_to_one": _all_to_one(cpus, suffixes),
        "load": loads,
    }


def _all_to_one(figures: dict[str, list[float]], suffixes: list[str]) -> dict[str, float | None]:
    """{suffix -> median over runs of the five-platform figure / the host-only one of the same run}."""
    return {
        suffix: median([a / o for a, o in zip(figures["all" + suffix], figures["one" + suffix], strict=True)])
        for suffix in suffixes
    }


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
