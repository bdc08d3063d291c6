"""Binaries made for the loader check's tests: Mach-O and PE written byte by byte, ELF by the host's gcc.

Each needs a library that nothing ships, the case the loader check must report on each format.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest

_LC_LOAD_DYLIB = 0xC
_LC_RPATH = 0x8000001C


def _padded(text: str, fixed: int) -> bytes:
    """`text` NUL-terminated, padded so that `fixed + len` is a multiple of 8 (load commands are)."""
    data = text.encode() + b"\0"
    return data + b"\0" * (-(fixed + len(data)) % 8)


def macho_bundle(needed: list[str], rpaths: list[str]) -> bytes:
    """A minimal 64-bit arm64 Mach-O bundle with one LC_LOAD_DYLIB per `needed` and one LC_RPATH per `rpaths`."""
    commands = b""
    for name in needed:
        payload = _padded(name, 24)
        commands += struct.pack("<6I", _LC_LOAD_DYLIB, 24 + len(payload), 24, 2, 0x10000, 0x10000) + payload
    for path in rpaths:
        payload = _padded(path, 12)
        commands += struct.pack("<3I", _LC_RPATH, 12 + len(payload), 12) + payload
    count = len(needed) + len(rpaths)
    header = struct.pack("<8I", 0xFEEDFACF, 0x0100000C, 0, 8, count, len(commands), 0, 0)
    return header + commands


def pe_dll(needed: list[str]) -> bytes:
    """A minimal PE32+ (x86_64) DLL whose import table names each of `needed` (one function each)."""
    section_rva, section_offset, size = 0x1000, 0x200, 0x400
    data = bytearray(size)
    names_at, thunks_at = 0x100, 0x200
    for index, dll in enumerate(needed):
        name_rva = section_rva + names_at + 0x20 * index
        data[names_at + 0x20 * index : names_at + 0x20 * index + len(dll)] = dll.encode()
        hint_rva = section_rva + 0x300 + 8 * index
        data[0x300 + 8 * index : 0x300 + 8 * index + 4] = b"\0\0f\0"
        lookup = thunks_at + 0x20 * index
        data[lookup : lookup + 8] = struct.pack("<Q", hint_rva)
        thunk_rva = section_rva + lookup
        data[20 * index : 20 * index + 20] = struct.pack("<5I", thunk_rva, 0, 0, name_rva, thunk_rva)
    directories = [(0, 0)] * 16
    directories[1] = (section_rva, 20 * (len(needed) + 1))
    optional = struct.pack(
        "<HBBIIIIIQIIHHHHHHIIIIHHQQQQII",
        0x20B, 14, 0, 0, size, 0, 0, section_rva, 0x180000000, 0x1000, 0x200,
        6, 0, 0, 0, 6, 0, 0, section_rva + 0x1000, 0x200, 0, 2, 0, 0x100000, 0x1000, 0x100000, 0x1000, 0, 16,
    )  # fmt: skip
    optional += b"".join(struct.pack("<II", rva, length) for rva, length in directories)
    coff = struct.pack("<HHIIIHH", 0x8664, 1, 0, 0, 0, len(optional), 0x2022)
    section = struct.pack("<8sIIIIIIHHI", b".idata", size, section_rva, size, section_offset, 0, 0, 0, 0, 0xC0000040)
    head = bytearray(b"MZ" + b"\0" * 58 + struct.pack("<I", 0x40)) + b"PE\0\0" + coff + optional + section
    return bytes(head) + b"\0" * (section_offset - len(head)) + bytes(data)


def elf_shared_object(
    needed: list[str], rpath: str = "", runpath: str = "", *, bits: int = 64, big: bool = False
) -> bytes:
    """A minimal ELF shared object of either class and byte order, without section headers (as if stripped).

    Its `PT_DYNAMIC` names `needed` (`DT_NEEDED`) and the paths; its string table is found, as the
    loader finds it, at `DT_STRTAB`'s address in its `PT_LOAD` segment (loaded at 0x10000, so an
    address is not a file offset).
    """
    order = ">" if big else "<"
    dyn, phdr_size, header_size = ("qQ", 56, 64) if bits == 64 else ("iI", 32, 52)
    base, strings_at = 0x10000, header_size + 2 * phdr_size
    strings = bytearray(b"\0")
    tags = []
    for tag, names in ((1, needed), (15, [rpath] if rpath else []), (29, [runpath] if runpath else [])):
        for name in names:
            tags.append((tag, len(strings)))
            strings += name.encode() + b"\0"
    tags = [(5, base + strings_at), (10, len(strings)), *tags, (0, 0)]
    dynamic_at = strings_at + len(strings) + (-(strings_at + len(strings)) % 8)
    dynamic = b"".join(struct.pack(order + dyn, tag, value) for tag, value in tags)
    end = dynamic_at + len(dynamic)
    if bits == 64:
        phdrs = struct.pack(order + "IIQQQQQQ", 1, 5, 0, base, base, end, end, 0x1000)
        phdrs += struct.pack(order + "IIQQQQQQ", 2, 6, dynamic_at, base + dynamic_at, 0, len(dynamic), len(dynamic), 8)
        fields = struct.pack(
            order + "HHIQQQIHHHHHH", 3, 62, 1, 0, header_size, 0, 0, header_size, phdr_size, 2, 64, 0, 0
        )
    else:
        phdrs = struct.pack(order + "8I", 1, 0, base, base, end, end, 5, 0x1000)
        phdrs += struct.pack(order + "8I", 2, dynamic_at, base + dynamic_at, 0, len(dynamic), len(dynamic), 6, 4)
        fields = struct.pack(
            order + "HHIIIIIHHHHHH", 3, 3, 1, 0, header_size, 0, 0, header_size, phdr_size, 2, 40, 0, 0
        )
    ident = b"\x7fELF" + bytes([1 if bits == 32 else 2, 2 if big else 1, 1]) + b"\0" * 9
    image = ident + fields + phdrs + bytes(strings)
    return image + b"\0" * (dynamic_at - len(image)) + dynamic


def compile_elf(directory: Path, needed: str, rpath: str = "") -> bytes:
    """A shared object built by the host's gcc, linked by name to a library `needed` (lib<x>.so) it does not ship."""
    stem = needed.removeprefix("lib").removesuffix(".so")
    (directory / "dep.c").write_text("int dep(void) { return 1; }\n")
    (directory / "ext.c").write_text("int dep(void);\nint ext(void) { return dep(); }\n")
    gcc = ["gcc", "-shared", "-fPIC"]
    subprocess.run([*gcc, f"-Wl,-soname,{needed}", "-o", directory / needed, directory / "dep.c"], check=True)
    flags = [f"-Wl,-rpath,{rpath}"] if rpath else []
    out = directory / "ext.so"
    subprocess.run([*gcc, *flags, "-o", out, directory / "ext.c", f"-L{directory}", f"-l{stem}"], check=True)
    return out.read_bytes()


needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs the host's gcc")
