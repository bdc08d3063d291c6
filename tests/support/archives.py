"""Reading layer archives in tests with the standard library and `zstandard` only.

Independent of `venvstacks_tool.archive`, so the tool's reader and writer are checked against
another implementation.
"""

from __future__ import annotations

import io
import lzma
import stat
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import zstandard


def archive_listing(path: Path) -> dict[str, tuple[str, int, Any]]:
    """name -> (kind, mode, content or link target) for a .tar.zst/.tar.xz/.zip layer archive.

    kind is "dir", "symlink" or "file"; a directory's content is None, a file's its bytes.
    """
    result: dict[str, tuple[str, int, Any]] = {}
    if path.name.endswith(".zip"):
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                mode = info.external_attr >> 16
                if stat.S_ISDIR(mode):
                    result[info.filename.rstrip("/")] = ("dir", stat.S_IMODE(mode), None)
                elif stat.S_ISLNK(mode):
                    result[info.filename] = ("symlink", 0o777, zf.read(info).decode())
                else:
                    result[info.filename] = ("file", stat.S_IMODE(mode), zf.read(info))
        return result
    data = path.read_bytes()
    data = zstandard.ZstdDecompressor().decompress(data) if path.name.endswith(".zst") else lzma.decompress(data)
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        for m in tf.getmembers():
            if m.isdir():
                result[m.name] = ("dir", m.mode, None)
            elif m.issym():
                result[m.name] = ("symlink", m.mode, m.linkname)
            else:
                f = tf.extractfile(m)
                assert f is not None
                result[m.name] = ("file", m.mode, f.read())
    return result


# --- writing archives without any checks, for deploy's tests ---------------------------------

# A member: (name, kind, content or link target); kind is "dir", "file", "script" (a file of mode
# 0755), "symlink", "hardlink" or "fifo".
Member = tuple[str, str, Any]


# Archives that try to write outside the directory they are unpacked into, each with what deploy's
# refusal says: every member is below the top directory `fw/` but what escapes. Deploy's readers
# (tests/unit/test_deploy_hardening.py) and the sdist unpacker (test_sdist_build.py) refuse them all.
ESCAPES: dict[str, tuple[list[Member], str]] = {
    "dotdot": ([("fw/../escaped.txt", "file", b"x")], "contains a '..' component"),
    "absolute": ([("/tmp/escaped.txt", "file", b"x")], "has an absolute name"),
    # Not ASCII, so tarfile puts the name (and its NUL) in a pax header: a ustar field ends at a NUL.
    "nul-name": ([("fw/\u00e9\x00.txt", "file", b"x")], "contains a NUL character"),
    "symlink-out-of-dest": ([("fw/up", "symlink", "../../..")], "points outside"),
    "absolute-symlink": ([("fw/etc", "symlink", "/etc")], "points outside"),
    "backslash-rooted-symlink": ([("fw/etc", "symlink", "\\etc")], "points outside"),
    "backslash-symlink-out-of-dest": ([("fw/up", "symlink", "..\\..\\..")], "points outside"),
    "through-symlink": (
        [("fw/sub", "dir", None), ("fw/link", "symlink", "sub"), ("fw/link/x.txt", "file", b"x")],
        "which is not a directory",
    ),
    "chained-symlink": ([("fw/a", "symlink", "b/../.."), ("fw/b", "symlink", "../..")], "points outside"),
    "symlink-loop": ([("fw/a", "symlink", "b"), ("fw/b", "symlink", "a")], "is a symlink loop"),
    "hardlink-out": ([("fw/passwd", "hardlink", "../../etc/passwd")], "contains a '..' component"),
    "hardlink-dangling": ([("fw/passwd", "hardlink", "fw/nothing")], "not a link to an earlier regular file"),
    "second-top-level": ([("other/file.txt", "file", b"x")], "is outside the layer directory 'fw'"),
    "fifo": ([("fw/pipe", "fifo", None)], "is a device, FIFO or other special file"),
}


def tar_bytes(members: list[Member], tar_format: int = tarfile.PAX_FORMAT) -> bytes:
    """An uncompressed tar of `members`, written by tarfile without any checks."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tar_format) as tf:
        for name, kind, payload in members:
            info = tarfile.TarInfo(name)
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tf.addfile(info)
            elif kind in ("symlink", "hardlink"):
                info.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
                info.linkname = payload
                tf.addfile(info)
            elif kind == "fifo":
                info.type = tarfile.FIFOTYPE
                tf.addfile(info)
            else:
                info.size = len(payload)
                info.mode = 0o755 if kind == "script" else 0o644
                tf.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


def compress(data: bytes, fmt: str) -> bytes:
    """`data` (a tar) compressed as a .tar.zst or .tar.xz."""
    if fmt == "tar.zst":
        return zstandard.ZstdCompressor().compress(data)
    return lzma.compress(data)


def zip_bytes(members: list[Member]) -> bytes:
    """A zip of `members` (Unix modes, symlinks as contents), written without any checks."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, kind, payload in members:
            info = zipfile.ZipInfo(name + ("/" if kind == "dir" else ""))
            info.create_system = 3
            kind_bits = {"dir": stat.S_IFDIR, "symlink": stat.S_IFLNK}.get(kind, stat.S_IFREG)
            info.external_attr = (kind_bits | 0o755) << 16
            data = payload.encode() if isinstance(payload, str) else (payload or b"")
            zf.writestr(info, data)
    return buf.getvalue()


def archive_bytes(members: list[Member], fmt: str) -> bytes:
    """`members` as a .tar.zst, .tar.xz or .zip (pax tars)."""
    return zip_bytes(members) if fmt == "zip" else compress(tar_bytes(members), fmt)


def write_with_metadata(path: Path, data: bytes, layer: str) -> Path:
    """Write the archive `data` to `path` and, beside it, the layer metadata a build writes for it."""
    import hashlib
    import json

    path.write_bytes(data)
    fmt = next(f for f in ("tar.zst", "tar.xz", "zip") if path.name.endswith("." + f))
    metadata = {
        "archive": {
            "file": path.name,
            "format": fmt,
            "sha256": hashlib.sha256(data).hexdigest(),
            "size": len(data),
        },
        "kind": "framework",
        "layer_name": layer,
    }
    path.with_name(path.name[: -len(fmt) - 1] + ".json").write_text(json.dumps(metadata))
    return path
