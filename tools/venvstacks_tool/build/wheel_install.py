"""Installing one locked wheel into a layer's prefix, in this process, with PyPA's `installer`.

`installer` is the reference implementation of the wheel spec (binary distribution format):
it places the archive's files by scheme (`purelib`/`platlib` into site-packages, `.data/scripts`
into `bin`, `.data/headers`, `.data/data`), writes the entry-point scripts and a RECORD with the
hash of every file written, and refuses paths that leave their scheme's directory. Running it
in-process instead of a pip child saves pip's start-up and its second hash of every wheel, and
lets `build-layer` compile one wheel's bytecode while the next is being unpacked.

The wheel file is hashed and unpacked through one open file, so the bytes installed are the
bytes whose sha256 matched the lock. Every script is made relocatable as it is written (the
destination sees each one, and RECORD gets the hash of the bytes actually written): on POSIX
targets its header becomes `RELOCATABLE_SHEBANG`, on Windows targets the launcher `installer`
builds runs `python.exe` from the script's own directory (`Scripts`), and the zip inside it gets
a fixed timestamp (`installer` stamps it with the clock). RECORD names the files outside
site-packages by POSIX paths relative to it whatever the build machine runs (`installer` writes
absolute ones on a Windows build machine), so a layer's bytes do not depend on the machine.
"""

from __future__ import annotations

import io
import os
import sys
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Literal

from installer import install
from installer.destinations import SchemeDictionaryDestination
from installer.exceptions import InstallerError
from installer.records import RecordEntry
from installer.sources import WheelContentElement, WheelFile
from installer.utils import Scheme, construct_record_file

from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.core.fsutil import sha256_of_open_file

# The interpreter `installer` writes into POSIX scripts: a fixed placeholder, never the build's
# own (sandbox) path, replaced by RELOCATABLE_SHEBANG as the script is written.
SCRIPT_INTERPRETER = "/venvstacks-layer/bin/python"
# The first lines of a POSIX script after relocation: `/bin/sh` runs the `exec` line, which
# starts the layer's own `bin/python` (next to the script once symlinks are resolved) on the
# script; Python reads the same lines as a comment and a string literal.
RELOCATABLE_SHEBANG = b"\n".join(
    [
        b"#!/bin/sh",
        b"'''exec' " + b'"$(dirname -- "$(realpath -- "$0")")/python" "$0" "$@"',
        b"' '''",
        b"",
    ]
)
# A Windows launcher runs the interpreter its embedded shebang names; a relative one is found
# next to the launcher, in the layer's `Scripts` directory (which holds the venv's python.exe).
WINDOWS_SCRIPT_INTERPRETER = "python.exe"
ScriptKind = Literal["posix", "win-amd64"]
# The timestamp of the `__main__.py` in a Windows launcher's zip (the earliest a zip can hold).
LAUNCHER_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
# Written into each installed distribution's `.dist-info` (the recording-installed-projects
# spec): the installer's name, and an empty REQUESTED because every wheel of a layer is asked for
# by its lock (as pip marks each line of a requirements file).
INSTALL_METADATA = {"INSTALLER": b"venvstacks\n", "REQUESTED": b""}


_GENERATED_DIST_INFO = tuple(f".dist-info/{name}" for name in ("RECORD", *INSTALL_METADATA))


@dataclass(frozen=True)
class Schemes:
    """Where each wheel scheme goes in a layer, relative to the layer's prefix."""

    site_dir: str  # purelib and platlib, e.g. "lib/python3.12/site-packages"
    include_dir: str  # headers go to <include_dir>/<distribution>, e.g. "include/python3.12"
    scripts_dir: str = "bin"
    data_dir: str = "."
    script_kind: ScriptKind = "posix"  # which launchers `installer` makes for entry points


@dataclass
class InstalledWheel:
    """What installing one wheel wrote: every file, and which of them are its Python sources."""

    written: list[Path] = field(default_factory=list)  # in the order written
    python_sources: list[Path] = field(default_factory=list)  # `.py` files in site-packages
    generated: list[Path] = field(default_factory=list)  # not a verbatim copy of a wheel member


class _RecordingDestination(SchemeDictionaryDestination):
    """`installer`'s file-system destination that also records what it writes.

    Every file goes through `write_to_fs`: the wheel's members, the entry-point scripts it
    generates, the extra `.dist-info` files and RECORD.
    """

    def __init__(self, scheme_dict: dict[str, str], installed: InstalledWheel, script_kind: ScriptKind) -> None:
        posix = script_kind == "posix"
        super().__init__(
            scheme_dict=scheme_dict,
            interpreter=SCRIPT_INTERPRETER if posix else WINDOWS_SCRIPT_INTERPRETER,
            script_kind=script_kind,
            overwrite_existing=True,  # as pip does: a later wheel's file replaces an earlier one's
        )
        self._installed = installed
        self._posix = posix
        self._writing_entry_point = False

    def write_script(self, name: str, module: str, attr: str, section: Literal["console", "gui"]) -> RecordEntry:
        # Only the launchers `installer` generates get their zip rewritten, never a `.data/scripts`
        # file: that one is the wheel's own bytes, even when it is an .exe with a zip appended.
        self._writing_entry_point = True
        try:
            return super().write_script(name, module, attr, section)
        finally:
            self._writing_entry_point = False

    def write_to_fs(self, scheme: Scheme, path: str, stream: BinaryIO, is_executable: bool) -> RecordEntry:
        if scheme == "scripts" and self._posix:
            stream = io.BytesIO(relocatable_script(stream.read()))
        elif scheme == "scripts" and self._writing_entry_point:
            stream = io.BytesIO(deterministic_launcher(stream.read()))
        # A file in `.data/scripts` is a command: executable whatever its zip mode says, as pip does.
        entry = super().write_to_fs(scheme, path, stream, is_executable or scheme == "scripts")
        target = Path(os.path.abspath(os.path.join(self.scheme_dict[scheme], path)))
        self._installed.written.append(target)
        if scheme in ("purelib", "platlib") and target.suffix == ".py":
            self._installed.python_sources.append(target)
        if scheme == "scripts" or path.endswith(_GENERATED_DIST_INFO):
            self._installed.generated.append(target)
        return entry

    def finalize_installation(
        self, scheme: Scheme, record_file_path: str, records: Iterable[tuple[Scheme, RecordEntry]]
    ) -> None:
        """Write RECORD, naming files of the other schemes by POSIX paths relative to `scheme`'s directory.

        `installer` uses `os.path.relpath` on POSIX build machines (native separators) and absolute
        paths on Windows ones: either would make the layer's bytes depend on the build machine,
        and an absolute path would be the build's scratch directory. The paths are relative, with
        `/`, on every machine, which pip reads on every target.
        """
        base = self.scheme_dict[scheme]

        def prefix_for_scheme(file_scheme: Scheme) -> str | None:
            if file_scheme == scheme:
                return None
            return Path(os.path.relpath(self.scheme_dict[file_scheme], start=base)).as_posix() + "/"

        with construct_record_file(list(records), prefix_for_scheme) as record_stream:
            self.write_to_fs(scheme, record_file_path, record_stream, is_executable=False)


def deterministic_launcher(data: bytes) -> bytes:
    """A Windows entry-point launcher (`.exe` stub, `#!` line, zip) whose zip members have a fixed timestamp.

    `installer` writes the zip's `__main__.py` with the current local time, so a layer with a
    Windows console script would differ from one build to the next. The zip is rebuilt with the
    same members, order, compression and permission bits, dated `LAUNCHER_ZIP_DATE`; the bytes
    before it (the launcher stub and the `#!python.exe` line) are kept.
    """
    with zipfile.ZipFile(io.BytesIO(data)) as old:
        infos = old.infolist()
        # zipfile reads a zip appended to other bytes: each header_offset counts from the start
        # of `data`, so the first member's is where the zip begins.
        start = min(info.header_offset for info in infos)
        members = [(info, old.read(info)) for info in infos]
    rebuilt = io.BytesIO()
    with zipfile.ZipFile(rebuilt, "w") as new:
        for info, content in members:
            fixed = zipfile.ZipInfo(info.filename, LAUNCHER_ZIP_DATE)
            fixed.compress_type = info.compress_type
            fixed.external_attr = info.external_attr
            fixed.create_system = 3  # what a POSIX build machine writes; a Windows one would write 0
            new.writestr(fixed, content)
    return data[:start] + rebuilt.getvalue()


def relocatable_script(data: bytes) -> bytes:
    """A POSIX script with `#!SCRIPT_INTERPRETER` as its header, given `RELOCATABLE_SHEBANG` instead.

    `installer` writes that header into every entry-point script and into each `.data/scripts`
    file that starts with `#!python` (keeping that line's arguments out: the `exec` line has none);
    other scripts (a `#!/bin/sh` one) are kept as they are.
    """
    first, newline, body = data.partition(b"\n")
    interpreter = first[2:].strip().partition(b" ")[0]
    if newline and first.startswith(b"#!") and interpreter == os.fsencode(SCRIPT_INTERPRETER):
        return RELOCATABLE_SHEBANG + body
    return data


class _LockedWheelFile(WheelFile):
    """`installer`'s wheel source, without the files of `__pycache__` directories, which it records.

    `installer` skips such a file too, but with a RuntimeWarning that Python prints with the
    build's absolute (sandbox) path, at every build of a layer with numpy (whose wheels ship
    `numpy/distutils/__pycache__/`). Skipping them here installs the same files, and the caller
    says what was skipped in its own words (`skipped_note`).
    """

    def __init__(self, archive: zipfile.ZipFile) -> None:
        super().__init__(archive)
        self.skipped: list[str] = []

    def get_contents(self) -> Iterator[WheelContentElement]:
        for element in super().get_contents():
            path = element[0][0]
            # The test `installer.install` skips by, so the files installed are the same.
            if "__pycache__" in path.split("/")[:-1]:
                self.skipped.append(path)
                continue
            yield element


def skipped_note(layer: str, wheel: str, skipped: list[str]) -> str:
    """The line that says which `__pycache__` files of `wheel` were not installed, or "" when it need not be said.

    A `.pyc` file there is bytecode of the wheel's build machine, harmless to leave out: the
    interpreter (or `build-layer`) compiles its own; nothing is said about it. Anything else in a
    `__pycache__` directory is named, by its path inside the wheel.
    """
    unusual = sorted(path for path in skipped if not path.endswith(".pyc"))
    if not unusual:
        return ""
    listed = ", ".join(unusual)
    return f"venvstacks: layer {layer!r}: wheel {wheel!r}: not installed, in a __pycache__ directory: {listed}"


def _distribution_name(wheel: Path) -> str:
    return wheel.name.split("-", 1)[0]


def scheme_dict(prefix: Path, schemes: Schemes, wheel: Path) -> dict[str, str]:
    """The absolute directory of each wheel scheme for `wheel` in the layer at `prefix`."""
    site = str(prefix / schemes.site_dir)
    return {
        "purelib": site,
        "platlib": site,
        "scripts": str(prefix / schemes.scripts_dir),
        "data": str(prefix / schemes.data_dir),
        "headers": str(prefix / schemes.include_dir / _distribution_name(wheel)),
    }


def install_wheel(wheel: Path, sha256: str, prefix: Path, schemes: Schemes, layer: str) -> InstalledWheel:
    """Install `wheel` into the layer at `prefix` if its sha256 is `sha256`; return what was written.

    Raises VenvstacksError naming the wheel and the layer when the file is missing, its hash
    differs, or it is not a valid wheel (bad zip, no single `.dist-info`, a path outside its
    scheme, an unsupported `Wheel-Version`).
    """
    installed = InstalledWheel()
    try:
        f = open(wheel, "rb")  # noqa: SIM115 - kept open across hashing and unpacking
    except OSError as error:
        raise VenvstacksError(f"layer {layer!r}: wheel {wheel.name!r} cannot be read ({wheel}): {error}") from error
    with f:
        actual = sha256_of_open_file(f)
        if actual != sha256:
            raise VenvstacksError(
                f"layer {layer!r}: wheel {wheel.name!r} has sha256 {actual}, but the lock says {sha256}"
            )
        try:
            with zipfile.ZipFile(f) as archive:
                # WheelFile reads the distribution name and version from the archive's file name.
                archive.filename = wheel.name
                destination = _RecordingDestination(scheme_dict(prefix, schemes, wheel), installed, schemes.script_kind)
                source = _LockedWheelFile(archive)
                install(source, destination, INSTALL_METADATA)
        except (InstallerError, zipfile.BadZipFile, ValueError, KeyError, OSError) as error:
            raise VenvstacksError(
                f"layer {layer!r}: wheel {wheel.name!r} cannot be installed: {type(error).__name__}: {error}"
            ) from error
    note = skipped_note(layer, wheel.name, source.skipped)
    if note:
        print(note, file=sys.stderr)
    return installed
