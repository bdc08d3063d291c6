"""`pack-runtime`: turn a python-build-standalone `install_only` archive into a runtime layer.

The layer archive holds the PBS tree under `<layer-name>/` instead of `python/`, symlinks kept,
without the installer tooling PBS bundles in site-packages (pip, setuptools, wheel: removed as
venvstacks removes them, see `runtime_tooling`), plus the layer config that venvstacks'
deployment protocol reads from `<layer-name>/share/venv/metadata/venvstacks_layer.json` and,
as in every layer, `postinstall.py` at its root (for a runtime it has nothing to do). A metadata
JSON next to it describes the archive (name, format, sha256, size) and where the runtime came from.

Everything in both outputs comes from the arguments and the source archive's content: no clock,
no absolute path, no environment variable. The arguments are parsed once into a `RuntimePack`
(`parse_request`); the target platform (`--platform`, a PBS triple) decides the layout checked.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from venvstacks_tool.build.published_metadata import published_metadata
from venvstacks_tool.build.runtime_bytecode import stdlib_bytecode
from venvstacks_tool.build.runtime_tooling import strip_installer_tooling
from venvstacks_tool.core import postinstall_template
from venvstacks_tool.core.archive import (
    ARCHIVE_FORMATS,
    ArchiveEntry,
    add_compression_argument,
    read_tar_entries,
    reroot_entries,
    write_archive,
)
from venvstacks_tool.core.cli import subcommand_parser
from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.core.fsutil import json_bytes, sha256_file
from venvstacks_tool.core.platforms import TargetPlatform, by_triple
from venvstacks_tool.core.protocol import (
    LAYER_CONFIG_PATH,
    LAYER_NAME_MAX_LENGTH,
    POSTINSTALL_NAME,
    PYTHON_VERSION_RE,
    is_layer_name,
    is_sha256,
    record_archive,
    runtime_layer_config,
    runtime_metadata,
    write_metadata,
)

# `lib/python3.12/` (and `lib/python3.13t/` for a free-threaded build) on Unix.
_UNIX_LIB_RE = re.compile(r"lib/python(\d+\.\d+)(t?)/os\.py")
_WINDOWS_DLL_RE = re.compile(r"python(\d)(\d+)\.dll")
_MAX_LISTED = 10


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of `pack-runtime` (reads `@paramfile` arguments)."""
    parser = subcommand_parser(
        "pack-runtime", "Pack a python-build-standalone install_only archive as a runtime layer."
    )
    parser.add_argument("--source-archive", required=True, type=Path, help="the PBS archive")
    parser.add_argument("--strip-prefix", default="python", help="top-level directory of the PBS archive")
    parser.add_argument("--layer-name", required=True, help="layer name, e.g. cpython3_12")
    parser.add_argument("--python-version", required=True, help="full version, e.g. 3.12.7")
    parser.add_argument("--pbs-release", default="", help="PBS release tag (empty for a custom build)")
    parser.add_argument(
        "--source-sha256",
        default="",
        help="expected sha256 of the source archive (checked; computed when empty)",
    )
    parser.add_argument("--platform", required=True, help="target triple, e.g. x86_64-unknown-linux-gnu")
    parser.add_argument("--archive-format", required=True, choices=ARCHIVE_FORMATS)
    add_compression_argument(parser)
    parser.add_argument("--mtime", required=True, type=int, help="timestamp of every member, seconds since epoch")
    parser.add_argument("--output", required=True, type=Path, help="the layer archive to write")
    parser.add_argument("--metadata", required=True, type=Path, help="the metadata JSON to write")
    parser.add_argument(
        "--published-metadata", type=Path, help="also write the metadata in venvstacks' published schema here"
    )
    parser.add_argument(
        "--bytecode",
        default="compiled",
        choices=("compiled", "none"),
        help="compiled: add the stdlib's missing .pyc files (deterministic); none: ship the archive's as they are",
    )
    return parser


@dataclass(frozen=True)
class RuntimePack:
    """Everything `pack-runtime` was asked to do, validated."""

    layer: str
    python_version: str  # the full version, e.g. "3.12.7"
    major: int
    minor: int
    platform: TargetPlatform
    source_archive: Path
    strip_prefix: str  # without leading or trailing "/"; "" for an archive without a top directory
    pbs_release: str  # "" for a custom build
    source_sha256: str  # lower-case hex, or "" to take the archive's as it is
    archive_format: str
    compression: str  # a name of archive.COMPRESSION_SETTINGS
    mtime: int
    bytecode: str  # "compiled" or "none"
    output: Path
    metadata: Path
    published_metadata: Path | None = None


def parse_request(argv: list[str]) -> RuntimePack:
    """Parse and validate `pack-runtime`'s command line (the checks that do not need the archive)."""
    args = build_parser().parse_args(argv)
    layer: str = args.layer_name
    if not is_layer_name(layer):
        raise VenvstacksError(
            f"runtime layer {layer!r}: the layer name must be 1 to {LAYER_NAME_MAX_LENGTH} letters, digits,"
            " '_', '.', '-' and '@', not starting with '.', '-' or '@'"
        )
    version = PYTHON_VERSION_RE.fullmatch(args.python_version)
    if version is None:
        raise VenvstacksError(
            f"runtime layer {layer!r}: --python-version {args.python_version!r} is not a full X.Y.Z version"
        )
    if args.source_sha256 and not is_sha256(args.source_sha256.lower()):
        raise VenvstacksError(f"runtime layer {layer!r}: --source-sha256 {args.source_sha256!r} is not a hex sha256")
    if args.mtime < 0:
        raise VenvstacksError(f"runtime layer {layer!r}: --mtime must not be negative")
    if not args.platform:
        raise VenvstacksError(f"runtime layer {layer!r}: --platform is empty")
    try:
        platform = by_triple(args.platform)
    except VenvstacksError as error:
        raise VenvstacksError(f"runtime layer {layer!r}: --platform: {error}") from None
    if args.output.resolve() == args.metadata.resolve():
        raise VenvstacksError(f"runtime layer {layer!r}: --output and --metadata are one file")
    return RuntimePack(
        layer=layer,
        python_version=args.python_version,
        major=int(version.group(1)),
        minor=int(version.group(2)),
        platform=platform,
        source_archive=args.source_archive,
        strip_prefix=args.strip_prefix.strip("/"),
        pbs_release=args.pbs_release,
        source_sha256=args.source_sha256.lower(),
        archive_format=args.archive_format,
        compression=args.compression,
        mtime=args.mtime,
        bytecode=args.bytecode,
        output=args.output,
        metadata=args.metadata,
        published_metadata=args.published_metadata,
    )


def _top_level_listing(names: list[str]) -> str:
    """`a/, b/, c` for the first path components of `names` (a `/` marks a directory)."""
    tops: dict[str, bool] = {}
    for name in names:
        top, sep, _ = name.partition("/")
        tops[top] = tops.get(top, False) or bool(sep)
    if not tops:
        return "(none: the archive is empty)"
    listed = [top + ("/" if is_dir else "") for top, is_dir in sorted(tops.items())]
    if len(listed) > _MAX_LISTED:
        more = len(listed) - _MAX_LISTED
        listed = [*listed[:_MAX_LISTED], f"... ({more} more)"]
    return ", ".join(listed)


def _check_layout(
    entries: list[ArchiveEntry],
    *,
    layer: str,
    origin: str,
    prefix: str,
    windows: bool,
    major: int,
    minor: int,
    python_version: str,
) -> dict[str, str]:
    """Check the PBS install_only layout under `prefix`; return the layer's interpreter paths.

    The result maps "python" and "site_dir" to paths relative to the layer root.
    """
    kinds = {e.name: e.kind for e in entries}
    lead = f"{prefix}/" if prefix else ""
    xy = f"{major}.{minor}"

    def layout_error(expected: list[str]) -> VenvstacksError:
        quoted = " and ".join(f"'{lead}{path}'" for path in expected)
        return VenvstacksError(
            f"runtime layer {layer!r}: archive {origin!r} does not have the"
            f" python-build-standalone install_only layout: expected {quoted};"
            f" found top-level entries: {_top_level_listing(list(kinds))}"
        )

    def version_error(found: str, found_path: str, expected_path: str) -> VenvstacksError:
        return VenvstacksError(
            f"runtime layer {layer!r}: archive {origin!r} holds Python {found}"
            f" ('{lead}{found_path}'), but --python-version is {python_version}"
            f" (expected '{lead}{expected_path}')"
        )

    if windows:
        expected = ["python.exe", "Lib/os.py"]
        if kinds.get(lead + "python.exe") not in ("file", "symlink") or (kinds.get(lead + "Lib/os.py") != "file"):
            raise layout_error(expected)
        dlls = sorted(
            m.groups()
            for name in kinds
            if name.startswith(lead) and (m := _WINDOWS_DLL_RE.fullmatch(name[len(lead) :])) is not None
        )
        if dlls and (str(major), str(minor)) not in dlls:
            found_major, found_minor = dlls[0]
            raise version_error(
                f"{found_major}.{found_minor}",
                f"python{found_major}{found_minor}.dll",
                f"python{major}{minor}.dll",
            )
        return {"python": "python.exe", "site_dir": "Lib/site-packages"}

    expected = ["bin/python3", f"lib/python{xy}/os.py"]
    if kinds.get(lead + "bin/python3") not in ("file", "symlink"):
        raise layout_error(expected)
    found: dict[str, str] = {}  # lib dir name -> its X.Y
    for name, kind in kinds.items():
        if kind == "file" and name.startswith(lead):
            match = _UNIX_LIB_RE.fullmatch(name[len(lead) :])
            if match is not None:
                found[f"python{match.group(1)}{match.group(2)}"] = match.group(1)
    matching = sorted(lib for lib, version in found.items() if version == xy)
    if matching:
        # `python3.13` before `python3.13t` if a tree somehow holds both.
        return {"python": "bin/python3", "site_dir": f"lib/{matching[0]}/site-packages"}
    if found:
        lib = min(found)
        raise version_error(found[lib], f"lib/{lib}/", f"lib/python{xy}/")
    raise layout_error(expected)


def pack_runtime(request: RuntimePack) -> None:
    """Validate the source archive, then write the runtime layer archive and its metadata."""
    layer = request.layer
    source = request.source_archive
    origin = source.name
    prefix = request.strip_prefix

    if not source.is_file():
        raise VenvstacksError(f"runtime layer {layer!r}: archive {origin!r} does not exist")
    source_sha256 = sha256_file(source)
    if request.source_sha256 and request.source_sha256 != source_sha256:
        raise VenvstacksError(
            f"runtime layer {layer!r}: archive {origin!r} has sha256 {source_sha256},"
            f" but --source-sha256 is {request.source_sha256}"
        )

    # Read without stripping first, so a wrong layout is reported with the top-level entries
    # rather than as "member not under the strip prefix".
    entries = read_tar_entries(source, "", "")
    paths = _check_layout(
        entries,
        layer=layer,
        origin=origin,
        prefix=prefix,
        windows=request.platform.os == "windows",
        major=request.major,
        minor=request.minor,
        python_version=request.python_version,
    )
    entries = reroot_entries(entries, prefix, layer, origin)
    # As venvstacks ships runtimes: without pip, setuptools and wheel (see runtime_tooling).
    entries, _ = strip_installer_tooling(entries, f"{layer}/{paths['site_dir']}", layer)
    if request.bytecode == "compiled":
        running = f"{sys.version_info[0]}.{sys.version_info[1]}"
        if running != f"{request.major}.{request.minor}":
            raise VenvstacksError(
                f"runtime layer {layer!r}: compiling the stdlib of Python {request.python_version} needs an"
                f" interpreter of that X.Y; the tool runs on {running}"
            )
        lib_dir = f"{layer}/{paths['site_dir'].rpartition('/')[0]}"
        entries += stdlib_bytecode(entries, lib_dir, layer, request.mtime)
    # venvstacks' own post-install script can read this config too; a runtime is its own base.
    config = runtime_layer_config(layer, request.python_version, paths["python"], paths["site_dir"])
    entries.append(ArchiveEntry(f"{layer}/{LAYER_CONFIG_PATH}", "file", 0o644, data=json_bytes(config)))
    # Every layer has the protocol's post-install script at its root, so a deployer runs each
    # layer's alike; a runtime's has nothing to finish (its config is its own base) and exits.
    postinstall = f"{layer}/{POSTINSTALL_NAME}"
    if any(entry.name == postinstall for entry in entries):
        raise VenvstacksError(f"runtime layer {layer!r}: archive {origin!r} already holds {POSTINSTALL_NAME!r}")
    template = Path(postinstall_template.__file__).read_bytes()
    entries.append(ArchiveEntry(postinstall, "file", 0o644, data=template))

    write_archive(entries, request.output, request.archive_format, request.mtime, compression=request.compression)

    record = record_archive(layer, request.output, request.archive_format)
    metadata = runtime_metadata(
        record=record,
        pbs_release=request.pbs_release,
        platform=request.platform.triple,
        python_version=request.python_version,
        source_sha256=source_sha256,
        strip_prefix=prefix,
    )
    write_metadata(request.metadata, metadata)
    if request.published_metadata is not None:
        # A runtime layer has no lock here: what it was built from is the PBS archive, so that is
        # the "requirements" whose hash venvstacks' deployers compare.
        published = published_metadata(
            record=record,
            kind="runtime",
            requirements_hash=f"sha256:{source_sha256}",
            locked_at_epoch=request.mtime,
            runtime_layer=layer,
            python_version=request.python_version,
            platform=request.platform,
            required_layers=[],
        )
        write_metadata(request.published_metadata, published)


def main(argv: list[str]) -> int:
    """Run `pack-runtime` with `argv`; errors are raised as VenvstacksError."""
    pack_runtime(parse_request(argv))
    return 0
