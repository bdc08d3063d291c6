"""What every kind of layer shares: protocol paths, argument patterns and the metadata `archive` record.

`pack-runtime` (runtime_layer), `build-layer` (layer_build) and `deploy` import these instead of
each keeping a copy, so a layer name or a config path accepted by one is accepted by all.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from venvstacks_tool import postinstall_template
from venvstacks_tool.fsutil import sha256_file

# Where venvstacks' deployment protocol keeps a layer's config, relative to the layer root. The
# post-install script (copied verbatim into layers, so it cannot import the tool) owns the value.
LAYER_CONFIG_PATH = postinstall_template.LAYER_CONFIG_PATH
# The stacking file written into a layered environment's site-packages.
STACK_PTH_NAME = postinstall_template.STACK_PTH_NAME
# The post-install script's name at the root of a framework or application layer.
POSTINSTALL_NAME = "postinstall.py"

# A layer name is also the name of its deployed directory: no separators, no leading dot or dash.
LAYER_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
# A full CPython version, X.Y.Z, optionally a pre-release (3.13.0rc2).
PYTHON_VERSION_RE = re.compile(r"(\d+)\.(\d+)\.(\d+)(?:(?:a|b|rc)\d+)?")
# A hex sha256 as the tool writes it (lowercase).
SHA256_RE = re.compile(r"[0-9a-f]{64}")


def is_layer_name(name: str) -> bool:
    """Whether `name` is a valid layer (and deployed directory) name."""
    return LAYER_NAME_RE.fullmatch(name) is not None


def archive_record(path: Path, archive_format: str) -> dict[str, object]:
    """The `archive` entry of a layer's metadata JSON: file name, format, sha256 and size of `path`.

    `build-layer --required-layer-metadata` reads `sha256` back from it, and people and scripts
    read the rest: keep the field names stable.
    """
    return {
        "file": path.name,
        "format": archive_format,
        "sha256": sha256_file(path),
        "size": os.path.getsize(path),
    }
