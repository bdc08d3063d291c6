"""Read a zstd stream whose end is checked: a stream cut inside a frame is an error.

zstandard's stream reader treats the end of its input as the end of the data, so a stream cut
inside a frame's last bytes (its content checksum, or a block header that would follow) reads as
complete. `open_zstd` puts `FrameWalker` between the file and the reader: it follows the frame
structure of the compressed bytes as they pass (the RFC 8878 headers only: magic, frame header,
block headers, checksum; block contents are skipped, not looked at) and raises
`TruncatedZstdStream` when the input ends anywhere but between two frames. Decompression itself,
and its memory bound, stay zstandard's.
"""

from __future__ import annotations

from typing import IO, BinaryIO, cast

ZSTD_MAGIC = 0xFD2FB528
# RFC 8878 3.1.2: skippable frames have the magic numbers 0x184D2A50 to 0x184D2A5F.
_SKIPPABLE_MASK = 0xFFFFFFF0
_SKIPPABLE_MAGIC = 0x184D2A50
_FCS_SIZES = (0, 2, 4, 8)
_DICT_ID_SIZES = (0, 1, 2, 4)
_RESERVED_BLOCK_TYPE = 3
_RLE_BLOCK_TYPE = 1


class TruncatedZstdStream(ValueError):
    """The zstd input ended inside a frame, or does not follow the frame format."""


class FrameWalker:
    """Follows the frame structure of zstd bytes fed to it in pieces of any size.

    The walker waits for a field of `_need` bytes (collected in `_field`), or skips `_skip`
    bytes of block content or skippable-frame data; `_state` says which field comes next.
    """

    def __init__(self) -> None:
        self.offset = 0  # of the compressed bytes fed so far
        self._state = "magic"
        self._need = 4
        self._field = bytearray()
        self._skip = 0
        self._has_checksum = False
        self._frames = 0

    def feed(self, data: bytes) -> None:
        """Walk `data`, the next compressed bytes."""
        view = memoryview(data)
        pos, end = 0, len(view)
        while pos < end:
            if self._skip:
                step = min(self._skip, end - pos)
                self._skip -= step
                pos += step
                continue
            take = min(self._need - len(self._field), end - pos)
            self._field += view[pos : pos + take]
            pos += take
            if len(self._field) == self._need:
                field, self._field = bytes(self._field), bytearray()
                self._on_field(field, self.offset + pos - len(field))
        self.offset += end

    def finish(self) -> None:
        """Raise TruncatedZstdStream unless the bytes fed end between two frames."""
        if self._state != "magic" or self._field or self._skip or not self._frames:
            where = "holds no frame" if not self._frames and not self.offset else "ends inside a frame"
            raise TruncatedZstdStream(f"the zstd stream {where} (at compressed offset {self.offset})")

    def _next(self, state: str, need: int) -> None:
        self._state, self._need = state, need

    def _on_field(self, field: bytes, at: int) -> None:
        state = self._state
        if state == "magic":
            magic = int.from_bytes(field, "little")
            if magic == ZSTD_MAGIC:
                self._frames += 1
                self._next("descriptor", 1)
            elif magic & _SKIPPABLE_MASK == _SKIPPABLE_MAGIC:
                self._next("skippable-size", 4)
            else:
                raise TruncatedZstdStream(f"no zstd frame starts at compressed offset {at}")
        elif state == "skippable-size":
            self._skip = int.from_bytes(field, "little")
            self._next("magic", 4)
        elif state == "descriptor":
            descriptor = field[0]
            single_segment = bool(descriptor & 0x20)
            self._has_checksum = bool(descriptor & 0x04)
            fcs_flag = descriptor >> 6
            fcs = _FCS_SIZES[fcs_flag] if fcs_flag or not single_segment else 1
            rest = (0 if single_segment else 1) + _DICT_ID_SIZES[descriptor & 0x03] + fcs
            if rest:
                self._next("header-rest", rest)
            else:
                self._next("block", 3)
        elif state == "header-rest":
            self._next("block", 3)
        elif state == "block":
            header = int.from_bytes(field, "little")
            block_type = (header >> 1) & 0x03
            if block_type == _RESERVED_BLOCK_TYPE:
                raise TruncatedZstdStream(f"the zstd block at compressed offset {at} has the reserved type")
            self._skip = 1 if block_type == _RLE_BLOCK_TYPE else header >> 3
            if not header & 0x01:
                self._next("block", 3)
            elif self._has_checksum:
                self._next("checksum", 4)
            else:
                self._next("magic", 4)
        else:  # checksum: zstandard compares it with the content
            self._next("magic", 4)


class _CheckedSource:
    """A file-like source that walks the frames of what it returns and checks its end."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.walker = FrameWalker()

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        if data:
            self.walker.feed(data)
        else:
            self.walker.finish()
        return data


def open_zstd(raw: BinaryIO) -> IO[bytes]:
    """The decompressed bytes of the zstd stream read from `raw` (one or more frames).

    Reading past the end of the data raises TruncatedZstdStream (a ValueError) when the stream
    is cut inside a frame; `raw` is not closed with the returned stream.
    """
    import zstandard

    # read_across_frames: some tools write one frame per chunk.
    # The reader only calls `read` on its source.
    source = cast("IO[bytes]", _CheckedSource(raw))
    reader = zstandard.ZstdDecompressor().stream_reader(source, read_across_frames=True, closefd=False)
    return cast("IO[bytes]", reader)
