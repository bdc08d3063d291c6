"""`bazel run @rules_venvstacks//tools:import_venvstacks -- SPEC [ARGS]`: the importer in the user's workspace.

`bazel run` starts a program in its runfiles directory; Bazel names the user's folders in
BUILD_WORKING_DIRECTORY (where the command was typed: relative paths are relative to it) and
BUILD_WORKSPACE_DIRECTORY (the workspace root). This runs `import-venvstacks` (import_venvstacks.py,
its arguments unchanged) from the working directory and, without `--package`, gives it the
output folder's package, so the lock labels it writes are right wherever the command is typed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from venvstacks_maint import import_venvstacks
from venvstacks_tool.core.cli import dispatch
from venvstacks_tool.core.errors import VenvstacksError

WORKING_DIRECTORY = "BUILD_WORKING_DIRECTORY"
WORKSPACE_DIRECTORY = "BUILD_WORKSPACE_DIRECTORY"


def package_of(folder: Path, workspace: Path) -> str:
    """The Bazel package of `folder` (absolute) in the workspace at `workspace`; an error outside it."""
    try:
        package = folder.resolve().relative_to(workspace.resolve()).as_posix()
    except ValueError:
        raise VenvstacksError(
            f"{folder} is outside the workspace {workspace}: give --output-dir inside it "
            "(the BUILD file names its locks by their package)"
        ) from None
    return "" if package == "." else package


def workspace_request(argv: list[str], environ: Mapping[str, str]) -> tuple[Path, list[str]]:
    """The folder to run the importer in and its arguments, `--package` filled in from the workspace."""
    if WORKSPACE_DIRECTORY not in environ:
        raise VenvstacksError(f"{WORKSPACE_DIRECTORY} is not set: start this with `bazel run`")
    workspace = Path(environ[WORKSPACE_DIRECTORY])
    working = Path(environ.get(WORKING_DIRECTORY, workspace))
    args = import_venvstacks.build_parser().parse_args(argv)
    output = working / (args.output_dir or args.spec.parent)
    package = package_of(output, workspace)
    if "--package" in argv or any(arg.startswith("--package=") for arg in argv):
        if args.package.strip("/") != package:
            raise VenvstacksError(f"--package {args.package!r}: the output folder {output} is package {package!r}")
        return working, argv
    return working, [*argv, "--package", package]


def run(argv: list[str]) -> int:
    """Run `import-venvstacks` as `bazel run` asked (the process's working directory changes)."""
    working, arguments = workspace_request(argv, os.environ)
    os.chdir(working)
    return import_venvstacks.main(arguments)


def main(argv: list[str]) -> int:
    """The entry of tools/bin/import_venvstacks.py (`import-venvstacks ARGS`): errors as one line, as the tool's."""
    return dispatch(argv, {"import-venvstacks": "venvstacks_maint.bazel_run:run"}, "import_venvstacks")
