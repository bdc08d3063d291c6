"""build.binaries: what an ELF, Mach-O or PE file needs, on binaries made here (gcc, or written byte by byte)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from venvstacks_testing.crafted_binaries import compile_elf, elf_shared_object, macho_bundle, needs_gcc, pe_dll
from venvstacks_tool.build.binaries import ELF, MACHO, PE, BinaryNeeds, StreamPrefix, binary_format, read_needs
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


def _pyelftools_needs(path: Path) -> BinaryNeeds:
    """What pyelftools reads of the same file (the parser the loader check used before its own)."""
    elffile = pytest.importorskip("elftools.elf.elffile")
    dynamic = pytest.importorskip("elftools.elf.dynamic")
    values: dict[str, list[str]] = {"DT_NEEDED": [], "DT_RPATH": [], "DT_RUNPATH": []}
    attributes = {"DT_NEEDED": "needed", "DT_RPATH": "rpath", "DT_RUNPATH": "runpath"}
    with path.open("rb") as stream:
        for segment in elffile.ELFFile(stream).iter_segments():
            if isinstance(segment, dynamic.DynamicSegment):
                for tag in segment.iter_tags():
                    if tag.entry.d_tag in values:
                        values[tag.entry.d_tag].append(str(getattr(tag, attributes[tag.entry.d_tag])))
    paths = [entry for text in values["DT_RUNPATH"] or values["DT_RPATH"] for entry in text.split(":") if entry]
    return BinaryNeeds(ELF, tuple(values["DT_NEEDED"]), tuple(paths), runpath=bool(values["DT_RUNPATH"]))


def _every_way(tmp_path: Path, data: bytes) -> list[BinaryNeeds]:
    """The needs of `data` read from bytes, from a file and from a deflated wheel member (as a stream)."""
    binary = tmp_path / "ext.so"
    binary.write_bytes(data)
    wheel = tmp_path / "pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("pkg/ext.so", data)
    with zipfile.ZipFile(wheel) as archive, archive.open("pkg/ext.so") as member:
        streamed = read_needs(StreamPrefix(member, member.read(4)), ELF, "pkg/ext.so")
    return [read_needs(data, ELF, "ext.so"), read_needs(binary, ELF, "ext.so"), streamed, _pyelftools_needs(binary)]


@pytest.mark.parametrize(("bits", "big"), [(64, False), (64, True), (32, False), (32, True)])
def test_elf_of_each_class_and_byte_order_without_section_headers(tmp_path: Path, bits: int, big: bool) -> None:
    data = elf_shared_object(
        ["libvsa.so.1", "libvsb.so"], rpath="$ORIGIN/r", runpath="$ORIGIN/x:/opt/y", bits=bits, big=big
    )
    expected = BinaryNeeds(ELF, ("libvsa.so.1", "libvsb.so"), ("$ORIGIN/x", "/opt/y"), runpath=True)
    assert _every_way(tmp_path, data) == [expected] * 4
    rpath_only = elf_shared_object(["libvsa.so.1"], rpath="$ORIGIN/r", bits=bits, big=big)
    assert _every_way(tmp_path, rpath_only) == [BinaryNeeds(ELF, ("libvsa.so.1",), ("$ORIGIN/r",))] * 4


@needs_gcc
def test_elf_read_as_pyelftools_reads_it_and_a_stream_only_as_far_as_needed(tmp_path: Path) -> None:
    data = compile_elf(tmp_path, "libvsmissing.so", rpath="$ORIGIN/../vs.libs") + b"\0" * (4 << 20)
    needs = _every_way(tmp_path, data)
    assert needs == [needs[0]] * 4 and needs[0].needed[0] == "libvsmissing.so"
    with zipfile.ZipFile(tmp_path / "pkg-1.0-py3-none-any.whl") as archive, archive.open("pkg/ext.so") as member:
        prefix = StreamPrefix(member, member.read(4))
        read_needs(prefix, ELF, "pkg/ext.so")
        assert prefix.read_at(0, 4) == b"\x7fELF" and member.tell() < len(data) // 2  # the padding never decompressed
