"""`build-layer`: build a framework or application layer as a deterministic archive.

Runs inside a sandboxed, network-free action on the execution platform's interpreter of the
target's Python X.Y (`sys.executable`); the target platform (`--platform`) decides the layout,
so a Windows or macOS layer builds on Linux. Every step depends only on the arguments and the
input files:

1. Install the layer's wheels into `<scratch>/<layer>` in this process (`wheel_install`: PyPA's
   `installer`, each wheel hash-checked against the lock through the file it is unpacked from),
   in the target's site-packages, scripts made relocatable as they are written. While the next
   wheel unpacks, the previous one's sources compile to bytecode in child processes
   (`bytecode`), which is what keeps the layer near the cost of unzipping its wheels.
2. Copy the first-party files (an application's `srcs`, a layer's `deps` libraries, placed by
   the rule at their import roots) into site-packages, refusing one whose top-level name a wheel
   of the layer installs (`layer_contents.first_party_clash`), and link the shared libraries of
   site-packages into `share/venv/dynlib` for the layers above (`dynlibs`; POSIX targets).
3. Add the stacking files (venvstacks' deployment protocol, `core.protocol`): the layer's
   interpreter (POSIX: `bin/python`, `bin/python3`, `bin/pythonX.Y` as relative symlinks to the
   runtime layer's `bin/python3`, or, on frameworks, `bin/python` a wrapper that finds their
   shared libraries (`dynlibs`); Windows: `Scripts/python.exe` and `pythonw.exe`, the target
   runtime's venv launchers), in site-packages `_venvstacks_stack.py`, a standard-library module
   naming the lower layers' site-packages (frameworks in stack order, then the runtime's)
   relative to itself, and `_venvstacks_stack.pth`, whose `import` line runs it at interpreter
   start so that each lower site-packages is processed by `site.addsitedir` (its `.pth` files
   included), the layer config and `postinstall.py` (a verbatim copy of
   `core/postinstall_template.py`), which writes `pyvenv.cfg` once the layer is deployed. No
   `.pth` file is executed here: the build runs no interpreter of the layer.
4. Compile bytecode (the wheels' sources from step 1 on, the rest now): unchecked-hash pycs
   whose `co_filename` is relative, written by fresh interpreters with a fixed hash seed over a
   partition of the sorted sources fixed by the inputs, so the bytes do not depend on the
   machine, its CPU count, timing or the tool's own state. Bytecode does not depend on the
   target: one X.Y gives the same pycs for every POSIX target, and a Windows layer's differ
   only in `co_filename`, which names its own site-packages (`Lib/site-packages`).
5. Refuse the tree if any file that this build wrote or copied holds the absolute path of the
   scratch directory, the wheels, the application sources or the interpreter, or if an
   extension module is not built for the target; then pack it with `archive.write_archive` and
   write the archive record (`core.protocol`) and the layer's contents (`layer_contents`: its
   top-level import names and shared libraries, which the stack check of each layer above
   reads). Files unpacked verbatim from a locked wheel are not read again for paths: their
   bytes were fixed, by sha256, before this build existed.

The metadata JSON is written by `layer-metadata` (`build.layer_metadata`) in an action of its
own, so that the archive needs nothing from the layers below.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import stat
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from venvstacks_tool.build.app_checks import check_launch_module, check_no_shadowing
from venvstacks_tool.build.bytecode import BytecodeCompiler, compiler_environment
from venvstacks_tool.build.dynlib_exclude import DynlibExclusions, compile_exclusions
from venvstacks_tool.build.dynlibs import WRAPPED_PYTHON, find_shared_libraries, link_shared_libraries, python_wrapper
from venvstacks_tool.build.identity import LayerIdentity, add_identity_arguments, check_layer_name, identity_from_args
from venvstacks_tool.build.layer_contents import APPLICATION_SRCS, first_party_clash, scan_layer, write_contents
from venvstacks_tool.build.scratch import ScratchRemover
from venvstacks_tool.build.wheel_install import Schemes, ScriptKind, install_wheel
from venvstacks_tool.core import postinstall_template
from venvstacks_tool.core.archive import add_compression_argument, tree_entries, write_archive
from venvstacks_tool.core.cli import add_repeatable, subcommand_parser
from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.core.fsutil import CHUNK_SIZE, json_bytes, sha256_file
from venvstacks_tool.core.platforms import TargetPlatform
from venvstacks_tool.core.protocol import (
    LAYER_CONFIG_PATH,
    POSIX_DYNLIB_DIR,
    POSTINSTALL_NAME,
    STACK_MODULE_NAME,
    STACK_PTH_NAME,
    WINDOWS_DYNLIB_DIR,
    VenvLayerLayout,
    is_sha256,
    record_archive,
    venv_layer_config,
    write_archive_record,
)

POSTINSTALL_TEMPLATE = Path(postinstall_template.__file__)
BYTECODE_MODES = ("compiled", "none")
# What a Windows layer's Scripts holds of the runtime's venv launchers (`--venv-launcher NAME=PATH`).
VENV_LAUNCHER_NAMES = ("python.exe", "pythonw.exe")

AppFile = tuple[PurePosixPath, Path]


@dataclass(frozen=True)
class Wheel:
    """A wheel of the layer: its path, expected sha256, and whether a lock pinned it.

    A locked wheel's bytes were fixed before the build; a local one (`--local-wheel`) was built in
    the same build and may hold its paths, so only the latter's files are scanned for them.
    """

    path: Path
    sha256: str
    locked: bool = True


@dataclass(frozen=True)
class LayerLayout:
    """Where things go in a framework or application layer of one target (relative paths)."""

    site_dir: str  # "lib/python3.12/site-packages", "Lib/site-packages"
    include_dir: str  # "include/python3.12", "Include"
    scripts_dir: str  # "bin", "Scripts"
    script_kind: ScriptKind
    venv: VenvLayerLayout  # what the layer config records
    windows: bool
    case_insensitive: bool  # the target's file system (Windows; macOS by default) ignores case


def layer_layout(platform: TargetPlatform, xy: str) -> LayerLayout:
    """The layout of a layered environment for `platform` and Python `xy`, as venvstacks lays it out."""
    windows = platform.os == "windows"
    return LayerLayout(
        site_dir=platform.site_packages(xy),
        include_dir=platform.include_dir(xy),
        scripts_dir=platform.scripts_dir,
        script_kind="win-amd64" if windows else "posix",
        venv=VenvLayerLayout(
            python=platform.venv_interpreter,
            site_dir=platform.site_packages(xy),
            runtime_python=platform.runtime_interpreter,
            runtime_site_dir=platform.site_packages(xy),
            dynlib_dir=WINDOWS_DYNLIB_DIR if windows else POSIX_DYNLIB_DIR,
        ),
        windows=windows,
        case_insensitive=platform.os in ("windows", "macos"),
    )


@dataclass(frozen=True)
class LayerBuild:
    """Everything `build-layer` was asked to do, validated."""

    identity: LayerIdentity
    runtime_layer: str
    lower_layers: tuple[str, ...]
    wheels: tuple[Wheel, ...]
    app_files: tuple[AppFile, ...]
    app_owners: dict[str, str]  # first path component of app files -> the `deps` library they come from
    venv_launchers: tuple[tuple[str, Path], ...]  # Windows: (name in Scripts, the runtime's launcher)
    dynlib_exclude: DynlibExclusions  # libraries kept out of share/venv/dynlib
    bytecode: str
    compression: str  # a name of archive.COMPRESSION_SETTINGS
    mtime: int
    output: Path
    archive_record: Path
    contents: Path


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of `build-layer` (reads `@paramfile` arguments)."""
    parser = subcommand_parser("build-layer", "Build a framework or application layer archive for its target.")
    add_identity_arguments(parser)
    parser.add_argument("--runtime-layer", required=True, help="deployed directory name of the runtime layer")
    add_repeatable(
        parser, "--lower-layer", "lower_layers", "NAME", "a framework layer below this one (repeatable, in stack order)"
    )
    add_repeatable(
        parser, "--wheel", "wheels", "PATH=SHA256", "a locked wheel of this layer and its sha256 (repeatable)"
    )
    add_repeatable(
        parser,
        "--local-wheel",
        "local_wheels",
        "PATH",
        "a wheel built in this build (not from the lock), installed like the locked ones (repeatable)",
    )
    add_repeatable(
        parser, "--app-file", "app_files", "DEST=PATH", "first-party file copied to DEST under site-packages"
    )
    add_repeatable(
        parser,
        "--app-owner",
        "app_owners",
        "ENTRY=LABEL",
        "the library the app files below site-packages/ENTRY come from (default: the application's srcs)",
    )
    add_repeatable(
        parser,
        "--venv-launcher",
        "venv_launchers",
        "NAME=PATH",
        "Windows targets: the runtime's venv launcher to copy to Scripts/NAME (python.exe, pythonw.exe)",
    )
    add_repeatable(
        parser,
        "--dynlib-exclude",
        "dynlib_exclude",
        "GLOB",
        "a shared library not to link into share/venv/dynlib, by the end of its path (repeatable)",
    )
    parser.add_argument("--bytecode", default="compiled", choices=BYTECODE_MODES)
    add_compression_argument(parser)
    parser.add_argument("--mtime", required=True, type=int, help="timestamp of every member, seconds since epoch")
    parser.add_argument("--output", required=True, type=Path, help="the layer archive to write")
    parser.add_argument(
        "--archive-record", required=True, type=Path, help="the archive record to write (core.protocol)"
    )
    parser.add_argument(
        "--contents",
        required=True,
        type=Path,
        help="the layer's top-level import names and shared libraries to write (build.layer_contents)",
    )
    return parser


def _split_pair(value: str, option: str, layer: str) -> tuple[str, str]:
    left, sep, right = value.rpartition("=")
    if not sep or not left or not right:
        raise VenvstacksError(f"layer {layer!r}: {option} {value!r} is not of the form NAME=VALUE")
    return left, right


def _relative_dest(dest: str, layer: str) -> PurePosixPath:
    """Validate an `--app-file` destination: a relative POSIX path without `..` or empty parts."""
    parts = dest.split("/")
    if dest.startswith("/") or "\\" in dest or any(part in ("", ".", "..") for part in parts) or ":" in parts[0]:
        raise VenvstacksError(
            f"layer {layer!r}: --app-file destination {dest!r} must be a relative path inside"
            " site-packages, without '..', '.' or empty components"
        )
    return PurePosixPath(*parts)


def _parse_wheels(args: argparse.Namespace, layer: str) -> tuple[Wheel, ...]:
    wheels: list[Wheel] = []
    wheel_names: set[str] = set()
    for value in args.wheels:
        path_text, sha256 = _split_pair(value, "--wheel", layer)
        path = Path(path_text)
        sha256 = sha256.lower()
        if not is_sha256(sha256):
            raise VenvstacksError(f"layer {layer!r}: --wheel {path.name!r}: {sha256!r} is not a hex sha256")
        if not path.name.endswith(".whl"):
            raise VenvstacksError(f"layer {layer!r}: --wheel {path_text!r} is not a .whl file")
        if path.name in wheel_names:
            raise VenvstacksError(f"layer {layer!r}: wheel {path.name!r} is given twice")
        wheel_names.add(path.name)
        wheels.append(Wheel(path, sha256))
    for value in args.local_wheels:
        # Built by another rule in the same build: no lock pins it, so its hash is taken here and
        # it is still installed hash-checked; its dependencies must come from the layer's lock.
        path = Path(value)
        if not path.name.endswith(".whl") or not path.is_file():
            raise VenvstacksError(f"layer {layer!r}: --local-wheel {value!r} is not a .whl file")
        if path.name in wheel_names:
            raise VenvstacksError(f"layer {layer!r}: wheel {path.name!r} is given twice")
        wheel_names.add(path.name)
        wheels.append(Wheel(path, sha256_file(path), locked=False))
    return tuple(wheels)


def _parse_app_files(args: argparse.Namespace, layer: str) -> tuple[AppFile, ...]:
    app_files: list[AppFile] = []
    dests: set[PurePosixPath] = set()
    for value in args.app_files:
        dest_text, source = value.split("=", 1) if "=" in value else ("", "")
        if not dest_text or not source:
            raise VenvstacksError(f"layer {layer!r}: --app-file {value!r} is not of the form DEST=PATH")
        dest = _relative_dest(dest_text, layer)
        if dest in dests:
            raise VenvstacksError(f"layer {layer!r}: --app-file destination {dest_text!r} is given twice")
        dests.add(dest)
        app_files.append((dest, Path(source)))
    return tuple(app_files)


def parse_request(argv: list[str]) -> LayerBuild:
    """Parse and validate `build-layer`'s command line."""
    args = build_parser().parse_args(argv)
    identity = identity_from_args(args)
    layer = identity.name
    check_layer_name(args.runtime_layer, "--runtime-layer", layer)
    seen_layers = {layer: "the layer itself", args.runtime_layer: "the runtime layer"}
    for lower in args.lower_layers:
        check_layer_name(lower, "--lower-layer", layer)
        if lower in seen_layers:
            raise VenvstacksError(f"layer {layer!r}: --lower-layer {lower!r} is also {seen_layers[lower]}")
        seen_layers[lower] = "an earlier --lower-layer"
    running = f"{sys.version_info[0]}.{sys.version_info[1]}"
    if running != identity.xy:
        raise VenvstacksError(
            f"layer {layer!r}: --python-version is {identity.python_version}, but the tool runs on Python"
            f" {running} ({sys.executable}); build-layer must run on an interpreter of the target's Python X.Y"
        )
    if args.mtime < 0:
        raise VenvstacksError(f"layer {layer!r}: --mtime must not be negative")
    if len({args.output.resolve(), args.archive_record.resolve(), args.contents.resolve()}) != 3:
        raise VenvstacksError(f"layer {layer!r}: --output, --archive-record and --contents must be different files")
    launchers = tuple(
        (name, Path(path)) for name, path in (_split_pair(v, "--venv-launcher", layer) for v in args.venv_launchers)
    )
    if (identity.platform.os == "windows") != bool(launchers):
        raise VenvstacksError(
            f"layer {layer!r}: --venv-launcher is required for a Windows target and only for one"
            f" (target {identity.platform.name})"
        )
    names = [name for name, _ in launchers]
    if launchers and sorted(names) != sorted(VENV_LAUNCHER_NAMES):
        # The name is a file name in Scripts: anything else could write outside it, or leave the
        # layer without the interpreter its config names.
        raise VenvstacksError(
            f"layer {layer!r}: --venv-launcher must name {' and '.join(VENV_LAUNCHER_NAMES)} once each"
            f" (given: {', '.join(names)})"
        )
    return LayerBuild(
        identity=identity,
        runtime_layer=args.runtime_layer,
        lower_layers=tuple(args.lower_layers),
        wheels=_parse_wheels(args, layer),
        app_files=_parse_app_files(args, layer),
        app_owners=dict(_split_pair(value, "--app-owner", layer) for value in args.app_owners),
        venv_launchers=launchers,
        dynlib_exclude=compile_exclusions(args.dynlib_exclude, layer),
        bytecode=args.bytecode,
        compression=args.compression,
        mtime=args.mtime,
        output=args.output,
        archive_record=args.archive_record,
        contents=args.contents,
    )


def _check_wheels_exist(wheels: tuple[Wheel, ...], layer: str) -> None:
    """Fail before any work if a wheel is missing (its sha256 is checked as it is installed)."""
    for wheel in wheels:
        if not wheel.path.is_file():
            raise VenvstacksError(f"layer {layer!r}: wheel {wheel.path.name!r} does not exist ({wheel.path})")


@dataclass
class InstalledWheels:
    """What installing a layer's wheels left: files to skip in the scan, and files replaced."""

    verbatim: set[Path]  # a locked wheel's bytes, unchanged: no build path can be in them
    replaced: list[str]  # "<path> (<earlier wheel> -> <later wheel>)", in installation order


def _install_wheels(
    wheels: tuple[Wheel, ...], layer_dir: Path, layout: LayerLayout, layer: str, compiler: BytecodeCompiler | None
) -> InstalledWheels:
    """Install `wheels` in order (a later wheel's file replaces an earlier one's, as with pip).

    Each wheel's Python sources go to `compiler` as soon as the wheel is written.
    """
    schemes = Schemes(
        site_dir=layout.site_dir,
        include_dir=layout.include_dir,
        scripts_dir=layout.scripts_dir,
        script_kind=layout.script_kind,
    )
    owner: dict[Path, str] = {}  # file -> the wheel that wrote it last
    result = InstalledWheels(verbatim=set(), replaced=[])
    for wheel in wheels:
        installed = install_wheel(wheel.path, wheel.sha256, layer_dir, schemes, layer)
        written = set(installed.written)
        replaced = sorted((path for path in written if path in owner), key=os.fsencode)
        if compiler is not None:
            compiler.invalidate(replaced)
            compiler.submit(installed.python_sources)
        for path in replaced:
            where = path.relative_to(layer_dir).as_posix()
            result.replaced.append(f"{where} ({owner[path]} -> {wheel.path.name})")
        owner.update(dict.fromkeys(written, wheel.path.name))
        if wheel.locked:
            result.verbatim |= written
        else:
            result.verbatim -= written
        result.verbatim -= set(installed.generated)
    return result


def _check_install_layout(layer_dir: Path, layout: LayerLayout, layer: str) -> None:
    """Check every installed distribution is in the layer's site-packages, and nothing made another lib dir.

    On a target whose file system ignores case (Windows, macOS by default), a `lib/` that a
    wheel's `.data/data` made next to the layer's `Lib/` (or `Lib/` next to `lib/`) is the same
    directory once deployed, so it is checked like the layer's own.
    """
    site = layer_dir / layout.site_dir
    for dirpath, dirnames, _ in os.walk(layer_dir):
        if Path(dirpath) == site:
            # What is inside site-packages is the packages' own business: setuptools, for one,
            # vendors packages with their `.dist-info` (setuptools/_vendor/*.dist-info).
            dirnames.clear()
            continue
        for dirname in dirnames:
            if dirname.endswith(".dist-info"):
                where = (Path(dirpath) / dirname).relative_to(layer_dir).as_posix()
                raise VenvstacksError(
                    f"layer {layer!r}: a wheel installed {where!r} outside {layout.site_dir!r}"
                    " (from its .data directory)"
                )
    lib_dir = layout.site_dir.split("/")[0]
    expected = layout.site_dir.split("/")[1]
    fold = str.casefold if layout.case_insensitive else str
    lib_dirs = sorted(name for name in os.listdir(layer_dir) if fold(name) == fold(lib_dir))
    for name in lib_dirs:
        if name != lib_dir:
            raise VenvstacksError(
                f"layer {layer!r}: a wheel created {name!r}, which is the layer's {lib_dir!r} on its"
                " case-insensitive target; its files would land beside site-packages"
            )
    for top in sorted(os.listdir(layer_dir / lib_dir)) if (layer_dir / lib_dir).is_dir() else []:
        if top != expected:
            raise VenvstacksError(
                f"layer {layer!r}: a wheel created '{lib_dir}/{top}', but the layer's site-packages is"
                f" {layout.site_dir!r}"
            )


# The platform-specific end of an extension module's name: a CPython tag (`.cpython-311-darwin.so`,
# `.cp311-win_amd64.pyd`), the stable ABI (`.abi3.so`) or Windows' plain `.pyd`. A plain `.so` is
# not matched: POSIX targets accept it, and shared libraries (`libfoo.so`) end in it too.
_EXTENSION_TAG_RE = re.compile(
    r"(\.cpython-\d+[a-z]*-[A-Za-z0-9_-]+\.so|\.cp\d+-win[A-Za-z0-9_]*\.pyd|\.abi3\.so|\.pyd)$"
)


def _check_extension_modules(layer_dir: Path, site_dir: str, platform: TargetPlatform, xy: str, layer: str) -> None:
    """Fail if an extension module in site-packages is tagged for another platform than the target.

    What a wheel's tags promise, checked on the files: a host wheel picked by mistake (or a wheel
    built in this build for the host) would give a layer that cannot import on its target.
    """
    suffixes = set(platform.extension_suffixes(xy))
    for dirpath, dirnames, filenames in os.walk(layer_dir / site_dir):
        dirnames.sort()
        for name in sorted(filenames):
            match = _EXTENSION_TAG_RE.search(name)
            if match is None or match.group(1) in suffixes:
                continue
            where = Path(dirpath, name).relative_to(layer_dir.parent).as_posix()
            raise VenvstacksError(
                f"layer {layer!r}: {where!r} is an extension module for another platform than {platform.name}"
                f" (Python {xy} there loads: {', '.join(sorted(suffixes))})"
            )


def _copy_app_files(app_files: tuple[AppFile, ...], site: Path, layer: str) -> None:
    for dest, source in app_files:
        if not source.is_file():
            raise VenvstacksError(f"layer {layer!r}: first-party file {str(source)!r} does not exist")
        target = site.joinpath(*dest.parts)
        if os.path.lexists(target):
            raise VenvstacksError(
                f"layer {layer!r}: first-party file {dest.as_posix()!r} is also installed by one of the layer's wheels"
            )
        for parent in reversed(target.relative_to(site).parents):
            directory = site / parent
            if directory.is_symlink() or (directory.exists() and not directory.is_dir()):
                raise VenvstacksError(
                    f"layer {layer!r}: first-party file {dest.as_posix()!r} would be written inside"
                    f" {parent.as_posix()!r}, which is not a directory"
                )
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        os.chmod(target, 0o644)


def _add_interpreter(layer_dir: Path, request: LayerBuild, layout: LayerLayout, dynlib_dirs: list[str]) -> None:
    """The layer's own interpreter.

    POSIX: `bin/python`, `python3`, `pythonX.Y` are symlinks to the runtime's interpreter, or, when
    the layer has lower layers whose shared libraries it must find (`dynlib_dirs`), `bin/python` is
    the wrapper script (`build.dynlibs`), the others link to it and `python_` to the runtime's.
    Windows: the runtime's venv launchers.
    """
    layer = request.identity.name
    scripts = layer_dir / layout.scripts_dir
    scripts.mkdir(exist_ok=True)
    runtime_python = f"../../{request.runtime_layer}/{layout.venv.runtime_python}"
    names: dict[str, Path | str | bytes]
    if layout.windows:
        names = dict(request.venv_launchers)
    elif dynlib_dirs:
        wrapper = python_wrapper(dynlib_dirs, request.identity.platform).encode("utf-8")
        names = {
            "python": wrapper,
            WRAPPED_PYTHON: runtime_python,
            "python3": "python",
            f"python{request.identity.xy}": "python",
        }
    else:
        names = dict.fromkeys(("python", "python3", f"python{request.identity.xy}"), runtime_python)
    for name, source in names.items():
        link = scripts / name
        if os.path.lexists(link):
            raise VenvstacksError(
                f"layer {layer!r}: a wheel installs '{layout.scripts_dir}/{name}', which the layer's interpreter needs"
            )
        if isinstance(source, str):
            os.symlink(source, link)
        elif isinstance(source, bytes):
            link.write_bytes(source)
            os.chmod(link, 0o755)
        else:
            if not source.is_file():
                raise VenvstacksError(f"layer {layer!r}: the runtime's venv launcher {str(source)!r} does not exist")
            shutil.copyfile(source, link)
            os.chmod(link, 0o755)


def _add_stacking_files(layer_dir: Path, request: LayerBuild, layout: LayerLayout) -> None:
    identity = request.identity
    config = venv_layer_config(
        layer=identity.name,
        kind=identity.kind,
        python_version=identity.python_version,
        runtime_layer=request.runtime_layer,
        lower_layers=list(request.lower_layers),
        layout=layout.venv,
        launch_module=identity.launch_module,
    )
    _add_interpreter(layer_dir, request, layout, config["dynlib_dirs"])
    site = layer_dir / layout.site_dir
    site.mkdir(parents=True, exist_ok=True)
    generated = {
        site / f"{STACK_MODULE_NAME}.py": postinstall_template.stack_module_text(config).encode("utf-8"),
        site / STACK_PTH_NAME: postinstall_template.stack_pth_text().encode("utf-8"),
        layer_dir.joinpath(*LAYER_CONFIG_PATH.split("/")): json_bytes(config),
        layer_dir / POSTINSTALL_NAME: POSTINSTALL_TEMPLATE.read_bytes(),
    }
    for path, data in generated.items():
        if os.path.lexists(path):
            where = path.relative_to(layer_dir).as_posix()
            raise VenvstacksError(f"layer {identity.name!r}: {where!r} is installed by a wheel or a first-party file")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.chmod(path, 0o644)


def _python_sources(site: Path) -> list[Path]:
    """Every regular `.py` file under `site` (symlinks not followed)."""
    sources = []
    for dirpath, dirnames, filenames in os.walk(site):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        for filename in filenames:
            path = os.path.join(dirpath, filename)
            if filename.endswith(".py") and stat.S_ISREG(os.lstat(path).st_mode):
                sources.append(Path(path))
    return sources


def _compile_remaining(compiler: BytecodeCompiler, site: Path) -> int:
    """Compile what the wheels did not bring (first-party files); return the sources left without a pyc.

    The stacking module is left out: `postinstall.py` may rewrite it once deployed, and an
    unchecked-hash pyc would then shadow the new source. It is a few lines to compile.
    """
    stack_module = site / f"{STACK_MODULE_NAME}.py"
    compiler.submit(path for path in _python_sources(site) if path != stack_module and not compiler.submitted(path))
    return len(compiler.finish())


def _needles(scratch: Path, wheels: tuple[Wheel, ...], app_files: tuple[AppFile, ...]) -> dict[bytes, str]:
    """Absolute paths of the build (as bytes) that must not appear in the layer, with a label.

    The scratch directory, the wheels and the application sources are always specific enough;
    the runtime's prefix and the working directory (the execroot in Bazel) are used only when
    they are at least three directories deep, so a test run from `/usr` does not flag every
    file mentioning `/usr`.
    """
    needles: dict[bytes, str] = {}

    def add(path: str, label: str, *, min_depth: int = 0) -> None:
        for variant in {os.path.abspath(path), os.path.realpath(path)}:
            if len(Path(variant).parts) - 1 >= max(min_depth, 1):
                needles.setdefault(os.fsencode(variant), label)

    add(str(scratch), "the build's scratch directory")
    for wheel in wheels:
        add(str(wheel.path), f"the build path of wheel {wheel.path.name!r}")
    for _, source in app_files:
        add(str(source), f"the build path of first-party file {source.name!r}")
    for prefix in {sys.prefix, sys.exec_prefix, os.path.dirname(sys.executable)}:
        add(prefix, "the build's runtime interpreter path", min_depth=3)
    add(os.getcwd(), "the build's working directory", min_depth=3)
    return needles


def _find_needle(path: Path, needles: dict[bytes, str]) -> bytes | None:
    overlap = max(len(n) for n in needles) - 1
    tail = b""
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_SIZE):
            window = tail + chunk
            for needle in needles:
                if needle in window:
                    return needle
            tail = window[-overlap:] if overlap else b""
    return None


def _check_no_build_paths(layer_dir: Path, needles: dict[bytes, str], layer: str, verbatim: set[Path]) -> None:
    """Raise VenvstacksError naming the first file (or symlink) that holds a build path.

    Files in `verbatim` (a locked wheel's bytes, unchanged) are skipped.
    """
    for dirpath, dirnames, filenames in os.walk(layer_dir):
        dirnames.sort()
        for name in sorted(filenames) + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            path = Path(dirpath, name)
            if path in verbatim:
                continue
            if path.is_symlink():
                target = os.fsencode(os.readlink(path))
                hit = next((n for n in needles if n in target), None)
            else:
                hit = _find_needle(path, needles)
            if hit is not None:
                where = path.relative_to(layer_dir.parent).as_posix()
                raise VenvstacksError(
                    f"layer {layer!r}: {where!r} contains {needles[hit]} ({os.fsdecode(hit)!r});"
                    " a layer archive must not hold absolute paths of the build machine"
                )


def build_layer(request: LayerBuild) -> str:
    """Build the layer archive and its archive record; return a one-line summary."""
    identity = request.identity
    layer = identity.name
    layout = layer_layout(identity.platform, identity.xy)
    _check_wheels_exist(request.wheels, layer)

    output = request.output
    output.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{layer}.build-", dir=output.parent)).absolute()
    try:
        tmp = scratch / "tmp"
        tmp.mkdir()
        layer_dir = scratch / layer
        layer_dir.mkdir()
        site = layer_dir / layout.site_dir
        compiling = request.bytecode == "compiled"
        with (
            BytecodeCompiler(scratch, tmp, compiler_environment(tmp, request.mtime), layer)
            if compiling
            else contextlib.nullcontext()
        ) as compiler:
            installed = _install_wheels(request.wheels, layer_dir, layout, layer, compiler)
            _check_install_layout(layer_dir, layout, layer)
            site.mkdir(parents=True, exist_ok=True)
            dests = [dest.as_posix() for dest, _ in request.app_files]
            clash = first_party_clash(site, dests, request.app_owners, layer)
            if clash is not None:
                raise VenvstacksError(clash)
            _copy_app_files(request.app_files, site, layer)
            check_no_shadowing(site, dests, f"{identity.kind} layer {layer!r}")
            if identity.kind == "application":
                check_launch_module(site, identity.launch_module, layer)
            libraries = [
                library
                for library in find_shared_libraries(site, identity.platform, identity.xy)
                if not request.dynlib_exclude.excludes(library.relative_to(layer_dir).as_posix())
            ]
            fold = str.casefold if layout.case_insensitive else str
            dynlibs = link_shared_libraries(layer_dir, libraries, layer, fold)
            _add_stacking_files(layer_dir, request, layout)
            skipped = _compile_remaining(compiler, site) if compiler is not None else 0
        _check_no_build_paths(
            layer_dir, _needles(scratch, request.wheels, request.app_files), layer, installed.verbatim
        )
        _check_extension_modules(layer_dir, layout.site_dir, identity.platform, identity.xy, layer)
        contents = scan_layer(
            layer_dir,
            layout.site_dir,
            identity.platform.extension_suffixes(identity.xy),
            {dest.parts[0]: request.app_owners.get(dest.parts[0], APPLICATION_SRCS) for dest, _ in request.app_files},
            dynlibs,
            request.lower_layers,
        )
        with ScratchRemover(scratch) as remover:
            write_archive(
                tree_entries(layer_dir, layer),
                output,
                identity.archive_format,
                request.mtime,
                compression=request.compression,
                consumed=remover.consumed,
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    write_archive_record(request.archive_record, record_archive(layer, output, identity.archive_format))
    write_contents(request.contents, contents)
    note = f", {skipped} source(s) not compiled" if skipped else ""
    libraries_note = f", {len(dynlibs)} shared librar{'y' if len(dynlibs) == 1 else 'ies'} linked" if dynlibs else ""
    summary = (
        f"built {identity.kind} layer {layer!r} for {identity.platform.name}: {len(request.wheels)} wheel(s),"
        f" {len(request.app_files)} app file(s){libraries_note}{note}"
    )
    return summary + _replaced_note(installed.replaced)


def _replaced_note(replaced: list[str], shown: int = 5) -> str:
    """Lines naming the files one wheel wrote over another's (the first `shown` of them)."""
    if not replaced:
        return ""
    lines = [f"\n{len(replaced)} file(s) installed by two wheels; the later wheel's copy is kept:"]
    lines += [f"\n  {entry}" for entry in replaced[:shown]]
    if len(replaced) > shown:
        lines.append(f"\n  ... and {len(replaced) - shown} more")
    return "".join(lines)


def main(argv: list[str]) -> int:
    """Run `build-layer` with `argv`; errors are raised as VenvstacksError."""
    print(build_layer(parse_request(argv)))
    return 0
