"""`stack-metadata`: the metadata JSON of several layers combined into one file."""

from __future__ import annotations

import argparse
from pathlib import Path

from venvstacks_tool.core.cli import add_repeatable, subcommand_parser
from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.core.fsutil import json_bytes, write_bytes_atomic
from venvstacks_tool.core.protocol import read_metadata


def build_parser() -> argparse.ArgumentParser:
    """The `stack-metadata` command line."""
    parser = subcommand_parser("stack-metadata", "Combine the stack's layer metadata into one JSON file.")
    add_repeatable(
        parser, "--layer-metadata", "layer_metadata", "PATH", "a layer's metadata JSON (repeatable)", type=Path
    )
    parser.add_argument("--output", type=Path, required=True, help="the combined JSON to write")
    return parser


def combine(paths: list[Path]) -> dict[str, object]:
    """{"layers": {layer_name: metadata}} from the layers' metadata files; names must be unique."""
    layers: dict[str, object] = {}
    for path in paths:
        metadata = read_metadata(path)
        name = metadata["layer_name"]
        if name in layers:
            raise VenvstacksError(f"two layers are named '{name}' ({path})")
        layers[name] = metadata
    return {"layers": dict(sorted(layers.items()))}


def main(argv: list[str]) -> int:
    """Writes the combined metadata."""
    args = build_parser().parse_args(argv)
    write_bytes_atomic(args.output, json_bytes(combine(args.layer_metadata)))
    return 0
