"""`python3 bench/bench_resolvers.py [--runs N] [--before DIR] [--no-pip]`: the bench's stack locked, against uv.

The stack of `run_bench.py` (a scikit-learn framework, two applications on it, the host's
runtime), in a scratch workspace of its own. Each run, in an order that rotates, times:

- `bazel run --@rules_venvstacks//settings:resolver=pip //stacks:stack.lock`, lock files removed
  (not with `--no-pip`);
- the same with `resolver=uv`;
- with `--before DIR`, the same with uv in a second workspace on the rules of DIR (another tree
  of this repository, e.g. `git archive main | tar -x -C DIR`): the code before a change,
  measured in the same session, its runs alternating with the others;
- `uv pip compile` per layer, bottom up (`bench_locking.uv_lock_bench_stack`, the baseline of
  run_bench's `lock_vs_uv` step).

It prints the medians and the median of each run's ratio to uv as JSON, then each ratio on a
plain line (issue 21's target for uv: under 1.3x), in wall time and in CPU time: what the
commands' processes used (Bazel's client, the tool, uv; not Bazel's server, which is no child),
a figure the load of a shared machine moves less than the wall time. A step of its own, not one of run_bench.py's:
that script's set-up builds the whole stack, which locking does not need.
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
from venvstacks_bench.host import children_cpu, loadavg, log, quiesce
from venvstacks_bench.stats import median
from venvstacks_bench.workspace import (
    APP_REPORT_VARIANTS,
    copy_other_rules,
    module_text,
    snapshot_rules,
    write_workspace,
)
from venvstacks_testing.http_server import serve_directory
from venvstacks_testing.local_pbs import make_local_runtime

RESOLVERS = ("pip", "uv")
BEFORE = "uv, before"  # the kind of the `--before` workspace's runs
BASELINE = "uv pip compile"
# Issue 21: `stack.lock` with uv within this many times `uv pip compile` per layer.
TARGET = 1.3


def main(argv: list[str]) -> int:
    """Time the ways of locking `--runs` times and print the result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each (default 3)")
    parser.add_argument("--before", type=Path, help="another tree of the rules, measured beside this checkout")
    parser.add_argument("--no-pip", action="store_true", help="skip the pip resolver's runs")
    args = parser.parse_args(argv)
    with run_bench.scratch_dir(keep=False) as scratch:
        runtime = make_local_runtime(scratch)
        with serve_directory(scratch) as runtime_url:
            workspaces = {"uv": Workspace(scratch / "ws", scratch / "ob")}
            rules = {"uv": scratch / "rules_venvstacks"}
            code = {"uv": snapshot_rules(rules["uv"])}
            if args.before:
                workspaces[BEFORE] = Workspace(scratch / "ws-before", scratch / "ob-before")
                rules[BEFORE] = scratch / "rules_before"
                code[BEFORE] = copy_other_rules(args.before.resolve(), rules[BEFORE])
            for kind, ws in workspaces.items():
                write_workspace(ws.root, rules[kind], module_text(rules[kind], runtime_url, runtime))
            try:
                kinds = [*([] if args.no_pip else ["pip"]), "uv", *workspaces.keys() - {"uv"}, BASELINE]
                result = _measure(workspaces, kinds, scratch, runtime.python_version, args.runs)
            finally:
                for ws in workspaces.values():
                    ws.shutdown(remove=True)
    result["code"] = code
    print(json.dumps(result, indent=2, sort_keys=True))
    for kind, ratio in result["ratio_to_uv"].items():
        target = TARGET if kind == "uv" else None
        print(bench_locking.ratio_line(f"stack.lock with {kind} / uv pip compile per layer", ratio, target))
    for kind, ratio in result["cpu_ratio_to_uv"].items():
        print(bench_locking.ratio_line(f"  in CPU time (client, tool and uv; not Bazel's server), {kind}", ratio))
    return 0


def _locks(ws: Workspace) -> dict[str, str]:
    return {path.name: path.read_text() for path in sorted((ws.root / "stacks").glob("pylock.*.toml"))}


def _measure(
    workspaces: dict[str, Workspace], kinds: list[str], scratch: Path, python: str, runs: int
) -> dict[str, Any]:
    uv = bench_locking.uv_command(scratch)
    python = ".".join(python.split(".")[:2])
    main = workspaces["uv"]
    for resolver in reversed(RESOLVERS):  # untimed: the launchers built, uv fetched; pip's locks kept
        main.bazel("run", f"--@rules_venvstacks//settings:resolver={resolver}", "//stacks:stack.lock")
    if BEFORE in workspaces:
        workspaces[BEFORE].bazel("run", "//stacks:stack.lock")
    expected = _locks(main)
    walls: dict[str, list[float]] = {kind: [] for kind in kinds}
    cpus: dict[str, list[float]] = {kind: [] for kind in kinds}
    loads = []
    different: dict[str, list[str]] = {}
    for i in range(runs):
        for kind in kinds[i % len(kinds) :] + kinds[: i % len(kinds)]:  # each kind first once in len(kinds) runs
            quiesce()
            loads.append(loadavg())
            log(f"{kind} {i + 1}/{runs}")
            cpu = children_cpu()
            if kind == BASELINE:
                per_layer = bench_locking.uv_lock_bench_stack(uv, APP_REPORT_VARIANTS[0], python, scratch / f"uv-{i}")
                walls[kind].append(sum(per_layer.values()))
                cpus[kind].append(children_cpu() - cpu)
                continue
            ws = workspaces.get(kind, main)
            for path in (ws.root / "stacks").glob("pylock.*.toml"):
                path.unlink()
            setting = f"--@rules_venvstacks//settings:resolver={'pip' if kind == 'pip' else 'uv'}"
            walls[kind].append(ws.bazel("run", setting, "//stacks:stack.lock").wall)
            cpus[kind].append(children_cpu() - cpu)  # the client's, the tool's and uv's, not the server's
            # The locks of the untimed runs (uv's: pip's run after it found them up to date), byte for
            # byte: the resolvers, and the code before and after, agree.
            locks = _locks(ws)
            differing = sorted(name for name in expected.keys() | locks.keys() if locks.get(name) != expected.get(name))
            if differing:
                different.setdefault(kind, differing)
    return {
        "runs": walls,
        "median": {kind: median(values) for kind, values in walls.items()},
        "ratio_to_uv": _paired_ratios(walls, kinds),
        "cpu": cpus,
        "cpu_median": {kind: median(values) for kind, values in cpus.items()},
        "cpu_ratio_to_uv": _paired_ratios(cpus, kinds),
        "load": loads,
        "locks_unlike_the_untimed_ones": different,
    }


def _paired_ratios(figures: dict[str, list[float]], kinds: list[str]) -> dict[str, float | None]:
    """{kind -> median over runs of its figure / the baseline's in the same run}."""
    baseline = figures[BASELINE]
    return {
        kind: median([ours / theirs for ours, theirs in zip(figures[kind], baseline, strict=True)])
        for kind in kinds
        if kind != BASELINE
    }


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
