"""`image-layer`: a layer archive as one OCI image layer, deployed and post-installed under a prefix.

The image layer holds exactly what `NAME.deploy -- PREFIX` leaves in `PREFIX/<layer>`: the
archive's members moved under `PREFIX/`, and the files the layer's `postinstall.py` writes
(`pyvenv.cfg` with the runtime's path under PREFIX, the stacking files), computed here by the
very functions that script runs (`core/postinstall_template.finished_files`), so no interpreter
of the target platform runs and a linux_aarch64 layer is made on x86_64 alike. A cached
bytecode file of a stacking module that post-install rewrites is dropped, as post-install drops
it. Nothing else of the deploy tool's bookkeeping (its lock, its deploy record) is in an image:
a container starts with nothing to write.

The tar is written by `core/archive.write_tar_stream` (sorted members, uid/gid 0, normalised
modes, the archive's own mtime), so an image layer depends on its layer's archive and the prefix
only: an application's change never changes a framework's image layer.
"""

from __future__ import annotations

import argparse
import posixpath
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from venvstacks_tool.core import postinstall_template
from venvstacks_tool.core.archive import (
    ArchiveEntry,
    archive_read_errors,
    iter_archive_members,
    normalized_member_name,
    write_tar_stream,
)
from venvstacks_tool.core.cli import subcommand_parser
from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.core.fsutil import CHUNK_SIZE, json_bytes, write_bytes_atomic
from venvstacks_tool.core.platforms import TargetPlatform, by_triple
from venvstacks_tool.image import stack_bytecode
from venvstacks_tool.image.blobs import MEDIA_TYPES, write_layer_blob

STACK_MODULE = postinstall_template.STACK_MODULE_NAME
# A member's content larger than this is spooled to a scratch file rather than held in memory.
_IN_MEMORY_LIMIT = 256 * 1024


@dataclass(frozen=True)
class ImageLayerRequest:
    """The `image-layer` arguments, checked."""

    archive: Path
    layer_name: str
    prefix: str
    compression: str
    platform_triple: str
    output: Path
    descriptor: Path


def prefix_problem(prefix: str) -> str:
    """Why `prefix` cannot hold a stack in an image ('' when it can): absolute, normalised, not `/`."""
    if not prefix.startswith("/"):
        return "is not absolute"
    if posixpath.normpath(prefix) != prefix or prefix.startswith("//"):
        return f"is not normalised (write {posixpath.normpath(prefix)!r})"
    if prefix == "/":
        return "is the root directory: the layers would replace the base image's own directories"
    return ""


def linux_platform(triple: str, what: str) -> TargetPlatform:
    """The target platform of the PBS `triple`; a VenvstacksError naming `what` unless it is a Linux one."""
    platform = by_triple(triple)
    if platform.os != "linux":
        raise VenvstacksError(f"{what} is built for {platform.name}: container images are for Linux targets only")
    return platform


def build_parser() -> argparse.ArgumentParser:
    """The `image-layer` command line."""
    parser = subcommand_parser("image-layer", "Turn a layer archive into an OCI image layer under a prefix.")
    parser.add_argument("--archive", type=Path, required=True, help="the layer archive")
    parser.add_argument("--layer-name", required=True, help="the layer's name (its archive's top directory)")
    parser.add_argument("--prefix", required=True, help="absolute directory the stack's layers go to")
    parser.add_argument("--compression", choices=sorted(MEDIA_TYPES), required=True)
    parser.add_argument("--platform", required=True, help="the layer's PBS target triple")
    parser.add_argument("--output", type=Path, required=True, help="the compressed layer tar to write")
    parser.add_argument("--descriptor", type=Path, required=True, help="the layer's descriptor JSON to write")
    return parser


def parse_request(argv: list[str]) -> ImageLayerRequest:
    """The checked request of `argv`."""
    args = build_parser().parse_args(argv)
    problem = prefix_problem(args.prefix)
    if problem:
        raise VenvstacksError(f"image prefix {args.prefix!r} of layer {args.layer_name!r} {problem}")
    linux_platform(args.platform, f"layer {args.layer_name!r}")
    return ImageLayerRequest(
        archive=args.archive,
        layer_name=args.layer_name,
        prefix=args.prefix,
        compression=args.compression,
        platform_triple=args.platform,
        output=args.output,
        descriptor=args.descriptor,
    )


def _read_members(archive: Path, layer_name: str, scratch: Path) -> tuple[dict[str, ArchiveEntry], int]:
    """The archive's members by name (contents in memory or spooled into `scratch`), and their mtime."""
    entries: dict[str, ArchiveEntry] = {}
    mtime = 0
    with archive_read_errors(archive.name):
        for index, member in enumerate(iter_archive_members(archive)):
            name = normalized_member_name(member.name)
            if not name:
                continue
            if name != layer_name and not name.startswith(layer_name + "/"):
                raise VenvstacksError(
                    f"archive {archive.name!r}: member {name!r} is not under the layer {layer_name!r}"
                )
            mtime = max(mtime, int(member.mtime))
            mode = member.mode or 0
            if member.kind == "dir":
                entries[name] = ArchiveEntry(name, "dir", mode)
            elif member.kind == "symlink":
                entries[name] = ArchiveEntry(name, "symlink", 0o777, link_target=member.link_target)
            elif member.kind == "file":
                assert member.open_content is not None
                entries[name] = _file_entry(name, mode, member.size, member.open_content(), scratch / str(index))
            else:
                raise VenvstacksError(
                    f"archive {archive.name!r}: member {name!r} is a {member.kind}, which a layer cannot contain"
                )
    if layer_name not in entries:
        raise VenvstacksError(f"archive {archive.name!r}: no layer directory {layer_name!r}")
    return entries, mtime


def _file_entry(name: str, mode: int, size: int, content: IO[bytes], spool: Path) -> ArchiveEntry:
    if size <= _IN_MEMORY_LIMIT:
        return ArchiveEntry(name, "file", mode, data=content.read())
    with open(spool, "wb") as f:
        shutil.copyfileobj(content, f, CHUNK_SIZE)
    return ArchiveEntry(name, "file", mode, source_path=str(spool))


def post_installed(
    entries: dict[str, ArchiveEntry], layer_name: str, layer_dir: str, origin: str, scratch: Path
) -> None:
    """Apply to `entries` what the layer's post-install does when the layer is deployed at `layer_dir`.

    Then add the stacking module's bytecode, which a deploy leaves to the first interpreter start.
    """
    config_name = f"{layer_name}/{postinstall_template.LAYER_CONFIG_PATH}"
    config_entry = entries.get(config_name)
    if config_entry is None or config_entry.data is None:
        raise VenvstacksError(f"archive {origin!r}: no layer config {config_name!r}")
    try:
        config = postinstall_template.parse_layer_config(config_entry.data.decode("utf-8"), config_name)
    except (postinstall_template.PostInstallError, UnicodeDecodeError) as error:
        raise VenvstacksError(f"archive {origin!r}: {error}") from error
    if not postinstall_template.is_layered(config):
        return  # a runtime layer is finished as it is
    for relative, text in postinstall_template.finished_files(layer_dir, config):
        name = f"{layer_name}/{relative}"
        data = text.encode("utf-8")
        old = entries.get(name)
        if old is None or old.data != data:
            entries[name] = ArchiveEntry(name, "file", 0o644, data=data)
            if name.endswith(".py"):
                _drop_cached_bytecode(entries, posixpath.join(posixpath.dirname(name), "__pycache__"), STACK_MODULE)
        if name.endswith(".py"):
            _add_bytecode(entries, name, posixpath.join(layer_dir, relative), str(config["py_version"]), scratch)


def _add_bytecode(entries: dict[str, ArchiveEntry], name: str, image_path: str, py_version: str, scratch: Path) -> None:
    pyc = stack_bytecode.cache_name(STACK_MODULE, py_version)
    source = entries[name].data
    if pyc is None or source is None:
        return
    pyc_name = posixpath.join(posixpath.dirname(name), "__pycache__", pyc)
    entries[pyc_name] = ArchiveEntry(
        pyc_name, "file", 0o644, data=stack_bytecode.compile_module(source, image_path, scratch)
    )


def _drop_cached_bytecode(entries: dict[str, ArchiveEntry], cache_dir: str, module: str) -> None:
    for name in [name for name in entries if posixpath.dirname(name) == cache_dir]:
        if postinstall_template.is_cached_bytecode(posixpath.basename(name), module):
            del entries[name]


def under_prefix(entries: dict[str, ArchiveEntry], prefix: str) -> Iterator[ArchiveEntry]:
    """`entries` renamed below `prefix` (absolute; the tar holds it without its leading `/`)."""
    top = prefix.lstrip("/")
    for entry in entries.values():
        yield ArchiveEntry(
            f"{top}/{entry.name}",
            entry.kind,
            entry.mode,
            data=entry.data,
            source_path=entry.source_path,
            link_target=entry.link_target,
        )


def build_image_layer(request: ImageLayerRequest) -> dict[str, object]:
    """Write the image layer blob; return its descriptor."""
    with tempfile.TemporaryDirectory(prefix=".image-layer-", dir=request.output.parent) as scratch:
        entries, mtime = _read_members(request.archive, request.layer_name, Path(scratch))
        layer_dir = posixpath.join(request.prefix, request.layer_name)
        post_installed(entries, request.layer_name, layer_dir, request.archive.name, Path(scratch))
        digests = write_layer_blob(
            request.output,
            request.compression,
            lambda stream: write_tar_stream(under_prefix(entries, request.prefix), stream, mtime),
        )
    return {
        "digest": digests.digest,
        "diff_id": digests.diff_id,
        "layer_name": request.layer_name,
        "mediaType": digests.media_type,
        "platform": request.platform_triple,
        "prefix": request.prefix,
        "size": digests.size,
    }


def main(argv: list[str]) -> int:
    """Writes the image layer and its descriptor."""
    request = parse_request(argv)
    descriptor = build_image_layer(request)
    write_bytes_atomic(request.descriptor, json_bytes(descriptor))
    return 0
