"""`build-layer`: build a framework or application layer as a deterministic archive.

Runs inside a sandboxed, network-free action on the layer's runtime interpreter (`sys.executable`
is the runtime's `bin/python3`). Every step depends only on the arguments and the input files:

1. Install the layer's wheels into `<scratch>/<layer>` in this process (`wheel_install`: PyPA's
   `installer`, each wheel hash-checked against the lock through the file it is unpacked from),
   in the runtime's `lib/pythonX.Y/site-packages`. While the next wheel unpacks, the previous
   one's sources compile to bytecode in child processes (`bytecode`), which is what keeps the
   layer near the cost of unzipping its wheels.
2. Make console scripts relocatable: the placeholder interpreter in their shebangs becomes a
   `/bin/sh` + Python polyglot that runs the layer's own `bin/python` found next to the script
   at run time; the RECORD files are updated to match.
3. Copy the application's own files into site-packages.
4. Add the stacking files (venvstacks' deployment protocol): `bin/python`, `bin/python3` and
   `bin/pythonX.Y` are relative symlinks to the runtime layer's `bin/python3`;
   `_venvstacks_stack.pth` in site-packages lists the lower layers' site-packages (frameworks in
   declared order, then the runtime's) relative to it; the layer config
   `share/venv/metadata/venvstacks_layer.json`; and `postinstall.py` (a verbatim copy of
   `postinstall_template.py`), which writes `pyvenv.cfg` once the layer is deployed.
5. Optionally compile bytecode (the wheels' sources from step 1 on, the rest now): unchecked-hash
   pycs whose `co_filename` is relative, written by fresh interpreters with a fixed hash seed over
   a partition of the sorted sources fixed by the inputs, so the bytes do not depend on the
   machine, its CPU count, timing or the tool's own state.
6. Refuse the tree if any file that this build wrote or copied holds the absolute path of the
   scratch directory, the wheels, the application sources or the runtime; then pack it with
   `archive.write_archive`. Files unpacked verbatim from a locked wheel are not read again:
   their bytes were fixed, by sha256, before this build existed.
7. With `--metadata`, write the metadata JSON. The Bazel rule leaves it out and runs
   `layer-metadata` (`write_layer_metadata`) in an action of its own instead, so that the archive
   needs nothing from the layers below.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import csv
import hashlib
import io
import json
import os
import re
import shutil
import stat
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from venvstacks_tool import postinstall_template
from venvstacks_tool.archive import ARCHIVE_FORMATS, tree_entries, write_archive
from venvstacks_tool.bytecode import BytecodeCompiler
from venvstacks_tool.cli import add_repeatable, subcommand_parser
from venvstacks_tool.errors import VenvstacksError
from venvstacks_tool.fsutil import CHUNK_SIZE, json_bytes, sha256_file, write_bytes_atomic
from venvstacks_tool.layer_metadata import (
    LAYER_CONFIG_PATH,
    POSTINSTALL_NAME,
    PYTHON_VERSION_RE,
    SHA256_RE,
    STACK_PTH_NAME,
    archive_record,
    is_layer_name,
)
from venvstacks_tool.wheel_install import SCRIPT_INTERPRETER, Schemes, install_wheel

POSTINSTALL_TEMPLATE = Path(__file__).with_name("postinstall_template.py")

LAYER_KINDS = ("framework", "application")
BYTECODE_MODES = ("compiled", "none")

_MODULE_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_SITE_DIR_RE = re.compile(r"lib/python(\d+\.\d+)t?/site-packages")

# The first lines of a console script after relocation: `/bin/sh` runs the `exec` line, which
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
# distlib (pip's script maker) writes this form instead of `#!<python>` for long or spaced paths.
_SH_POLYGLOT_START = b"#!/bin/sh\n'''exec' "
_SH_POLYGLOT_END = b"\n' '''\n"


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
class LayerPaths:
    """The relative layout of a layered environment on this runtime."""

    lib_dir: str  # e.g. "python3.12" (or "python3.13t")
    site_dir: str  # e.g. "lib/python3.12/site-packages"
    include_dir: str  # e.g. "include/python3.12"
    xy: str  # e.g. "3.12"


def _add_identity_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments `build-layer` and `layer-metadata` share: what the metadata JSON records."""
    parser.add_argument("--layer-name", required=True, help="layer (and deployed directory) name")
    parser.add_argument("--kind", required=True, choices=LAYER_KINDS)
    parser.add_argument("--python-version", required=True, help="the runtime's full version, e.g. 3.12.7")
    parser.add_argument("--platform", required=True, help="target triple, e.g. x86_64-unknown-linux-gnu")
    parser.add_argument("--launch-module", default="", help="module run with `python -m` (application layers)")
    parser.add_argument("--archive-format", required=True, choices=ARCHIVE_FORMATS)
    parser.add_argument("--lock-hash", default="", help="hash of the layer's lock, recorded in the metadata")
    parser.add_argument(
        "--lock-file",
        type=Path,
        help="the layer's lock file: records `sha256:<hex of its bytes>` as the lock hash (instead of --lock-hash)",
    )
    add_repeatable(
        parser,
        "--required-layer",
        "required_layers",
        "NAME=ARCHIVE_SHA256",
        "a layer this one needs at run time and its archive sha256 (repeatable)",
    )
    add_repeatable(
        parser,
        "--required-layer-metadata",
        "required_layer_metadata",
        "PATH",
        "metadata JSON or archive record of a layer this one needs (repeatable; like --required-layer NAME=SHA256)",
        type=Path,
    )


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of `build-layer` (reads `@paramfile` arguments)."""
    parser = subcommand_parser("build-layer", "Build a framework or application layer archive on its runtime.")
    _add_identity_arguments(parser)
    parser.add_argument("--runtime-layer", required=True, help="deployed directory name of the runtime layer")
    add_repeatable(
        parser,
        "--lower-layer",
        "lower_layers",
        "NAME",
        "a framework layer below this one (repeatable, in sys.path order)",
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
        parser,
        "--app-file",
        "app_files",
        "DEST=PATH",
        "application file copied to DEST under site-packages (repeatable)",
    )
    parser.add_argument("--bytecode", default="compiled", choices=BYTECODE_MODES)
    parser.add_argument("--mtime", required=True, type=int, help="timestamp of every member, seconds since epoch")
    parser.add_argument("--output", required=True, type=Path, help="the layer archive to write")
    parser.add_argument(
        "--archive-record",
        type=Path,
        help="also write the archive's record: JSON {layer_name, archive: {file, format, sha256, size}}",
    )
    parser.add_argument(
        "--metadata",
        type=Path,
        help="the metadata JSON to write (optional: `layer-metadata` can write it from the archive record later)",
    )
    return parser


def build_metadata_parser() -> argparse.ArgumentParser:
    """Return the argument parser of `layer-metadata` (reads `@paramfile` arguments)."""
    parser = subcommand_parser("layer-metadata", "Write the metadata JSON of a built framework or application layer.")
    _add_identity_arguments(parser)
    parser.add_argument(
        "--archive-record", required=True, type=Path, help="the archive record `build-layer --archive-record` wrote"
    )
    parser.add_argument("--metadata", required=True, type=Path, help="the metadata JSON to write")
    return parser


def _split_pair(value: str, option: str, layer: str) -> tuple[str, str]:
    left, sep, right = value.rpartition("=")
    if not sep or not left or not right:
        raise VenvstacksError(f"layer {layer!r}: {option} {value!r} is not of the form NAME=VALUE")
    return left, right


def _check_layer_name(name: str, what: str, layer: str) -> None:
    if not is_layer_name(name):
        raise VenvstacksError(f"layer {layer!r}: {what} {name!r} must be letters, digits, '_', '.' and '-'")


def _relative_dest(dest: str, layer: str) -> PurePosixPath:
    """Validate an `--app-file` destination: a relative POSIX path without `..` or empty parts."""
    parts = dest.split("/")
    if dest.startswith("/") or "\\" in dest or any(part in ("", ".", "..") for part in parts) or ":" in parts[0]:
        raise VenvstacksError(
            f"layer {layer!r}: --app-file destination {dest!r} must be a relative path inside"
            " site-packages, without '..', '.' or empty components"
        )
    return PurePosixPath(*parts)


AppFile = tuple[PurePosixPath, Path]


def _check_identity(args: argparse.Namespace) -> re.Match[str]:
    """Validate the arguments both subcommands share; return the --python-version match."""
    layer: str = args.layer_name
    _check_layer_name(layer, "the layer name", layer)
    version = PYTHON_VERSION_RE.fullmatch(args.python_version)
    if version is None:
        raise VenvstacksError(f"layer {layer!r}: --python-version {args.python_version!r} is not a full X.Y.Z version")
    if not args.platform:
        raise VenvstacksError(f"layer {layer!r}: --platform is empty")
    if args.kind == "application":
        if not args.launch_module:
            raise VenvstacksError(f"application layer {layer!r}: --launch-module is required")
    elif args.launch_module:
        raise VenvstacksError(f"framework layer {layer!r}: --launch-module is only for application layers")
    if args.launch_module and not _MODULE_RE.fullmatch(args.launch_module):
        raise VenvstacksError(f"layer {layer!r}: --launch-module {args.launch_module!r} is not a dotted module name")
    if args.lock_file is not None and args.lock_hash:
        raise VenvstacksError(f"layer {layer!r}: give --lock-hash or --lock-file, not both")
    return version


def _parse_arguments(args: argparse.Namespace) -> tuple[list[Wheel], list[AppFile], list[dict[str, str]]]:
    """Validate the arguments; return the wheels, the app files and the required layers."""
    layer: str = args.layer_name
    version = _check_identity(args)
    _check_layer_name(args.runtime_layer, "--runtime-layer", layer)
    seen_layers = {layer: "the layer itself", args.runtime_layer: "the runtime layer"}
    for lower in args.lower_layers:
        _check_layer_name(lower, "--lower-layer", layer)
        if lower in seen_layers:
            raise VenvstacksError(f"layer {layer!r}: --lower-layer {lower!r} is also {seen_layers[lower]}")
        seen_layers[lower] = "an earlier --lower-layer"
    running = f"{sys.version_info[0]}.{sys.version_info[1]}"
    wanted = f"{version.group(1)}.{version.group(2)}"
    if running != wanted:
        raise VenvstacksError(
            f"layer {layer!r}: --python-version is {args.python_version}, but the tool runs on Python"
            f" {running} ({sys.executable}); build-layer must run on the layer's runtime"
        )
    if args.mtime < 0:
        raise VenvstacksError(f"layer {layer!r}: --mtime must not be negative")
    if args.kind == "framework" and args.app_files:
        raise VenvstacksError(f"framework layer {layer!r}: --app-file is only for application layers")
    outputs = {"--output": args.output, "--metadata": args.metadata, "--archive-record": args.archive_record}
    given = {option: path.resolve() for option, path in outputs.items() if path is not None}
    if len(set(given.values())) < len(given):
        raise VenvstacksError(f"layer {layer!r}: {', '.join(given)} must be different files")

    wheels: list[Wheel] = []
    wheel_names: set[str] = set()
    for value in args.wheels:
        path_text, sha256 = _split_pair(value, "--wheel", layer)
        path = Path(path_text)
        sha256 = sha256.lower()
        if not SHA256_RE.fullmatch(sha256):
            raise VenvstacksError(f"layer {layer!r}: --wheel {path.name!r}: {sha256!r} is not a hex sha256")
        if not path.name.endswith(".whl"):
            raise VenvstacksError(f"layer {layer!r}: --wheel {path_text!r} is not a .whl file")
        if path.name in wheel_names:
            raise VenvstacksError(f"layer {layer!r}: wheel {path.name!r} is given twice")
        wheel_names.add(path.name)
        wheels.append(Wheel(path, sha256))
    for value in args.local_wheels:
        # Built by another rule in the same build: no lock pins it, so its hash is taken here and
        # pip still installs it hash-checked; its dependencies must come from the layer's lock.
        path = Path(value)
        if not path.name.endswith(".whl") or not path.is_file():
            raise VenvstacksError(f"layer {layer!r}: --local-wheel {value!r} is not a .whl file")
        if path.name in wheel_names:
            raise VenvstacksError(f"layer {layer!r}: wheel {path.name!r} is given twice")
        wheel_names.add(path.name)
        wheels.append(Wheel(path, sha256_file(path), locked=False))

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

    return wheels, app_files, _required_layers(args, layer)


def _required_layers(args: argparse.Namespace, layer: str) -> list[dict[str, str]]:
    """The layers this one needs at run time, from --required-layer and --required-layer-metadata."""
    required: list[dict[str, str]] = []
    for value in args.required_layers:
        name, sha256 = _split_pair(value, "--required-layer", layer)
        _check_layer_name(name, "--required-layer", layer)
        if not SHA256_RE.fullmatch(sha256.lower()):
            raise VenvstacksError(f"layer {layer!r}: --required-layer {name!r}: {sha256!r} is not a hex sha256")
        required.append({"archive_sha256": sha256.lower(), "name": name})
    required += [_required_from_metadata(path, layer) for path in args.required_layer_metadata]
    names = [entry["name"] for entry in required]
    for name in names:
        if names.count(name) > 1:
            raise VenvstacksError(f"layer {layer!r}: required layer {name!r} is given twice")
    return required


def _required_from_metadata(path: Path, layer: str) -> dict[str, str]:
    """{"name", "archive_sha256"} from a lower layer's metadata JSON (as `build-layer` writes it)."""
    try:
        metadata = json.loads(path.read_text(encoding="utf-8"))
        name, sha256 = metadata["layer_name"], metadata["archive"]["sha256"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise VenvstacksError(
            f"layer {layer!r}: --required-layer-metadata {str(path)!r} is not a layer metadata file: {error}"
        ) from error
    if not isinstance(name, str) or not isinstance(sha256, str) or not SHA256_RE.fullmatch(sha256):
        raise VenvstacksError(f"layer {layer!r}: --required-layer-metadata {str(path)!r} has no valid name and sha256")
    return {"archive_sha256": sha256, "name": name}


def _lock_hash(args: argparse.Namespace, layer: str) -> str:
    if args.lock_file is None:
        return str(args.lock_hash)
    try:
        return "sha256:" + sha256_file(args.lock_file)
    except OSError as error:
        raise VenvstacksError(f"layer {layer!r}: cannot read the lock file {str(args.lock_file)!r}") from error


def _layer_paths(layer: str, xy: str) -> LayerPaths:
    """The site-packages and include directories of a prefix on this (posix_prefix) runtime."""
    root = "/venvstacks-layer-root"
    scheme_vars = {"base": root, "platbase": root, "installed_base": root, "installed_platbase": root}

    def relative_path(key: str) -> str:
        return PurePosixPath(sysconfig.get_path(key, "posix_prefix", vars=scheme_vars)).relative_to(root).as_posix()

    relative = {relative_path("purelib"), relative_path("platlib")}
    site_dir = relative.pop() if len(relative) == 1 else ""
    match = _SITE_DIR_RE.fullmatch(site_dir)
    if match is None or match.group(1) != xy:
        raise VenvstacksError(
            f"layer {layer!r}: the runtime {sys.executable} installs packages into"
            f" {sorted(relative) or [site_dir]}, not lib/python{xy}/site-packages"
        )
    return LayerPaths(lib_dir=site_dir.split("/")[1], site_dir=site_dir, include_dir=relative_path("include"), xy=xy)


def _check_wheels_exist(wheels: list[Wheel], layer: str) -> None:
    """Fail before any work if a wheel is missing (its sha256 is checked as it is installed)."""
    for wheel in wheels:
        if not wheel.path.is_file():
            raise VenvstacksError(f"layer {layer!r}: wheel {wheel.path.name!r} does not exist ({wheel.path})")


def _child_env(tmp: Path, mtime: int) -> dict[str, str]:
    """A minimal environment for the bytecode compilers: nothing from the host but PATH."""
    env = {
        "HOME": str(tmp),
        "TMPDIR": str(tmp),
        "TEMP": str(tmp),
        "TMP": str(tmp),
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "SOURCE_DATE_EPOCH": str(mtime),
    }
    for name in ("PATH", "SYSTEMROOT"):
        if name in os.environ:
            env[name] = os.environ[name]
    return env


@dataclass
class InstalledWheels:
    """What installing a layer's wheels left: files to skip in the scan, and files replaced."""

    verbatim: set[Path]  # a locked wheel's bytes, unchanged: no build path can be in them
    replaced: list[str]  # "<path> (<earlier wheel> -> <later wheel>)", in installation order


def _install_wheels(
    wheels: list[Wheel], layer_dir: Path, paths: LayerPaths, layer: str, compiler: BytecodeCompiler | None
) -> InstalledWheels:
    """Install `wheels` in order (a later wheel's file replaces an earlier one's, as with pip).

    Each wheel's Python sources go to `compiler` as soon as the wheel is written.
    """
    schemes = Schemes(site_dir=paths.site_dir, include_dir=paths.include_dir)
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


def _check_install_layout(layer_dir: Path, paths: LayerPaths, layer: str) -> None:
    """Check every installed distribution is in the expected site-packages directory."""
    site = layer_dir / paths.site_dir
    for dirpath, dirnames, _ in os.walk(layer_dir):
        for dirname in dirnames:
            if dirname.endswith(".dist-info") and Path(dirpath) != site:
                where = (Path(dirpath) / dirname).relative_to(layer_dir).as_posix()
                raise VenvstacksError(
                    f"layer {layer!r}: a wheel installed {where!r} outside {paths.site_dir!r}"
                    " (from its .data directory)"
                )
    for top in sorted(os.listdir(layer_dir / "lib")) if (layer_dir / "lib").is_dir() else []:
        if top != paths.lib_dir:
            raise VenvstacksError(
                f"layer {layer!r}: a wheel created 'lib/{top}', but the layer's site-packages is {paths.site_dir!r}"
            )


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode("ascii")


def _read_record(path: Path) -> tuple[list[list[str]], str]:
    data = path.read_bytes()
    terminator = "\r\n" if b"\r\n" in data else "\n"
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    return rows, terminator


def _write_record(path: Path, rows: list[list[str]], terminator: str) -> None:
    out = io.StringIO(newline="")
    csv.writer(out, lineterminator=terminator).writerows(rows)
    path.write_bytes(out.getvalue().encode("utf-8"))


def _rewrite_shebang(data: bytes, interpreters: set[bytes]) -> bytes | None:
    """`data` with its absolute-interpreter header replaced by `RELOCATABLE_SHEBANG`, or None.

    Handles `#!<python>` and distlib's `#!/bin/sh` + `'''exec' <python> "$0" "$@"` form; only a
    header naming one of `interpreters` (the build's own Python) is rewritten.
    """
    if data.startswith(_SH_POLYGLOT_START):
        end = data.find(_SH_POLYGLOT_END)
        if end < 0:
            return None
        exec_line = data[len(_SH_POLYGLOT_START) : end]
        interpreter = exec_line.rsplit(b' "$0" "$@"', 1)[0].strip()
        body = data[end + len(_SH_POLYGLOT_END) :]
    elif data.startswith(b"#!"):
        first, newline, body = data.partition(b"\n")
        if not newline:
            return None
        interpreter = first[2:].strip()
    else:
        return None
    # A path with spaces is quoted; otherwise the path ends at the first space.
    quoted = interpreter.startswith(b'"')
    interpreter = interpreter[1:].partition(b'"')[0] if quoted else interpreter.partition(b" ")[0]
    if interpreter not in interpreters:
        return None
    return RELOCATABLE_SHEBANG + body


def _make_relocatable(layer_dir: Path, paths: LayerPaths) -> None:
    """Make the installed scripts relocatable, updating each RECORD."""
    site = layer_dir / paths.site_dir
    interpreters = {os.fsencode(SCRIPT_INTERPRETER)}

    rewritten: dict[str, tuple[str, int]] = {}  # normalized absolute path -> (RECORD hash, size)
    bin_dir = layer_dir / "bin"
    if bin_dir.is_dir():
        for name in sorted(os.listdir(bin_dir)):
            script = bin_dir / name
            if script.is_symlink() or not script.is_file():
                continue
            data = script.read_bytes()
            new = _rewrite_shebang(data, interpreters)
            if new is None:
                continue
            script.write_bytes(new)
            rewritten[os.path.normpath(script)] = (_record_hash(new), len(new))

    if not rewritten or not site.is_dir():
        return
    for dist_info in sorted(p for p in site.iterdir() if p.name.endswith(".dist-info") and p.is_dir()):
        record = dist_info / "RECORD"
        if not record.is_file():
            continue
        rows, terminator = _read_record(record)
        new_rows = []
        for row in rows:
            if not row:
                continue
            target = os.path.normpath(site / row[0])
            if target in rewritten and len(row) >= 3:
                digest, size = rewritten[target]
                row = [row[0], digest, str(size), *row[3:]]
            new_rows.append(row)
        _write_record(record, new_rows, terminator)


def _copy_app_files(app_files: list[AppFile], site: Path, layer: str) -> None:
    for dest, source in app_files:
        if not source.is_file():
            raise VenvstacksError(f"layer {layer!r}: application file {str(source)!r} does not exist")
        target = site.joinpath(*dest.parts)
        if os.path.lexists(target):
            raise VenvstacksError(
                f"layer {layer!r}: application file {dest.as_posix()!r} is also installed by one of the layer's wheels"
            )
        for parent in reversed(target.relative_to(site).parents):
            directory = site / parent
            if directory.is_symlink() or (directory.exists() and not directory.is_dir()):
                raise VenvstacksError(
                    f"layer {layer!r}: application file {dest.as_posix()!r} would be written inside"
                    f" {parent.as_posix()!r}, which is not a directory"
                )
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        os.chmod(target, 0o644)


def _layer_config(args: argparse.Namespace, paths: LayerPaths) -> dict[str, Any]:
    """The layer's `venvstacks_layer.json`: venvstacks' LayerConfig fields plus its identity."""
    lib_site = f"lib/{paths.lib_dir}/site-packages"
    pylib_dirs = [f"../{name}/{lib_site}" for name in (*args.lower_layers, args.runtime_layer)]
    config: dict[str, Any] = {
        "base_python": f"../{args.runtime_layer}/bin/python3",
        "dynlib_dirs": [],
        "install_target": args.layer_name,
        "kind": args.kind,
        "layer_name": args.layer_name,
        "lower_layers": list(args.lower_layers),
        "py_version": args.python_version,
        "pylib_dirs": pylib_dirs,
        "python": "bin/python",
        "python_implementation": "cpython",
        "runtime_name": args.runtime_layer,
        "site_dir": paths.site_dir,
    }
    if args.launch_module:
        config["launch_module"] = args.launch_module
    return config


def _add_stacking_files(layer_dir: Path, args: argparse.Namespace, paths: LayerPaths) -> None:
    layer: str = args.layer_name
    bin_dir = layer_dir / "bin"
    bin_dir.mkdir(exist_ok=True)
    runtime_python = f"../../{args.runtime_layer}/bin/python3"
    for name in ("python", "python3", f"python{paths.xy}"):
        link = bin_dir / name
        if os.path.lexists(link):
            raise VenvstacksError(
                f"layer {layer!r}: a wheel installs 'bin/{name}', which the layer's interpreter needs"
            )
        os.symlink(runtime_python, link)

    config = _layer_config(args, paths)
    site = layer_dir / paths.site_dir
    site.mkdir(parents=True, exist_ok=True)
    generated = {
        site / STACK_PTH_NAME: postinstall_template.stack_pth_text(config).encode("utf-8"),
        layer_dir.joinpath(*LAYER_CONFIG_PATH.split("/")): json_bytes(config),
        layer_dir / POSTINSTALL_NAME: POSTINSTALL_TEMPLATE.read_bytes(),
    }
    for path, data in generated.items():
        if os.path.lexists(path):
            where = path.relative_to(layer_dir).as_posix()
            raise VenvstacksError(f"layer {layer!r}: {where!r} is installed by a wheel or an application file")
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
    """Compile what the wheels did not bring (application files); return the sources left without a pyc."""
    compiler.submit(path for path in _python_sources(site) if not compiler.submitted(path))
    return len(compiler.finish())


def _needles(scratch: Path, wheels: list[Wheel], app_files: list[AppFile]) -> dict[bytes, str]:
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
        add(str(source), f"the build path of application file {source.name!r}")
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


def build_layer(args: argparse.Namespace) -> str:
    """Build the layer archive and its metadata; return a one-line summary."""
    wheels, app_files, required = _parse_arguments(args)
    layer: str = args.layer_name
    lock_hash = _lock_hash(args, layer)
    paths = _layer_paths(layer, f"{sys.version_info[0]}.{sys.version_info[1]}")
    _check_wheels_exist(wheels, layer)

    output: Path = args.output
    output.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{layer}.build-", dir=output.parent)).absolute()
    try:
        tmp = scratch / "tmp"
        tmp.mkdir()
        layer_dir = scratch / layer
        layer_dir.mkdir()
        site = layer_dir / paths.site_dir
        compiling = args.bytecode == "compiled"
        with (
            BytecodeCompiler(scratch, tmp, _child_env(tmp, args.mtime), layer)
            if compiling
            else contextlib.nullcontext()
        ) as compiler:
            installed = _install_wheels(wheels, layer_dir, paths, layer, compiler)
            _check_install_layout(layer_dir, paths, layer)
            _make_relocatable(layer_dir, paths)
            site.mkdir(parents=True, exist_ok=True)
            _copy_app_files(app_files, site, layer)
            _add_stacking_files(layer_dir, args, paths)
            skipped = _compile_remaining(compiler, site) if compiler is not None else 0
        _check_no_build_paths(layer_dir, _needles(scratch, wheels, app_files), layer, installed.verbatim)
        write_archive(tree_entries(layer_dir, layer), output, args.archive_format, args.mtime)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    record = archive_record(output, args.archive_format)
    if args.archive_record is not None:
        write_bytes_atomic(args.archive_record, json_bytes({"archive": record, "layer_name": layer}))
    if args.metadata is not None:
        _write_metadata(args, record, lock_hash, required)
    note = f", {skipped} source(s) not compiled" if skipped else ""
    summary = f"built {args.kind} layer {layer!r}: {len(wheels)} wheel(s), {len(app_files)} app file(s){note}"
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


def _write_metadata(
    args: argparse.Namespace, record: dict[str, object], lock_hash: str, required: list[dict[str, str]]
) -> None:
    metadata = {
        "archive": record,
        "kind": args.kind,
        "launch_module": args.launch_module or None,
        "layer_name": args.layer_name,
        "lock_hash": lock_hash,
        "platform": args.platform,
        "python_version": args.python_version,
        "required_layers": required,
    }
    write_bytes_atomic(args.metadata, json_bytes(metadata))


def _read_archive_record(path: Path, args: argparse.Namespace) -> dict[str, object]:
    """The `archive` entry of the record `build-layer --archive-record` wrote for this layer."""
    layer: str = args.layer_name
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        name, archive = record["layer_name"], record["archive"]
        sha256, archive_format = archive["sha256"], archive["format"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise VenvstacksError(f"layer {layer!r}: {str(path)!r} is not an archive record: {error}") from error
    if name != layer:
        raise VenvstacksError(f"layer {layer!r}: the archive record {str(path)!r} is layer {name!r}'s")
    if archive_format != args.archive_format or not isinstance(sha256, str) or not SHA256_RE.fullmatch(sha256):
        raise VenvstacksError(
            f"layer {layer!r}: the archive record {str(path)!r} is not of a {args.archive_format} archive with a sha256"
        )
    return dict(archive)


def write_layer_metadata(args: argparse.Namespace) -> str:
    """Write the metadata JSON from the layer's archive record; return a one-line summary.

    Kept apart from `build-layer` so that the archive action needs no lower layer: in Bazel, a
    layer's archive builds in parallel with the layers below it, and only this small step waits
    for their archive records. It reads no archive, so a remote cache need not send one.
    """
    _check_identity(args)
    layer: str = args.layer_name
    if args.archive_record.resolve() == args.metadata.resolve():
        raise VenvstacksError(f"layer {layer!r}: --archive-record and --metadata are one file")
    record = _read_archive_record(args.archive_record, args)
    _write_metadata(args, record, _lock_hash(args, layer), _required_layers(args, layer))
    return f"wrote the metadata of {args.kind} layer {layer!r}"


def main(argv: list[str]) -> int:
    """Run `build-layer` with `argv`; errors are raised as VenvstacksError."""
    print(build_layer(build_parser().parse_args(argv)))
    return 0


def metadata_main(argv: list[str]) -> int:
    """Run `layer-metadata` with `argv`; errors are raised as VenvstacksError."""
    print(write_layer_metadata(build_metadata_parser().parse_args(argv)))
    return 0
