"""`stack-metadata`: the metadata JSON of several layers combined into one file.

With `--published-summary` it also writes venvstacks' stack summary (`venvstacks.json`, see
build/published_metadata.py) from the layers' published metadata files.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from venvstacks_tool.build.published_metadata import published_summary
from venvstacks_tool.core.cli import add_repeatable, split_pair, subcommand_parser
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
    add_repeatable(
        parser,
        "--published-layer",
        "published_layers",
        "KIND=PATH",
        "a layer's kind and venvstacks' published metadata of it, in stack order (repeatable)",
    )
    parser.add_argument("--published-summary", type=Path, help="write venvstacks' stack summary here")
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


def summarize(published_layers: list[str]) -> dict[str, object]:
    """venvstacks' stack summary from `KIND=PATH` pairs of published metadata files, in stack order."""
    layers = []
    for value in published_layers:
        kind, path = split_pair(value, "--published-layer", "stack-metadata", "KIND=PATH")
        layers.append((kind, read_metadata(Path(path))))
    return published_summary(layers)


def main(argv: list[str]) -> int:
    """Writes the combined metadata, and venvstacks' summary when asked."""
    args = build_parser().parse_args(argv)
    if args.published_layers and args.published_summary is None:
        raise VenvstacksError("stack-metadata: --published-layer needs --published-summary")
    combined = json_bytes(combine(args.layer_metadata))
    summary = json_bytes(summarize(args.published_layers)) if args.published_summary else None
    write_bytes_atomic(args.output, combined)
    if summary is not None:
        write_bytes_atomic(args.published_summary, summary)
    return 0
