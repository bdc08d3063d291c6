"""`check-libraries`: does every binary a layer ships find the libraries it needs on its target?

Runs as a Bazel validation action of each framework and application layer, for the layer's
target platform, whatever the build machine is. It reads the layer's wheels and first-party files
(never the archive, so it runs beside the archive action and needs no archive from a remote
cache), takes each extension module and shared library (`.so`, `.so.N`, `.dylib`, `.pyd`,
`.dll`; other files of those names, such as linker scripts, are skipped by their first bytes),
reads what it needs (build/binaries.py) and looks each library up where the deployed stack's
loader will (build/library_search.py): the layer itself, the lower layers' libraries (their
`_NAME.libraries.json`, which this command writes for the layers above), the runtime and the
target's system set (build/system_libraries.py).

A library found nowhere is reported per layer, naming the platform, the library, the files that
need it and the distribution that installed them: a warning by default (printed, and kept in the
report the action writes), an error with `--strict` (the layer's `strict_libraries`). A name in
`--allow` (the layer's `allowed_libraries`: what the targets are known to provide) is not
reported; the report counts it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from venvstacks_tool.build.binaries import ELF, FORMAT_OS, BinaryNeeds, StreamPrefix, binary_format, read_needs
from venvstacks_tool.build.dynlib_exclude import DynlibExclusions, compile_exclusions
from venvstacks_tool.build.dynlibs import is_shared_library
from venvstacks_tool.build.library_search import StackView, missing_libraries, windows_dll_names
from venvstacks_tool.build.system_libraries import system_libraries
from venvstacks_tool.core.cli import add_repeatable, split_pair, subcommand_parser
from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.core.fsutil import json_bytes, write_bytes_atomic
from venvstacks_tool.core.platforms import TargetPlatform, by_triple, parse_floor

# Suffixes of the files read (`.so.N` versioned names too); the loader check reads no others.
BINARY_SUFFIXES = (".so", ".dylib", ".pyd", ".dll")
# A wheel's Mach-O or PE binary up to this size is read into memory to be parsed; a larger one is
# copied out of its wheel into a scratch file, in chunks, so that the check's memory stays small.
# (An ELF binary is read from its member as far as needed, with little kept: StreamPrefix.)
IN_MEMORY_BYTES = 64 << 20
_COPY_CHUNK = 1 << 20
# How many files of one missing library a message lists before "and N more".
_LISTED_FILES = 3


@dataclass(frozen=True)
class LoaderCheck:
    """What `check-libraries` was asked to check, validated."""

    layer_name: str
    platform: TargetPlatform
    python_version: str  # "3.12.7"
    glibc: tuple[int, int] | None  # the stack's glibc floor, None for the runtime's own
    wheels: tuple[Path, ...]
    app_files: tuple[tuple[str, Path], ...]  # (path below site-packages, file)
    runtime_root: str
    runtime_files: tuple[str, ...]  # the runtime's library files, paths under runtime_root
    lower_libraries: tuple[Path, ...]  # `_NAME.libraries.json` of the layers below
    allowed: tuple[str, ...]
    strict: bool
    output: Path  # the report
    libraries: Path  # this layer's `_NAME.libraries.json`, for the layers above
    # The libraries the layer does not link for the layers above (its `dynlib_exclude`).
    dynlib_exclude: DynlibExclusions = field(default_factory=DynlibExclusions)


@dataclass(frozen=True)
class Binary:
    """One binary the layer ships: where, from which distribution, and what it needs."""

    path: str  # below the layer's root
    owner: str  # "<distribution> <version>" or "first-party code"
    needs: BinaryNeeds


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of `check-libraries` (reads `@paramfile` arguments)."""
    parser = subcommand_parser("check-libraries", "Check that a layer's binaries find their libraries on the target.")
    parser.add_argument("--layer-name", required=True, help="the layer checked")
    parser.add_argument("--platform", required=True, help="the target's PBS triple")
    parser.add_argument("--python-version", required=True, help="the runtime's CPython version")
    parser.add_argument("--glibc", default="", help="the stack's glibc floor (X.Y), '' for the runtime's")
    add_repeatable(parser, "--wheel", "wheels", "PATH", "a wheel the layer installs (repeatable)", type=Path)
    add_repeatable(parser, "--app-file", "app_files", "DEST=PATH", "a first-party file and its path in site-packages")
    parser.add_argument("--runtime-root", required=True, help="the runtime's root directory (its files are not read)")
    add_repeatable(parser, "--runtime-file", "runtime_files", "PATH", "a library file of the runtime (repeatable)")
    add_repeatable(
        parser, "--lower-libraries", "lower_libraries", "PATH", "a lower layer's libraries document", type=Path
    )
    add_repeatable(parser, "--allow", "allowed", "NAME", "a library the targets provide (repeatable)")
    parser.add_argument("--strict", action="store_true", help="a library found nowhere is an error")
    add_repeatable(
        parser, "--dynlib-exclude", "dynlib_exclude", "GLOB", "a library the layer does not link (repeatable)"
    )
    parser.add_argument("--output", required=True, type=Path, help="the report to write")
    parser.add_argument("--libraries", required=True, type=Path, help="the libraries document for the layers above")
    return parser


def parse_request(argv: list[str]) -> LoaderCheck:
    """Parse `check-libraries`' command line."""
    args = build_parser().parse_args(argv)
    what = f"layer {args.layer_name!r}"
    app_files = [split_pair(value, "--app-file", what, "DEST=PATH") for value in args.app_files]
    root = args.runtime_root.rstrip("/")
    outside = [path for path in args.runtime_files if not path.startswith(root + "/")]
    if outside:
        raise VenvstacksError(f"layer {args.layer_name!r}: runtime file {outside[0]!r} is not under {root!r}")
    return LoaderCheck(
        layer_name=args.layer_name,
        platform=by_triple(args.platform),
        python_version=args.python_version,
        glibc=parse_floor(args.glibc, f"layer {args.layer_name!r}: --glibc"),
        wheels=tuple(args.wheels),
        app_files=tuple((dest, Path(path)) for dest, path in app_files),
        runtime_root=root,
        runtime_files=tuple(path[len(root) + 1 :] for path in args.runtime_files),
        lower_libraries=tuple(args.lower_libraries),
        allowed=tuple(args.allowed),
        strict=args.strict,
        output=args.output,
        libraries=args.libraries,
        dynlib_exclude=compile_exclusions(args.dynlib_exclude, args.layer_name),
    )


def is_binary_name(name: str) -> bool:
    """Whether a file of this name may be an extension module or a shared library (`libfoo.so.1` too)."""
    lower = name.casefold()
    return lower.endswith(BINARY_SUFFIXES) or ".so." in lower


def wheel_member_path(member: str, site_dir: str, scripts_dir: str) -> str | None:
    """Where a wheel member lands below the layer's root (by its scheme), or None (headers, directories)."""
    if member.endswith("/"):
        return None
    top, _, rest = member.partition("/")
    if top.endswith(".data") and rest:
        scheme, _, below = rest.partition("/")
        base = {"purelib": site_dir, "platlib": site_dir, "data": "", "scripts": scripts_dir}.get(scheme)
        return None if base is None else str(PurePosixPath(base, below))
    return f"{site_dir}/{member}"


def _wheel_owner(wheel: Path) -> str:
    name, version = wheel.name.split("-")[:2]
    return f"{name} {version}"


# (path below the layer's root, owner, the wheel or None, the member or the file)
_Candidate = tuple[str, str, "zipfile.ZipFile | None", "str | Path"]


def _parsed(candidates: list[_Candidate], scratch: Path) -> Iterator[Binary]:
    """Read each candidate that is a binary (by its first bytes): a file in place, a wheel's member as a stream.

    A member is decompressed only as far as its parser asks (ELF: to its dynamic segment and its
    strings, keeping little of it in memory: StreamPrefix); the other formats' parsers read all of
    it, so a large one of those is copied to `scratch` first, in chunks, so that the check's
    memory stays small.
    """
    for index, (path, owner, archive, source) in enumerate(candidates):
        what = f"{path} ({owner})"
        if archive is None:
            with open(source, "rb") as reader:
                kind = binary_format(reader.read(4))
            if kind is not None:
                yield Binary(path, owner, read_needs(Path(source), kind, what))
            continue
        with archive.open(str(source)) as reader:
            head = reader.read(4)
            kind = binary_format(head)
            if kind is None:
                continue
            if kind == ELF or archive.getinfo(str(source)).file_size <= IN_MEMORY_BYTES:
                yield Binary(path, owner, read_needs(StreamPrefix(reader, head), kind, what))
                continue
            copy = scratch / f"{index}.bin"
            with copy.open("wb") as writer:
                writer.write(head)
                shutil.copyfileobj(reader, writer, _COPY_CHUNK)
        try:
            yield Binary(path, owner, read_needs(copy, kind, what))
        finally:
            copy.unlink()


def read_layer(request: LoaderCheck, scratch: Path) -> tuple[list[Binary], frozenset[str]]:
    """The layer's binaries and the paths (below its root) of every file it ships from wheels and first-party code."""
    platform, xy = request.platform, request.python_version
    site_dir, scripts_dir = platform.site_packages(xy), platform.scripts_dir
    files: set[str] = set()
    binaries: list[Binary] = []
    for wheel in sorted(request.wheels, key=lambda w: w.name):
        with zipfile.ZipFile(wheel) as archive:
            candidates: list[_Candidate] = []
            for member in sorted(archive.namelist()):
                path = wheel_member_path(member, site_dir, scripts_dir)
                if path is None:
                    continue
                files.add(path)
                if is_binary_name(path):
                    candidates.append((path, _wheel_owner(wheel), archive, member))
            binaries += _parsed(candidates, scratch)
    first_party: list[_Candidate] = [
        (f"{site_dir}/{dest}", "first-party code", None, source) for dest, source in request.app_files
    ]
    files.update(path for path, *_ in first_party)
    binaries += _parsed([c for c in first_party if is_binary_name(c[0])], scratch)
    return binaries, frozenset(files)


def libraries_document(request: LoaderCheck, files: frozenset[str]) -> dict[str, object]:
    """What the layers above find of this layer by name: its dynlib links (POSIX) or its DLLs (Windows)."""
    platform, xy = request.platform, request.python_version
    site = platform.site_packages(xy)
    if platform.os == "windows":
        names = windows_dll_names(frozenset(f.casefold() for f in files))
    else:
        suffixes = {tuple(PurePosixPath(f"x{s}").suffixes) for s in platform.extension_suffixes(xy) if s != ".so"}
        names = {
            PurePosixPath(f).name
            for f in files
            if f.startswith(site + "/") and is_shared_library(f, suffixes) and not request.dynlib_exclude.excludes(f)
        }
    return {"layer_name": request.layer_name, "platform": platform.triple, "libraries": sorted(names)}


def _lower_names(request: LoaderCheck) -> set[str]:
    names: set[str] = set()
    for path in request.lower_libraries:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
            names.update(document["libraries"])
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise VenvstacksError(f"layer {request.layer_name!r}: cannot read {str(path)!r}: {error}") from error
    return names


def runtime_library_names(platform: TargetPlatform, runtime_files: tuple[str, ...]) -> set[str]:
    """The runtime's libraries loadable by name: `lib/*` (POSIX), the root and `DLLs/` (Windows)."""
    directories = ("", "DLLs") if platform.os == "windows" else ("lib",)
    return {
        PurePosixPath(path).name
        for path in runtime_files
        if str(PurePosixPath(path).parent).replace(".", "") in directories and is_binary_name(path)
    }


def stack_view(request: LoaderCheck, files: frozenset[str]) -> StackView:
    """What the layer's binaries can load from, for the request's platform."""
    platform = request.platform
    fold = str.casefold if platform.os == "windows" else str
    by_name = {fold(name) for name in _lower_names(request)}
    layer_files = frozenset(fold(path) for path in files)
    if platform.os == "windows":
        by_name |= windows_dll_names(layer_files)
    return StackView(
        os=platform.os,
        files=layer_files,
        by_name=frozenset(by_name),
        runtime=frozenset(fold(name) for name in runtime_library_names(platform, request.runtime_files)),
        system=system_libraries(platform, request.glibc),
        allowed=frozenset(fold(name) for name in request.allowed),
    )


@dataclass(frozen=True)
class Findings:
    """What the check found: missing library -> [(file, owner)] needing it, and the allowed ones."""

    binaries: int
    missing: dict[str, list[tuple[str, str]]]
    allowed: dict[str, list[tuple[str, str]]]
    foreign: list[tuple[str, str, str]]  # (file, owner, format) of another OS's binaries


def find_problems(binaries: list[Binary], view: StackView) -> Findings:
    """Look up every needed library of `binaries` in `view`."""
    missing: dict[str, list[tuple[str, str]]] = {}
    allowed: dict[str, list[tuple[str, str]]] = {}
    foreign = [(b.path, b.owner, b.needs.format) for b in binaries if FORMAT_OS[b.needs.format] != view.os]
    native = {b.path: b for b in binaries if FORMAT_OS[b.needs.format] == view.os}
    results = missing_libraries({path: binary.needs for path, binary in native.items()}, view)
    for path, (lost, permitted) in sorted(results.items()):
        for name in lost:
            missing.setdefault(name, []).append((path, native[path].owner))
        for name in permitted:
            allowed.setdefault(name, []).append((path, native[path].owner))
    return Findings(len(binaries), missing, allowed, foreign)


def _listed(users: list[tuple[str, str]], layer: str) -> str:
    shown = ", ".join(f"{layer}/{path} ({owner})" for path, owner in users[:_LISTED_FILES])
    more = len(users) - _LISTED_FILES
    return shown + (f" and {more} more" if more > 0 else "")


def problem_lines(findings: Findings, request: LoaderCheck, system: StackView) -> list[str]:
    """One line per missing library and per binary of another OS, each naming the layer and the platform."""
    where = f"layer {request.layer_name!r} ({request.platform.name})"
    lines = []
    for name in sorted(findings.missing):
        note = system.system.note(name)
        lines.append(
            f"{where}: {name} is needed by {_listed(findings.missing[name], request.layer_name)}, and neither the"
            f" layer, the layers below, the runtime nor {request.platform.name}'s system libraries provide it"
            + (f" ({note})" if note else "")
            + f"; use a package that does not need it, or add {name!r} to the layer's allowed_libraries"
            " if every target has it"
        )
    for path, owner, kind in findings.foreign:
        file = f"{request.layer_name}/{path} ({owner})"
        lines.append(f"{where}: {file} is a {kind} file, which {request.platform.name} cannot load")
    return lines


def summary(findings: Findings, request: LoaderCheck) -> str:
    """The report's last line: counts, and the allowed libraries."""
    allowed = ", ".join(f"{name} ({len(users)} files)" for name, users in sorted(findings.allowed.items()))
    return (
        f"layer {request.layer_name!r} ({request.platform.name}): {findings.binaries} binaries read,"
        f" {len(findings.missing)} libraries found nowhere" + (f"; allowed: {allowed}" if allowed else "") + "\n"
    )


def check_libraries(request: LoaderCheck) -> str:
    """Run the check; write the libraries document; return the report, or raise VenvstacksError when strict."""
    with tempfile.TemporaryDirectory(prefix="venvstacks-loader-") as scratch:
        binaries, files = read_layer(request, Path(scratch))
    write_bytes_atomic(request.libraries, json_bytes(libraries_document(request, files)))
    view = stack_view(request, files)
    findings = find_problems(binaries, view)
    lines = problem_lines(findings, request, view)
    if lines and request.strict:
        raise VenvstacksError("strict_libraries:\n" + "\n".join(f"  {line}" for line in lines))
    return "".join(f"warning: {line}\n" for line in lines) + summary(findings, request)


def main(argv: list[str]) -> int:
    """Run `check-libraries` with `argv`; errors are raised as VenvstacksError."""
    request = parse_request(argv)
    report = check_libraries(request)
    # Only the warnings are printed (Bazel shows an action's output); the report keeps the counts.
    print("".join(line + "\n" for line in report.splitlines() if line.startswith("warning: ")), end="")
    write_bytes_atomic(request.output, report.encode("utf-8"))
    return 0
