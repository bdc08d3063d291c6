"""A zstd stream cut anywhere inside a frame is an error; cut between frames, it is whole."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
import zstandard

from venvstacks_tool.core.archive import read_tar_entries
from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.core.zstd_frames import TruncatedZstdStream, open_zstd

DATA = b"".join(b"%06d incompressible enough? " % (i * 7919 % 100003) for i in range(20000)) + bytes(300000)


def _read_all(data: bytes) -> bytes:
    with open_zstd(io.BytesIO(data)) as stream:
        return stream.read()


def _frame(data: bytes, **settings: object) -> bytes:
    return zstandard.ZstdCompressor(level=3, **settings).compress(data)  # type: ignore[arg-type]


def _skippable(payload: bytes) -> bytes:
    return (0x184D2A53).to_bytes(4, "little") + len(payload).to_bytes(4, "little") + payload


@pytest.mark.parametrize(
    "settings",
    [{"write_checksum": True}, {"write_checksum": False}, {"write_content_size": False}, {"threads": 2}],
    ids=["checksum", "no-checksum", "no-content-size", "threads"],
)
def test_every_cut_inside_a_frame_is_reported(settings: dict[str, object]) -> None:
    first, second = _frame(DATA, **settings), _frame(b"second frame", **settings)
    stream = first + _skippable(b"skip me") + second
    boundaries = {len(first), len(first) + 15}
    assert _read_all(stream) == DATA + b"second frame"
    # Every cut in the last 40 bytes of each frame, and in the frame headers.
    cuts = {*range(len(first) - 40, len(first) + 1), *range(len(stream) - 40, len(stream)), *range(1, 20)}
    for cut in sorted(cuts):
        if cut in boundaries:
            assert _read_all(stream[:cut]) == DATA
        else:
            with pytest.raises(TruncatedZstdStream, match=r"ends inside a frame|holds no frame"):
                _read_all(stream[:cut])


def test_not_a_frame_and_no_frame_are_reported() -> None:
    with pytest.raises(TruncatedZstdStream, match="holds no frame"):
        _read_all(b"")
    with pytest.raises((TruncatedZstdStream, zstandard.ZstdError)):
        _read_all(_frame(b"x") + b"garbage!")


def test_read_tar_entries_refuses_a_tar_zst_cut_in_its_checksum(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tf:
        info = tarfile.TarInfo("python/a.txt")
        info.size = len(DATA)
        tf.addfile(info, io.BytesIO(DATA))
    whole = _frame(buffer.getvalue(), write_checksum=True)
    archive = tmp_path / "runtime.tar.zst"
    archive.write_bytes(whole)
    assert [e.name for e in read_tar_entries(archive, "python", "rt")] == ["rt/a.txt"]
    archive.write_bytes(whole[:-3])  # zstandard alone reads this as complete
    with pytest.raises(VenvstacksError, match=r"archive 'runtime\.tar\.zst': corrupt or truncated: .*inside a frame"):
        read_tar_entries(archive, "python", "rt")
