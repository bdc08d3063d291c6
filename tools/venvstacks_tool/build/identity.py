"""What a framework or application layer is: the arguments `build-layer` and `layer-metadata` share.

Parsed once from the command line into a `LayerIdentity`; the functions below the parsers take
that, never the raw `argparse.Namespace`.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass

from venvstacks_tool.core.archive import ARCHIVE_FORMATS
from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.core.platforms import TargetPlatform, by_triple
from venvstacks_tool.core.protocol import LAYER_KINDS, LAYER_NAME_MAX_LENGTH, PYTHON_VERSION_RE, is_layer_name

_MODULE_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")


@dataclass(frozen=True)
class LayerIdentity:
    """A layer's name, kind, target and archive format, as its metadata records them."""

    name: str
    kind: str
    python_version: str  # the target runtime's full version, e.g. "3.12.7"
    xy: str  # e.g. "3.12"
    platform: TargetPlatform
    launch_module: str  # "" for a framework
    archive_format: str


def add_identity_arguments(parser: argparse.ArgumentParser) -> None:
    """Add `--layer-name`, `--layer-kind`, `--python-version`, `--platform`, `--launch-module`, `--archive-format`."""
    parser.add_argument("--layer-name", required=True, help="layer (and deployed directory) name")
    parser.add_argument("--layer-kind", required=True, choices=LAYER_KINDS)
    parser.add_argument("--python-version", required=True, help="the target runtime's full version, e.g. 3.12.7")
    parser.add_argument("--platform", required=True, help="target triple, e.g. x86_64-unknown-linux-gnu")
    parser.add_argument("--launch-module", default="", help="module run with `python -m` (application layers)")
    parser.add_argument("--archive-format", required=True, choices=ARCHIVE_FORMATS)


def check_layer_name(name: str, what: str, layer: str) -> None:
    """Fail naming `layer` unless `name` (what the argument is, for the message) is a valid layer name."""
    if not is_layer_name(name):
        raise VenvstacksError(
            f"layer {layer!r}: {what} {name!r} must be 1 to {LAYER_NAME_MAX_LENGTH} letters, digits, '_', '.',"
            " '-' and '@', not starting with '.', '-' or '@'"
        )


def identity_from_args(args: argparse.Namespace) -> LayerIdentity:
    """Validate the shared arguments and return them typed."""
    layer: str = args.layer_name
    check_layer_name(layer, "the layer name", layer)
    version = PYTHON_VERSION_RE.fullmatch(args.python_version)
    if version is None:
        raise VenvstacksError(f"layer {layer!r}: --python-version {args.python_version!r} is not a full X.Y.Z version")
    try:
        platform = by_triple(args.platform)
    except VenvstacksError as error:
        raise VenvstacksError(f"layer {layer!r}: --platform: {error}") from None
    launch_module: str = args.launch_module
    if args.layer_kind == "application":
        if not launch_module:
            raise VenvstacksError(f"application layer {layer!r}: --launch-module is required")
    elif launch_module:
        raise VenvstacksError(f"framework layer {layer!r}: --launch-module is only for application layers")
    if launch_module and not _MODULE_RE.fullmatch(launch_module):
        raise VenvstacksError(f"layer {layer!r}: --launch-module {launch_module!r} is not a dotted module name")
    return LayerIdentity(
        name=layer,
        kind=args.layer_kind,
        python_version=args.python_version,
        xy=f"{version.group(1)}.{version.group(2)}",
        platform=platform,
        launch_module=launch_module,
        archive_format=args.archive_format,
    )
