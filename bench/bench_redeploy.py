"""What a deploy of an unchanged stack costs, now that a skip hashes the archives it skips.

    python3 bench/bench_redeploy.py [--runs N] [--before-tools DIR] [--scratch DIR]

Writes four layer archives the sizes of the bench's stack (`run_bench.py`: the runtime 5.8 MB,
the framework 63.8 MB, two applications 0.1 MB; incompressible data, so each archive is that
big), deploys them once into a DEST, then times `venvstacks_tool deploy` of the same archives
into it again (every layer skipped), N times, as a separate process (what `bazel run
//stacks:stack.deploy` starts). With `--before-tools` (the `tools/` of another checkout, for
example the commit before skips hashed: `git archive REV tools | tar -x -C DIR`), the runs
alternate between that code and this checkout's. Prints one Markdown row per code: the median
wall and CPU time, and the sha256 rate of this machine for scale. Needs the development
install (it imports `venvstacks_testing`).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from venvstacks_testing.archives import archive_bytes, write_with_metadata
from venvstacks_testing.deploy_layers import layer, make_runtime

HERE_TOOLS = Path(__file__).resolve().parents[1] / "tools"
# The bench stack's archives (docs/performance.md, "Current results"), in MB.
SIZES = {"runtime_like": 5.8, "sci_framework": 63.8, "app_report": 0.1, "app_stats": 0.1}
_FILE = 1 << 20


def write_stack(directory: Path) -> list[Path]:
    """The four archives (.tar.zst of random data, files of at most 1 MiB) with their metadata."""
    archives = []
    for name, megabytes in SIZES.items():
        size = int(megabytes * 1_000_000)
        extra = [
            (f"{name}/lib/blob{i}.bin", "file", os.urandom(min(_FILE, size - i * _FILE)))
            for i in range(-(-size // _FILE))
        ]
        archive = directory / f"{name}.tar.zst"
        archives.append(write_with_metadata(archive, archive_bytes(layer(name, extra=extra), "tar.zst"), name))
    return archives


def deploy_command(tools: Path, archives: list[Path], dest: Path) -> list[str]:
    """`venvstacks_tool deploy` of `archives` into `dest`, with the code in `tools` first on sys.path."""
    program = (
        f"import sys; sys.path.insert(0, {str(tools)!r}); from venvstacks_tool.core import cli;"
        " sys.exit(cli.main(sys.argv[1:]))"
    )
    command = [sys.executable, "-I", "-c", program, "deploy", "--dest", str(dest)]
    return command + [arg for archive in archives for arg in ("--archive", str(archive))]


def timed_deploy(tools: Path, archives: list[Path], dest: Path) -> tuple[float, float]:
    """Wall and CPU seconds of one `deploy` process that must skip every layer."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(deploy_command(tools, archives, dest), capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0 or result.stdout.count("already deployed") != len(archives):
        raise SystemExit(f"the redeploy did not skip every layer:\n{result.stdout}{result.stderr}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def sha256_rate(archives: list[Path]) -> float:
    """MB/s of hashlib's sha256 on the archives (read from the page cache)."""
    start = time.perf_counter()
    total = 0
    for archive in archives:
        data = archive.read_bytes()
        hashlib.sha256(data).hexdigest()
        total += len(data)
    return total / 1_000_000 / (time.perf_counter() - start)


def main(argv: list[str]) -> int:
    """Run the bench; print the rows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--before-tools", type=Path, help="the tools/ directory of the code to compare with")
    parser.add_argument("--scratch", type=Path, help="where to write the archives and DEST (default: a temp dir)")
    args = parser.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="bench-redeploy-", dir=args.scratch))
    try:
        archives = write_stack(scratch)
        dest = make_runtime(scratch / "dest")
        variants = {"this checkout": HERE_TOOLS}
        if args.before_tools:
            variants = {"before": args.before_tools.resolve(), **variants}
        subprocess.run(deploy_command(HERE_TOOLS, archives, dest), check=True, capture_output=True)
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
        for i in range(args.runs):
            order = list(variants.items()) if i % 2 == 0 else list(reversed(variants.items()))
            for name, tools in order:
                runs[name].append(timed_deploy(tools, archives, dest))
        total_mb = sum(a.stat().st_size for a in archives) / 1_000_000
        title = f"deploy of an unchanged stack (4 archives, {total_mb:.1f} MB), every layer skipped"
        print(f"| {title} | median wall | CPU | runs |")
        print("| --- | ---: | ---: | ---: |")
        for name, measured in runs.items():
            wall = statistics.median(w for w, _ in measured)
            cpu = statistics.median(c for _, c in measured)
            print(f"| {name} | {wall:.3f} s | {cpu:.3f} s | {len(measured)} |")
        print(f"\nsha256 on this machine: {sha256_rate(archives):.0f} MB/s; load average {os.getloadavg()}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
