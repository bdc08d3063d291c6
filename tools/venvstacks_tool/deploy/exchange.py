"""Exchanging two directory entries in one system call, where the system has one.

Linux has `renameat2(..., RENAME_EXCHANGE)` (3.15, glibc 2.28 wraps it; older C libraries are
reached through `syscall`), macOS `renamex_np(..., RENAME_SWAP)` (10.12). Both swap two existing
paths atomically: no moment exists at which either name is missing, whatever kills the process.
Windows has no such call, and some Linux file systems refuse the flag (EINVAL); `exchange` then
says so, and the caller falls back to two renames (`transaction.swap_in`).
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import platform
import sys
from collections.abc import Callable

# <linux/fs.h> and <stdio.h> on macOS; AT_FDCWD from <fcntl.h> (Linux).
_RENAME_EXCHANGE = 1 << 1
_RENAME_SWAP = 1 << 1
_AT_FDCWD = -100
# The renameat2 system call's number where the C library may lack the wrapper (glibc < 2.28).
_SYS_RENAMEAT2 = {"x86_64": 316, "aarch64": 276, "arm64": 276, "i686": 353, "i386": 353, "armv7l": 382}
# What "this file system or kernel cannot exchange" looks like: the caller falls back.
_UNSUPPORTED = {errno.EINVAL, errno.ENOSYS, getattr(errno, "ENOTSUP", errno.EINVAL), errno.EOPNOTSUPP}

_Call = Callable[[bytes, bytes], int]


def _linux_call(libc: ctypes.CDLL) -> _Call | None:
    function = getattr(libc, "renameat2", None)
    if function is not None:
        function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
        return lambda a, b: int(function(_AT_FDCWD, a, _AT_FDCWD, b, _RENAME_EXCHANGE))
    number = _SYS_RENAMEAT2.get(platform.machine())
    if number is None:
        return None
    syscall = libc.syscall
    syscall.restype = ctypes.c_long
    return lambda a, b: int(
        syscall(
            ctypes.c_long(number),
            ctypes.c_int(_AT_FDCWD),
            ctypes.c_char_p(a),
            ctypes.c_int(_AT_FDCWD),
            ctypes.c_char_p(b),
            ctypes.c_uint(_RENAME_EXCHANGE),
        )
    )


def _macos_call(libc: ctypes.CDLL) -> _Call | None:
    function = getattr(libc, "renamex_np", None)
    if function is None:
        return None
    function.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_uint]
    return lambda a, b: int(function(a, b, _RENAME_SWAP))


@functools.cache
def _system_call() -> _Call | None:
    """The exchanging call of this system, looked up once; None where there is none (Windows)."""
    if not (sys.platform.startswith("linux") or sys.platform == "darwin"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    return _linux_call(libc) if sys.platform.startswith("linux") else _macos_call(libc)


def available() -> bool:
    """Whether this system has an exchanging call at all (a file system may still refuse it)."""
    return _system_call() is not None


def exchange(a: os.PathLike[str] | str, b: os.PathLike[str] | str) -> bool:
    """Swap the existing entries `a` and `b` in one system call; False where that is not possible.

    False (nothing changed) on a system without the call, or when the kernel or the file system
    refuses it (EINVAL, ENOSYS, ENOTSUP); any other failure is raised as OSError, nothing changed.
    """
    call = _system_call()
    if call is None:
        return False
    if call(os.fsencode(a), os.fsencode(b)) == 0:
        return True
    code = ctypes.get_errno()
    if code in _UNSUPPORTED:
        return False
    raise OSError(code, os.strerror(code), os.fspath(a), None, os.fspath(b))
