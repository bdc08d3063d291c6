"""`local-runtime`: a python-build-standalone-layout archive of a CPython on this machine.

    python3 -m venvstacks_maint local-runtime --runtime cpython3_11 --output-dir /srv/pbs >> MODULE.bazel

For machines that cannot download PBS from GitHub (an air-gapped network, a CI runner without
GitHub): packs a local Linux CPython as `cpython-X.Y.Z+local-TRIPLE-install_only.tar.gz` in
`--output-dir` and prints the `venvstacks.runtime_archive(...)` tag that declares it for the host
platform, with its sha256 and a `file://` URL (or `--base-url` + the file name, for a mirror the
archive is copied to). The runtime's other platforms keep the table's archives.

A CPython without a shared libpython relocates: its interpreter binary and its standard library
copied to `python/bin` and `python/lib/python3.X` give an interpreter whose `sys.prefix` follows
it (Debian's `/usr/bin/python3.X`, the default, is one). The archive is written deterministically
(sorted members, fixed mtimes and modes, gzip without a timestamp), so packing the same CPython
again gives the same sha256 and the printed tag stays valid.

With `--debian-arch ARCH` (arm64, amd64) the CPython packed is Debian's for that architecture,
extracted into `--debian-root-dir` (`debian_root`): a linux_aarch64 runtime made on an x86_64
machine. It is asked for its facts like any other, so its programs must run here: a qemu-user
registered with binfmt_misc, with the root as its library root (docs/platforms.md).
"""

from __future__ import annotations

import argparse
import errno
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from venvstacks_maint.debian_root import DEBIAN_MACHINES, DEFAULT_SUITE, debian_python_root, emulation_env
from venvstacks_tool.core.cli import subcommand_parser
from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.core.platforms import PLATFORMS, by_triple

# Left out: Debian's marker that makes pip refuse to install, its site customization, its
# dist-packages, bytecode caches, and the static libpython (config-3.X: large; nothing links it).
_SKIPPED_NAMES = {"EXTERNALLY-MANAGED", "sitecustomize.py", "__pycache__", "dist-packages"}
# 1980-01-01, the earliest time a zip can hold, as PBS-layout custom builds use.
_FIXED_MTIME = 315532800
# What the packed interpreter says about itself, printed as JSON. A shared libpython is looked for
# among the loaded files: Debian's sysconfig says Py_ENABLE_SHARED for its static /usr/bin/python3.X.
_DESCRIBE = """\
import json, platform, sys, sysconfig
print(json.dumps({
    "version": platform.python_version(),
    "system": platform.system(),
    "machine": platform.machine(),
    "stdlib": sysconfig.get_path("stdlib"),
    "include": sysconfig.get_path("include"),
    "multiarch": sysconfig.get_config_var("MULTIARCH") or "",
    "shared": any("libpython" in line for line in open("/proc/self/maps")),
    "executable": sys.executable,
}))
"""


@dataclass(frozen=True)
class LocalRuntime:
    """A PBS-layout archive of a local CPython: its file, exact version, sha256 and PBS triple."""

    path: Path
    python_version: str
    sha256: str
    triple: str = "x86_64-unknown-linux-gnu"


@dataclass(frozen=True)
class _Interpreter:
    """What is packed: the interpreter binary, its standard library, its version and target triple."""

    binary: Path
    stdlib: Path
    version: str
    triple: str
    include: Path | None = None  # its C headers (`Python.h`), None when not installed (no python3-dev)
    multiarch: str = ""  # Debian's multiarch triple, whose directory holds the real pyconfig.h

    @property
    def minor(self) -> str:
        """`3.11` of `3.11.2`."""
        return ".".join(self.version.split(".")[:2])


def find_relocatable_python(root: Path = Path("/")) -> Path:
    """The distro CPython under `root` (`usr/bin/python3.X`, `usr/lib/python3.X`): no shared libpython."""
    for minor in ("3.13", "3.12", "3.11", "3.10"):
        candidate = root / f"usr/bin/python{minor}"
        if candidate.exists() and (root / f"usr/lib/python{minor}/os.py").exists():
            return candidate
    raise VenvstacksError(
        f"no distro CPython in {root / 'usr/bin/python3.X'}; install one (apt-get install -y python3) or give --python"
    )


def _describe(python: Path, sysroot: Path | None = None) -> _Interpreter:
    """Asks `python` for its version, platform and standard library; refuses what would not relocate.

    A `python` of another architecture runs under emulation, with `sysroot` as its library root.
    """
    env = {**os.environ, **emulation_env(sysroot)} if sysroot else None
    try:
        output = subprocess.run(
            [python, "-I", "-c", _DESCRIBE], check=True, capture_output=True, text=True, env=env
        ).stdout
    except OSError as error:
        hint = ""
        if error.errno == errno.ENOEXEC:
            hint = (
                " (a program for another CPU needs an emulator registered with binfmt_misc, such as Debian's"
                " qemu-user-static: docs/platforms.md, 'Running another CPU's stack under emulation')"
            )
        raise VenvstacksError(f"cannot run {python}: {error.strerror}{hint}") from None
    except subprocess.CalledProcessError as error:
        raise VenvstacksError(f"cannot run {python}: {error}: {error.stderr.strip()[-1000:]}") from None
    facts = json.loads(output)
    if facts["system"] != "Linux":
        raise VenvstacksError(f"{python} runs on {facts['system']}; local runtimes are made of Linux CPythons only")
    if facts["shared"]:
        raise VenvstacksError(
            f"{python} loads a shared libpython (built with --enable-shared), which would not travel with "
            "the archive; use a CPython built without it, such as the distro's /usr/bin/python3.X"
        )
    triples = [p.triple for p in PLATFORMS if p.os == "linux" and p.machine == facts["machine"]]
    if not triples:
        raise VenvstacksError(f"{python} runs on a {facts['machine']} machine, which no PBS target platform has")
    include = Path(facts["include"]) if facts["include"] else None
    if include is not None and sysroot is not None:
        include = sysroot / include.relative_to("/")
    if include is not None and not (include / "Python.h").is_file():
        include = None
    return _Interpreter(
        Path(facts["executable"]).resolve(),
        Path(facts["stdlib"]),
        facts["version"],
        triples[0],
        include,
        facts["multiarch"],
    )


def _add_member(
    tar: tarfile.TarFile,
    name: str,
    kind: bytes,
    mode: int = 0o777,
    data: bytes = b"",
    link: str = "",
) -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = _FIXED_MTIME
    info.linkname = link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def _add_tree(tar: tarfile.TarFile, source: Path, arcname: str) -> None:
    """Adds `source` recursively, sorted; relative in-tree symlinks stay links, others are copied."""
    for name in sorted(os.listdir(source)):
        if name in _SKIPPED_NAMES or name.startswith("config-3"):
            continue
        path = source / name
        member = f"{arcname}/{name}"
        if path.is_symlink():
            target = os.readlink(path)
            if not os.path.isabs(target) and "/" not in target and (source / target).exists():
                _add_member(tar, member, tarfile.SYMTYPE, link=target)
                continue
            if not path.exists():
                continue
        if path.is_dir():
            _add_member(tar, member, tarfile.DIRTYPE, mode=0o755)
            _add_tree(tar, path, member)
        else:
            mode = 0o755 if os.access(path, os.X_OK) else 0o644
            _add_member(tar, member, tarfile.REGTYPE, mode=mode, data=path.read_bytes())


def patchlevel_header(version: str) -> bytes:
    """A `patchlevel.h` declaring CPython `version` (X.Y.Z), as PBS ships in `include/python3.X/`.

    Written rather than copied from `/usr/include` (python3-dev may be missing); the runtime
    repository reads only its `PY_VERSION` line to check the declared `python_version`.
    """
    major, minor, micro = version.split(".")[:3]
    return (
        "/* CPython version, as in Include/patchlevel.h */\n"
        f"#define PY_MAJOR_VERSION\t{major}\n"
        f"#define PY_MINOR_VERSION\t{minor}\n"
        f"#define PY_MICRO_VERSION\t{micro}\n"
        "#define PY_RELEASE_LEVEL\tPY_RELEASE_LEVEL_FINAL\n"
        "#define PY_RELEASE_SERIAL\t0\n"
        f'#define PY_VERSION\t\t"{version}"\n'
    ).encode()


def _headers(interpreter: _Interpreter) -> dict[str, bytes]:
    """{file name -> bytes} of the C headers to pack in `include/python3.X/`, as PBS ships them.

    The interpreter's own when installed (python3-dev), so that an sdist with extension modules
    compiles against the runtime's headers; Debian's `pyconfig.h` there only includes the
    multiarch one (`<x86_64-linux-gnu/python3.X/pyconfig.h>`), which is packed in its place. Always
    `patchlevel.h`, written (the runtime repository reads its `PY_VERSION`). Subdirectories
    (`cpython/`, `internal/`) are packed by `_tar_bytes`.
    """
    headers = {}
    if interpreter.include is not None:
        for path in sorted(interpreter.include.iterdir()):
            if path.is_file():
                headers[path.name] = path.read_bytes()
        multiarch = interpreter.include.parent / interpreter.multiarch / interpreter.include.name / "pyconfig.h"
        if interpreter.multiarch and multiarch.is_file():
            headers["pyconfig.h"] = multiarch.read_bytes()
    headers["patchlevel.h"] = patchlevel_header(interpreter.version)
    return headers


def _tar_bytes(interpreter: _Interpreter) -> bytes:
    """The uncompressed tar: `python/bin`, `python/lib/python3.X` and the headers (`_headers`)."""
    minor = interpreter.minor
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _add_member(tar, "python", tarfile.DIRTYPE, mode=0o755)
        _add_member(tar, "python/bin", tarfile.DIRTYPE, mode=0o755)
        binary = interpreter.binary.read_bytes()
        _add_member(tar, f"python/bin/python{minor}", tarfile.REGTYPE, mode=0o755, data=binary)
        _add_member(tar, "python/bin/python3", tarfile.SYMTYPE, link=f"python{minor}")
        _add_member(tar, "python/lib", tarfile.DIRTYPE, mode=0o755)
        _add_member(tar, f"python/lib/python{minor}", tarfile.DIRTYPE, mode=0o755)
        _add_tree(tar, interpreter.stdlib, f"python/lib/python{minor}")
        _add_member(tar, "python/include", tarfile.DIRTYPE, mode=0o755)
        include = f"python/include/python{minor}"
        _add_member(tar, include, tarfile.DIRTYPE, mode=0o755)
        if interpreter.include is not None:
            for path in sorted(interpreter.include.iterdir()):
                if path.is_dir():
                    _add_member(tar, f"{include}/{path.name}", tarfile.DIRTYPE, mode=0o755)
                    _add_tree(tar, path, f"{include}/{path.name}")
        for name, data in sorted(_headers(interpreter).items()):
            _add_member(tar, f"{include}/{name}", tarfile.REGTYPE, mode=0o644, data=data)
    return buffer.getvalue()


def make_local_runtime(directory: Path, python: Path | None = None, sysroot: Path | None = None) -> LocalRuntime:
    """Writes `cpython-X.Y.Z+local-TRIPLE-install_only.tar.gz` of `python` into `directory` (reused if there).

    `python` defaults to the distro CPython (`find_relocatable_python`) of `sysroot`, a root
    directory of another architecture's system (`debian_root`), else of this machine.
    """
    interpreter = _describe(python or find_relocatable_python(sysroot or Path("/")), sysroot)
    path = directory / f"cpython-{interpreter.version}+local-{interpreter.triple}-install_only.tar.gz"
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".partial")
        # mtime=0: no timestamp in the gzip header, so the sha256 is the same every time.
        with open(temporary, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, compresslevel=6) as gz:
            gz.write(_tar_bytes(interpreter))
        os.replace(temporary, path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return LocalRuntime(path=path, python_version=interpreter.version, sha256=digest, triple=interpreter.triple)


def runtime_archive_tag(runtime: LocalRuntime, runtime_name: str, url: str | None = None) -> str:
    """The `venvstacks.runtime_archive(...)` tag declaring `runtime` for runtime `runtime_name`.

    `url` defaults to the archive's `file://` URL: Bazel's downloader reads it like any other,
    checking the sha256, so a local archive needs no server. The `+` of the file name stays as it
    is (a valid URL path character), so the URL reads like the path.
    """
    url = url or "file://" + urllib.parse.quote(str(runtime.path.resolve()), safe="/+")
    return (
        "venvstacks.runtime_archive(\n"
        f'    runtime = "{runtime_name}",\n'
        f'    platform = "{by_triple(runtime.triple).name}",\n'
        f'    python_version = "{runtime.python_version}",\n'
        f'    urls = ["{url}"],\n'
        f'    sha256 = "{runtime.sha256}",\n'
        ")\n"
    )


def build_parser() -> argparse.ArgumentParser:
    """The `local-runtime` command line."""
    parser = subcommand_parser("local-runtime", __doc__.splitlines()[0])
    parser.prog = "python -m venvstacks_maint local-runtime"
    parser.add_argument("--runtime", required=True, help="the venvstacks.runtime it is for, e.g. cpython3_11")
    parser.add_argument("--output-dir", required=True, type=Path, help="where to write the archive")
    parser.add_argument(
        "--python", type=Path, help="the CPython to pack (default: the distro's /usr/bin/python3.X, newest first)"
    )
    parser.add_argument(
        "--debian-arch",
        choices=sorted(DEBIAN_MACHINES),
        help="pack Debian's CPython of this architecture (extracted with mmdebstrap; run under emulation)",
    )
    parser.add_argument(
        "--debian-suite",
        default=DEFAULT_SUITE,
        help=f"the Debian release whose CPython --debian-arch packs (default: {DEFAULT_SUITE})",
    )
    parser.add_argument(
        "--debian-root-dir",
        type=Path,
        help="where --debian-arch's Debian root is extracted, once (default: --output-dir)",
    )
    parser.add_argument(
        "--base-url", help="print BASE_URL/FILE as its URL (a mirror you copy it to) instead of its file:// URL"
    )
    return parser


def main(argv: list[str]) -> int:
    """Packs the CPython, says where on stderr, and prints the tag on stdout (to append to MODULE.bazel)."""
    args = build_parser().parse_args(argv)
    output_dir = args.output_dir.resolve()
    sysroot = None
    if args.debian_arch:
        sysroot = debian_python_root(
            args.debian_arch, (args.debian_root_dir or output_dir).resolve(), args.debian_suite
        )
    runtime = make_local_runtime(output_dir, args.python, sysroot)
    url = f"{args.base_url.rstrip('/')}/{runtime.path.name}" if args.base_url else None
    print(f"local-runtime: {runtime.path} (CPython {runtime.python_version}, {runtime.triple})", file=sys.stderr)
    print(runtime_archive_tag(runtime, args.runtime, url), end="")
    return 0
