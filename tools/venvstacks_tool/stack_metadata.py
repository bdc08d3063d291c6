"""`stack-metadata`: the metadata JSON of several layers combined into one file."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from venvstacks_tool.cli import add_repeatable, subcommand_parser
from venvstacks_tool.errors import VenvstacksError
from venvstacks_tool.fsutil import write_bytes_atomic


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
        metadata = json.loads(path.read_text(encoding="utf-8"))
        name = metadata["layer_name"]
        if name in layers:
            raise VenvstacksError(f"two layers are named '{name}' ({path})")
        layers[name] = metadata
    return {"layers": dict(sorted(layers.items()))}


def main(argv: list[str]) -> int:
    """Writes the combined metadata."""
    args = build_parser().parse_args(argv)
    text = json.dumps(combine(args.layer_metadata), indent=2, sort_keys=True) + "\n"
    write_bytes_atomic(args.output, text.encode("utf-8"))
    return 0
