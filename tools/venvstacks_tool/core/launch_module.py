"""A launch module's content hash: venvstacks' `app_launch_module_hash`, shared by the lock and the build.

A versioned application's lock records it (lock/lock_command.py: a changed launch module bumps
the lock version, as venvstacks bumps it), and the build's published metadata reports it
(build/published_metadata.py); both hash the same files with this one function, so the two
agree whenever the lock is fresh.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

from venvstacks_tool.core.fsutil import sha256_file


def _file_hash(name: str, path: Path) -> bytes:
    """One file's contribution to a module hash: its name, then `sha256:<hex>` of its bytes."""
    return name.encode() + f"sha256:{sha256_file(path)}".encode()


def module_hash(module: str, app_files: Mapping[str, Path]) -> str | None:
    """The hash venvstacks records for a launch module, or None when the layer's own files lack it.

    `module` is a top-level module name, `app_files` maps each file's destination in
    site-packages to the file. A module file `NAME.py` hashes as `sha256:` + sha256 of its name
    and its content hash; a package directory `NAME/` as `sha256/` + sha256 over the directory
    tree walked top-down (each directory's name, then each of its files' names and content
    hashes in sorted order, then its subdirectories in sorted order), as venvstacks hashes a
    launch module (the two prefixes are venvstacks'). A launch module that comes from a wheel is
    not among the layer's files: venvstacks cannot name it either, and the field is left out.
    """
    if f"{module}.py" in app_files:
        return "sha256:" + hashlib.sha256(_file_hash(f"{module}.py", app_files[f"{module}.py"])).hexdigest()
    prefix = module + "/"
    inside = {dest[len(prefix) :]: path for dest, path in app_files.items() if dest.startswith(prefix)}
    if not inside:
        return None
    digest = hashlib.sha256()
    _hash_tree(digest, module, inside)
    return "sha256/" + digest.hexdigest()


def _hash_tree(digest: hashlib._Hash, name: str, files: Mapping[str, Path]) -> None:
    """Feed directory `name`, whose files are `files` (paths relative to it), into `digest`."""
    digest.update(name.encode())
    subdirs: dict[str, dict[str, Path]] = {}
    for relative in sorted(files):
        head, sep, rest = relative.partition("/")
        if sep:
            subdirs.setdefault(head, {})[rest] = files[relative]
        else:
            digest.update(_file_hash(head, files[relative]))
    for subdir in sorted(subdirs):
        _hash_tree(digest, subdir, subdirs[subdir])
