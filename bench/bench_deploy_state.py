"""What DEST's deploy state costs a deploy, against the number of layers (issue 26).

    python3 bench/bench_deploy_state.py [--layers 40,80,160] [--before-tools DIR] [--scratch DIR]

Writes a framework-like layer `fw_base` (`bin/python` -> `../../cpython_rt/bin/python3`) and N - 1
application-like layers on it (`bin/python` -> `../../fw_base/bin/python`, `bin/python3` and
`bin/python3.11` -> `python`, a few files), then deploys the N layers into an empty DEST, and again
into it with `--force` (every layer replaced: `fw_base` first, which every application's links
resolve through, so each of them is checked against the new `fw_base`), each as a separate
process (what `bazel run //stacks:stack.deploy` starts) under cProfile. From the profile it reads
the cumulative CPU time of

- the state's writes: `DeployState.record` and `DeployState.forget` (before the records, each
  wrote the whole state file again; now one record file a layer);
- the link checks: getting the deployed links to check (`DeployState.deployed_links` before,
  `DeployState.links_reaching` now) and checking them (`Extraction.check_deployed_links`).

With `--before-tools` (the `tools/` of another checkout, for example main's before the records:
`git archive REV tools | tar -x -C DIR`), the same is measured with that code first, then this
checkout's. Prints one Markdown table: each figure against the number of layers, with the growth
from the number before (x2.00 is linear). The profile counts the deploy process's CPU time, which
a loaded machine changes least; cProfile slows the profiled Python calls, not the post-install
processes: read the state's share of a deploy as an upper bound. Needs the
development install (it imports `venvstacks_testing`).
"""

from __future__ import annotations

import argparse
import pstats
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from venvstacks_testing.archives import archive_bytes, write_with_metadata
from venvstacks_testing.deploy_layers import RUNTIME, layer, make_runtime

HERE_TOOLS = Path(__file__).resolve().parents[1] / "tools"
BASE = "fw_base"  # the layer every application's links resolve through
# What each figure sums, by (file name, function name) in the profile: both codes' names.
STATE_WRITES = {("transaction.py", "record"), ("transaction.py", "forget")}
LINK_CHECKS = {
    ("transaction.py", "deployed_links"),
    ("transaction.py", "links_reaching"),
    ("extraction.py", "check_deployed_links"),
}
# Runs `deploy` under cProfile with the code of argv[1] first on sys.path; the profile to argv[2].
# The profile counts CPU time (`time.process_time`), not wall time: on a loaded machine a wall
# clock charges a preempted call with the other processes' time.
_PROFILED = """\
import cProfile, sys, time
sys.path.insert(0, sys.argv[1])
from venvstacks_tool.core import cli
profile = cProfile.Profile(time.process_time)
status = profile.runcall(cli.main, sys.argv[3:])
profile.dump_stats(sys.argv[2])
sys.exit(status)
"""


def write_layers(directory: Path, count: int) -> list[Path]:
    """`fw_base` and `count` - 1 application-like layer archives (.tar.zst) with their metadata, in order."""
    base = [(f"{BASE}/bin/python", "symlink", f"../../{RUNTIME}/bin/python3")]
    archives = [
        write_with_metadata(directory / f"{BASE}.tar.zst", archive_bytes(layer(BASE, extra=base), "tar.zst"), BASE)
    ]
    for i in range(count - 1):
        name = f"app_{i:03d}"
        extra = [
            (f"{name}/bin/python", "symlink", f"../../{BASE}/bin/python"),
            (f"{name}/bin/python3", "symlink", "python"),
            (f"{name}/bin/python3.11", "symlink", "python"),
            *((f"{name}/lib/{name}/m{j}.py", "file", f"VALUE = {j}\n".encode()) for j in range(5)),
        ]
        archive = directory / f"{name}.tar.zst"
        archives.append(write_with_metadata(archive, archive_bytes(layer(name, extra=extra), "tar.zst"), name))
    return archives


def profiled_deploy(tools: Path, archives: list[Path], dest: Path, profile: Path, force: bool) -> tuple[float, float]:
    """`deploy` of `archives` into `dest` with the code in `tools`, profiled into `profile`.

    Returns its wall time and its CPU time (the deploy's process and its post-install processes).
    """
    command = [sys.executable, "-I", "-c", _PROFILED, str(tools), str(profile), "deploy", "--dest", str(dest)]
    command += [arg for archive in archives for arg in ("--archive", str(archive))]
    command += ["--force"] if force else []
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def cumulative(profile: Path, functions: set[tuple[str, str]]) -> float:
    """The cumulative seconds of `functions` (file name, function name) in a cProfile file (CPU time here)."""
    stats = pstats.Stats(str(profile)).stats  # type: ignore[attr-defined]  # pstats keeps it undeclared
    return sum(
        entry[3] for (filename, _, function), entry in stats.items() if (Path(filename).name, function) in functions
    )


def measure(tools: Path, archives: list[Path], scratch: Path, label: str) -> dict[str, float]:
    """A deploy into an empty DEST, then a forced one into it: wall times and the state's shares."""
    dest = make_runtime(scratch / f"dest-{label}-{len(archives)}")
    figures: dict[str, float] = {}
    for kind, force in (("empty", False), ("force", True)):
        profile = scratch / f"{label}-{len(archives)}-{kind}.prof"
        figures[f"{kind}_wall"], figures[f"{kind}_cpu"] = profiled_deploy(tools, archives, dest, profile, force)
        figures[f"{kind}_writes"] = cumulative(profile, STATE_WRITES)
        figures[f"{kind}_checks"] = cumulative(profile, LINK_CHECKS)
    return figures


ROWS = (
    ("deploy into an empty DEST, wall (s)", "empty_wall", "{:.2f}"),
    ("the same, CPU time (s)", "empty_cpu", "{:.2f}"),
    ("of which the state's writes (s)", "empty_writes", "{:.3f}"),
    ("of which the link checks (s)", "empty_checks", "{:.3f}"),
    ("deploy again with `--force` (every layer replaced), wall (s)", "force_wall", "{:.2f}"),
    ("the same, CPU time (s)", "force_cpu", "{:.2f}"),
    ("of which the state's writes (s)", "force_writes", "{:.3f}"),
    ("of which the link checks (s)", "force_checks", "{:.3f}"),
)


def render(results: dict[str, dict[int, dict[str, float]]]) -> str:
    """One table: a row a figure and code, a column a number of layers, with the growth."""
    counts = sorted(next(iter(results.values())))
    lines = [
        "| code: figure | " + " | ".join(f"{n} layers" for n in counts) + " |",
        "| --- |" + " ---: |" * len(counts),
    ]
    for label, by_count in results.items():
        for text, key, fmt in ROWS:
            cells, before = [], None
            for n in counts:
                value = by_count[n][key]
                cell = fmt.format(value)
                if before:
                    cell += f" (x{value / before:.2f})"
                cells.append(cell)
                before = value
            lines.append(f"| {label}: {text} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    """Measure each number of layers of `--layers` and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", default="40,80,160", help="numbers of layers (default 40,80,160)")
    parser.add_argument("--before-tools", type=Path, help="another checkout's tools/, measured first as 'before'")
    parser.add_argument("--scratch", type=Path, help="where the archives and DESTs go (default: a temporary dir)")
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.layers.split(",") if n]
    codes = {"before": args.before_tools} if args.before_tools else {}
    codes["this checkout"] = HERE_TOOLS
    with tempfile.TemporaryDirectory(dir=args.scratch) as tmp:
        scratch = Path(tmp)
        archives = write_layers(scratch, max(counts))
        results = {
            label: {n: measure(tools, archives[:n], scratch, label.replace(" ", "-")) for n in counts}
            for label, tools in codes.items()
        }
    print(render(results), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
