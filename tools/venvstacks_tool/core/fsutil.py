"""File helpers every subcommand shares: hashing in chunks, atomic writes, deterministic JSON.

Kept free of heavy imports: every action imports this module (through `archive`).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

# How much of a file is read or copied at a time: large enough for throughput, small enough that
# a multi-GB layer never sits in memory.
CHUNK_SIZE = 1 << 20


def sha256_file(path: Path | str) -> str:
    """Return the hex sha256 of the file at `path`, read in chunks."""
    with open(path, "rb") as f:
        return sha256_of_open_file(f)


def sha256_of_open_file(f: BinaryIO) -> str:
    """The hex sha256 of an open file from where it is to its end; the file is left at its start.

    Callers that unpack what they hashed keep the file open between the two, so the bytes used are
    the bytes checked.
    """
    import hashlib

    digest = hashlib.sha256()
    buffer = bytearray(CHUNK_SIZE)
    view = memoryview(buffer)
    while n := f.readinto(buffer):  # type: ignore[attr-defined]  # a raw or buffered file
        digest.update(view[:n])
    f.seek(0)
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_output(output: Path) -> Iterator[BinaryIO]:
    """Yield a temp file next to `output`, moved onto `output` (mode 0644) only if the block succeeds.

    On an error the temp file is removed and `output` is left as it was.
    """
    import tempfile

    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".tmp", dir=output.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
        # mkstemp creates 0600; give the output the same mode whatever the umask.
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, output)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temp file in the same directory and `os.replace`."""
    with atomic_output(path) as f:
        f.write(data)


def json_bytes(value: Any) -> bytes:
    """`value` as the tool writes every JSON file: sorted keys, 2-space indent, final newline, UTF-8."""
    return (json.dumps(value, indent=2, sort_keys=True) + "\n").encode("utf-8")
