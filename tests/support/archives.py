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
