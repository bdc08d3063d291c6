"""venvstacks' published layer metadata: the JSON a venvstacks deployer reads beside each archive.

venvstacks 0.8 publishes, per layer, `__venvstacks__/<platform>/env_metadata/<layer>.json` in a
documented schema (its docs/file-formats.rst, "Published layer metadata"). The rules write the
same file in the same place below the layer's package (docs/migrating-from-venvstacks.md), from what
the build knows; it sits beside this project's own `NAME.json`, which deploy reads and keeps its
schema. Everything here is a pure function of the arguments: no clock, no counter of earlier
builds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.core.launch_module import SupportModule
from venvstacks_tool.core.platforms import TargetPlatform
from venvstacks_tool.core.protocol import ArchiveRecord

# The folder venvstacks publishes metadata into, beside the archives; the rules declare
# `__venvstacks__/<TargetPlatform.venvstacks_name>/env_metadata/<target name>.json`
# (private/build/layer.bzl and runtime_layer.bzl `published_metadata_path`; keep in sync).
PUBLISHED_METADATA_DIR = "__venvstacks__"

# venvstacks counts its rebuilds of an archive; here an archive is a pure function of its inputs,
# so every build is the first of its inputs (the archive's sha256 tells builds apart).
ARCHIVE_BUILD = 1
# Lock versions count the relocks of a versioned layer (lock/lock_version.py); venvstacks reports 1
# for an unversioned layer.
UNVERSIONED_LOCK_VERSION = 1


def locked_at(epoch: int) -> str:
    """The ISO 8601 UTC time venvstacks writes, from seconds since the epoch (`2025-08-27T00:00:00+00:00`)."""
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat()


def published_metadata(
    *,
    record: ArchiveRecord,
    kind: str,
    requirements_hash: str,
    locked_at_epoch: int,
    runtime_layer: str,
    python_version: str,
    platform: TargetPlatform,
    required_layers: list[str],
    launch_module: str = "",
    launch_module_hash: str | None = None,
    support_modules: Sequence[SupportModule] = (),
    lock_version: int | None = None,
) -> dict[str, object]:
    """A layer's metadata in venvstacks' published schema (the fields of an archived layer).

    `install_target` is the deployed name the record holds; for a versioned layer (`lock_version`
    given) that is `NAME@N` and `layer_name` is NAME, as venvstacks writes them, else both are the
    layer name and `lock_version` is 1. `runtime_layer` is the runtime's install target,
    `required_layers` the frameworks' below in sys.path order (a runtime has none).
    `bound_to_implementation` is venvstacks' rule: a runtime is its implementation; a venv on
    Windows holds copies of the runtime's launcher, elsewhere only links to it.
    `support_modules` (core/launch_module.py, sorted by name) become `app_support_modules`,
    written only when there are some, as venvstacks writes it.
    """
    if not requirements_hash.startswith("sha256:"):
        raise VenvstacksError(f"layer {record.layer_name!r}: requirements hash {requirements_hash!r} is not sha256:HEX")
    layer_name = record.layer_name
    if lock_version is not None:
        suffix = f"@{lock_version}"
        if lock_version < 1 or not layer_name.endswith(suffix) or layer_name == suffix:
            raise VenvstacksError(f"layer {layer_name!r}: a layer of lock version {lock_version} is named NAME{suffix}")
        layer_name = layer_name.removesuffix(suffix)
    metadata: dict[str, object] = {
        "archive_build": ARCHIVE_BUILD,
        "archive_hashes": {"sha256": record.sha256},
        "archive_name": record.file,
        "archive_size": record.size,
        "bound_to_implementation": kind == "runtime" or platform.os == "windows",
        "install_target": record.layer_name,
        "layer_name": layer_name,
        "lock_version": UNVERSIONED_LOCK_VERSION if lock_version is None else lock_version,
        "locked_at": locked_at(locked_at_epoch),
        "python_implementation": f"cpython@{python_version}",
        "requirements_hash": requirements_hash,
        "runtime_layer": runtime_layer,
        "target_platform": platform.venvstacks_name,
    }
    if kind != "runtime":
        metadata["required_layers"] = list(required_layers)
    if launch_module:
        metadata["app_launch_module"] = launch_module
        if launch_module_hash is not None:
            metadata["app_launch_module_hash"] = launch_module_hash
        if support_modules:
            metadata["app_support_modules"] = [module.as_json() for module in support_modules]
    return metadata


# The stack summary venvstacks publishes beside `env_metadata/` (its BuildEnvironment's
# METADATA_MANIFEST): every layer's published metadata under its category, in stack order.
# `layer_stack` declares `__venvstacks__/<platform>/venvstacks.json` (private/build/stack.bzl;
# keep in sync).
SUMMARY_NAME = "venvstacks.json"
# venvstacks' LayerCategory of each layer kind, in the order its summary lists them.
CATEGORIES = {"runtime": "runtimes", "framework": "frameworks", "application": "applications"}


def published_summary(layers: Sequence[tuple[str, Mapping[str, Any]]]) -> dict[str, object]:
    """venvstacks' stack summary, `{"layers": {"runtimes": [...], "frameworks": [...], "applications": [...]}}`.

    `layers` holds (kind, published metadata) in stack order (each layer after those it needs),
    kept within each category, as venvstacks keeps its specification's order. All layers must
    target one platform (venvstacks publishes one summary per platform) and name one
    `install_target` each.
    """
    summary: dict[str, list[Mapping[str, object]]] = {category: [] for category in CATEGORIES.values()}
    platforms: dict[object, str] = {}
    seen: set[object] = set()
    for kind, metadata in layers:
        name = metadata.get("install_target")
        if kind not in CATEGORIES:
            raise VenvstacksError(f"layer {name!r}: unknown layer kind {kind!r} (one of {', '.join(CATEGORIES)})")
        if name in seen:
            raise VenvstacksError(f"two layers of the stack deploy as {name!r}")
        seen.add(name)
        platforms.setdefault(metadata.get("target_platform"), str(name))
        summary[CATEGORIES[kind]].append(metadata)
    if len(platforms) > 1:
        found = ", ".join(f"{platform} ({layer})" for platform, layer in platforms.items())
        raise VenvstacksError(f"the stack's layers target more than one platform: {found}")
    return {"layers": summary}
