"""Tests of the one-call exchange of two directories (venvstacks_tool.deploy.exchange)."""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import sys
from pathlib import Path

import pytest

from venvstacks_tool.deploy import exchange


def _pair(tmp_path: Path) -> tuple[Path, Path]:
    a, b = tmp_path / "a", tmp_path / "b"
    for path in (a, b):
        path.mkdir()
        (path / "which").write_text(path.name)
    return a, b


def test_two_directories_trade_places(tmp_path: Path) -> None:
    if not exchange.available():
        pytest.skip("this system has no exchanging rename")
    a, b = _pair(tmp_path)
    assert exchange.exchange(a, b)
    assert (a / "which").read_text() == "b" and (b / "which").read_text() == "a"


def test_a_missing_entry_is_an_error_and_changes_nothing(tmp_path: Path) -> None:
    if not exchange.available():
        pytest.skip("this system has no exchanging rename")
    a, _ = _pair(tmp_path)
    with pytest.raises(FileNotFoundError) as info:
        exchange.exchange(a, tmp_path / "missing")
    assert info.value.errno == errno.ENOENT and info.value.filename == str(a)
    assert (a / "which").read_text() == "a"


@pytest.mark.parametrize("code", [errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP])
def test_a_refused_exchange_says_so_for_the_fallback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    """A file system or kernel without the exchange (EINVAL, ENOSYS, ENOTSUP): False, nothing moved."""

    def refusing(a: bytes, b: bytes) -> int:
        ctypes.set_errno(code)
        return -1

    monkeypatch.setattr(exchange, "_system_call", lambda: refusing)
    a, b = _pair(tmp_path)
    assert exchange.exchange(a, b) is False
    assert (a / "which").read_text() == "a" and (b / "which").read_text() == "b"


def test_no_call_no_exchange(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Windows: no such call; the caller renames twice."""
    monkeypatch.setattr(exchange, "_system_call", lambda: None)
    assert not exchange.available()
    assert exchange.exchange(*_pair(tmp_path)) is False


def test_the_raw_system_call_where_the_c_library_has_no_wrapper(tmp_path: Path) -> None:
    """glibc before 2.28 has no `renameat2`: the system call itself, by its number, swaps too."""
    if not sys.platform.startswith("linux") or platform.machine() not in exchange._SYS_RENAMEAT2:
        pytest.skip("the raw renameat2 system call is Linux's, on a known architecture")
    libc = ctypes.CDLL(None, use_errno=True)

    class WithoutWrapper:
        syscall = libc.syscall

    call = exchange._linux_call(WithoutWrapper())  # type: ignore[arg-type]
    assert call is not None
    a, b = _pair(tmp_path)
    assert call(os.fsencode(a), os.fsencode(b)) == 0
    assert (a / "which").read_text() == "b" and (b / "which").read_text() == "a"
