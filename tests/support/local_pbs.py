"""A python-build-standalone-layout archive made from this machine's own CPython.

PBS archives live on GitHub, which these machines cannot reach. A distro CPython relocates:
`/usr/bin/python3.X` + `/usr/lib/python3.X` copied to `python/bin` and `python/lib` give an
interpreter whose `sys.prefix` follows it. The archive is written deterministically, so its sha256
is stable on one machine and can be pinned in a test workspace like a real PBS asset.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

# Left out: the Debian-only marker that makes pip refuse to install, a symlink to /etc, and
# the static libpython (large; nothing here links against it).
_SKIPPED_NAMES = {"EXTERNALLY-MANAGED", "sitecustomize.py", "__pycache__", "dist-packages"}
_FIXED_MTIME = 315532800


@dataclass(frozen=True)
class LocalRuntime:
    """A PBS-layout archive of the host CPython."""

    path: Path
    python_version: str
    sha256: str


def find_relocatable_python() -> Path:
    """The distro CPython to package (`/usr/bin/python3.X`), not a pyenv build (not relocatable)."""
    for minor in ("3.13", "3.12", "3.11", "3.10"):
        candidate = Path(f"/usr/bin/python{minor}")
        if candidate.exists() and Path(f"/usr/lib/python{minor}/os.py").exists():
            return candidate
    raise RuntimeError("no distro CPython in /usr/bin/python3.X; run: apt-get install -y python3")


def _python_version(python: Path) -> str:
    code = "import platform; print(platform.python_version())"
    return subprocess.run([python, "-c", code], check=True, capture_output=True, text=True).stdout.strip()


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


def make_local_runtime(directory: Path, platform: str = "x86_64-unknown-linux-gnu") -> LocalRuntime:
    """Writes `cpython-X.Y.Z+local-PLATFORM-install_only.tar.gz` into `directory` (reused if there)."""
    python = find_relocatable_python()
    version = _python_version(python)
    minor = ".".join(version.split(".")[:2])
    path = directory / f"cpython-{version}+local-{platform}-install_only.tar.gz"
    if not path.exists():
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
            _add_member(tar, "python", tarfile.DIRTYPE, mode=0o755)
            _add_member(tar, "python/bin", tarfile.DIRTYPE, mode=0o755)
            binary = python.read_bytes()
            _add_member(tar, f"python/bin/python{minor}", tarfile.REGTYPE, mode=0o755, data=binary)
            _add_member(tar, "python/bin/python3", tarfile.SYMTYPE, link=f"python{minor}")
            _add_member(tar, "python/lib", tarfile.DIRTYPE, mode=0o755)
            _add_member(tar, f"python/lib/python{minor}", tarfile.DIRTYPE, mode=0o755)
            _add_tree(tar, Path(f"/usr/lib/python{minor}"), f"python/lib/python{minor}")
            _add_member(tar, "python/include", tarfile.DIRTYPE, mode=0o755)
            _add_member(tar, f"python/include/python{minor}", tarfile.DIRTYPE, mode=0o755)
            header = patchlevel_header(version)
            _add_member(tar, f"python/include/python{minor}/patchlevel.h", tarfile.REGTYPE, mode=0o644, data=header)
        temporary = path.with_suffix(".partial")
        with (
            open(temporary, "wb") as raw,
            gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, compresslevel=6) as gz,
        ):
            gz.write(buffer.getvalue())
        os.replace(temporary, path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return LocalRuntime(path=path, python_version=version, sha256=digest)
