"""Command-line entry: `venvstacks_tool SUBCOMMAND [ARGS...]`.

Each subcommand lives in its own module with a `main(argv) -> int`; modules are imported lazily
so an action that packs an archive does not pay for importing `requests`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Any

from venvstacks_tool.errors import VenvstacksError

# Subcommand name -> "module" (whose `main(argv) -> int` implements it) or "module:function".
SUBCOMMANDS: dict[str, str] = {
    "build-layer": "venvstacks_tool.layer_build",
    "check-lock": "venvstacks_tool.lock:check_lock_main",
    "deploy": "venvstacks_tool.deploy",
    "diff-archives": "venvstacks_tool.archive_diff",
    "layer-metadata": "venvstacks_tool.layer_build:metadata_main",
    "lock": "venvstacks_tool.lock",
    "pack-runtime": "venvstacks_tool.runtime_layer",
    "pbs-table": "venvstacks_tool.pbs_table",
    "stack-metadata": "venvstacks_tool.stack_metadata",
}


def subcommand_parser(subcommand: str, description: str) -> argparse.ArgumentParser:
    """An argument parser for `venvstacks_tool SUBCOMMAND` that reads `@paramfile` arguments (as Bazel passes them)."""
    return argparse.ArgumentParser(
        prog=f"venvstacks_tool {subcommand}", description=description, fromfile_prefix_chars="@"
    )


def add_repeatable(
    parser: argparse.ArgumentParser, flag: str, dest: str, metavar: str, help_text: str, type: Any = str
) -> None:
    """Add `flag`, which may be given any number of times; its values collect in a list `dest` ([] if never)."""
    parser.add_argument(flag, action="append", default=[], dest=dest, type=type, metavar=metavar, help=help_text)


def main(argv: list[str]) -> int:
    """Run the subcommand named by `argv[0]` with the remaining arguments."""
    if not argv or argv[0] not in SUBCOMMANDS:
        known = ", ".join(sorted(SUBCOMMANDS))
        print(f"usage: venvstacks_tool SUBCOMMAND [ARGS...]; subcommands: {known}", file=sys.stderr)
        return 2
    module_name, _, function_name = SUBCOMMANDS[argv[0]].partition(":")
    entry = getattr(importlib.import_module(module_name), function_name or "main")
    try:
        return int(entry(argv[1:]))
    except VenvstacksError as error:
        print(f"venvstacks: error: {error}", file=sys.stderr)
        return 1
