"""The lean tar reader: ustar/pax headers straight from the decompressed stream (.tar.zst, .tar.xz).

`write_archive` writes ustar headers, and pax headers holding only `path` and `linkpath`. This
reader parses exactly that, decompresses in a background thread (zstandard and lzma release the
GIL, so it overlaps the writes) and writes each file with one `os.open` + `os.write`: the deploy
of a layer runs at about `tar -x` speed (docs/performance.md), where tarfile took twice as long.

Two ways out besides success, kept apart on purpose:

* `NotLean`, for a well-formed archive using what the reader does not handle (GNU or v7
  headers, global or GNU long-name records, base-256 numbers, pax keys that change how a member
  is read): the caller starts over with tarfile;
* `ArchiveDamage`, for bytes that are not a well-formed tar (a bad header checksum, a negative
  or malformed size, a malformed pax record, data that ends before the end-of-archive marker,
  non-zero bytes after it, a decompression error): the deploy stops. Handing damage over to
  tarfile would let it read a bad header or a missing end marker as the end of the archive and
  deploy a partial layer.

After the end marker (two zero blocks) the rest of the stream is read to its end, so the
decompressor's own checks (xz's index and check, zstd's frame structure and checksum, and
`core.zstd_frames`' check that the zstd stream does not end inside a frame) run on the whole file.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from typing import IO, BinaryIO

from venvstacks_tool.core.archive import decompressing_stream
from venvstacks_tool.deploy.extraction import (
    MAX_EXTENDED_HEADER,
    ArchiveDamage,
    ExtendedHeaderTooLarge,
    Extraction,
    NotLean,
    write_all,
)

_BLOCK = 512
_READ_SIZE = 1 << 20
_QUEUE_DEPTH = 8
_ZERO_BLOCK = bytes(_BLOCK)
# Typeflags the lean reader handles; tarfile's own meaning for each.
_LEAN_KINDS = {
    b"0": "file",
    b"5": "dir",
    b"2": "symlink",
    b"1": "hardlink",
    b"3": "special",
    b"4": "special",
    b"6": "special",
}
# Records holding a name or other headers for the next member: capped at MAX_EXTENDED_HEADER.
_EXTENDED_TYPES = {b"x", b"g", b"L", b"K", b"X"}
# pax keys the reader uses, and keys it may ignore because deploy sets neither times nor owners.
_PAX_USED = {"path", "linkpath"}
_PAX_IGNORED = {"mtime", "atime", "ctime", "uid", "gid", "uname", "gname", "comment"}


def open_decompressed(fileobj: BinaryIO, archive_format: str) -> IO[bytes]:
    """A stream of the decompressed bytes of the .tar.zst or .tar.xz read from `fileobj`.

    A zstd stream cut inside a frame is an error, as an xz stream that ends early is. NotLean for
    any other format (a zip).
    """
    if archive_format not in ("tar.zst", "tar.xz"):
        raise NotLean
    return decompressing_stream(fileobj, archive_format)


class _Blocks:
    """The decompressed bytes of an archive, decompressed ahead in a background thread.

    `read(n)` returns exactly `n` bytes (EOFError at the end of the data); a decompression
    error is raised in the reading thread as it was raised in the decompressing one.
    """

    def __init__(self, fileobj: BinaryIO, archive_format: str) -> None:
        self._reader = open_decompressed(fileobj, archive_format)
        self._queue: queue.Queue[bytes | BaseException] = queue.Queue(_QUEUE_DEPTH)
        self._stop = threading.Event()
        self._buf = b""
        self._pos = 0
        self.offset = 0  # of the next byte `read`, `copy_to` or `skip` returns, in the tar
        self._thread = threading.Thread(target=self._produce, name="deploy-decompress", daemon=True)
        self._thread.start()

    def _produce(self) -> None:
        """Thread body: queue chunks of decompressed data, then b"" (or the exception)."""
        try:
            while not self._stop.is_set():
                chunk = self._reader.read(_READ_SIZE)
                self._queue.put(chunk)
                if not chunk:
                    return
        except BaseException as error:  # handed to the reading thread
            self._queue.put(error)

    def _next_chunk(self) -> bytes:
        item = self._queue.get()
        if isinstance(item, BaseException):
            self._queue.put(item)  # an error stays the error
            raise item
        if not item:
            self._queue.put(item)  # the end stays the end
            raise EOFError("unexpected end of data")
        return item

    def read(self, n: int) -> bytes:
        """The next `n` bytes."""
        end = self._pos + n
        if end <= len(self._buf):
            data = self._buf[self._pos : end]
            self._pos = end
            self.offset += n
            return data
        pieces = [self._buf[self._pos :]]
        have = len(pieces[0])
        while have < n:
            chunk = self._next_chunk()
            pieces.append(chunk)
            have += len(chunk)
        last = pieces[-1]
        keep = have - n
        pieces[-1] = last[: len(last) - keep]
        self._buf, self._pos = last, len(last) - keep
        self.offset += n
        return b"".join(pieces)

    def copy_to(self, fd: int, n: int) -> None:
        """Write the next `n` bytes to `fd`, without joining the chunks they span."""
        while n > 0:
            if self._pos >= len(self._buf):
                self._buf, self._pos = self._next_chunk(), 0
            take = min(n, len(self._buf) - self._pos)
            write_all(fd, memoryview(self._buf)[self._pos : self._pos + take])
            self._pos += take
            self.offset += take
            n -= take

    def skip(self, n: int) -> None:
        """Drop the next `n` bytes."""
        while n > 0:
            if self._pos >= len(self._buf):
                self._buf, self._pos = self._next_chunk(), 0
            take = min(n, len(self._buf) - self._pos)
            self._pos += take
            self.offset += take
            n -= take

    def rest_is_zero(self) -> bool:
        """Read the data to its end; whether every remaining byte is zero."""
        zero = True
        while True:
            if self._pos < len(self._buf):
                zero = zero and not self._buf[self._pos :].strip(b"\0")
            try:
                self._buf, self._pos = self._next_chunk(), 0
            except EOFError:
                return zero

    def close(self) -> None:
        """Stop the thread and close the decompressor (not the archive's file)."""
        self._stop.set()
        while self._thread.is_alive():
            with contextlib.suppress(queue.Empty):
                self._queue.get(timeout=0.05)
        self._thread.join()
        self._reader.close()


_OCTAL_DIGITS = b"01234567"


def _number(field: bytes, what: str, offset: int) -> int:
    """A ustar number field (NUL/space terminated octal).

    NotLean for a positive base-256 number (GNU's form for large values); ArchiveDamage for a
    negative one or for anything that is not a number.
    """
    if field[:1] == b"\xff":
        raise ArchiveDamage(f"the header at offset {offset} has a negative {what}")
    if field[:1] == b"\x80":
        raise NotLean
    digits = field.rstrip(b"\0 ").lstrip(b" ")
    if not digits:
        return 0
    # int() would take a sign too: "-1" is a negative number written in octal, not a bad field.
    if digits[:1] == b"-" and digits[1:] and not digits[1:].strip(_OCTAL_DIGITS):
        raise ArchiveDamage(f"the header at offset {offset} has a negative {what}")
    if digits.strip(_OCTAL_DIGITS):
        raise ArchiveDamage(f"the header at offset {offset} has an invalid {what} field {field!r}")
    return int(digits, 8)


def _field(header: bytes, start: int, end: int) -> str:
    """A NUL-terminated ustar string field, decoded as tarfile does for `write_archive`'s tars."""
    raw = header[start:end]
    nul = raw.find(b"\0")
    return (raw if nul < 0 else raw[:nul]).decode("utf-8", "surrogateescape")


def _parse_pax(data: bytes, offset: int) -> dict[str, str]:
    """The path/linkpath records of a pax extended header.

    ArchiveDamage for a malformed record; NotLean for a key that changes how a member is read.
    """
    records: dict[str, str] = {}
    pos = 0
    while pos < len(data) and data[pos] != 0:
        space = data.find(b" ", pos)
        digits = data[pos:space] if space > 0 else b""
        length = int(digits) if digits.isdigit() else 0
        record = data[space + 1 : pos + length]
        key, eq, value = record.partition(b"=")
        if length <= 0 or pos + length > len(data) or not eq or not record.endswith(b"\n"):
            raise ArchiveDamage(f"the pax header at offset {offset} has a malformed record")
        name = key.decode("utf-8", "surrogateescape")
        if name in _PAX_USED:
            records[name] = value[:-1].decode("utf-8", "surrogateescape")
        elif name not in _PAX_IGNORED:
            raise NotLean
        pos += length
    return records


def _check_header(header: bytes, offset: int) -> None:
    """ArchiveDamage unless the checksum is right; NotLean unless it is a POSIX ustar header."""
    stored = _number(header[148:156], "checksum", offset)
    unsigned = sum(header[:148]) + 256 + sum(header[156:])
    # Some old tars summed signed bytes; tarfile accepts both, and so does this reader. Counting
    # the high bytes is slow in Python, and only a header that fails the first sum needs it.
    if stored != unsigned:
        signed = unsigned - 256 * sum(1 for b in header[:148] + header[156:] if b > 127)
        if stored != signed:
            raise ArchiveDamage(f"the header at offset {offset} has a bad checksum")
    if header[257:265] != b"ustar\x0000":
        raise NotLean  # a GNU or v7 header


def extract_lean(fileobj: BinaryIO, archive_format: str, extraction: Extraction) -> None:
    """Unpack the .tar.zst/.tar.xz read from `fileobj` (at its start) with the lean reader.

    Raises NotLean (possibly after writing some members: the caller clears them) for what the
    reader does not handle, ArchiveDamage for damage, VenvstacksError for an unsafe member.
    """
    blocks = _Blocks(fileobj, archive_format)
    try:
        _read_members(blocks, extraction)
    except EOFError:
        raise ArchiveDamage(f"the data ends at offset {blocks.offset}, before the end-of-archive marker") from None
    finally:
        blocks.close()


def _read_members(blocks: _Blocks, extraction: Extraction) -> None:
    pax: dict[str, str] | None = None
    while True:
        offset = blocks.offset
        header = blocks.read(_BLOCK)
        if header == _ZERO_BLOCK:
            if pax is not None:
                raise ArchiveDamage(f"the pax header before offset {offset} belongs to no member")
            if blocks.read(_BLOCK) != _ZERO_BLOCK:
                # GNU tar reads on after a lone zero block, tarfile stops: refuse the ambiguity.
                raise ArchiveDamage(f"a lone zero block at offset {offset} is not an end-of-archive marker")
            if not blocks.rest_is_zero():
                raise ArchiveDamage(f"non-zero data follows the end-of-archive marker at offset {offset}")
            return
        _check_header(header, offset)
        typeflag = header[156:157]
        size = _number(header[124:136], "size", offset)
        padded = -(-size // _BLOCK) * _BLOCK
        if typeflag in _EXTENDED_TYPES:
            if size > MAX_EXTENDED_HEADER:
                raise ExtendedHeaderTooLarge(offset, size)
            if typeflag != b"x" or pax is not None:
                raise NotLean  # global or GNU records, or two pax headers for one member
            pax = _parse_pax(blocks.read(padded)[:size], offset)
            continue
        kind = _LEAN_KINDS.get(typeflag)
        if kind is None:
            raise NotLean
        pax = pax or {}
        name = pax.get("path")
        if name is None:
            name = _field(header, 0, 100)
            prefix = _field(header, 345, 500)
            if prefix:
                name = f"{prefix}/{name}"
        link_target = pax.get("linkpath")
        if link_target is None:
            link_target = _field(header, 157, 257)
        pax = None
        if kind != "file":
            size = padded = 0  # tarfile reads no data for these types
        _member(blocks, extraction, name, kind, _number(header[100:108], "mode", offset), link_target, size)
        blocks.skip(padded - size)


def _member(
    blocks: _Blocks, extraction: Extraction, name: str, kind: str, mode: int, link_target: str, size: int
) -> None:
    """Check and write one member; a file's `size` bytes come from `blocks`."""
    parts = extraction.check(name, kind, link_target)
    if parts is None:
        blocks.skip(size)
    elif kind == "file":
        fd = extraction.open_file(parts, mode)
        try:
            blocks.copy_to(fd, size)
        finally:
            os.close(fd)
    elif kind == "dir":
        extraction.write_dir(parts)
    elif kind == "symlink":
        extraction.write_symlink(parts, link_target)
    else:
        extraction.write_hardlink(parts, link_target)
