"""Command-line entry: `venvstacks_tool SUBCOMMAND [ARGS...]`.

Each subcommand lives in its own module with a `main(argv) -> int`, imported only when asked
for: a target's inputs hold `core` and its own phase's package only (tools/BUILD.bazel), so a
build action could not import the lock phase's modules, and does not pay for pip's start-up.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Any

from venvstacks_tool.core.errors import VenvstacksError

# Subcommand name -> "module" (whose `main(argv) -> int` implements it) or "module:function".
# Each phase's modules are only in the inputs of the targets that run that phase (tools/BUILD.bazel),
# so this table names modules by string and imports only the one asked for.
SUBCOMMANDS: dict[str, str] = {
    "build-layer": "venvstacks_tool.build.layer",
    "build-sdist": "venvstacks_tool.build.sdist_build",
    "check-libraries": "venvstacks_tool.build.loader_check",
    "check-lock": "venvstacks_tool.lock.lock_command:check_lock_main",
    "check-layer-stack": "venvstacks_tool.build.stack_checks",
    "deploy": "venvstacks_tool.deploy.deploy",
    "image": "venvstacks_tool.image.oci_layout",
    "image-layer": "venvstacks_tool.image.image_layer",
    "layer-metadata": "venvstacks_tool.build.layer_metadata",
    "lock": "venvstacks_tool.lock.lock_command",
    "lock-stack": "venvstacks_tool.lock.lock_stack",
    "lock-tool-tree": "venvstacks_tool.lock.tool_tree",
    "pack-runtime": "venvstacks_tool.build.runtime",
    "run-key": "venvstacks_tool.build.run_key",
    "run-prepare": "venvstacks_tool.deploy.run_cache",
    "stack-metadata": "venvstacks_tool.build.stack_metadata",
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


def split_pair(value: str, option: str, what: str, form: str = "NAME=VALUE") -> tuple[str, str]:
    """The two sides of an option's `LEFT=RIGHT` value; an error naming `what`, the option and `form` otherwise."""
    left, sep, right = value.partition("=")
    if not sep or not left or not right:
        raise VenvstacksError(f"{what}: {option} {value!r} is not of the form {form}")
    return left, right


def dispatch(argv: list[str], subcommands: dict[str, str], program: str) -> int:
    """Run the subcommand of `subcommands` named by `argv[0]` with the remaining arguments.

    A `VenvstacksError` becomes one line on stderr and exit status 1.
    """
    if not argv or argv[0] not in subcommands:
        known = ", ".join(sorted(subcommands))
        print(f"usage: {program} SUBCOMMAND [ARGS...]; subcommands: {known}", file=sys.stderr)
        return 2
    module_name, _, function_name = subcommands[argv[0]].partition(":")
    entry = getattr(importlib.import_module(module_name), function_name or "main")
    try:
        return int(entry(argv[1:]))
    except VenvstacksError as error:
        print(f"venvstacks: error: {error}", file=sys.stderr)
        return 1


def main(argv: list[str]) -> int:
    """Run the tool's subcommand named by `argv[0]` with the remaining arguments."""
    return dispatch(argv, SUBCOMMANDS, "venvstacks_tool")
