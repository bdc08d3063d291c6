"""Real wheels built in code, served from a PEP 503 simple index on 127.0.0.1.

`WheelIndex` keeps a directory laid out as

    files/<file>                        wheels (and sdists) built here
    simple/index.html                   the project list
    simple/<normalized name>/index.html one `<a href="../../files/<file>#sha256=...">` per file

and `serve()` serves it over HTTP in a background thread (port 0), so pip resolves
against it exactly as against a real index. Wheels are deterministic (fixed zip timestamps), so
the same name, version, dependencies and tag always give the same bytes and sha256.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import re
import tarfile
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

if TYPE_CHECKING:
    from typing_extensions import Unpack

from venvstacks_testing.http_server import serve_directory

_ZIP_DATE = (2020, 1, 1, 0, 0, 0)
_TAR_MTIME = 1_577_836_800  # 2020-01-01T00:00:00Z


def normalize(name: str) -> str:
    """PEP 503 normalized project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _dist_name(name: str) -> str:
    """The distribution part of a wheel or sdist file name (PEP 427 escaping)."""
    return re.sub(r"[-_.]+", "_", name).lower()


def record_hash(data: bytes) -> str:
    """The `sha256=<urlsafe base64, unpadded>` digest of `data` as a wheel's RECORD holds it."""
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class WheelOptions(TypedDict, total=False):
    """Keyword options of `build_wheel` and `WheelIndex.add_wheel`, all optional."""

    tag: str  # the wheel's tag; default "py3-none-any"
    requires_python: str | None  # the Requires-Python metadata; default none
    files: Mapping[str, bytes]  # the wheel's own files; default `<module>/__init__.py` with `__version__`
    console_scripts: Mapping[str, str]  # entry points, script name -> "module:function"; default none


def build_wheel(
    directory: Path, name: str, version: str, requires: Sequence[str] = (), **options: Unpack[WheelOptions]
) -> Path:
    """Write a minimal, installable wheel of `name` `version` into `directory`; return its path.

    It holds `options["files"]` (by default `<module>/__init__.py`, defining `__version__`) and a
    `.dist-info` with METADATA (one `Requires-Dist` per entry of `requires`), WHEEL
    (`Root-Is-Purelib`, the given `tag`), `entry_points.txt` when there are console scripts, and
    RECORD with sha256 of every file.
    """
    tag = options.get("tag", "py3-none-any")
    requires_python = options.get("requires_python")
    dist = _dist_name(name)
    dist_info = f"{dist}-{version}.dist-info"
    metadata_lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    if requires_python:
        metadata_lines.append(f"Requires-Python: {requires_python}")
    metadata_lines += [f"Requires-Dist: {requirement}" for requirement in requires]
    own_files = options.get("files", {f"{dist}/__init__.py": f'__version__ = "{version}"\n'.encode()})
    files: list[tuple[str, bytes]] = [
        *own_files.items(),
        (f"{dist_info}/METADATA", ("\n".join(metadata_lines) + "\n").encode()),
        (
            f"{dist_info}/WHEEL",
            (
                "Wheel-Version: 1.0\nGenerator: rules_venvstacks-tests\n"
                f"Root-Is-Purelib: {'true' if tag.endswith('-any') else 'false'}\nTag: {tag}\n"
            ).encode(),
        ),
    ]
    console_scripts = options.get("console_scripts")
    if console_scripts:
        lines = "".join(f"{script} = {target}\n" for script, target in console_scripts.items())
        files.append((f"{dist_info}/entry_points.txt", f"[console_scripts]\n{lines}".encode()))
    record = "".join(f"{path},{record_hash(data)},{len(data)}\n" for path, data in files)
    record += f"{dist_info}/RECORD,,\n"
    files.append((f"{dist_info}/RECORD", record.encode()))

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{dist}-{version}-{tag}.whl"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for member, data in files:
            info = zipfile.ZipInfo(member, _ZIP_DATE)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    path.write_bytes(buffer.getvalue())
    return path


def build_sdist(directory: Path, name: str, version: str) -> Path:
    """Write a minimal setuptools sdist `<name>-<version>.tar.gz` into `directory`; return its path."""
    dist = _dist_name(name)
    root = f"{dist}-{version}"
    files = {
        f"{root}/PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{root}/setup.py": f"from setuptools import setup\nsetup(name={name!r}, version={version!r})\n".encode(),
    }
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{root}.tar.gz"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.PAX_FORMAT) as tf:
        for member, data in files.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            info.mtime = _TAR_MTIME
            info.mode = 0o644
            tf.addfile(info, io.BytesIO(data))
    path.write_bytes(buffer.getvalue())
    return path


class WheelIndex:
    """A PEP 503 simple index in `root`, rewritten after every file added."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files_dir = root / "files"
        self.files_dir.mkdir(parents=True, exist_ok=True)
        # normalized project name -> file paths
        self._projects: dict[str, list[Path]] = {}
        self._write_pages()

    def add_wheel(self, name: str, version: str, requires: Sequence[str] = (), **options: Unpack[WheelOptions]) -> Path:
        """Build a wheel (see `build_wheel`), list it in the index, and return its path."""
        path = build_wheel(self.files_dir, name, version, requires, **options)
        self._add(name, path)
        return path

    def add_sdist(self, name: str, version: str) -> Path:
        """Build an sdist (see `build_sdist`), list it in the index, and return its path."""
        path = build_sdist(self.files_dir, name, version)
        self._add(name, path)
        return path

    def add_file(self, name: str, path: Path) -> Path:
        """List a file made elsewhere (a wheel or an sdist of project `name`) in the index; return its copy."""
        copy = self.files_dir / path.name
        copy.write_bytes(path.read_bytes())
        self._add(name, copy)
        return copy

    def sha256(self, path: Path) -> str:
        """The hex sha256 of a file of the index."""
        return hashlib.sha256(path.read_bytes()).hexdigest()

    def _add(self, name: str, path: Path) -> None:
        files = self._projects.setdefault(normalize(name), [])
        if path not in files:
            files.append(path)
        self._write_pages()

    def _write_pages(self) -> None:
        simple = self.root / "simple"
        simple.mkdir(parents=True, exist_ok=True)
        links = "".join(
            f'<a href="{html.escape(project)}/">{html.escape(project)}</a>\n' for project in sorted(self._projects)
        )
        (simple / "index.html").write_text(_page("Simple index", links))
        for project, files in self._projects.items():
            page_dir = simple / project
            page_dir.mkdir(exist_ok=True)
            anchors = "".join(
                f'<a href="../../files/{html.escape(path.name)}#sha256={self.sha256(path)}">'
                f"{html.escape(path.name)}</a><br>\n"
                for path in sorted(files)
            )
            (page_dir / "index.html").write_text(_page(f"Links for {project}", anchors))

    @contextmanager
    def serve(self) -> Iterator[str]:
        """Serve the index on 127.0.0.1; yield its simple index URL (`http://127.0.0.1:PORT/simple`)."""
        with serve_directory(self.root) as base_url:
            yield f"{base_url}/simple"


def _page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n<html>\n<head><title>"
        + html.escape(title)
        + "</title></head>\n<body>\n"
        + body
        + "</body>\n</html>\n"
    )
