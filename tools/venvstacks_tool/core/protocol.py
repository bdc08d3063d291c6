"""The layer protocol: every name, path and JSON document that layers, deploy and Bazel share.

One module owns the three JSON documents a layer has, their schema, how they are written and how
they are read back:

* the **layer config**, `share/venv/metadata/venvstacks_layer.json` inside the archive: venvstacks'
  deployment protocol (its post-install reads `python`, `base_python`, `site_dir`, `pylib_dirs`,
  `dynlib_dirs`, `py_version`), plus the layer's identity (`layer_name`, `kind`, `runtime_name`,
  `lower_layers`, `launch_module`);
* the **archive record**, `_NAME.archive.json` beside a framework or application archive:
  `{layer_name, archive: {file, format, sha256, size}}`, written by the archive action and read by
  the metadata actions above it (a runtime layer's metadata is its own record);
* the **metadata**, `NAME.json`: the record plus the layer's kind, lock hash, platform, Python
  version, launch module and the archive hashes of the layers it needs (`required_layers`).

Field names are read by people, scripts and the Starlark rules (rules_venvstacks/private/build/
layer.bzl passes the paths): keep them stable. The post-install script is copied verbatim into
layers and cannot import this package, so it owns LAYER_CONFIG_PATH, STACK_PTH_NAME and
STACK_MODULE_NAME and this module re-exports them.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from venvstacks_tool.core import postinstall_template
from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.core.fsutil import json_bytes, sha256_file, write_bytes_atomic

# Where venvstacks' deployment protocol keeps a layer's config, relative to the layer root.
LAYER_CONFIG_PATH = postinstall_template.LAYER_CONFIG_PATH
# The stacking file written into a layered environment's site-packages, and the module it imports.
STACK_PTH_NAME = postinstall_template.STACK_PTH_NAME
STACK_MODULE_NAME = postinstall_template.STACK_MODULE_NAME
# The post-install script's name at the root of a framework or application layer.
POSTINSTALL_NAME = "postinstall.py"
# Where a layer exposes its shared libraries to the layers above, relative to its root (venvstacks'
# places): on Linux and macOS a directory of relative links to the libraries its wheels ship,
# which the upper layers' `bin/python` wrapper puts on the library search path; on Windows the
# directory that conda-style wheels fill with DLLs, which the upper layers' stacking module hands
# to `os.add_dll_directory`.
POSIX_DYNLIB_DIR = "share/venv/dynlib"
WINDOWS_DYNLIB_DIR = "Library/bin"

# The layer kinds; the Starlark rules use the same strings (private/common/constants.bzl
# LAYER_KINDS; tests/unit/test_constants.py fails when they differ).
LAYER_KINDS: tuple[str, ...] = ("framework", "application")
# A layer name is also the name of its deployed directory: no separators, no leading dot, dash or
# '@', and short enough for every file system (255 bytes) with room for deploy's temporary
# prefixes. '@' is allowed after the first character, as venvstacks allows it: a versioned layer
# deploys as `NAME@N` (its install target), and a name may carry an external version (`layerF@1`).
# The Starlark rules check the same rule at analysis (private/common/names.bzl and constants.bzl
# LAYER_NAME_FIRST, LAYER_NAME_REST, LAYER_NAME_MAX_LENGTH; keep in sync).
LAYER_NAME_MAX_LENGTH = 100
LAYER_NAME_RE = re.compile(rf"[A-Za-z0-9_][A-Za-z0-9_.@-]{{0,{LAYER_NAME_MAX_LENGTH - 1}}}")
# A full CPython version, X.Y.Z, optionally a pre-release (3.13.0rc2): the one pattern of the tool.
# The Starlark rules check the same rule (private/common/versions.bzl `is_python_version`, with
# constants.bzl PYTHON_PRE_RELEASES); tests/golden/python_versions.txt holds the cases both agree on.
PYTHON_PRE_RELEASES: tuple[str, ...] = ("a", "b", "rc")
PYTHON_VERSION_RE = re.compile(rf"([0-9]+)\.([0-9]+)\.([0-9]+)(?:(?:{'|'.join(PYTHON_PRE_RELEASES)})[0-9]+)?")
# A hex sha256 as the tool writes it (lowercase).
SHA256_RE = re.compile(r"[0-9a-f]{64}")


def is_layer_name(name: str) -> bool:
    """Whether `name` is a valid layer (and deployed directory) name (at most LAYER_NAME_MAX_LENGTH characters)."""
    return LAYER_NAME_RE.fullmatch(name) is not None


def is_sha256(value: object) -> bool:
    """Whether `value` is a lowercase hex sha256."""
    return isinstance(value, str) and SHA256_RE.fullmatch(value) is not None


# --- layer config ----------------------------------------------------------------------------


def runtime_layer_config(layer: str, python_version: str, python: str, site_dir: str) -> dict[str, Any]:
    """The runtime layer's config: a runtime is its own base, with no lower layers."""
    return {
        "base_python": python,
        "dynlib_dirs": [],
        "install_target": layer,
        "kind": "runtime",
        "layer_name": layer,
        "py_version": python_version,
        "pylib_dirs": [],
        "python": python,
        "python_implementation": "cpython",
        "runtime_name": layer,
        "site_dir": site_dir,
    }


@dataclass(frozen=True)
class VenvLayerLayout:
    """Where a framework or application layer keeps its interpreter and packages (relative paths)."""

    python: str  # the layer's interpreter, e.g. "bin/python" or "Scripts/python.exe"
    site_dir: str  # e.g. "lib/python3.12/site-packages" or "Lib/site-packages"
    runtime_python: str  # the runtime's interpreter below its root, e.g. "bin/python3" or "python.exe"
    runtime_site_dir: str  # the runtime's site-packages below its root
    dynlib_dir: str  # where each layer exposes its shared libraries: POSIX_DYNLIB_DIR or WINDOWS_DYNLIB_DIR


def venv_layer_config(
    *,
    layer: str,
    kind: str,
    python_version: str,
    runtime_layer: str,
    lower_layers: list[str],
    layout: VenvLayerLayout,
    launch_module: str = "",
) -> dict[str, Any]:
    """A framework or application layer's config.

    `pylib_dirs` lists each lower layer's site-packages (frameworks in stack order, then the
    runtime's) relative to the layer root: the stacking module is made from it. `lower_layers`
    are the frameworks in sys.path order: the C3 linearization the Starlark rules derive
    (private/common/c3.bzl), each framework before the frameworks it sits on.

    `dynlib_dirs` lists each lower framework's shared-library directory, in the same order,
    whether or not that framework ships a library: the archive action sees no lower layer's
    output, and the interpreter wrapper and the stacking module skip a directory that does not
    exist once deployed. The runtime's is not listed: a runtime layer carries no wheels.
    """
    pylib_dirs = [f"../{name}/{layout.site_dir}" for name in lower_layers]
    pylib_dirs.append(f"../{runtime_layer}/{layout.runtime_site_dir}")
    config: dict[str, Any] = {
        "base_python": f"../{runtime_layer}/{layout.runtime_python}",
        "dynlib_dirs": [f"../{name}/{layout.dynlib_dir}" for name in lower_layers],
        "install_target": layer,
        "kind": kind,
        "layer_name": layer,
        "lower_layers": list(lower_layers),
        "py_version": python_version,
        "pylib_dirs": pylib_dirs,
        "python": layout.python,
        "python_implementation": "cpython",
        "runtime_name": runtime_layer,
        "site_dir": layout.site_dir,
    }
    if launch_module:
        config["launch_module"] = launch_module
    return config


def read_layer_config(layer_dir: Path, origin: str) -> dict[str, Any]:
    """The config of the layer unpacked at `layer_dir`; `origin` (an archive name) goes in errors."""
    path = layer_dir.joinpath(*LAYER_CONFIG_PATH.split("/"))
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise VenvstacksError(
            f"archive {origin!r}: cannot read the layer config {LAYER_CONFIG_PATH!r}: {error}"
        ) from error
    if not isinstance(config, dict) or "python" not in config or "base_python" not in config:
        raise VenvstacksError(f"archive {origin!r}: {LAYER_CONFIG_PATH!r} is not a venvstacks layer config")
    return config


# --- archive record --------------------------------------------------------------------------


@dataclass(frozen=True)
class ArchiveRecord:
    """A layer archive's identity: the layer it holds and the archive's file name, format, sha256 and size."""

    layer_name: str
    file: str
    format: str
    sha256: str
    size: int

    def archive_entry(self) -> dict[str, object]:
        """The `archive` object of the record and of the metadata."""
        return {"file": self.file, "format": self.format, "sha256": self.sha256, "size": self.size}


def record_archive(layer_name: str, path: Path, archive_format: str) -> ArchiveRecord:
    """The record of the archive just written at `path`."""
    return ArchiveRecord(layer_name, path.name, archive_format, sha256_file(path), os.path.getsize(path))


def write_archive_record(path: Path, record: ArchiveRecord) -> None:
    """Write the record as `{layer_name, archive: {...}}` (sorted keys)."""
    write_bytes_atomic(path, json_bytes({"archive": record.archive_entry(), "layer_name": record.layer_name}))


def read_archive_record(path: Path, layer: str) -> ArchiveRecord:
    """Read a record (or a metadata file, which holds one); errors name `layer`, the reader."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        archive = document["archive"]
        record = ArchiveRecord(
            layer_name=document["layer_name"],
            file=archive["file"],
            format=archive["format"],
            sha256=archive["sha256"],
            size=archive["size"],
        )
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise VenvstacksError(f"layer {layer!r}: {str(path)!r} is not an archive record: {error}") from error
    if not is_layer_name(record.layer_name) or not is_sha256(record.sha256) or not isinstance(record.size, int):
        raise VenvstacksError(f"layer {layer!r}: the archive record {str(path)!r} has no valid name, sha256 and size")
    return record


# --- metadata --------------------------------------------------------------------------------


def layer_metadata(
    *,
    record: ArchiveRecord,
    kind: str,
    lock_hash: str,
    platform: str,
    python_version: str,
    launch_module: str,
    required: list[ArchiveRecord],
    built_from_sdists: Mapping[str, str] | None = None,
) -> dict[str, object]:
    """A framework or application layer's metadata JSON.

    `built_from_sdists`: {package (wheel file name form) -> sha256 of its sdist} of the packages
    installed from wheels built from their sdists; recorded as `built_from_sdists` when there are any.
    """
    metadata: dict[str, object] = {
        "archive": record.archive_entry(),
        "kind": kind,
        "launch_module": launch_module or None,
        "layer_name": record.layer_name,
        "lock_hash": lock_hash,
        "platform": platform,
        "python_version": python_version,
        "required_layers": [{"archive_sha256": lower.sha256, "name": lower.layer_name} for lower in required],
    }
    if built_from_sdists:
        metadata["built_from_sdists"] = [
            {"name": name, "sdist_sha256": sha256} for name, sha256 in sorted(built_from_sdists.items())
        ]
    return metadata


def runtime_metadata(
    *,
    record: ArchiveRecord,
    pbs_release: str,
    platform: str,
    python_version: str,
    source_sha256: str,
    strip_prefix: str,
) -> dict[str, object]:
    """The runtime layer's metadata JSON (also its archive record).

    The source archive's sha256 says what the layer was built from. Its URLs do not: a mirror
    serves the same bytes, and URLs here would give each mirror's users other action keys.
    """
    return {
        "archive": record.archive_entry(),
        "kind": "runtime",
        "layer_name": record.layer_name,
        "pbs_release": pbs_release,
        "platform": platform,
        "python_version": python_version,
        "source": {"sha256": source_sha256, "strip_prefix": strip_prefix},
    }


def write_metadata(path: Path, metadata: dict[str, object]) -> None:
    """Write a metadata document (sorted keys, atomically)."""
    write_bytes_atomic(path, json_bytes(metadata))


def read_metadata(path: Path) -> dict[str, Any]:
    """A layer's metadata JSON; a file that is not one is an error naming it."""
    try:
        metadata = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise VenvstacksError(f"{str(path)!r} is not a layer metadata file: {error}") from error
    if not isinstance(metadata, dict) or not isinstance(metadata.get("layer_name"), str):
        raise VenvstacksError(f"{str(path)!r} is not a layer metadata file: no layer_name")
    return metadata
