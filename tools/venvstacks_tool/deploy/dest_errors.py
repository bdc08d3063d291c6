"""Failures of DEST's file system named by their cause, never blamed on the archive.

A full disk, an exhausted quota, a read-only file system or a refused permission while a layer
is unpacked, post-installed or recorded is a fact about DEST, not about the archive: the message
says which, with how much more space a full disk needs (the layer's unpacked size, read again
from the archive only once it has failed, against what is free once the staging directory is
gone).
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path
from typing import BinaryIO

# The causes named as such; any other OSError is reported with its own text.
CAUSES: dict[int, str] = {
    errno.ENOSPC: "no space left on its file system",
    errno.EDQUOT: "the disk quota on its file system is exceeded",
    errno.EROFS: "its file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}
SPACE = {errno.ENOSPC, errno.EDQUOT}
# A file takes whole blocks; a directory at least one (4 KiB on ext4, xfs, tmpfs pages).
_DEFAULT_BLOCK = 4096
# `OSError: [Errno 28] No space left on device: '...'`, the last line of a Python child's traceback.
_ERRNO_LINE = re.compile(r"\[Errno (\d+)\]")
_QUOTED_NAME = re.compile(r": '([^']*)'")


def free_bytes(dest: Path) -> tuple[int, int] | None:
    """What is free for this user on DEST's file system, and its block size; None if unknown."""
    try:
        st = os.statvfs(dest)
    except (OSError, AttributeError):  # Windows has no statvfs
        return None
    block = st.f_frsize or st.f_bsize or _DEFAULT_BLOCK
    return st.f_bavail * block, block


def is_read_only(dest: Path) -> bool:
    """Whether DEST's file system is mounted read-only (False where that cannot be told)."""
    try:
        return bool(os.statvfs(dest).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        return False


def layer_size(fileobj: BinaryIO, archive: Path, block: int = _DEFAULT_BLOCK) -> int | None:
    """The space the layer in the archive takes unpacked: its files in whole blocks, a block per
    directory; None when the archive cannot be read to its end. Leaves `fileobj` at its start."""
    from venvstacks_tool.core.archive import ARCHIVE_HEAD_SIZE, decompressing_stream, detect_archive_format

    total = 0
    try:
        fileobj.seek(0)
        archive_format = detect_archive_format(archive, fileobj.read(ARCHIVE_HEAD_SIZE))
        fileobj.seek(0)
        if archive_format == "zip":
            import zipfile

            with zipfile.ZipFile(fileobj) as zf:
                for zinfo in zf.infolist():
                    total += block if zinfo.is_dir() else _blocks(zinfo.file_size, block)
        else:
            import tarfile

            with decompressing_stream(fileobj, archive_format) as stream, tarfile.open(fileobj=stream, mode="r|") as tf:
                for tinfo in tf:
                    total += _blocks(tinfo.size, block) if tinfo.isreg() else block if tinfo.isdir() else 0
    except Exception:  # a size is a courtesy: the cause is still named without it
        return None
    finally:
        fileobj.seek(0)
    return total


def _blocks(size: int, block: int) -> int:
    return max(1, -(-size // block)) * block


def _amount(size: int) -> str:
    """`size` bytes for a person: KB below a megabyte, else MB with one decimal."""
    if size < 1_000_000:
        return f"{-(-size // 1000)} KB"
    return f"{size / 1_000_000:.1f} MB"


def error_in_output(output: str) -> OSError | None:
    """The OSError of one of CAUSES that a Python child's last output line reports, if any
    (`PermissionError: [Errno 13] Permission denied: '/d/x'`), with its file name."""
    lines = [line for line in output.strip().splitlines() if line.strip()]
    found = _ERRNO_LINE.search(lines[-1]) if lines else None
    if found is None or int(found.group(1)) not in CAUSES:
        return None
    code = int(found.group(1))
    name = _QUOTED_NAME.search(lines[-1][found.end() :])
    return OSError(code, os.strerror(code), name.group(1) if name else None)


def cause(error: OSError, dest: Path, needed: int | None = None, shown_path: str = "") -> str:
    """What went wrong on DEST's file system, for a message: "no space left on its file system
    (needs about 12.3 MB more)". `needed` is what the whole operation takes (a full disk, a quota);
    `shown_path` the path to name for a refused permission (`error.filename` when empty)."""
    code = error.errno or 0
    text = CAUSES.get(code) or error.strerror or str(error)
    if code in SPACE and needed is not None:
        free = free_bytes(dest)
        if code == errno.ENOSPC and free is not None:
            available, block = free
            text += f" (needs about {_amount(max(needed - available, block))} more)"
        else:
            text += f" (the layer takes about {_amount(needed)})"
    elif code not in SPACE:
        path = shown_path or (os.fspath(error.filename) if error.filename is not None else "")
        if path and code != errno.EROFS:
            text += f": {path!r}"
    return text


def shown(path: object, staged: Path, final: Path) -> str:
    """`path` as the user knows it: below the layer's directory, not the staging one."""
    text = os.fsdecode(path) if isinstance(path, (str, bytes, os.PathLike)) else ""
    staged_text = os.fspath(staged)
    if text == staged_text or text.startswith(staged_text + os.sep):
        return os.fspath(final) + text[len(staged_text) :]
    return text
