"""Command-line entry: `venvstacks_tool SUBCOMMAND [ARGS...]`.

Each subcommand lives in its own module with a `main(argv) -> int`; modules are imported lazily
so an action that packs an archive does not pay for importing `requests`.
"""

from __future__ import annotations

import importlib
import sys

from venvstacks_tool.errors import VenvstacksError

# Subcommand name -> module that implements it (each module defines `main(argv) -> int`).
SUBCOMMANDS: dict[str, str] = {
    "pack-runtime": "venvstacks_tool.runtime_layer",
    "pbs-table": "venvstacks_tool.pbs_table",
}


def main(argv: list[str]) -> int:
    """Run the subcommand named by `argv[0]` with the remaining arguments."""
    if not argv or argv[0] not in SUBCOMMANDS:
        known = ", ".join(sorted(SUBCOMMANDS))
        print(f"usage: venvstacks_tool SUBCOMMAND [ARGS...]; subcommands: {known}", file=sys.stderr)
        return 2
    module = importlib.import_module(SUBCOMMANDS[argv[0]])
    try:
        return int(module.main(argv[1:]))
    except VenvstacksError as error:
        print(f"venvstacks: error: {error}", file=sys.stderr)
        return 1
