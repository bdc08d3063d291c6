"""The framework's archive re-packed with each `compression` setting, as .tar.zst and .tar.xz."""

from __future__ import annotations

from typing import Any

from venvstacks_bench.bazel import remove_tree
from venvstacks_bench.core import Bench
from venvstacks_bench.host import log
from venvstacks_bench.report import mb, s, times
from venvstacks_bench.stats import ratio
from venvstacks_bench.workspace import FRAMEWORK, LAYERS


def run(bench: Bench) -> None:
    """The framework's archive re-packed with each compression setting, in .tar.zst and .tar.xz."""
    out = bench.scratch / "compression"
    out.mkdir(exist_ok=True)
    formats = "tar.zst,tar.xz" if bench.xz else "tar.zst"
    log(f"re-packing {FRAMEWORK} with each compression setting ({formats}; 1 run: the size settings are slow)")
    framework = bench.archives()[LAYERS.index(FRAMEWORK)]
    _, data = bench.tool_run("compression", str(framework), str(out), formats)
    bench.results["compression"] = data
    remove_tree(out)


def report(results: dict[str, Any], runs: int, cold_runs: int) -> list[str]:
    """A row per format and compression setting, against the default."""
    lines: list[str] = []
    row = lines.append
    comp = results.get("compression", {})
    for entry in comp.get("settings", []):
        default = next(e for e in comp["settings"] if e["format"] == entry["format"] and e["setting"] == "default")
        row(
            f'| `{comp["layer"]}` as .{entry["format"]}, `compression = "{entry["setting"]}"` | {mb(entry["bytes"])}'
            f" | 1 | {entry['bytes'] / default['bytes']:.2f}x the default's size; packed in {s(entry['seconds'])}"
            f" ({times(ratio(entry['seconds'], default['seconds']))} the default's time); decompressed in"
            f" {s(entry['decompress_seconds'], 2)} |"
        )
    return lines
