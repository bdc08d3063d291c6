"""`python3 bench/bench_platform_locks.py [--runs N]`: the bench's stack locked for five platforms and for one.

The two workspaces of run_bench.py's `platforms` step (a scikit-learn framework, two applications
on it; the host's CPython for linux_x86_64, fixture PBS archives for the four other platforms,
all served on 127.0.0.1): one whose runtime targets the host platform only, one all five. Each
run, the two alternating, times `bazel run //stacks:stack.lock` with every lock file removed
(resolved from scratch against PyPI). It prints the medians and the median of the paired ratios
(five platforms / one) as JSON. Lock only: the `platforms` step also cold-builds every platform,
which takes far longer than locking.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_bench

from venvstacks_bench.core import Bench
from venvstacks_bench.host import loadavg, log, quiesce
from venvstacks_bench.stats import median
from venvstacks_bench.steps.platforms import ALL_PLATFORMS, platform_workspace
from venvstacks_bench.workspace import snapshot_rules
from venvstacks_testing.http_server import serve_directory
from venvstacks_testing.local_pbs import make_local_runtime


def main(argv: list[str]) -> int:
    """Time both workspaces' `stack.lock` `--runs` times and print the result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each (default 3)")
    args = parser.parse_args(argv)
    with run_bench.scratch_dir(keep=False) as scratch:
        bench = Bench(scratch, args.runs, 0, keep=False, xz=False)
        bench.runtime = make_local_runtime(scratch)
        code = snapshot_rules(bench.rules)
        with serve_directory(scratch) as runtime_url:
            bench.runtime_url = runtime_url
            one, every = (platform_workspace(bench, count) for count in (1, len(ALL_PLATFORMS)))
            try:
                result = _measure({"one": one, "all": every}, args.runs)
            finally:
                for ws in (one, every):
                    ws.shutdown(remove=True)
    result["code"] = code
    result["platforms"] = list(ALL_PLATFORMS)
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0


def _measure(workspaces: dict[str, Any], runs: int) -> dict[str, Any]:
    for ws in workspaces.values():  # untimed: the launchers built, uv fetched, the locks written once
        ws.bazel("run", "//stacks:stack.lock")
    walls: dict[str, list[float]] = {kind: [] for kind in workspaces}
    loads = []
    for i in range(runs):
        for kind in ("one", "all") if i % 2 == 0 else ("all", "one"):
            ws = workspaces[kind]
            for path in [*ws.root.glob("stacks/pylock.*.toml"), *ws.root.glob("stacks/*.requirements.txt")]:
                path.unlink()
            quiesce()
            loads.append(loadavg())
            log(f"stack.lock, {kind} platform(s) {i + 1}/{runs}: lock files removed")
            walls[kind].append(ws.bazel("run", "//stacks:stack.lock").wall)
    return {
        "runs": walls,
        "median": {kind: median(values) for kind, values in walls.items()},
        "ratio_all_to_one": median([a / o for a, o in zip(walls["all"], walls["one"], strict=True)]),
        "load": loads,
    }


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
