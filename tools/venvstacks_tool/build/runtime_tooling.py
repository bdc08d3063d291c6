"""What `pack-runtime` leaves out of a runtime layer: the installer tooling PBS bundles.

python-build-standalone's `install_only` archives carry pip (and setuptools and wheel, on the
Pythons whose `ensurepip` still installs them) in the runtime's site-packages, with their
scripts (`bin/pip3`, `Scripts\\pip.exe`). venvstacks removes them when it makes a runtime layer
(`RuntimeEnv._remove_pip` uninstalls pip, wheel and setuptools, with the comment that no build
step needs pip in the target environment, and it is not shipped unless a layer asks for it as a
requirement), and keeps the runtime's site-packages last on every layered environment's path. We
do the same, on the archive's entries: every file that a tool's `RECORD` lists, its whole
top-level package directories (so no stray `__pycache__` is left behind) and its `.dist-info`.
A framework or application layer that needs pip or setuptools locks it like any package.
"""

from __future__ import annotations

import csv
import posixpath
import re

from venvstacks_tool.core.archive import ArchiveEntry
from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.core.project_names import normalize_name

# Normalized distribution names (PEP 503) of the tooling a runtime layer does not ship.
INSTALLER_DISTRIBUTIONS = ("pip", "setuptools", "wheel")
_DIST_INFO_RE = re.compile(r"(?P<name>[^-]+)-[^-]+\.dist-info")


def _record_paths(record: ArchiveEntry, site_dir: str, layer: str) -> list[str]:
    """The entry names a `RECORD` lists (its paths are relative to site-packages)."""
    if record.data is None:
        raise VenvstacksError(f"runtime layer {layer!r}: {record.name!r} cannot be read")
    paths = []
    for row in csv.reader(record.data.decode("utf-8", errors="replace").splitlines()):
        if row and row[0]:
            path = posixpath.normpath(posixpath.join(site_dir, row[0].replace("\\", "/")))
            # A RECORD that points outside the layer names nothing of the layer.
            if path.startswith(f"{layer}/"):
                paths.append(path)
    return paths


def strip_installer_tooling(
    entries: list[ArchiveEntry], site_dir: str, layer: str
) -> tuple[list[ArchiveEntry], list[str]]:
    """`entries` without the installer tooling in `site_dir`; and the distributions removed, sorted.

    `site_dir` is the runtime's site-packages as an entry name (`<layer>/lib/python3.12/site-packages`).
    """
    files: set[str] = set()
    trees: set[str] = set()
    removed: list[str] = []
    for entry in entries:
        parent, _, base = entry.name.rpartition("/")
        folder, _, dist_info = parent.rpartition("/")
        match = _DIST_INFO_RE.fullmatch(dist_info)
        if entry.kind != "file" or base != "RECORD" or folder != site_dir or match is None:
            continue
        name = normalize_name(match.group("name"))
        if name not in INSTALLER_DISTRIBUTIONS:
            continue
        removed.append(name)
        trees.add(parent)
        for path in _record_paths(entry, site_dir, layer):
            files.add(path)
            below = path[len(site_dir) + 1 :].split("/") if path.startswith(f"{site_dir}/") else []
            # A package directory of its own goes whole; a shared `__pycache__` keeps the others'.
            if len(below) > 1 and below[0] != "__pycache__":
                trees.add(f"{site_dir}/{below[0]}")
    if not removed:
        return entries, []
    kept = [
        entry
        for entry in entries
        if entry.name not in files and not any(entry.name == t or entry.name.startswith(f"{t}/") for t in trees)
    ]
    return kept, sorted(removed)
