"""The fallback readers: tarfile for tars the lean reader does not handle, zipfile for .zip.

tarfile on its own reads a bad header or a missing end-of-archive marker after the first member
as the end of the archive, and reads a pax or GNU long-name record of any size into memory.
`_CheckedTarInfo` closes both gaps: it records whether the member loop ended at a zero block
(the end marker; anything else is `ArchiveDamage`), refuses a negative size, and refuses an
extended record over MAX_EXTENDED_HEADER before tarfile reads it. After the marker the stream is
read to its end, so the decompressor checks the whole file, as the lean reader does.
"""

from __future__ import annotations

import os
import stat
import tarfile
from typing import IO, BinaryIO

from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.core.fsutil import CHUNK_SIZE
from venvstacks_tool.deploy.extraction import (
    MAX_EXTENDED_HEADER,
    MAX_LINK_TARGET,
    ArchiveDamage,
    ExtendedHeaderTooLarge,
    Extraction,
    write_all,
)
from venvstacks_tool.deploy.lean_tar import open_decompressed

_EXTENDED_TYPES = {tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE, b"L", b"K"}
_ENDED_AT_MARKER = "_venvstacks_ended_at_marker"
# tarfile raises it for a zero block; not in typeshed's stubs.
_EOF_HEADER_ERROR: type[Exception] = tarfile.EOFHeaderError  # type: ignore[attr-defined]


class _CheckedTarInfo(tarfile.TarInfo):
    """A TarInfo that bounds extended records, refuses negative sizes and notes the end marker."""

    @classmethod
    def fromtarfile(cls, tarfile_: tarfile.TarFile) -> _CheckedTarInfo:
        try:
            return super().fromtarfile(tarfile_)
        except _EOF_HEADER_ERROR:
            # A zero block: the only way a member loop may end (tarfile's `next` swallows this).
            setattr(tarfile_, _ENDED_AT_MARKER, True)
            raise

    def _proc_member(self, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        if self.size < 0:
            raise ArchiveDamage(f"the header at offset {self.offset} has a negative size")
        if self.type in _EXTENDED_TYPES and self.size > MAX_EXTENDED_HEADER:
            raise ExtendedHeaderTooLarge(self.offset, self.size)
        return super()._proc_member(tarfile_)  # type: ignore[misc, no-any-return]  # private in typeshed


def _kind(info: tarfile.TarInfo) -> str:
    if info.isreg():
        return "file"
    if info.isdir():
        return "dir"
    if info.issym():
        return "symlink"
    if info.islnk():
        return "hardlink"
    return "special"


def extract_tar(fileobj: BinaryIO, archive_format: str, extraction: Extraction) -> None:
    """Unpack the .tar.zst/.tar.xz read from `fileobj` (at its start) with tarfile."""
    stream = open_decompressed(fileobj, archive_format)
    try:
        with tarfile.open(fileobj=stream, mode="r|", tarinfo=_CheckedTarInfo) as tf:
            for info in tf:
                if info.size < 0:  # a pax `size` record can make it negative after the header check
                    raise ArchiveDamage(f"member {info.name!r} has a negative size")
                kind = _kind(info)
                parts = extraction.check(info.name, kind, info.linkname)
                if parts is None:
                    continue
                if kind == "dir":
                    extraction.write_dir(parts)
                elif kind == "symlink":
                    extraction.write_symlink(parts, info.linkname)
                elif kind == "hardlink":
                    extraction.write_hardlink(parts, info.linkname)
                else:
                    content = tf.extractfile(info)
                    assert content is not None  # a regular file always has content
                    _copy(content, extraction.open_file(parts, info.mode))
            if not getattr(tf, _ENDED_AT_MARKER, False):
                raise ArchiveDamage(
                    f"no end-of-archive marker at offset {tf.offset}: a damaged header, or the data ends early"
                )
            assert tf.fileobj is not None
            if tf.fileobj.read(tarfile.BLOCKSIZE) != bytes(tarfile.BLOCKSIZE):
                raise ArchiveDamage(f"a lone zero block at offset {tf.offset} is not an end-of-archive marker")
            while chunk := tf.fileobj.read(CHUNK_SIZE):
                if chunk.strip(b"\0"):
                    raise ArchiveDamage(f"non-zero data follows the end-of-archive marker at offset {tf.offset}")
    finally:
        stream.close()


def _copy(source: IO[bytes], fd: int) -> None:
    try:
        while chunk := source.read(CHUNK_SIZE):
            write_all(fd, chunk)
    finally:
        os.close(fd)


def extract_zip(fileobj: BinaryIO, extraction: Extraction) -> None:
    """Unpack the .zip read from `fileobj` with zipfile (CRCs are checked as members are read)."""
    import zipfile

    with zipfile.ZipFile(fileobj) as zf:
        for info in zf.infolist():
            st_mode = info.external_attr >> 16 if info.create_system == 3 else 0
            # orig_filename: zipfile cuts `filename` at a NUL, which would hide it from the checks.
            name = info.orig_filename
            link_target = ""
            if info.is_dir() or stat.S_ISDIR(st_mode):
                kind = "dir"
            elif stat.S_ISLNK(st_mode):
                kind = "symlink"
                if info.file_size > MAX_LINK_TARGET:
                    raise VenvstacksError(
                        f"archive {extraction.origin!r}: symlink {name!r} has a target of {info.file_size} bytes,"
                        f" over the limit of {MAX_LINK_TARGET}"
                    )
                link_target = zf.read(info).decode("utf-8", "surrogateescape")
            elif st_mode and not stat.S_ISREG(st_mode):
                kind = "special"
            else:
                kind = "file"
            parts = extraction.check(name, kind, link_target)
            if parts is None:
                continue
            if kind == "dir":
                extraction.write_dir(parts)
            elif kind == "symlink":
                extraction.write_symlink(parts, link_target)
            else:
                fd = extraction.open_file(parts, stat.S_IMODE(st_mode) if st_mode else None)
                with zf.open(info) as source:
                    _copy(source, fd)
