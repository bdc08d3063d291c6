"""What a layer puts on the paths of the layers above it: its top-level import names and shared libraries.

`build-layer` writes this beside the archive (`_NAME.contents.json`, sorted keys) from the tree
it packs, so that `check-layer-stack` (`build.stack_checks`) can compare a layer with the layers
below it without reading any archive: a few kilobytes per layer, which Bazel passes from the
lower layers' targets to a validation action of each upper layer.

For each top-level name of site-packages, the entry Python's path finder would import from that
directory, in its own order of preference: a package (`name/__init__.*`), an extension module,
a source module (`name.py`), a sourceless one (`name.pyc`), else a namespace-package portion (a
directory without `__init__`). A package whose `__init__.py` extends its own `__path__`
(`pkgutil.extend_path`, `pkg_resources.declare_namespace`) counts as a namespace portion: such
packages merge across sys.path entries like PEP 420 ones. Each entry names its file and the
distribution that installed it (from the `RECORD`s), or the first-party code it comes from (the
application's `srcs`, or the library of `deps` that holds it) and says whether it is first-party.

First-party code and third-party packages never share a top-level name: within one layer
`first_party_clash` refuses it before the first-party files are copied (the locked package's
files would be overwritten, or the two merged into one directory), and across layers the stack
check makes it an error (`build.stack_checks`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.core.fsutil import json_bytes, write_bytes_atomic
from venvstacks_tool.core.protocol import STACK_MODULE_NAME

# Entry kinds, in the order the path finder prefers them within one directory.
KINDS = ("package", "extension", "module", "sourceless", "namespace")
# What a srcs file is owned by, in messages.
APPLICATION_SRCS = "the application's srcs"
# An `__init__.py` holding one of these extends its `__path__` across sys.path entries.
_NAMESPACE_MARKERS = (b"extend_path", b"declare_namespace")
_NAMESPACE_SCAN_BYTES = 64 * 1024


@dataclass(frozen=True)
class NameEntry:
    """The file that a top-level import name resolves to in one layer's site-packages."""

    kind: str  # one of KINDS
    path: str  # below the deploy directory: "<layer>/lib/python3.12/site-packages/name/__init__.py"
    owner: str  # "<distribution> <version>", APPLICATION_SRCS, a `deps` library's label, or "" (not in any RECORD)
    first_party: bool = False  # from the layer's `srcs` or `deps`, not from a wheel

    def merges(self) -> bool:
        """Whether the entry is a namespace portion, which merges with the other layers' of its name."""
        return self.kind == "namespace"


@dataclass(frozen=True)
class LayerContents:
    """A layer's top-level import names and the shared libraries it links for the layers above."""

    layer_name: str
    lower_layers: tuple[str, ...]  # its frameworks, in sys.path order (what its own check covers)
    names: dict[str, NameEntry]
    dynlibs: dict[str, str]  # library name -> its file below the deploy directory

    def to_json(self) -> dict[str, Any]:
        return {
            "dynlibs": dict(sorted(self.dynlibs.items())),
            "layer_name": self.layer_name,
            "lower_layers": list(self.lower_layers),
            "names": {
                name: {"first_party": entry.first_party, "kind": entry.kind, "owner": entry.owner, "path": entry.path}
                for name, entry in sorted(self.names.items())
            },
        }


def _wheel_owners(site: Path) -> dict[str, str]:
    """{first path component below site-packages -> "<distribution> <version>"}, from every RECORD."""
    owners: dict[str, str] = {}
    for dist_info in sorted(site.glob("*.dist-info")):
        name, _, version = dist_info.name.removesuffix(".dist-info").partition("-")
        try:
            lines = (dist_info / "RECORD").read_text(encoding="utf-8").splitlines()
        except OSError:
            continue
        for line in lines:
            top = line.split(",", 1)[0].split("/", 1)[0]
            if top and top != ".." and not top.endswith(".dist-info"):
                owners.setdefault(top, f"{name} {version}")
    return owners


def import_name(path: str) -> str | None:
    """The top-level import name a path below site-packages belongs to (`pkg/x.py`, `mod.py`), or None."""
    first, sep, _ = path.partition("/")
    if sep:
        return first if first.isidentifier() else None
    stem, dot, extension = first.partition(".")
    if dot and stem.isidentifier() and extension.rpartition(".")[2] in ("py", "pyc", "so", "pyd"):
        return stem
    return None


def first_party_clash(site: Path, dests: list[str], owners: dict[str, str], layer: str) -> str | None:
    """The error for a first-party file whose top-level name a wheel of the layer installs, or None.

    `dests` are the first-party files' paths below site-packages, `owners` maps their first path
    component to the code they come from. Only two namespace portions (no `__init__` on either
    side) may share a name: they are one directory of the layer, which Python merges anyway.
    Checked before the first-party files are copied, so a locked package's file is never overwritten.
    """
    wheel_tops = {
        import_name(f"{top}/" if (site / top).is_dir() else top): (top, owner)
        for top, owner in sorted(_wheel_owners(site).items())
    }
    for dest in sorted(dests):
        name = import_name(dest)
        if name is None or name not in wheel_tops:
            continue
        top, dist = wheel_tops[name]
        first_party_namespace = "/" in dest and f"{name}/__init__.py" not in dests
        wheel_namespace = (site / top).is_dir() and not any((site / top).glob("__init__.*"))
        if first_party_namespace and wheel_namespace:
            continue
        entry = dest.split("/")[0]
        return (
            f"layer {layer!r}: the first-party {'package' if '/' in dest else 'module'} {name!r} ({entry!r}, from"
            f" {owners.get(entry, APPLICATION_SRCS)}) has the top-level name of the locked package {dist}"
            f" ({top!r}) of the same layer: one would overwrite or hide the other; rename the first-party"
            " module or drop the requirement"
        )
    return None


def _is_namespace_init(init: Path) -> bool:
    with open(init, "rb") as f:
        head = f.read(_NAMESPACE_SCAN_BYTES)
    return any(marker in head for marker in _NAMESPACE_MARKERS)


def _classify(site: Path, entry: str, extension_suffixes: tuple[str, ...]) -> tuple[str, str, str] | None:
    """(import name, kind, file below site) of one top-level entry of site-packages, or None."""
    path = site / entry
    if path.is_dir() and not path.is_symlink():
        if not entry.isidentifier():
            return None
        inits = sorted(child for child in os.listdir(path) if child.split(".")[0] == "__init__")
        if "__init__.py" in inits:
            kind = "namespace" if _is_namespace_init(path / "__init__.py") else "package"
            return entry, kind, f"{entry}/__init__.py"
        if inits:
            return entry, "package", f"{entry}/{inits[0]}"
        return entry, "namespace", f"{entry}/"
    for suffix in extension_suffixes:
        if entry.endswith(suffix) and entry[: -len(suffix)].isidentifier():
            return entry[: -len(suffix)], "extension", entry
    stem, dot, extension = entry.rpartition(".")
    if dot and stem.isidentifier() and extension in ("py", "pyc"):
        return stem, "module" if extension == "py" else "sourceless", entry
    return None


def scan_layer(
    layer_dir: Path,
    site_dir: str,
    extension_suffixes: tuple[str, ...],
    first_party: dict[str, str],
    dynlibs: dict[str, str],
    lower_layers: tuple[str, ...],
) -> LayerContents:
    """The contents of the layer built at `layer_dir` (its name is the directory's).

    `first_party` maps the first path components of the first-party files to the code they come
    from; `dynlibs` maps each linked library name to its file below the layer root.
    """
    layer = layer_dir.name
    site = layer_dir / site_dir
    owners = {**_wheel_owners(site), **first_party}
    names: dict[str, NameEntry] = {}
    for entry in sorted(os.listdir(site)) if site.is_dir() else []:
        found = _classify(site, entry, extension_suffixes)
        if found is None or found[0] == STACK_MODULE_NAME:
            continue
        name, kind, file = found
        known = names.get(name)
        if known is None or KINDS.index(kind) < KINDS.index(known.kind):
            names[name] = NameEntry(kind, f"{layer}/{site_dir}/{file}", owners.get(entry, ""), entry in first_party)
    located = {name: f"{layer}/{path}" for name, path in dynlibs.items()}
    return LayerContents(layer, lower_layers, names, located)


def write_contents(path: Path, contents: LayerContents) -> None:
    """Write the contents document (sorted keys, atomically)."""
    write_bytes_atomic(path, json_bytes(contents.to_json()))


def read_contents(path: Path, reader: str) -> LayerContents:
    """Read a contents document; errors name `reader`, the layer whose check reads it."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        names = {
            name: NameEntry(str(entry["kind"]), str(entry["path"]), str(entry["owner"]), bool(entry["first_party"]))
            for name, entry in document["names"].items()
        }
        return LayerContents(
            layer_name=str(document["layer_name"]),
            lower_layers=tuple(str(name) for name in document["lower_layers"]),
            names=names,
            dynlibs={str(name): str(file) for name, file in document["dynlibs"].items()},
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise VenvstacksError(f"layer {reader!r}: {str(path)!r} is not a layer contents file: {error}") from error
