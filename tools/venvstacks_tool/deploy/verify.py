"""Checking what is deployed: each archive against the metadata JSON the build wrote for it.

Deploying runs each layer's `postinstall.py`, code from the archive. So before an archive is
unpacked, its size and sha256 must equal `archive.size` and `archive.sha256` of its metadata
(`NAME.json` beside `NAME.<format>`, or given with `--metadata`), and the layer it holds must be
the metadata's `layer_name` (checked on its first member, `Extraction`). An archive without
metadata is refused.

The archive is hashed through the descriptor it is then unpacked from, so a file swapped in
after the check is never read; it is hashed once, in chunks, and the archives of one deploy are
hashed side by side (hashlib releases the GIL). Every archive is hashed, also one whose layer
DEST already holds: "already deployed" is decided from the bytes given, never from the metadata
alone. The layer an archive holds is read from its first member (`archive_layer`), so metadata
of another layer is refused naming both.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from venvstacks_tool.core.archive import ARCHIVE_FORMATS, ARCHIVE_HEAD_SIZE, detect_archive_format
from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.core.fsutil import sha256_of_open_file
from venvstacks_tool.core.protocol import is_layer_name, is_sha256, read_metadata
from venvstacks_tool.deploy.extraction import layer_mismatch


@dataclass(frozen=True)
class Expected:
    """What the metadata says of one archive: the layer in it, its sha256 and its size."""

    archive: Path
    metadata: Path
    layer: str
    sha256: str
    size: int


def metadata_beside(archive: Path) -> Path:
    """`NAME.json` for `NAME.<format>`: where the build writes a layer's metadata."""
    name = archive.name
    for archive_format in ARCHIVE_FORMATS:
        if name.endswith("." + archive_format):
            return archive.with_name(name[: -len(archive_format) - 1] + ".json")
    return archive.with_name(name + ".json")


def pair_metadata(archives: Sequence[Path], metadata: Sequence[Path] | None) -> list[Path]:
    """The metadata file of each archive: as given (one per archive, same order), else beside it."""
    if metadata:
        if len(metadata) != len(archives):
            raise VenvstacksError(
                f"deploy: {len(archives)} --archive but {len(metadata)} --metadata; give one --metadata per"
                " --archive, in the same order (or none, to use NAME.json beside each NAME.<format>)"
            )
        return list(metadata)
    return [metadata_beside(archive) for archive in archives]


def read_expected(archive: Path, metadata: Path) -> Expected:
    """What `metadata` says of `archive`; a one-line error for missing or unusable metadata."""
    if not metadata.is_file():
        raise VenvstacksError(
            f"archive {archive.name!r}: no metadata {str(metadata)!r}; deploy only unpacks an archive it can check"
            " against the metadata JSON the build wrote for it (--metadata)"
        )
    document = read_metadata(metadata)
    entry = document.get("archive")
    layer = document.get("layer_name")
    sha256 = entry.get("sha256") if isinstance(entry, dict) else None
    size = entry.get("size") if isinstance(entry, dict) else None
    if not isinstance(layer, str) or not is_layer_name(layer) or not is_sha256(sha256) or not isinstance(size, int):
        raise VenvstacksError(
            f"archive {archive.name!r}: the metadata {str(metadata)!r} has no valid layer_name, archive.sha256"
            " and archive.size"
        )
    assert isinstance(sha256, str)
    return Expected(archive, metadata, layer, sha256, size)


@dataclass(frozen=True)
class Checked:
    """An archive whose size and sha256 are its metadata's: the open file, at its start, and the
    layer its first member names ("" when that cannot be read: the readers then say why)."""

    fileobj: BinaryIO
    layer: str


def archive_layer(fileobj: BinaryIO, archive: Path) -> str:
    """The top-level directory of the archive's first member ("" if unreadable); `fileobj` is
    left at its start. Reads a few KiB: only the first member's header is decompressed."""
    try:
        archive_format = detect_archive_format(archive, fileobj.read(ARCHIVE_HEAD_SIZE))
        fileobj.seek(0)
        if archive_format == "zip":
            import zipfile

            with zipfile.ZipFile(fileobj) as zf:
                infos = zf.infolist()
                name = infos[0].orig_filename if infos else ""
        else:
            import tarfile

            from venvstacks_tool.core.archive import decompressing_stream

            with decompressing_stream(fileobj, archive_format) as stream, tarfile.open(fileobj=stream, mode="r|") as tf:
                first = tf.next()
                name = first.name if first is not None else ""
    except Exception:  # damage: the readers report it when the archive is unpacked
        name = ""
    finally:
        fileobj.seek(0)
    parts = [part for part in name.split("/") if part not in ("", ".")]
    return parts[0] if parts else ""


def _held_layer(expected: Expected, fileobj: BinaryIO) -> str:
    """The layer the archive holds; refused, naming both layers, when it is not the metadata's."""
    held = archive_layer(fileobj, expected.archive)
    if held and held != expected.layer:
        raise layer_mismatch(expected.archive.name, held, str(expected.metadata), expected.layer)
    return held


def open_checked(expected: Expected) -> Checked:
    """Open the archive and check its size, sha256 and layer against the metadata."""
    archive = expected.archive
    try:
        fileobj: BinaryIO = open(archive, "rb")  # noqa: SIM115 - returned to the caller
    except OSError as error:
        raise VenvstacksError(f"archive {str(archive)!r} cannot be read: {error.strerror}") from error
    try:
        size = os.fstat(fileobj.fileno()).st_size
        if size != expected.size:
            _held_layer(expected, fileobj)  # another layer's metadata: say so first
            raise VenvstacksError(
                f"archive {archive.name!r} is {size} bytes, but its metadata {str(expected.metadata)!r} says"
                f" {expected.size}: not the archive the build wrote"
            )
        sha256 = sha256_of_open_file(fileobj)
        if sha256 != expected.sha256:
            _held_layer(expected, fileobj)  # another layer's metadata: say so first
            raise VenvstacksError(
                f"archive {archive.name!r} has sha256 {sha256}, but its metadata {str(expected.metadata)!r} says"
                f" {expected.sha256}: not the archive the build wrote"
            )
        held = _held_layer(expected, fileobj)
    except OSError as error:  # a read failing: the archive's disk, not its bytes
        fileobj.close()
        raise VenvstacksError(f"archive {str(archive)!r} cannot be read: {error.strerror}") from error
    except BaseException:
        fileobj.close()
        raise
    return Checked(fileobj, held)


def open_all_checked(expected: Sequence[Expected]) -> list[Checked]:
    """`open_checked` for every archive, side by side; all are checked before any is unpacked."""
    if len(expected) <= 1:
        return [open_checked(e) for e in expected]
    with ThreadPoolExecutor(max_workers=min(4, len(expected))) as pool:
        futures = [pool.submit(open_checked, e) for e in expected]
    opened, errors = [], []
    for future in futures:
        error = future.exception()
        if error is None:
            opened.append(future.result())
        else:
            errors.append(error)
    if errors:
        for checked in opened:
            checked.fileobj.close()
        raise errors[0]
    return opened
