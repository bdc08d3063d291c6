"""`python3 bench/bench_named_indexes.py [--runs N] [--pypi] [--before DIR]`: what the routing index costs a lock.

Times the tool's `lock` (no Bazel: the resolver runs are what routing changes) of one layer,
with each resolver, in alternating runs:

- plain: the layer's requirements against its index;
- routed: the same, with one project taken from a named index (`--package-index`), so that every
  project page goes through the routing index on 127.0.0.1 (lock/index_router.py).

By default the indexes are local (`WheelIndex` on 127.0.0.1: 30 projects in a dependency chain,
the routed one also on a second index); `--pypi` locks real projects against PyPI instead
(requests, rich, click, with `rich` routed to PyPI under a name), where index latency dominates.
Each lock runs in a fresh process, as `bazel run ...lock` does (no connection survives from one
lock to the next), timed inside it. With `--before DIR` (another tree of this repository, e.g.
`git worktree add DIR main`), DIR's `tools/` is timed too, alternating with this checkout's in
the same run. Prints the medians and the median of each pair's ratio (routed / plain) as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uv

from venvstacks_testing.wheel_index import WheelIndex

PYTHON = f"{sys.version_info[0]}.{sys.version_info[1]}.{sys.version_info[2]}"
PYPI = "https://pypi.org/simple"
CHAIN = 30


@contextmanager
def local_indexes(root: Path) -> Iterator[tuple[str, str, list[str], str]]:
    """(index URL, named index URL, requirements, routed project): a chain p0 -> p1 -> ... on one index."""
    main, named = WheelIndex(root / "main"), WheelIndex(root / "named")
    for number in range(CHAIN):
        main.add_wheel(f"p{number}", "1.0", [f"p{number + 1}"] if number + 1 < CHAIN else [])
    named.add_wheel(f"p{CHAIN // 2}", "1.0+named", [f"p{CHAIN // 2 + 1}"])
    with main.serve() as main_url, named.serve() as named_url:
        yield main_url, named_url, ["p0"], f"p{CHAIN // 2}"


@contextmanager
def pypi_indexes(_root: Path) -> Iterator[tuple[str, str, list[str], str]]:
    yield PYPI, PYPI, ["requests", "rich", "click"], "rich"


# The child: one lock, its output kept off stdout, where it prints its own seconds alone.
_CHILD = """
import contextlib, sys, time
from venvstacks_tool.lock import lock_command
start = time.monotonic()
with contextlib.redirect_stdout(sys.stderr):
    lock_command.main(sys.argv[1:])
print(time.monotonic() - start)
"""


def lock_once(
    workdir: Path,
    tools: Path,
    index: str,
    named: str,
    requirements: Sequence[str],
    routed: str | None,
    resolver: str,
) -> float:
    """Seconds of one fresh `lock` by the tool in `tools` (the previous lock removed)."""
    (workdir / "pylock.app.toml").unlink(missing_ok=True)
    argv = ["--layer-name", "app", "--layer-kind", "application", "--python-version", PYTHON]
    argv += ["--platform", "x86_64-unknown-linux-gnu", "--index-url", index]
    argv += ["--workspace-dir", str(workdir), "--output-lock", "pylock.app.toml"]
    for requirement in requirements:
        argv += ["--requirement", requirement]
    if routed:
        argv += ["--named-index", f"named={named}", "--package-index", f"{routed}=named"]
    if resolver == "uv":
        argv += ["--resolver", "uv", "--uv", uv.find_uv_bin()]
    env = {**os.environ, "PYTHONPATH": str(tools)}
    child = subprocess.run([sys.executable, "-c", _CHILD, *argv], env=env, stdout=subprocess.PIPE, check=True)
    return float(child.stdout.decode().split()[-1])


def main(argv: list[str]) -> int:
    """Time plain and routed locks `--runs` times per resolver (and per tree) and print the result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="pairs of runs per resolver (default 5)")
    parser.add_argument("--pypi", action="store_true", help="lock real projects against PyPI")
    parser.add_argument("--before", type=Path, help="another tree of this repository, timed beside this checkout")
    args = parser.parse_args(argv)
    trees = {"after" if args.before else "this": Path(__file__).resolve().parents[1] / "tools"}
    if args.before:
        trees["before"] = args.before.resolve() / "tools"
    result: dict[str, Any] = {"indexes": "pypi" if args.pypi else "local", "runs": args.runs, "load": [], "trees": {}}
    with tempfile.TemporaryDirectory(prefix="bench-named-indexes-") as scratch:
        root = Path(scratch)
        with (pypi_indexes if args.pypi else local_indexes)(root) as (index, named, requirements, routed):
            for resolver in ("pip", "uv"):
                times: dict[tuple[str, str], list[float]] = {}
                for run in range(args.runs):
                    result["load"].append(os.getloadavg()[0])
                    for tree in list(trees)[run % 2 :] + list(trees)[: run % 2]:
                        for kind in (None, routed) if run % 2 == 0 else (routed, None):
                            seconds = lock_once(root, trees[tree], index, named, requirements, kind, resolver)
                            times.setdefault((tree, "routed" if kind else "plain"), []).append(seconds)
                for tree in trees:
                    plain, through = times[(tree, "plain")], times[(tree, "routed")]
                    result["trees"].setdefault(tree, {})[resolver] = {
                        "plain_s": round(statistics.median(plain), 2),
                        "routed_s": round(statistics.median(through), 2),
                        "ratio_routed_to_plain": round(
                            statistics.median(r / p for r, p in zip(through, plain, strict=True)), 2
                        ),
                    }
    result["load"] = [round(load, 1) for load in result["load"]]
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
