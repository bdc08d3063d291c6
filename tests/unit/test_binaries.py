"""build.binaries: what an ELF, Mach-O or PE file needs, on binaries made here (gcc, or written byte by byte)."""

from __future__ import annotations

from pathlib import Path

import pytest

from venvstacks_testing.crafted_binaries import compile_elf, macho_bundle, needs_gcc, pe_dll
from venvstacks_tool.build.binaries import ELF, MACHO, PE, binary_format, read_needs
from venvstacks_tool.core.errors import VenvstacksError


@needs_gcc
def test_elf_needed_and_rpath(tmp_path: Path) -> None:
    binary = tmp_path / "out.so"
    binary.write_bytes(compile_elf(tmp_path, "libvsmissing.so", rpath="$ORIGIN/../vs.libs:/opt/x"))
    needs = read_needs(binary, ELF, "out.so")
    assert needs.format == ELF and needs.needed == ("libvsmissing.so",)
    # Debian's gcc links with --enable-new-dtags: a RUNPATH, which serves this binary only.
    assert needs.search_paths == ("$ORIGIN/../vs.libs", "/opt/x") and needs.runpath


def test_macho_load_commands(tmp_path: Path) -> None:
    binary = tmp_path / "ext.so"
    binary.write_bytes(macho_bundle(["@rpath/libvsmissing.dylib", "/usr/lib/libSystem.B.dylib"], ["@loader_path/x"]))
    assert binary_format(binary.read_bytes()[:4]) == MACHO
    needs = read_needs(binary, MACHO, "ext.so")
    assert needs.needed == ("@rpath/libvsmissing.dylib", "/usr/lib/libSystem.B.dylib")
    assert needs.search_paths == ("@loader_path/x",)


def test_pe_import_table(tmp_path: Path) -> None:
    binary = tmp_path / "ext.pyd"
    binary.write_bytes(pe_dll(["vsmissing.dll", "KERNEL32.dll"]))
    assert binary_format(binary.read_bytes()[:4]) == PE
    needs = read_needs(binary, PE, "ext.pyd")
    assert needs.needed == ("vsmissing.dll", "KERNEL32.dll") and needs.search_paths == ()


def test_other_files_have_no_format_and_a_broken_binary_is_an_error_naming_it(tmp_path: Path) -> None:
    assert binary_format(b"/* GNU ld script */") is None
    broken = tmp_path / "broken.so"
    broken.write_bytes(b"\x7fELF" + b"\xff" * 12)
    with pytest.raises(VenvstacksError, match=r"pkg/broken\.so \(pkg 1\.0\): not a readable ELF file"):
        read_needs(broken, ELF, "pkg/broken.so (pkg 1.0)")
