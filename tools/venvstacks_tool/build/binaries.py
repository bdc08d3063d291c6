"""What one binary asks of the dynamic loader: the libraries it needs and where it says to look.

ELF is read here with `struct`, as the loader reads it: the program headers, the `PT_DYNAMIC`
segment's `DT_NEEDED`, `DT_RPATH` and `DT_RUNPATH` and the dynamic string table (`DT_STRTAB`,
mapped to the file through the `PT_LOAD` segments), so stripped section headers do not matter and
nothing else of the file is parsed. A binary read from a stream (a wheel's member) is read only
as far as those bytes: the rest is never decompressed. The other formats are read with
well-kept parsers from PyPI: macholib (Mach-O, thin or fat: `LC_LOAD_DYLIB`, `LC_REEXPORT_DYLIB`,
`LC_LOAD_UPWARD_DYLIB` and `LC_RPATH`; weak loads are optional, so they are left out) and pefile
(PE: the import table; delay-loaded DLLs are loaded on first use only, so they are left out).
The parsers are the loader check's own tool wheels (`role: loader` in tool_wheels.json), imported
here only, so no other action needs them.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO, Protocol

from venvstacks_tool.core.errors import VenvstacksError

ELF = "ELF"
MACHO = "Mach-O"
PE = "PE"
# The first four bytes of each format (Mach-O: 32/64-bit in both byte orders, and fat files).
_MACHO_MAGICS = {
    bytes.fromhex(magic) for magic in ("feedface", "feedfacf", "cefaedfe", "cffaedfe", "cafebabe", "bebafeca")
}
# The operating system that loads each format, in the tool's words (TargetPlatform.os).
FORMAT_OS = {ELF: "linux", MACHO: "macos", PE: "windows"}


@dataclass(frozen=True)
class BinaryNeeds:
    """The libraries one binary needs, in its own order, and the directories it names for them."""

    format: str  # ELF, MACHO or PE
    needed: tuple[str, ...]  # ELF sonames, Mach-O install names, PE DLL names
    search_paths: tuple[str, ...]  # ELF RUNPATH (else RPATH) entries, Mach-O LC_RPATHs; () for PE
    runpath: bool = False  # ELF: the paths are a RUNPATH, which serves this binary only, not what it loads


def binary_format(head: bytes) -> str | None:
    """The format of a file starting with `head` (at least 4 bytes), or None for any other file."""
    if head[:4] == b"\x7fELF":
        return ELF
    if head[:4] in _MACHO_MAGICS:
        return MACHO
    if head[:2] == b"MZ":
        return PE
    return None


# ELF: program header and dynamic tags read here (the System V gABI's values).
_PT_LOAD, _PT_DYNAMIC = 1, 2
_DT_NULL, _DT_NEEDED, _DT_STRTAB, _DT_STRSZ, _DT_RPATH, _DT_RUNPATH = 0, 1, 5, 10, 15, 29
_PN_XNUM = 0xFFFF
# Per ELF class (1: 32-bit, 2: 64-bit): the header's (e_phoff, e_shoff) and (e_phentsize, e_phnum)
# fields and their offsets, a program header's fields (type, offset, vaddr, filesz), section 0's
# sh_info offset and a dynamic entry's format.
_ELF_LAYOUT = {
    1: ("II", 28, "HH", 42, "III4xI", (0, 1, 2, 3), 28, "iI"),
    2: ("QQ", 32, "HH", 54, "IIQQ8xQ", (0, 2, 3, 4), 44, "qQ"),
}
# How much of a stream's start StreamPrefix keeps in memory.
_KEPT_BYTES = 8 << 20


class ByteSource(Protocol):
    """Bytes of one binary, read by offset: all of them in memory, a file, or a stream read on demand."""

    def read_at(self, offset: int, size: int) -> bytes:
        """Up to `size` bytes from `offset` (fewer at the end)."""

    def read_all(self) -> bytes:
        """Every byte."""


class StreamPrefix:
    """A seekable stream (a wheel's member) read only as far as a parser asks, its first bytes kept.

    A zip member seeks by decompressing: forward, what it skips is decompressed and dropped;
    backward, it starts again from its first byte. So the first `_KEPT_BYTES` (where the ELF
    headers and, in practice, the dynamic string table are) are kept as they are read, and a read
    beyond them seeks: the memory stays small whatever the binary's size, and nothing past the
    last byte asked for is decompressed.
    """

    def __init__(self, stream: IO[bytes], head: bytes = b"") -> None:
        """`head`: the bytes already read from `stream` (its position is their end)."""
        self._stream = stream
        self._kept = bytearray(head)

    def read_at(self, offset: int, size: int) -> bytes:
        """Up to `size` bytes from `offset`, decompressing the stream only as far as their end."""
        end = offset + size
        kept = len(self._kept)
        if kept < min(end, _KEPT_BYTES) and self._stream.tell() == kept:
            self._kept += self._stream.read(min(end, _KEPT_BYTES) - kept)
        if end <= len(self._kept):
            return bytes(self._kept[offset:end])
        self._stream.seek(offset)
        return self._stream.read(size)

    def read_all(self) -> bytes:
        """Every byte (the stream read again from its start)."""
        self._stream.seek(0)
        return self._stream.read()


class _InMemory:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def read_at(self, offset: int, size: int) -> bytes:
        return self._data[offset : offset + size]

    def read_all(self) -> bytes:
        return self._data


class _File:
    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream

    def read_at(self, offset: int, size: int) -> bytes:
        self._stream.seek(offset)
        return self._stream.read(size)

    def read_all(self) -> bytes:
        self._stream.seek(0)
        return self._stream.read()


def _exact(source: ByteSource, offset: int, size: int, what: str) -> bytes:
    data = source.read_at(offset, size)
    if len(data) != size:
        raise ValueError(f"{what} at offset {offset} ends beyond the file")
    return data


def _elf_needs_from(source: ByteSource) -> BinaryNeeds:
    ident = _exact(source, 0, 16, "the ELF identification")
    elf_class, encoding = ident[4], ident[5]
    if elf_class not in _ELF_LAYOUT or encoding not in (1, 2):
        raise ValueError(f"unknown ELF class {elf_class} or data encoding {encoding}")
    order = "<" if encoding == 1 else ">"
    offsets_format, offsets_at, counts_format, counts_at, phdr_format, phdr_fields, info_at, dyn_format = _ELF_LAYOUT[
        elf_class
    ]
    offsets = struct.Struct(order + offsets_format)
    counts = struct.Struct(order + counts_format)
    phoff, shoff = offsets.unpack(_exact(source, offsets_at, offsets.size, "the ELF header"))
    phentsize, phnum = counts.unpack(_exact(source, counts_at, counts.size, "the ELF header"))
    if phnum == _PN_XNUM:  # the real count is section 0's sh_info
        (phnum,) = struct.unpack(order + "I", _exact(source, shoff + info_at, 4, "section header 0"))
    phdr = struct.Struct(order + phdr_format)
    if phnum and phentsize < phdr.size:
        raise ValueError(f"program header entries of {phentsize} bytes")
    table = _exact(source, phoff, phentsize * phnum, "the program headers")
    segments = []
    for index in range(phnum):
        fields = phdr.unpack_from(table, index * phentsize)
        segments.append(tuple(fields[i] for i in phdr_fields))  # (type, offset, vaddr, filesz)
    loads = [(vaddr, offset, filesz) for kind, offset, vaddr, filesz in segments if kind == _PT_LOAD]
    entry = struct.Struct(order + dyn_format)
    values: dict[int, list[str]] = {_DT_NEEDED: [], _DT_RPATH: [], _DT_RUNPATH: []}
    for kind, offset, _, filesz in segments:
        if kind != _PT_DYNAMIC:
            continue
        dynamic = source.read_at(offset, filesz)
        tags: list[tuple[int, int]] = []
        for tag, value in entry.iter_unpack(dynamic[: len(dynamic) - len(dynamic) % entry.size]):
            if tag == _DT_NULL:
                break
            tags.append((tag, value))
        strings = dict(tags)
        wanted = [(tag, value) for tag, value in tags if tag in values]
        if not wanted:
            continue
        if _DT_STRTAB not in strings:
            raise ValueError("a dynamic segment with strings and no DT_STRTAB")
        address = strings[_DT_STRTAB]
        where = [offset + address - vaddr for vaddr, offset, filesz in loads if vaddr <= address < vaddr + filesz]
        if not where:
            raise ValueError(f"DT_STRTAB {address:#x} is in no loaded segment")
        size = strings.get(_DT_STRSZ) or max(value for _, value in wanted) + 4096
        text = source.read_at(where[0], size)
        for tag, value in wanted:
            end = text.find(b"\0", value)
            if end < 0:
                raise ValueError(f"a dynamic string at {value} of a string table of {len(text)} bytes")
            values[tag].append(text[value:end].decode("utf-8", "replace"))
    # With a RUNPATH, the loader ignores the RPATH; each is a ':'-separated list.
    paths = [entry for text in values[_DT_RUNPATH] or values[_DT_RPATH] for entry in text.split(":") if entry]
    return BinaryNeeds(ELF, tuple(values[_DT_NEEDED]), tuple(paths), runpath=bool(values[_DT_RUNPATH]))


def _elf_needs(source: bytes | Path | ByteSource) -> BinaryNeeds:
    if isinstance(source, Path):
        with source.open("rb") as stream:
            return _elf_needs_from(_File(stream))
    return _elf_needs_from(_InMemory(source) if isinstance(source, bytes) else source)


def _all_bytes(source: bytes | Path | ByteSource) -> bytes | Path:
    """What the PyPI parsers read: the bytes of a binary read from a stream, else the binary as given."""
    return source if isinstance(source, (bytes, Path)) else source.read_all()


def _macho(source: bytes | Path) -> Any:
    from macholib.MachO import MachO

    if isinstance(source, Path):
        return MachO(str(source), allow_unknown_load_commands=True)

    class _InMemory(MachO):  # type: ignore[misc]
        """MachO read from bytes: its constructor opens a path, so set what it sets and `load` the stream."""

        def __init__(self, data: bytes) -> None:
            self.graphident = self.filename = "<in memory>"
            self.loader_path = ""
            self.fat = None
            self.headers: list[Any] = []
            self.allow_unknown_load_commands = True
            self.load(io.BytesIO(data))

    return _InMemory(source)


def _macho_needs(source: bytes | Path | ByteSource) -> BinaryNeeds:
    from macholib import mach_o

    source = _all_bytes(source)
    loads = {mach_o.LC_LOAD_DYLIB, mach_o.LC_REEXPORT_DYLIB, mach_o.LC_LOAD_UPWARD_DYLIB}
    needed: dict[str, None] = {}
    rpaths: dict[str, None] = {}
    # Every architecture of a fat file: each must load on its machine.
    for header in _macho(source).headers:
        for command, _, data in header.commands:
            if command.cmd in loads or command.cmd == mach_o.LC_RPATH:
                text = data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
                (rpaths if command.cmd == mach_o.LC_RPATH else needed)[text] = None
    return BinaryNeeds(MACHO, tuple(needed), tuple(rpaths))


def _pe_needs(source: bytes | Path | ByteSource) -> BinaryNeeds:
    import pefile

    source = _all_bytes(source)
    image = (
        pefile.PE(data=source, fast_load=True) if isinstance(source, bytes) else pefile.PE(str(source), fast_load=True)
    )
    try:
        image.parse_data_directories(directories=[pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_IMPORT"]])
        imports = getattr(image, "DIRECTORY_ENTRY_IMPORT", [])
        needed = tuple(entry.dll.decode("ascii", "replace") for entry in imports)
    finally:
        image.close()
    return BinaryNeeds(PE, needed, ())


_READERS = {ELF: _elf_needs, MACHO: _macho_needs, PE: _pe_needs}


def read_needs(source: bytes | Path | ByteSource, format: str, what: str) -> BinaryNeeds:
    """The needs of the `format` binary (its bytes, a file or a StreamPrefix).

    One its parser cannot read is an error naming `what`.
    """
    try:
        return _READERS[format](source)
    except VenvstacksError:
        raise
    except Exception as error:  # the parsers raise their own types (PEFormatError, ValueError, struct.error)
        raise VenvstacksError(f"{what}: not a readable {format} file ({type(error).__name__}: {error})") from error
