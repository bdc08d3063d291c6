"""`build-sdist`: build the wheel of a locked sdist in a sandboxed, network-free action.

What PyPA `build` does with `--no-isolation` over a prepared environment, with the lock's inputs
only (docs/locking.md, "Packages with no wheel"):

1. the sdist's sha256 is checked against the lock, and it is unpacked below a scratch directory
   through `core.archive` (`read_tar_entries` then `write_tree`): no absolute name, no `..`, no
   link out of the tree, no device, so an sdist cannot write outside its directory;
2. the locked build requirements (pure-Python wheels, each checked against its sha256) are
   unpacked into a scratch directory of their own, which is the backend's only `PYTHONPATH`:
   nothing of the runtime's site-packages or of the host is importable (`-S`);
3. pyproject-hooks calls the backend (`[build-system] build-backend`, else setuptools' legacy
   backend) in a subprocess: `get_requires_for_build_wheel` must ask for nothing that is not
   installed, then `build_wheel`, with `SOURCE_DATE_EPOCH` fixed, a fixed environment (no
   proxy, no index: the sandbox has no network anyway) and `HOME`/`TMPDIR` in the scratch tree;
4. the wheel must have the file name the lock recorded (a platform-specific wheel built on
   another execution platform than the lock's is refused here, naming the package), and is
   rewritten with `write_archive`: members sorted, one timestamp, normalized modes, so its bytes
   depend on its contents only.

The action is keyed by the sdist alone and runs in the execution configuration, so a pure-Python
sdist is built once for every target platform (`locked_wheels.bzl` `built_wheels`). A native
sdist (extension modules, `--cc`) is built per target platform, in the target configuration, by
the target's C toolchain (`native_sdist_wheel`): the backend gets that compiler as `CC` and
`LDSHARED`, `-ffile-prefix-map` flags that put fixed names in place of the scratch tree, the
execroot and the runtime (debug info and `__FILE__` name no sandbox), and on macOS the floor of
the wheel name as `MACOSX_DEPLOYMENT_TARGET` (`compiler_environ`). The Python headers are the
execution runtime's own (`include/python3.X`, an input of every tool action).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import re
import stat
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from venvstacks_tool.core.archive import (
    ArchiveEntry,
    archive_read_errors,
    normalized_member_name,
    read_tar_entries,
    write_archive,
    write_tree,
)
from venvstacks_tool.core.cli import add_repeatable, split_pair, subcommand_parser
from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.core.fsutil import sha256_file
from venvstacks_tool.core.platforms import by_triple, triple_problem
from venvstacks_tool.core.process import output_tail, run_captured
from venvstacks_tool.core.project_names import normalize_name
from venvstacks_tool.core.protocol import is_sha256

# The timestamp of every member of a built wheel, and the backend's SOURCE_DATE_EPOCH:
# 1980-01-01T00:00:00Z, the earliest a zip can hold. Fixed, so a rebuild anywhere gives the same bytes.
SOURCE_DATE_EPOCH = 315532800
# PEP 517: the backend of an sdist without `[build-system] build-backend`.
LEGACY_BACKEND = "setuptools.build_meta:__legacy__"


@dataclass(frozen=True)
class SdistBuild:
    """The arguments of `build-sdist`, checked."""

    sdist: Path
    sdist_sha256: str
    build_wheels: tuple[tuple[Path, str], ...]  # (wheel, sha256)
    wheel_name: str
    package: str  # "name version", for messages
    lock: str  # the lock's label, for messages
    output: Path
    cc: str = ""  # the target's C compiler (a native sdist), else ""
    platform_triple: str = ""  # the target's PBS triple (a native sdist), else ""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `build-sdist` (reads `@paramfile` arguments)."""
    parser = subcommand_parser("build-sdist", "Build the wheel of a locked sdist, offline and reproducibly.")
    parser.add_argument("--sdist", required=True, type=Path, help="the sdist (.tar.gz)")
    parser.add_argument("--sdist-sha256", required=True, help="its sha256, as locked")
    add_repeatable(parser, "--build-wheel", "build_wheels", "PATH=SHA256", "a locked build requirement's wheel")
    parser.add_argument("--wheel-name", required=True, help="the file name of the wheel the lock expects")
    parser.add_argument("--package", required=True, help="'name version' of the package, for messages")
    parser.add_argument("--lock", required=True, help="the lock file's label, for messages")
    parser.add_argument("--output", required=True, type=Path, help="where to write the wheel")
    parser.add_argument("--cc", default="", help="the target's C compiler: the sdist has extension modules")
    parser.add_argument("--platform-triple", default="", help="the PBS triple of the target (with --cc)")
    return parser


def parse_request(argv: Sequence[str]) -> SdistBuild:
    """`argv` checked into an SdistBuild."""
    args = build_parser().parse_args(list(argv))
    what = f"package {args.package} (lock {args.lock})"
    wheels = []
    for value in args.build_wheels:
        path, sha256 = split_pair(value, "--build-wheel", what, "PATH=SHA256")
        wheels.append((Path(path), sha256.lower()))
    for sha256 in [args.sdist_sha256, *(sha256 for _, sha256 in wheels)]:
        if not is_sha256(sha256.lower()):
            raise VenvstacksError(f"{what}: {sha256!r} is not a hex sha256")
    if bool(args.cc) != bool(args.platform_triple):
        raise VenvstacksError(f"{what}: --cc and --platform-triple go together (a native sdist's build)")
    if args.platform_triple and triple_problem(args.platform_triple):
        raise VenvstacksError(f"{what}: {triple_problem(args.platform_triple)}")
    return SdistBuild(
        args.sdist,
        args.sdist_sha256.lower(),
        tuple(wheels),
        args.wheel_name,
        args.package,
        args.lock,
        args.output,
        args.cc,
        args.platform_triple,
    )


def _verified(path: Path, sha256: str, what: str) -> None:
    found = sha256_file(path)
    if found != sha256:
        raise VenvstacksError(f"{what}: {path.name} has sha256 {found}, but the lock says {sha256}")


def zip_entries(path: Path) -> list[ArchiveEntry]:
    """The files of the zip at `path` (a wheel) as archive entries, contents in memory; directories left out.

    A member is a file unless it says it is a directory or a symlink (a wheel's members carry
    whatever mode bits their writer gave them, often no file type at all).
    """
    import zipfile

    entries = []
    with archive_read_errors(path.name), zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            name = normalized_member_name(info.filename)
            if info.is_dir() or not name:
                continue
            mode = info.external_attr >> 16 if info.create_system == 3 else 0
            if stat.S_ISLNK(mode):
                raise VenvstacksError(f"wheel {path.name!r}: member {name!r} is a symlink, which a wheel cannot hold")
            entries.append(ArchiveEntry(name, "file", mode & 0o777 or 0o644, data=archive.read(info)))
    return entries


def unpack_sdist(sdist: Path, root: Path) -> Path:
    """Unpack the sdist's `<name>-<version>/` below `root`, safely; returns that directory."""
    top = sdist.name.removesuffix(".tar.gz")
    if top == sdist.name:
        raise VenvstacksError(f"sdist {sdist.name}: not a .tar.gz (PEP 625)")
    source = root / top
    source.mkdir(parents=True)
    write_tree(read_tar_entries(sdist, top, ""), source)
    return source


def build_backend(source: Path) -> tuple[str, list[str]]:
    """The `[build-system]` backend of the unpacked sdist and its relative `backend-path`, PEP 517's defaults."""
    pyproject = source / "pyproject.toml"
    if not pyproject.is_file():
        return LEGACY_BACKEND, []
    try:
        # By name: the tool is typed for Python 3.10, whose standard library has no TOML reader.
        tomllib = importlib.import_module("tomllib")
    except ImportError as error:  # pragma: no cover - Python 3.10
        raise VenvstacksError(
            f"{source.name}: reading its pyproject.toml needs Python 3.11 or newer (tomllib) on the execution platform"
        ) from error
    try:
        build_system = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("build-system", {})
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise VenvstacksError(f"{source.name}/pyproject.toml: not valid TOML: {error}") from error
    backend = build_system.get("build-backend", LEGACY_BACKEND)
    paths = build_system.get("backend-path", [])
    if not isinstance(backend, str) or not isinstance(paths, list):
        raise VenvstacksError(f"{source.name}/pyproject.toml: malformed [build-system] build-backend or backend-path")
    inside = [(source / str(path)).resolve() for path in paths]
    if any(not path.is_relative_to(source.resolve()) for path in inside) or any(Path(p).is_absolute() for p in paths):
        raise VenvstacksError(f"{source.name}/pyproject.toml: a backend-path leaves the sdist")
    return backend, [str(path) for path in paths]


def _hook_environ(build_env: Path, scratch: Path) -> dict[str, str]:
    """The backend's whole environment: fixed, nothing of the action's or the machine's but PATH's defaults."""
    home = scratch / "home"
    home.mkdir(exist_ok=True)
    return {
        "HOME": str(home),
        "LC_ALL": "C.UTF-8",
        "PATH": os.defpath.lstrip(os.pathsep),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
        "PYTHONNOUSERSITE": "1",
        "PYTHONPATH": str(build_env),
        "PYTHONUTF8": "1",
        "SOURCE_DATE_EPOCH": str(SOURCE_DATE_EPOCH),
        "TMPDIR": str(scratch),
    }


@dataclass(frozen=True)
class RuntimeForC:
    """What a native sdist compiles against, of the runtime that runs the backend.

    `prefix` is its root (`sys.base_prefix`), `include` its headers (`sysconfig`'s `include`
    path, which follows the runtime wherever it is unpacked), `cflags` its sysconfig `CFLAGS`.
    """

    prefix: Path
    include: Path
    cflags: str

    @classmethod
    def running(cls) -> RuntimeForC:
        """The runtime this tool runs on (the execution runtime, which runs the backend too)."""
        import sysconfig

        return cls(Path(sys.base_prefix), Path(sysconfig.get_path("include")), sysconfig.get_config_var("CFLAGS") or "")


def compiler_environ(request: SdistBuild, scratch: Path, execroot: Path, runtime: RuntimeForC) -> dict[str, str]:
    """What the backend of a native sdist gets to compile with ({} for a pure one).

    setuptools (and the backends built on its compiler classes) take `CC` and `LDSHARED` from the
    environment over the runtime's sysconfig, which names the machine the runtime was built on,
    and `CFLAGS` in place of sysconfig's (older setuptools add it to them): the runtime's own
    flags, then `-I` of its headers, ahead of the `INCLUDEPY` setuptools adds (the directory the
    runtime was configured for: Debian's `/usr/include`, PBS' `/install/include`), then
    `-ffile-prefix-map` for each absolute path that would reach the debug info. A relative
    compiler path (a hermetic toolchain's) is made absolute: the backend runs in the unpacked
    sdist. Windows: setuptools finds MSVC on its own and reads none of these (untested here:
    docs/locking.md).
    """
    if not request.cc:
        return {}
    platform = by_triple(request.platform_triple)
    cc = str(execroot / request.cc) if "/" in request.cc and not os.path.isabs(request.cc) else request.cc
    if platform.os == "windows":
        return {}
    # Later maps win in GCC and clang, and one of these may lie inside another (the runtime or the
    # scratch tree in the execroot): the longest path last.
    maps = [(scratch, "/venvstacks/build"), (execroot, "/venvstacks/execroot"), (runtime.prefix, "/venvstacks/python")]
    maps.sort(key=lambda pair: len(str(pair[0])))
    flags = [runtime.cflags, f"-I{runtime.include}", *(f"-ffile-prefix-map={path}={fixed}" for path, fixed in maps)]
    environ = {
        "CC": cc,
        "CFLAGS": " ".join(flag for flag in flags if flag),
        "LDSHARED": f"{cc} -bundle -undefined dynamic_lookup" if platform.os == "macos" else f"{cc} -shared",
    }
    floor = re.search(r"-macosx_(\d+)_(\d+)_[^-]+\.whl$", request.wheel_name)
    if platform.os == "macos" and floor:
        # setuptools names the wheel after it: the lock's name, at the stack's macOS floor.
        environ["MACOSX_DEPLOYMENT_TARGET"] = f"{floor.group(1)}.{floor.group(2)}"
    return environ


def _missing_requirements(requested: Sequence[str], installed: set[str]) -> list[str]:
    """The requirements of `requested` whose project is not among `installed` (normalized names)."""
    missing = []
    for text in requested:
        match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", text)
        if match is None or normalize_name(match.group(1)) not in installed:
            missing.append(text)
    return missing


@contextlib.contextmanager
def _backend_errors(what: str, backend: str, sdist: str) -> Iterator[None]:
    """pyproject-hooks' errors (no such backend or hook) as a VenvstacksError naming the package."""
    from pyproject_hooks import BackendUnavailable, HookMissing, UnsupportedOperation

    try:
        yield
    except (BackendUnavailable, HookMissing, UnsupportedOperation) as error:
        detail = output_tail(str(getattr(error, "traceback", "") or error), 1500)
        raise VenvstacksError(f"{what}: the build backend {backend!r} of {sdist} cannot be used: {detail}") from error


def build(request: SdistBuild) -> None:
    """Build `request.sdist` into `request.output`; VenvstacksError naming the package on any failure."""
    from pyproject_hooks import BuildBackendHookCaller

    what = f"package {request.package} (lock {request.lock})"
    _verified(request.sdist, request.sdist_sha256, what)
    with tempfile.TemporaryDirectory(prefix="venvstacks-sdist-") as tmp:
        scratch = Path(tmp)
        build_env = scratch / "build-env"
        build_env.mkdir()
        installed = set()
        for wheel, sha256 in request.build_wheels:
            _verified(wheel, sha256, what)
            write_tree(zip_entries(wheel), build_env)
            installed.add(normalize_name(wheel.name.partition("-")[0]))
        source = unpack_sdist(request.sdist, scratch / "src")
        backend, backend_path = build_backend(source)
        compiler = compiler_environ(request, scratch, Path.cwd(), RuntimeForC.running()) if request.cc else {}
        environ = {**_hook_environ(build_env, scratch), **compiler}

        def runner(cmd: Sequence[str], cwd: str | None = None, extra_environ: Mapping[str, str] | None = None) -> None:
            # -S: only the build requirements and the backend path are importable, not the runtime's site-packages.
            process = run_captured([cmd[0], "-S", *cmd[1:]], cwd=cwd, env={**environ, **(extra_environ or {})})
            if process.returncode != 0:
                detail = output_tail(process.stdout + "\n" + process.stderr, 2000)
                raise VenvstacksError(f"{what}: the build backend {backend!r} failed on {request.sdist.name}: {detail}")

        hooks = BuildBackendHookCaller(
            str(source), backend, backend_path or None, runner=runner, python_executable=sys.executable
        )
        with _backend_errors(what, backend, request.sdist.name):
            requested = hooks.get_requires_for_build_wheel({})
        missing = _missing_requirements(requested, installed)
        if missing:
            raise VenvstacksError(
                f"{what}: the build backend of {request.sdist.name} asks for {', '.join(missing)}, which the lock's"
                " build requirements do not hold; add them to its [build-system] requires upstream, or lock a"
                " version whose backend does not ask for them"
            )
        out_dir = scratch / "dist"
        out_dir.mkdir()
        with _backend_errors(what, backend, request.sdist.name):
            built = hooks.build_wheel(str(out_dir), {})
        if built != request.wheel_name:
            raise VenvstacksError(
                f"{what}: {request.sdist.name} built {built}, but the lock expects {request.wheel_name}; a wheel with"
                " extension modules is named after the Python and OS that build it, which must be the target's"
                " (build on the target platform, or re-lock)"
            )
        # Rewritten deterministically: the backend's member order, timestamps and modes are its own.
        write_archive(zip_entries(out_dir / built), request.output, "zip", SOURCE_DATE_EPOCH)


def main(argv: list[str]) -> int:
    """Run `build-sdist` with `argv`."""
    request = parse_request(argv)
    build(request)
    print(f"venvstacks: built {request.wheel_name} from {request.sdist.name}")
    return 0
