"""What venvstacks' stack summary adds to a `layer_stack`'s metadata action.

    python3 bench/bench_stack_summary.py [--layers N] [--runs N]

A `layer_stack` runs one `venvstacks_tool stack-metadata` process (the `VenvstacksStackMetadata`
action), which also writes `__venvstacks__/<platform>/venvstacks.json` from every layer's
published metadata. This times that process outside Bazel for a stack of N layers (a runtime,
then frameworks and applications, their metadata in both schemas as the build writes them),
without and with the summary, alternating, R times each. Prints one Markdown row: the medians
and their ratio. Needs the development install.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from venvstacks_tool.build.published_metadata import published_metadata
from venvstacks_tool.core.fsutil import json_bytes
from venvstacks_tool.core.platforms import by_name
from venvstacks_tool.core.protocol import ArchiveRecord

ENTRY = Path(__file__).resolve().parents[1] / "tools" / "bin" / "venvstacks_tool.py"


def write_layers(directory: Path, count: int) -> tuple[list[str], list[str]]:
    """Both metadata files of `count` layers; the `stack-metadata` arguments without and with the summary."""
    combined = ["stack-metadata", "--output", str(directory / "stack.json")]
    summary = ["--published-summary", str(directory / "venvstacks.json")]
    for index in range(count):
        name = f"layer{index:03}"
        kind = "runtime" if index == 0 else "framework" if index <= count // 2 else "application"
        record = ArchiveRecord(name, f"{name}.tar.zst", "tar.zst", f"{index:064x}", 10_000_000 + index)
        published = published_metadata(
            record=record,
            kind=kind,
            requirements_hash=f"sha256:{index:064x}",
            locked_at_epoch=1756252800,
            runtime_layer="layer000",
            python_version="3.12.7",
            platform=by_name("linux_x86_64"),
            required_layers=[f"layer{lower:03}" for lower in range(1, min(index, 4))],
            launch_module="app" if kind == "application" else "",
        )
        (directory / f"{name}.json").write_bytes(json_bytes({"layer_name": name, "kind": kind, "archive": {}}))
        (directory / f"published.{name}.json").write_bytes(json_bytes(published))
        combined += ["--layer-metadata", str(directory / f"{name}.json")]
        summary += ["--published-layer", f"{kind}={directory / f'published.{name}.json'}"]
    return combined, combined + summary


def seconds(argv: list[str]) -> float:
    """Wall time of one tool process, started as actions start it (`python -I`)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-I", str(ENTRY), *argv], check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=100, help="layers in the stack (default 100)")
    parser.add_argument("--runs", type=int, default=30, help="runs of each variant (default 30)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        without, with_summary = write_layers(Path(scratch), args.layers)
        times: dict[str, list[float]] = {"without": [], "with": []}
        for _ in range(args.runs):
            times["without"].append(seconds(without))
            times["with"].append(seconds(with_summary))
    plain, summary = (statistics.median(times[key]) for key in ("without", "with"))
    print("| layers | stack-metadata (median) | with venvstacks.json (median) | ratio |")
    print("| --- | --- | --- | --- |")
    print(f"| {args.layers} | {plain * 1000:.0f} ms | {summary * 1000:.0f} ms | {summary / plain:.2f} |")


if __name__ == "__main__":
    main()
