"""`python3 bench/bench_resolvers.py [--runs N]`: lock the bench's stack from scratch with each resolver, against uv.

The stack of `run_bench.py` (a scikit-learn framework, two applications on it, the host's
runtime), in a scratch workspace of its own. Each run, in an order that rotates, times:

- `bazel run --@rules_venvstacks//settings:resolver=pip //stacks:stack.lock`, lock files removed;
- the same with `resolver=uv`;
- `uv pip compile` per layer, bottom up (`bench_locking.uv_lock_layers`, the baseline of
  run_bench's `lock_vs_uv` step).

It prints the medians and the median of each run's ratio to uv as JSON. A step of its own, not
one of run_bench.py's: that script's set-up builds the whole stack, which locking does not need.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_locking
import run_bench

from venvstacks_bench.bazel import Workspace
from venvstacks_bench.host import loadavg, quiesce
from venvstacks_bench.stats import median
from venvstacks_bench.workspace import (
    APP_REPORT_VARIANTS,
    APPS,
    FRAMEWORK,
    FRAMEWORK_REQUIREMENTS,
    module_text,
    snapshot_rules,
    write_workspace,
)
from venvstacks_testing.http_server import serve_directory
from venvstacks_testing.local_pbs import make_local_runtime

RESOLVERS = ("pip", "uv")


def main(argv: list[str]) -> int:
    """Time the three ways of locking `--runs` times and print the result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each (default 3)")
    args = parser.parse_args(argv)
    with run_bench.scratch_dir(keep=False) as scratch:
        runtime = make_local_runtime(scratch)
        with serve_directory(scratch) as runtime_url:
            ws = Workspace(scratch / "ws", scratch / "ob")
            rules = scratch / "rules_venvstacks"
            code = snapshot_rules(rules)
            write_workspace(ws.root, rules, module_text(rules, runtime_url, runtime))
            try:
                result = _measure(ws, scratch, runtime.python_version, args.runs)
            finally:
                ws.shutdown(remove=True)
    result["code"] = code
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0


def _measure(ws: Workspace, scratch: Path, python_version: str, runs: int) -> dict[str, object]:
    stacks = ws.root / "stacks"
    uv = bench_locking.uv_command(scratch)
    layers = {FRAMEWORK: FRAMEWORK_REQUIREMENTS, **{app: [] for app in APPS}}
    layers["app_report"] = list(APP_REPORT_VARIANTS[0])
    python = ".".join(python_version.split(".")[:2])
    for resolver in reversed(RESOLVERS):  # untimed: the launchers built, uv fetched; pip's locks kept
        ws.bazel("run", f"--@rules_venvstacks//settings:resolver={resolver}", "//stacks:stack.lock")
    locks = {path: path.read_text() for path in stacks.glob("pylock.*.toml")}
    walls: dict[str, list[float]] = {kind: [] for kind in (*RESOLVERS, "uv pip compile")}
    loads = []
    different: dict[str, list[str]] = {}
    kinds = list(walls)
    for i in range(runs):
        for kind in kinds[i % 3 :] + kinds[: i % 3]:  # each kind first once in three runs
            quiesce()
            loads.append(loadavg())
            if kind == "uv pip compile":
                per_layer = bench_locking.uv_lock_layers(
                    uv,
                    layers,
                    {app: FRAMEWORK for app in APPS},
                    python,
                    bench_locking.UV_HOST_PLATFORM,
                    scratch / f"uv-{i}",
                )
                walls[kind].append(sum(per_layer.values()))
                continue
            for path in locks:
                path.unlink()
            setting = f"--@rules_venvstacks//settings:resolver={kind}"
            walls[kind].append(ws.bazel("run", setting, "//stacks:stack.lock").wall)
            # The locks of the untimed runs (uv's: pip's run after it found them up to date), byte for
            # byte: the resolvers agree.
            differing = sorted(path.name for path, text in locks.items() if path.read_text() != text)
            if differing:
                different.setdefault(kind, differing)
    baseline = walls["uv pip compile"]
    return {
        "runs": walls,
        "median": {kind: median(values) for kind, values in walls.items()},
        "ratio_to_uv": {
            kind: median([ours / theirs for ours, theirs in zip(walls[kind], baseline, strict=True)])
            for kind in RESOLVERS
        },
        "load": loads,
        "locks_unlike_the_untimed_ones": different,
    }


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
