"""Where each target's dynamic loader looks for a needed library, in a deployed stack.

Pure functions over names and layer-relative paths: nothing here reads a file. A binary's place
is its path below the layer's root (`lib/python3.12/site-packages/cv2/cv2.abi3.so`), which is
where the build installs it; what the layer ships is the set of such paths.

* **Linux** (ld.so): a soname is found through the binary's `RUNPATH`/`RPATH` entries with
  `$ORIGIN` expanded (inside the layer), in the lower layers' `share/venv/dynlib` directories
  (the layer's interpreter puts them on `LD_LIBRARY_PATH`: build/dynlibs.py), among the
  runtime's libraries (`libpython3.X.so.1.0`, loaded with the interpreter), or in the system set.
* **macOS** (dyld): `@loader_path/` is the binary's directory; `@rpath/` tries each `LC_RPATH`
  (`@loader_path` expanded); `@executable_path/` is the runtime's interpreter directory, so the
  runtime's libraries; an absolute install name must be one of the system's, or a leaf name on
  `DYLD_LIBRARY_PATH` (the lower layers' dynlib directories, as on Linux).
* **Windows** (LoadLibraryEx with Python's default directories): the binary's own directory,
  the runtime's directory and its `DLLs/`, System32, API-set names, and the directories added
  with `os.add_dll_directory`: every layer's `Library/bin` (the stacking module), and whatever a
  package adds in its own code (delvewheel's `<package>.libs`, torch's `torch/lib`), which no
  static reading can follow; so a DLL that any layer of the stack ships counts as found by name.
  Names compare case-insensitively.

Order does not matter here (the question is whether a library is found at all, not which copy).
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass

from venvstacks_tool.build.binaries import BinaryNeeds
from venvstacks_tool.build.system_libraries import SystemLibraries


@dataclass(frozen=True)
class StackView:
    """What a binary of one layer can load from: the layer, the layers below, the runtime, the system."""

    os: str  # TargetPlatform.os
    files: frozenset[str]  # paths below the layer's root of the files it ships (casefolded on Windows)
    by_name: frozenset[str]  # names findable by name: the lower layers' dynlibs; on Windows also this layer's DLL dirs
    runtime: frozenset[str]  # the runtime's library names (casefolded on Windows)
    system: SystemLibraries
    allowed: frozenset[str]  # the layer's `allowed_libraries` (casefolded on Windows)

    def fold(self, name: str) -> str:
        """`name` as this view stores it (casefolded on Windows)."""
        return name.casefold() if self.os == "windows" else name


def _under_layer(directory: str, name: str) -> str | None:
    """`directory/name` normalized, or None when it leaves the layer."""
    path = posixpath.normpath(posixpath.join(directory, name))
    return None if path == ".." or path.startswith(("../", "/")) else path


def _expand(entry: str, origin: str, loader_token: str) -> str | None:
    """A search-path entry with the loader's token for the binary's directory replaced, or None outside the layer."""
    for token in (loader_token, loader_token.replace("$ORIGIN", "${ORIGIN}")):
        if entry == token or entry.startswith(token + "/"):
            return _under_layer(origin, entry[len(token) :].lstrip("/") or ".")
    return None  # absolute (the build machine's) or relative to the working directory: not the stack's


def _directories(binary: str, needs: BinaryNeeds, os: str) -> list[str]:
    """The binary's own search-path entries as directories below the layer root (macOS: absolute ones kept)."""
    token = "$ORIGIN" if os == "linux" else "@loader_path"
    directories = []
    for entry in needs.search_paths:
        if os == "macos" and entry.startswith("/"):
            directories.append(entry)  # only the system's libraries can be there
            continue
        directory = _expand(entry, posixpath.dirname(binary), token)
        if directory is not None:
            directories.append(directory)
    return directories


def _in_directories(name: str, directories: list[str], view: StackView) -> tuple[bool, str | None]:
    for directory in directories:
        if directory.startswith("/"):
            if view.system.provides(posixpath.join(directory, name)):
                return True, None
            continue
        path = _under_layer(directory, name)
        if path in view.files:
            return True, path
    return False, None


def _locate_linux(name: str, directories: list[str], view: StackView) -> tuple[bool, str | None]:
    if "/" in name:
        return False, None  # a path, not a soname: nothing of the stack is there
    found = _in_directories(name, directories, view)
    if found[0]:
        return found
    return name in view.by_name or name in view.runtime or view.system.provides(name), None


def _locate_macos(binary: str, name: str, directories: list[str], view: StackView) -> tuple[bool, str | None]:
    leaf = posixpath.basename(name)
    if name.startswith("@loader_path/"):
        path = _under_layer(posixpath.dirname(binary), name.removeprefix("@loader_path/"))
        if path in view.files:
            return True, path
    elif name.startswith("@rpath/"):
        found = _in_directories(name.removeprefix("@rpath/"), directories, view)
        if found[0]:
            return found
    elif name.startswith("/") and view.system.provides(name):
        return True, None
    if name.startswith(("@rpath/", "@executable_path/")) and leaf in view.runtime:
        return True, None
    # DYLD_LIBRARY_PATH (the lower layers' dynlib directories) is searched by leaf name, for any install name.
    return leaf in view.by_name, None


def _locate_windows(binary: str, name: str, view: StackView) -> bool:
    folded = name.casefold()
    if folded in view.by_name or folded in view.runtime or view.system.provides(folded):
        return True
    return _under_layer(posixpath.dirname(view.fold(binary)), folded) in view.files


def _allowed(name: str, view: StackView) -> bool:
    return view.fold(name) in view.allowed or view.fold(posixpath.basename(name)) in view.allowed


def missing_libraries(binaries: Mapping[str, BinaryNeeds], view: StackView) -> dict[str, tuple[list[str], list[str]]]:
    """{binary: (missing, allowed)}: what each binary of a layer needs that nothing provides; what of it is allowed.

    On Linux and macOS a library found in the layer is loaded by the binary that needs it, and the
    search paths that serve the loader's own needs serve it too: glibc searches the `RPATH`s of
    the whole chain of loaders (not a `RUNPATH`, which serves its own binary only), dyld the
    `LC_RPATH`s of the chain (each expanded against the image that holds it). That is how the
    libraries that auditwheel and delocate bundle find each other: the extension module names
    the directory, the libraries in it name none. The chains are followed to a fixed point.
    """
    inherited: dict[str, set[str]] = {path: set() for path in binaries}
    searched: dict[str, list[tuple[str, bool, str | None]]] = {}
    for _ in range(len(binaries) + 1):
        changed = False
        for path in sorted(binaries):
            needs = binaries[path]
            own = _directories(path, needs, view.os)
            chain = [] if needs.runpath else sorted(inherited[path])
            passed_on = set(inherited[path]) | (set() if needs.runpath else set(own))
            results = []
            for name in needs.needed:
                if view.os == "linux":
                    found, where = _locate_linux(name, own + chain, view)
                elif view.os == "macos":
                    found, where = _locate_macos(path, name, own + chain, view)
                else:
                    found, where = _locate_windows(path, name, view), None
                results.append((name, found, where))
                if where in inherited and not passed_on <= inherited[where]:
                    inherited[where] |= passed_on
                    changed = True
            searched[path] = results
        if not changed:
            break
    report = {}
    for path, results in searched.items():
        lost = [name for name, found, _ in results if not found]
        report[path] = ([n for n in lost if not _allowed(n, view)], [n for n in lost if _allowed(n, view)])
    return report


def windows_dll_names(files: frozenset[str]) -> set[str]:
    """The DLL names (casefolded) of a Windows layer, each found by name from the whole stack (see the module doc)."""
    return {path.rpartition("/")[2] for path in files if path.endswith(".dll")}
