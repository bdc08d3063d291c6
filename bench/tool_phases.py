"""Measurements that run on a layer's own runtime interpreter, next to the venvstacks tool.

    PYTHON -I bench/tool_phases.py SUBCOMMAND TOOLS_DIR [ARGS...]

`bench/run_bench.py` starts this with the runtime interpreter that Bazel's actions use and with
`VENVSTACKS_TOOL_PATH` set as they set it, so the installer, zstandard and Python versions are the ones
of a real build. TOOLS_DIR is the checkout's `tools/` directory. Each subcommand prints one line
`BENCH-JSON: {...}` (anything else it prints is noise from the tool):

    build-layer TOOLS PARAMS OUT_DIR     run `build-layer` with the arguments of a Bazel action's
                                         params file (--output/--archive-record moved to OUT_DIR),
                                         with a timer around each phase of `venvstacks_tool.build.layer`
    deploy TOOLS DEST ARCHIVE...         run the tool's `deploy` with timers around unpacking,
                                         post-install and the final rename of each layer
    repack TOOLS TREE OUT_DIR FORMATS NAME=ARCHIVE...
                                         pack TREE/NAME (an unpacked layer) again with
                                         `archive.write_archive` in each of FORMATS (comma-
                                         separated, e.g. tar.zst,tar.xz); the .tar.zst is
                                         compared with ARCHIVE, the Bazel-built one
    floor TOOLS OUT_DIR WHEEL...         the floor: unzip every wheel into one directory, then tar it
                                         through zstd with archive.py's level and thread count;
                                         then (timed apart, not part of the floor) compile its
                                         bytecode with compileall on every core
    zstd-levels TOOLS DIR ROUNDS LEVEL...
                                         tar DIR in memory once, then compress it at each level
                                         with archive.py's thread count, ROUNDS times (levels
                                         interleaved); median compression and decompression
                                         time per level, and the size
    compression TOOLS ARCHIVE OUT_DIR FORMATS
                                         re-pack one layer's .tar.zst with each compression setting
                                         of archive.py (`default`, `size`) in each of FORMATS:
                                         time, size, decompression time

Only public behaviour is relied on where possible; phase timers wrap functions of the tool by
name and report the names they could not find (the tool is still being worked on), so a renamed
function shows up as time under "other", never as an error.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import platform
import shutil
import stat
import sys
import tarfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

SUBCOMMAND, TOOLS_DIR = sys.argv[1], sys.argv[2]
ARGS = sys.argv[3:]
_EXTRA = [p for p in os.environ.get("VENVSTACKS_TOOL_PATH", "").split(os.pathsep) if p]
sys.path[0:0] = [TOOLS_DIR, *(os.path.abspath(p) for p in _EXTRA)]

# Phase names that bench/run_bench.py reads back.
INSTALL_PHASE = "install wheels, sha256 (in-process; bytecode compile overlaps)"
COMPILE_PHASE = "bytecode compile: app files, then wait for the wheels' chunks"

PHASES: dict[str, float] = {}
MISSING: list[str] = []
_OVERHEAD = [0.0]  # seconds the bench itself spent inside the timed call (subtracted)


def emit(result: dict[str, Any]) -> None:
    """Print the one result line the parent reads."""
    sys.stdout.flush()
    print("BENCH-JSON: " + json.dumps(result, sort_keys=True), flush=True)


def timed(module: object, name: str, label: str) -> None:
    """Replace `module.name` with a wrapper adding its duration to PHASES[label]."""
    original = getattr(module, name, None)
    if not callable(original):
        MISSING.append(f"{getattr(module, '__name__', module)}.{name}")
        return

    @functools.wraps(original)
    def wrapper(*args: object, **kwargs: object) -> object:
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            PHASES[label] = PHASES.get(label, 0.0) + time.perf_counter() - start

    setattr(module, name, wrapper)


def tree_size(root: Path) -> tuple[int, int]:
    """(regular files, bytes) under `root`, symlinks not followed."""
    files = size = 0
    for dirpath, _, filenames in os.walk(root):
        for filename in filenames:
            st = os.lstat(os.path.join(dirpath, filename))
            if stat.S_ISREG(st.st_mode):
                files += 1
                size += st.st_size
    return files, size


def zstd_settings() -> tuple[int, int]:
    """(level, threads) that archive.py uses for .tar.zst."""
    from venvstacks_tool.core import archive

    level = int(getattr(archive, "ZSTD_DEFAULT_LEVEL", 9))
    threads_of = getattr(archive, "_zstd_threads", None)
    if callable(threads_of):
        threads = int(threads_of())
    else:
        threads = max(1, min(len(os.sched_getaffinity(0)), int(getattr(archive, "_ZSTD_MAX_THREADS", 4))))
    return level, threads


# --- build-layer --------------------------------------------------------------------------------


def cmd_build_layer(params: str, out_dir: str) -> None:
    from venvstacks_tool.build import layer as layer_build
    from venvstacks_tool.core import archive

    tree: dict[str, int] = {}
    timed(layer_build, "_check_wheels_exist", "check the wheels exist")
    timed(layer_build, "_install_wheels", INSTALL_PHASE)
    timed(layer_build, "_check_install_layout", "check install layout")
    timed(layer_build, "_copy_app_files", "copy app files")
    timed(layer_build, "_add_stacking_files", "stacking files")
    timed(layer_build, "_compile_remaining", COMPILE_PHASE)
    timed(archive, "_plan", "archive: walk, stat, sort")
    timed(archive, "_write_tar_zst", "archive: tar + zstd")
    timed(archive, "_write_tar_xz", "archive: tar + xz")
    timed(layer_build, "record_archive", "archive sha256 (record)")

    # The build-path scan gets the finished tree: measure its size there (untimed).
    scan = getattr(layer_build, "_check_no_build_paths", None)
    if callable(scan):

        def scan_wrapper(layer_dir: Path, *args: object, **kwargs: object) -> object:
            start = time.perf_counter()
            tree["files"], tree["bytes"] = tree_size(Path(layer_dir))
            _OVERHEAD[0] += time.perf_counter() - start
            start = time.perf_counter()
            try:
                return scan(layer_dir, *args, **kwargs)
            finally:
                PHASES["scan for build paths"] = time.perf_counter() - start

        layer_build._check_no_build_paths = scan_wrapper
    else:
        MISSING.append("layer_build._check_no_build_paths")

    real_rmtree = shutil.rmtree

    def rmtree(path: Any, *args: Any, **kwargs: Any) -> None:
        start = time.perf_counter()
        try:
            real_rmtree(path, *args, **kwargs)
        finally:
            PHASES["remove scratch tree"] = PHASES.get("remove scratch tree", 0.0) + time.perf_counter() - start

    shutil.rmtree = rmtree

    with open(params, encoding="utf-8") as f:
        argv = f.read().splitlines()
    for option, name in (("--output", "layer.archive"), ("--archive-record", "layer.record.json")):
        index = argv.index(option)
        if option == "--output":
            original = os.path.basename(argv[index + 1])
            name = "layer" + original[original.index(".") :] if "." in original else name
        argv[index + 1] = os.path.join(out_dir, name)
    request = layer_build.parse_request(argv)
    start = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):
        layer_build.build_layer(request)
    total = time.perf_counter() - start - _OVERHEAD[0]
    PHASES["other"] = max(0.0, total - sum(PHASES.values()))
    emit(
        {
            "total": total,
            "phases": PHASES,
            "install": PHASES.get(INSTALL_PHASE),
            "tree_files": tree.get("files"),
            "tree_bytes": tree.get("bytes"),
            "wheels": len(request.wheels),
            "archive": str(request.output),
            "archive_bytes": os.path.getsize(request.output),
            "missing_hooks": MISSING,
        }
    )


# --- deploy -------------------------------------------------------------------------------------


def cmd_deploy(dest: str, archives: list[str]) -> None:
    from venvstacks_tool.deploy import deploy

    timed(deploy, "extract_layer", "unpack (extract_layer)")
    timed(deploy, "_run_postinstall", "postinstall.py (child process)")
    timed(deploy, "_swap_in", "rename into place")
    start = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):
        deploy.deploy([Path(a) for a in archives], Path(dest))
    total = time.perf_counter() - start
    PHASES["other"] = max(0.0, total - sum(PHASES.values()))
    emit({"total": total, "phases": PHASES, "missing_hooks": MISSING})


# --- repack -------------------------------------------------------------------------------------


def _first_mtime(archive: Path) -> int:
    """The mtime of the first member of a .tar.zst (every member of a layer has the same)."""
    import zstandard

    with (
        open(archive, "rb") as raw,
        zstandard.ZstdDecompressor().stream_reader(raw) as stream,
        tarfile.open(fileobj=stream, mode="r|") as tar,
    ):
        for member in tar:
            return int(member.mtime)
    return 0


def _decompress_seconds(path: Path, archive_format: str) -> float:
    """Seconds to decompress the whole archive (no tar parsing, nothing written)."""
    start = time.perf_counter()
    with open(path, "rb") as raw:
        if archive_format == "tar.xz":
            import lzma

            with lzma.LZMAFile(raw) as stream:
                while stream.read(1 << 20):
                    pass
        else:
            import zstandard

            with zstandard.ZstdDecompressor().stream_reader(raw) as stream:
                while stream.read(1 << 20):
                    pass
    return time.perf_counter() - start


def cmd_repack(tree: str, out_dir: str, formats: str, layers: list[str]) -> None:
    from venvstacks_tool.core.archive import tree_entries, write_archive
    from venvstacks_tool.core.fsutil import sha256_file

    results: dict[str, Any] = {}
    for spec in layers:
        name, _, original = spec.partition("=")
        mtime = _first_mtime(Path(original))
        files, size = tree_size(Path(tree, name))
        entry: dict[str, Any] = {"tree_files": files, "tree_bytes": size}
        for archive_format in formats.split(","):
            output = Path(out_dir, f"{name}.{archive_format}")
            start = time.perf_counter()
            write_archive(tree_entries(Path(tree, name), name), output, archive_format, mtime)
            seconds = time.perf_counter() - start
            entry[archive_format] = {
                "seconds": seconds,
                "bytes": os.path.getsize(output),
                "decompress_seconds": _decompress_seconds(output, archive_format),
            }
            if archive_format == "tar.zst":
                entry["identical_to_bazel_output"] = sha256_file(output) == sha256_file(original)
            output.unlink()
        results[name] = entry
    emit({"layers": results, "zstd": zstd_settings()})


# --- floor --------------------------------------------------------------------------------------


def cmd_floor(out_dir: str, wheels: list[str]) -> None:
    import compileall
    import py_compile

    import zstandard

    level, threads = zstd_settings()
    tree = Path(out_dir, "tree")
    output = Path(out_dir, "floor.tar.zst")
    shutil.rmtree(tree, ignore_errors=True)
    tree.mkdir(parents=True)
    import resource

    def self_cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    cpu = self_cpu()
    start = time.perf_counter()
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as zf:
            zf.extractall(tree)
    unzip = time.perf_counter() - start
    start = time.perf_counter()
    compressor = zstandard.ZstdCompressor(level=level, threads=threads, write_checksum=True)
    with (
        open(output, "wb") as raw,
        compressor.stream_writer(raw, closefd=False) as writer,
        tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT) as tar,
    ):
        tar.add(tree, arcname="layer")
    pack = time.perf_counter() - start
    cpu = self_cpu() - cpu
    files, size = tree_size(tree)
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        compileall.compile_dir(
            str(tree),
            quiet=2,
            workers=os.cpu_count() or 1,
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        )
    compile_seconds = time.perf_counter() - start
    emit(
        {
            "unzip": unzip,
            "pack": pack,
            "total": unzip + pack,
            "cpu_floor": cpu,
            "bytecode_compile_all_cores": compile_seconds,
            "archive_bytes": os.path.getsize(output),
            "tree_files": files,
            "tree_bytes": size,
            "zstd": [level, threads],
        }
    )


# --- zstd levels ----------------------------------------------------------------------------------


def cmd_zstd_levels(directory: str, rounds: int, levels: list[str]) -> None:
    import statistics

    import zstandard

    _, threads = zstd_settings()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.add(directory, arcname=os.path.basename(directory))
    data = buffer.getvalue()
    del buffer
    times: dict[int, list[float]] = {int(level): [] for level in levels}
    unpack: dict[int, list[float]] = {int(level): [] for level in levels}
    sizes: dict[int, int] = {}
    for _ in range(rounds):
        for level in times:
            compressor = zstandard.ZstdCompressor(level=level, threads=threads, write_checksum=True)
            start = time.perf_counter()
            compressed = compressor.compress(data)
            times[level].append(time.perf_counter() - start)
            start = time.perf_counter()
            zstandard.ZstdDecompressor().decompress(compressed, max_output_size=len(data))
            unpack[level].append(time.perf_counter() - start)
            sizes[level] = len(compressed)
            del compressed
    results = [
        {
            "level": level,
            "seconds": statistics.median(times[level]),
            "bytes": sizes[level],
            "decompress_seconds": statistics.median(unpack[level]),
            "all_seconds": times[level],
        }
        for level in times
    ]
    emit({"tar_bytes": len(data), "threads": threads, "rounds": rounds, "levels": results})


def cmd_compression(archive: str, out_dir: str, formats: str) -> None:
    """Each compression setting of archive.py (COMPRESSION_SETTINGS) in each format, on one layer."""
    from venvstacks_tool.core.archive import COMPRESSION_SETTINGS, read_tar_entries, write_archive
    from venvstacks_tool.core.fsutil import sha256_file

    source = Path(archive)
    name = source.name.split(".")[0]
    entries = read_tar_entries(source, name, name)
    mtime = _first_mtime(source)
    results = []
    for archive_format in formats.split(","):
        for setting in COMPRESSION_SETTINGS:
            output = Path(out_dir, f"{name}-{setting}.{archive_format}")
            start = time.perf_counter()
            write_archive(entries, output, archive_format, mtime, compression=setting)
            seconds = time.perf_counter() - start
            results.append(
                {
                    "format": archive_format,
                    "setting": setting,
                    "seconds": seconds,
                    "bytes": os.path.getsize(output),
                    "decompress_seconds": _decompress_seconds(output, archive_format),
                    "identical_to_bazel_output": sha256_file(output) == sha256_file(source),
                }
            )
            output.unlink()
    emit({"layer": name, "settings": results, "zstd": zstd_settings()})


# --- image layers -------------------------------------------------------------------------------


def cmd_image_layers(out_dir: str, layers: list[str]) -> None:
    """`image-layer` (gzip, prefix /opt/venvstacks) of each LAYER=ARCHIVE, in-process: the total seconds and bytes."""
    from venvstacks_tool.image import image_layer

    sizes: dict[str, int] = {}
    start = time.perf_counter()
    for spec in layers:
        layer, _, archive = spec.partition("=")
        blob = Path(out_dir) / f"{layer}.tar.gz"
        argv = ["--archive", archive, "--layer-name", layer, "--prefix", "/opt/venvstacks", "--compression", "gzip"]
        argv += [
            "--platform",
            f"{platform.machine()}-unknown-linux-gnu",
            "--output",
            str(blob),
            "--descriptor",
            f"{blob}.json",
        ]
        image_layer.main(argv)
        sizes[layer] = blob.stat().st_size
    emit({"total": time.perf_counter() - start, "bytes": sizes})


COMMANDS: dict[str, Callable[[], None]] = {
    "build-layer": lambda: cmd_build_layer(ARGS[0], ARGS[1]),
    "deploy": lambda: cmd_deploy(ARGS[0], ARGS[1:]),
    "repack": lambda: cmd_repack(ARGS[0], ARGS[1], ARGS[2], ARGS[3:]),
    "floor": lambda: cmd_floor(ARGS[0], ARGS[1:]),
    "zstd-levels": lambda: cmd_zstd_levels(ARGS[0], int(ARGS[1]), ARGS[2:]),
    "compression": lambda: cmd_compression(ARGS[0], ARGS[1], ARGS[2]),
    "image-layers": lambda: cmd_image_layers(ARGS[0], ARGS[1:]),
}

if __name__ == "__main__":
    COMMANDS[SUBCOMMAND]()
