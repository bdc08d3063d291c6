"""Tests of venvstacks_maint.debian_root: where a Debian root goes, and how it fails.

The real extraction of Debian's arm64 CPython, and running it, is tests/integration/test_aarch64.py
(through venvstacks_testing.emulation).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from venvstacks_maint.debian_root import debian_python_root, debian_root_name, emulation_env
from venvstacks_tool.core.errors import VenvstacksError


def test_an_unknown_architecture_is_refused_naming_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(VenvstacksError, match=r"unknown Debian architecture 'aarch64'; known: amd64, arm64$"):
        debian_python_root("aarch64", tmp_path)
    assert not list(tmp_path.iterdir())


def test_a_root_made_before_is_reused_without_mmdebstrap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made = tmp_path / debian_root_name("arm64")
    (made / "usr" / "bin").mkdir(parents=True)
    monkeypatch.setenv("PATH", str(tmp_path / "nothing here"))
    assert debian_python_root("arm64", tmp_path) == made == tmp_path / "debian-bookworm-arm64"


def test_a_missing_mmdebstrap_is_named_with_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "nothing here"))
    with pytest.raises(VenvstacksError, match=r"mmdebstrap is missing; install it \(apt-get install -y mmdebstrap\)"):
        debian_python_root("arm64", tmp_path / "roots")


@pytest.mark.skipif(
    shutil.which("mmdebstrap") is None, reason="mmdebstrap is not installed (tests/bazel.sh installs it)"
)
def test_a_failed_extraction_says_what_failed_and_leaves_no_root(tmp_path: Path) -> None:
    with pytest.raises(VenvstacksError, match=r"could not extract Debian bookworm's CPython for arm64:\n") as raised:
        debian_python_root("arm64", tmp_path, mirror="file:///nonexistent/debian")
    assert "mmdebstrap failed" in str(raised.value)
    assert not list(tmp_path.iterdir())


def test_qemu_is_pointed_at_the_root_for_the_targets_libraries(tmp_path: Path) -> None:
    assert emulation_env(tmp_path) == {"QEMU_LD_PREFIX": str(tmp_path)}
