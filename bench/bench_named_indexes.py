"""`python3 bench/bench_named_indexes.py [--runs N] [--pypi]`: what the routing index costs a lock.

Times the tool's `lock` (no Bazel: the resolver runs are what routing changes) of one layer,
with each resolver, in alternating runs:

- plain: the layer's requirements against its index;
- routed: the same, with one project taken from a named index (`--package-index`), so that every
  project page goes through the routing index on 127.0.0.1 (lock/index_router.py).

By default the indexes are local (`WheelIndex` on 127.0.0.1: 30 projects in a dependency chain,
the routed one also on a second index); `--pypi` locks real projects against PyPI instead
(requests, rich, click, with `rich` routed to PyPI under a name), where index latency dominates.
Prints the medians and the median of each pair's ratio (routed / plain) as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import uv

from venvstacks_testing.wheel_index import WheelIndex
from venvstacks_tool.lock import lock_command

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


def lock_once(
    workdir: Path, index: str, named: str, requirements: Sequence[str], routed: str | None, resolver: str
) -> float:
    """Seconds of one fresh `lock` (the previous lock removed)."""
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
    start = time.monotonic()
    with contextlib.redirect_stdout(sys.stderr):  # stdout is the JSON result
        lock_command.main(argv)
    return time.monotonic() - start


def main(argv: list[str]) -> int:
    """Time plain and routed locks `--runs` times per resolver and print the result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="pairs of runs per resolver (default 5)")
    parser.add_argument("--pypi", action="store_true", help="lock real projects against PyPI")
    args = parser.parse_args(argv)
    result: dict[str, object] = {"indexes": "pypi" if args.pypi else "local", "runs": args.runs}
    with tempfile.TemporaryDirectory(prefix="bench-named-indexes-") as scratch:
        root = Path(scratch)
        with (pypi_indexes if args.pypi else local_indexes)(root) as (index, named, requirements, routed):
            for resolver in ("pip", "uv"):
                plain, through, ratios = [], [], []
                for run in range(args.runs):
                    order = (None, routed) if run % 2 == 0 else (routed, None)
                    times = {str(kind): lock_once(root, index, named, requirements, kind, resolver) for kind in order}
                    plain.append(times["None"])
                    through.append(times[routed])
                    ratios.append(times[routed] / times["None"])
                result[resolver] = {
                    "plain_s": round(statistics.median(plain), 2),
                    "routed_s": round(statistics.median(through), 2),
                    "ratio_routed_to_plain": round(statistics.median(ratios), 2),
                }
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
