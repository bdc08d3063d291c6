"""Archives: each layer unpacked and packed again as .tar.zst and .tar.xz, and a zstd level sweep.

One run (xz is slow); the .tar.zst is checked to be byte-identical to Bazel's, and each archive's
decompression is timed; the sweep is over the framework's tar (levels interleaved, median of N).
Needs the deploy step's last `tar -x` tree.
"""

from __future__ import annotations

from typing import Any

from venvstacks_bench.bazel import remove_tree
from venvstacks_bench.core import Bench
from venvstacks_bench.host import log
from venvstacks_bench.report import mb, s
from venvstacks_bench.workspace import FRAMEWORK, LAYERS

ZSTD_LEVELS = ("1", "3", "6", "9", "12")


def run(bench: Bench) -> None:
    """Each layer re-packed from the deploy step's last `tar -x` tree, then the zstd level sweep."""
    tree = bench.tar_tree  # the last `tar -x` of the archives
    out = bench.scratch / "repack"
    out.mkdir(exist_ok=True)
    specs = [f"{layer}={archive}" for layer, archive in zip(LAYERS, bench.archives(), strict=True)]
    if not bench.xz:
        log("re-packing each layer as .tar.zst (--no-xz: .tar.xz skipped)")
    else:
        log("re-packing each layer as .tar.zst and .tar.xz (1 run; xz takes a while)")
    formats = "tar.zst,tar.xz" if bench.xz else "tar.zst"
    _, data = bench.tool_run("repack", str(tree), str(out), formats, *specs)
    bench.results["archives"] = data
    log(f"zstd level sweep over the {FRAMEWORK} tree")
    _, sweep = bench.tool_run("zstd-levels", str(tree / FRAMEWORK), str(bench.runs), *ZSTD_LEVELS)
    bench.results["zstd_levels"] = sweep
    remove_tree(tree)


def report(results: dict[str, Any], runs: int, cold_runs: int) -> list[str]:
    """A row per layer's archive sizes, and the zstd level sweep's."""
    lines: list[str] = []
    row = lines.append
    archives = results.get("archives", {})
    for layer, entry in archives.get("layers", {}).items():
        zst, xz = entry["tar.zst"], entry.get("tar.xz")
        xz_text = (
            f"{mb(xz['bytes'])} in {s(xz['seconds'])} (decompress {s(xz['decompress_seconds'], 2)})"
            if xz
            else "skipped"
        )
        same = "identical to Bazel's" if entry.get("identical_to_bazel_output") else "NOT identical to Bazel's"
        row(
            f"| archive `{layer}`: .tar.zst / .tar.xz | {mb(zst['bytes'])} / {xz_text.split(' in ')[0]} | 1 |"
            f" unpacked {mb(entry['tree_bytes'])} in {entry['tree_files']} files; zst {s(zst['seconds'])}"
            f" (decompress {s(zst['decompress_seconds'], 2)}; {same}),"
            f" xz {xz_text} |"
        )
    sweep = results.get("zstd_levels", {})
    if sweep:
        parts = [
            f"{level['level']}: {mb(level['bytes'])} {s(level['seconds'])} (unpack {s(level['decompress_seconds'], 2)})"
            for level in sweep["levels"]
        ]
        row(
            f"| zstd levels on the `{FRAMEWORK}` tar ({mb(sweep['tar_bytes'])}, {sweep['threads']} threads) |"
            f" | {sweep['rounds']} | level: size, time (decompression) — {'; '.join(parts)} |"
        )
    return lines
