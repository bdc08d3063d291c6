"""Small python-build-standalone `install_only` archives for any target platform, made in code.

The layout is the real one of a PBS `install_only` asset for the platform; the contents are fake
(a few bytes each), so a test can pack a Windows or macOS runtime, or serve it from 127.0.0.1 as a
release asset, on a Linux machine. The archive is a pure function of its arguments: members in
sorted order with fixed mtimes, owners and modes, gzip header mtime 0, no file name and stored
(uncompressed) deflate blocks, so its
sha256 is the same on every machine and every run and can be pinned like a real asset's.
"""

from __future__ import annotations

import hashlib
import io
import re
import struct
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from venvstacks_testing.local_pbs import LocalRuntime
from venvstacks_tool.core.platforms import TargetPlatform

# 2020-01-01T00:00:00Z, for every member.
FIXTURE_MTIME = 1_577_836_800
DEFAULT_RELEASE = "20251031"
_STORED_BLOCK = 0xFFFF  # the largest stored deflate block
_VERSION_RE = re.compile(r"(\d+)\.(\d+)\.(\d+)")


@dataclass(frozen=True)
class FixtureRuntime:
    """A fixture PBS archive: where it is, its sha256, and what it claims to be."""

    path: Path
    sha256: str
    python_version: str  # the full version, e.g. "3.11.14"
    platform: TargetPlatform


def asset_name(platform: TargetPlatform, python_version: str, release: str = DEFAULT_RELEASE) -> str:
    """The name PBS gives this runtime's asset: `cpython-3.11.14+20251031-<triple>-install_only.tar.gz`."""
    return f"cpython-{python_version}+{release}-{platform.triple}-install_only.tar.gz"


def windows_venv_launchers(python_version: str) -> dict[str, str]:
    """The target venv name -> the runtime's launcher in `Lib/venv/scripts/nt/`, for Python `python_version`.

    CPython 3.13 renamed the launchers `venv` copies (`venvlauncher.exe`, `venvwlauncher.exe`,
    Lib/venv/__init__.py); up to 3.12 they ship under their final names.
    """
    major, minor = _xy(python_version)
    if (major, minor) >= (3, 13):
        return {"python.exe": "venvlauncher.exe", "pythonw.exe": "venvwlauncher.exe"}
    return {"python.exe": "python.exe", "pythonw.exe": "pythonw.exe"}


def launcher_bytes(platform: TargetPlatform, python_version: str, name: str) -> bytes:
    """The fake content of the venv launcher `name` (`python.exe` or `pythonw.exe`) in the fixture runtime.

    Distinct per launcher and per version, so a test can tell which file a layer copied.
    """
    return f"MZ fake venv launcher {name} for CPython {python_version} on {platform.triple}\n".encode()


def _xy(python_version: str) -> tuple[int, int]:
    match = _VERSION_RE.fullmatch(python_version)
    if match is None:
        raise ValueError(f"{python_version!r} is not a full X.Y.Z version")
    return int(match.group(1)), int(match.group(2))


# One member: (path under `python/`, "file" or "symlink", content or link target, mode).
_Member = tuple[str, str, bytes | str, int]


def _windows_members(platform: TargetPlatform, python_version: str) -> list[_Member]:
    major, minor = _xy(python_version)
    tag = f"cp{major}{minor}-win_{platform.wheel_arch}"
    members: list[_Member] = [
        ("python.exe", "file", f"MZ fake python.exe {python_version}\n".encode(), 0o755),
        ("pythonw.exe", "file", f"MZ fake pythonw.exe {python_version}\n".encode(), 0o755),
        (f"python{major}{minor}.dll", "file", f"MZ fake python{major}{minor}.dll\n".encode(), 0o755),
        ("python3.dll", "file", b"MZ fake python3.dll\n", 0o755),
        # The C runtime PBS ships beside python.exe, which extension modules import (the loader check).
        ("vcruntime140.dll", "file", b"MZ fake vcruntime140.dll\n", 0o755),
        ("vcruntime140_1.dll", "file", b"MZ fake vcruntime140_1.dll\n", 0o755),
        ("Lib/os.py", "file", b"# fake os module\n", 0o644),
        ("Lib/site-packages/README.txt", "file", b"site-packages\n", 0o644),
        ("DLLs/_ssl.pyd", "file", f"MZ fake _ssl extension ({tag})\n".encode(), 0o755),
        ("Include/Python.h", "file", b"/* fake Python.h */\n", 0o644),
    ]
    for name, source in windows_venv_launchers(python_version).items():
        data = launcher_bytes(platform, python_version, name)
        members.append((f"Lib/venv/scripts/nt/{source}", "file", data, 0o755))
    return members


def _posix_members(platform: TargetPlatform, python_version: str) -> list[_Member]:
    major, minor = _xy(python_version)
    xy = f"{major}.{minor}"
    # The extension-module suffix the target imports first: `.cpython-311-x86_64-linux-gnu.so`,
    # `.cpython-311-darwin.so` (the platform data is the one source of these tags).
    suffix = platform.extension_suffixes(xy)[0]
    library = f"libpython{xy}.dylib" if platform.os == "macos" else f"libpython{xy}.so"
    return [
        (f"bin/python{xy}", "file", f"fake CPython {python_version} for {platform.triple}\n".encode(), 0o755),
        ("bin/python3", "symlink", f"python{xy}", 0o777),
        ("bin/python", "symlink", f"python{xy}", 0o777),
        (f"lib/python{xy}/os.py", "file", b"# fake os module\n", 0o644),
        (f"lib/python{xy}/site-packages/README.txt", "file", b"site-packages\n", 0o644),
        (f"lib/python{xy}/lib-dynload/_ssl{suffix}", "file", b"fake _ssl extension\n", 0o755),
        (f"lib/{library}", "file", f"fake {library}\n".encode(), 0o755),
        (f"include/python{xy}/Python.h", "file", b"/* fake Python.h */\n", 0o644),
    ]


def _tar_bytes(members: list[_Member]) -> bytes:
    """An uncompressed tar of `members` under `python/`, directories first, every name sorted."""
    directories = {"python"}
    for name, *_ in members:
        parts = f"python/{name}".split("/")[:-1]
        directories.update("/".join(parts[:i]) for i in range(1, len(parts) + 1))
    entries: list[tuple[str, str, bytes | str, int]] = [(d, "dir", b"", 0o755) for d in directories]
    entries += [(f"python/{name}", kind, payload, mode) for name, kind, payload, mode in members]
    buffer = io.BytesIO()
    # PAX keeps long names as they are; the fixed uid/gid/uname/gname keep the host's out of it.
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, payload, mode in sorted(entries, key=lambda entry: entry[0]):
            info = tarfile.TarInfo(name)
            info.mtime = FIXTURE_MTIME
            info.mode = mode
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif kind == "symlink":
                assert isinstance(payload, str)
                info.type = tarfile.SYMTYPE
                info.linkname = payload
                tar.addfile(info)
            else:
                assert isinstance(payload, bytes)
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


def fixture_runtime_bytes(platform: TargetPlatform, python_version: str, patchlevel: str | None = None) -> bytes:
    """The `.tar.gz` bytes of the fixture runtime: a pure function of its arguments.

    With `patchlevel`, the archive also has a `patchlevel.h` declaring that version, beside its
    `Python.h` (`Include/` on Windows, `include/python3.X/` elsewhere), which the runtime
    repository checks against the declared version. Without it (the default, so the pinned
    sha256 stays) there is none, as in a custom build without headers.
    """
    members = (
        _windows_members(platform, python_version)
        if platform.os == "windows"
        else _posix_members(platform, python_version)
    )
    if patchlevel is not None:
        major, minor = _xy(python_version)
        where = "Include" if platform.os == "windows" else f"include/python{major}.{minor}"
        header = f'/* fake patchlevel.h */\n#define PY_VERSION "{patchlevel}"\n'.encode()
        members.append((f"{where}/patchlevel.h", "file", header, 0o644))
    return _stored_gzip(_tar_bytes(members))


def _stored_gzip(data: bytes) -> bytes:
    """`data` as a gzip member of stored (uncompressed) deflate blocks: header mtime 0, no file name.

    Written by hand rather than with `gzip.compress`, because the bytes deflate produces depend
    on the zlib build (zlib, zlib-ng, their versions) and a pinned sha256 must not; stored blocks
    have one encoding (RFC 1951 3.2.4). The fixture is small, so not compressing costs nothing.
    """
    # ID1 ID2, CM=deflate, FLG=0 (no name, no extra), MTIME=0, XFL=0, OS=255 (unknown).
    out = bytearray(b"\x1f\x8b\x08\x00" + b"\x00\x00\x00\x00" + b"\x00\xff")
    blocks = [data[i : i + _STORED_BLOCK] for i in range(0, len(data), _STORED_BLOCK)] or [b""]
    for index, block in enumerate(blocks):
        final = index == len(blocks) - 1
        # BFINAL, BTYPE=00 in one byte (the rest of the byte is padding), then LEN and its complement.
        out += bytes([1 if final else 0]) + struct.pack("<HH", len(block), len(block) ^ 0xFFFF) + block
    out += struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF)
    return bytes(out)


def make_fixture_runtime(
    directory: Path,
    platform: TargetPlatform,
    python_version: str,
    release: str = DEFAULT_RELEASE,
    patchlevel: str | None = None,
) -> FixtureRuntime:
    """Write the fixture PBS archive of `platform` and `python_version` into `directory`, named like the real asset.

    Rewritten every time (same bytes), so a stale file from an older fixture cannot linger.
    `patchlevel`: the version its `patchlevel.h` declares (see `fixture_runtime_bytes`).
    """
    data = fixture_runtime_bytes(platform, python_version, patchlevel)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / asset_name(platform, python_version, release)
    path.write_bytes(data)
    return FixtureRuntime(
        path=path, sha256=hashlib.sha256(data).hexdigest(), python_version=python_version, platform=platform
    )


def windows_runtime_module(name: str, host: LocalRuntime, url: str, windows: FixtureRuntime) -> str:
    """MODULE.bazel lines of runtime `name` for linux_x86_64 and windows_x86_64, and its `use_repo`.

    linux_x86_64 is `host` (the host's CPython, which runs the tool), windows_x86_64 the fixture
    `windows`: analysed, never run. Both archives are served at `url`.
    """
    return f"""\
venvstacks.runtime(
    name = "{name}",
    platforms = ["linux_x86_64", "windows_x86_64"],
    python_version = "{host.python_version}",
    urls = ["{url}/{host.path.name}"],
    sha256 = "{host.sha256}",
)
venvstacks.runtime_archive(
    runtime = "{name}",
    platform = "windows_x86_64",
    python_version = "{windows.python_version}",
    urls = ["{url}/{windows.path.name}"],
    sha256 = "{windows.sha256}",
)
use_repo(venvstacks, "{name}")
"""
