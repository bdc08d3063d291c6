"""An application's module hashes: venvstacks' `app_launch_module_hash` and `app_support_modules`.

A versioned application's lock records them (lock/lock_command.py: a changed launch or support
module bumps the lock version, as venvstacks counts both among its version inputs), and the
build's published metadata reports them (build/published_metadata.py); both hash the same files
with these functions, so the two agree whenever the lock is fresh.

The support modules are the application's own top-level modules and packages other than the
launch module's (venvstacks' `support_modules`, shipped beside it): each `NAME.py` file and each
`NAME/` directory among its files. Other top-level files (data, stubs, extension modules) are
not counted: venvstacks' support modules are the paths its specification lists, and here,
with no such list, only top-level Python modules and packages are.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.core.fsutil import sha256_file


@dataclass(frozen=True, order=True)
class SupportModule:
    """One support module: its top-level name and its `module_hash` (venvstacks' `{"name", "hash"}`)."""

    name: str
    hash: str

    def as_json(self) -> dict[str, str]:
        """The entry of venvstacks' `app_support_modules`."""
        return {"name": self.name, "hash": self.hash}


def _file_hash(name: str, path: Path) -> bytes:
    """One file's contribution to a module hash: its name, then `sha256:<hex>` of its bytes."""
    return name.encode() + f"sha256:{sha256_file(path)}".encode()


def module_hash(module: str, app_files: Mapping[str, Path]) -> str | None:
    """The hash venvstacks records for a launch or support module, or None when the layer's own files lack it.

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


def support_modules(launch_module: str, app_files: Mapping[str, Path], *, layer: str) -> tuple[SupportModule, ...]:
    """The application's support modules with their hashes, sorted by name.

    `launch_module` is the module `python -m` runs (`app.main`: its top-level `app` is the launch
    module's, not a support module), `app_files` maps each of the layer's own files' destination
    in site-packages to the file. venvstacks sorts its `support_modules` by their paths in the
    specification; here they have no written order, and sorting by name is the deterministic one.
    A name that is both `NAME.py` and `NAME/` is refused, naming the layer (`layer`), as venvstacks
    refuses two support modules of one name.
    """
    launch_top = launch_module.partition(".")[0]
    names: dict[str, str] = {}
    for dest in app_files:
        head, sep, _ = dest.partition("/")
        if sep:
            name, shape = head, f"{head}/"
        elif dest.endswith(".py"):
            name, shape = dest.removesuffix(".py"), dest
        else:
            continue
        if name == launch_top:
            continue
        if names.setdefault(name, shape) != shape:
            raise VenvstacksError(
                f"application layer {layer!r}: '{name}.py' and '{name}/' are both top-level modules named {name!r};"
                " rename one of them"
            )
    found = []
    for name in sorted(names):
        digest = module_hash(name, app_files)
        assert digest is not None  # the name comes from the files
        found.append(SupportModule(name, digest))
    return tuple(found)
