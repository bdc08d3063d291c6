"""What one binary asks of the dynamic loader: the libraries it needs and where it says to look.

Read with well-kept parsers from PyPI, one per format: pyelftools (ELF: `DT_NEEDED`, `DT_RPATH`,
`DT_RUNPATH` from the `PT_DYNAMIC` segment, which is what the loader reads, so stripped section
headers do not matter), macholib (Mach-O, thin or fat: `LC_LOAD_DYLIB`, `LC_REEXPORT_DYLIB`,
`LC_LOAD_UPWARD_DYLIB` and `LC_RPATH`; weak loads are optional, so they are left out) and pefile
(PE: the import table; delay-loaded DLLs are loaded on first use only, so they are left out).
The parsers are the loader check's own tool wheels (`role: loader` in tool_wheels.json), imported
here only, so no other action needs them.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

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


def _stream(source: bytes | Path) -> BinaryIO:
    return io.BytesIO(source) if isinstance(source, bytes) else source.open("rb")


def _elf_needs(source: bytes | Path) -> BinaryNeeds:
    from elftools.elf.dynamic import DynamicSection, DynamicSegment
    from elftools.elf.elffile import ELFFile

    # pyelftools sets each string tag's value as an attribute named for the tag.
    attributes = {"DT_NEEDED": "needed", "DT_RPATH": "rpath", "DT_RUNPATH": "runpath"}
    values: dict[str, list[str]] = {name: [] for name in attributes}
    with _stream(source) as stream:
        elf = ELFFile(stream)
        # The dynamic section finds its strings through its header's link: much cheaper than the
        # segment, which pyelftools matches against every section. The segment (what the loader
        # reads) serves files whose section headers are stripped.
        tables: list[DynamicSection | DynamicSegment] = []
        if elf.num_sections():
            tables = [s for s in elf.iter_sections("SHT_DYNAMIC") if isinstance(s, DynamicSection)]
        tables = tables or [s for s in elf.iter_segments() if isinstance(s, DynamicSegment)]
        for table in tables:
            for tag in table.iter_tags():
                attribute = attributes.get(tag.entry.d_tag)
                if attribute is not None:
                    values[tag.entry.d_tag].append(str(getattr(tag, attribute)))
    # With a RUNPATH, the loader ignores the RPATH; each is a ':'-separated list.
    paths = [entry for text in values["DT_RUNPATH"] or values["DT_RPATH"] for entry in text.split(":") if entry]
    return BinaryNeeds(ELF, tuple(values["DT_NEEDED"]), tuple(paths), runpath=bool(values["DT_RUNPATH"]))


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


def _macho_needs(source: bytes | Path) -> BinaryNeeds:
    from macholib import mach_o

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


def _pe_needs(source: bytes | Path) -> BinaryNeeds:
    import pefile

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


def read_needs(source: bytes | Path, format: str, what: str) -> BinaryNeeds:
    """The needs of the `format` binary (its bytes, or a file); one its parser cannot read is an error naming `what`."""
    try:
        return _READERS[format](source)
    except VenvstacksError:
        raise
    except Exception as error:  # the parsers raise their own types (ELFError, PEFormatError, ValueError, struct.error)
        raise VenvstacksError(f"{what}: not a readable {format} file ({type(error).__name__}: {error})") from error
