"""`lock-tool-tree`: the tool as the `.lock` launchers run it, its modules and wheels already byte-compiled.

A `bazel run` of a `.lock` target starts the tool once (`stack.lock`: once for the whole stack),
and used to compile what it imports on every run: the tool's own modules (a release has no
`__pycache__`, and the launchers write none) and `packaging`, imported from its wheel as a zip,
which `zipimport` compiles each time. That was about 0.1 s of a lock's start on a quiet machine
and several times that under load (docs/performance.md, run 13). This action, registered by
`lock_rules.bzl` with the execution runtime's interpreter, writes a directory laid out like
`tools/` (the entry script in `bin/`, `venvstacks_tool/`) with the pure-Python wheels the lock
process imports unpacked beside it, and every module compiled next to its source; the launcher
runs the entry script from there, so its directory, first on `sys.path`, provides all of them.

Deterministic: files copied and compiled in sorted order by one process, unchecked-hash pycs
(no timestamp; never compared with the source, which is the same bytes anyway), each code
object's file name relative to the tree. Build actions never see the tree: the stale-lock
validation keeps the sources and the zips, so no layer's action key depends on it.
"""

from __future__ import annotations

import argparse
import importlib.util
import py_compile
import shutil
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from venvstacks_tool.core.cli import add_repeatable, split_pair, subcommand_parser
from venvstacks_tool.core.errors import VenvstacksError


@dataclass(frozen=True)
class TreeRequest:
    """Where the tree goes, the files copied into it ({path in the tree: source}) and the wheels unpacked into it."""

    output: Path
    sources: tuple[tuple[str, Path], ...]
    wheels: tuple[Path, ...]


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of `lock-tool-tree` (reads `@paramfile` arguments)."""
    parser = subcommand_parser("lock-tool-tree", "Write the lock launchers' byte-compiled tool tree.")
    parser.add_argument("--output", required=True, type=Path, help="the tree to write (a new directory)")
    add_repeatable(parser, "--source", "sources", "TREE_PATH=FILE", "a file copied into the tree; repeatable")
    add_repeatable(parser, "--wheel", "wheels", "WHEEL", "a pure-Python wheel unpacked into the tree; repeatable")
    return parser


def parse_request(argv: Sequence[str]) -> TreeRequest:
    """The `lock-tool-tree` command line as a TreeRequest."""
    args = build_parser().parse_args(list(argv))
    sources = [split_pair(value, "--source", "lock-tool-tree", "TREE_PATH=FILE") for value in args.sources]
    return TreeRequest(
        output=args.output,
        sources=tuple(sorted((_tree_path(path, path), Path(file)) for path, file in sources)),
        wheels=tuple(sorted(Path(wheel) for wheel in args.wheels)),
    )


def _tree_path(name: str, origin: str) -> str:
    """`name` as a relative POSIX path inside the tree; one that could leave it is an error naming `origin`."""
    path = PurePosixPath(name)
    if path.is_absolute() or not path.parts or ".." in path.parts:
        raise VenvstacksError(f"lock-tool-tree: {origin!r} is not a relative path inside the tree")
    return path.as_posix()


def build_tree(request: TreeRequest) -> list[str]:
    """Write the tree; return the tree paths of the modules compiled, sorted."""
    written: set[str] = set()
    for name, source in request.sources:
        target = request.output / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        written.add(name)
    for wheel in request.wheels:
        with zipfile.ZipFile(wheel) as archive:
            for member in sorted(archive.namelist()):
                if member.endswith("/"):
                    continue
                name = _tree_path(member, f"{wheel.name}: {member}")
                if name in written:
                    raise VenvstacksError(f"lock-tool-tree: {wheel.name} has {name}, which the tree already holds")
                target = request.output / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(archive.read(member))
                written.add(name)
    modules = sorted(name for name in written if name.endswith(".py"))
    for name in modules:
        source = request.output / name
        try:
            py_compile.compile(
                str(source),
                cfile=importlib.util.cache_from_source(str(source)),
                dfile=name,
                doraise=True,
                invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
            )
        except py_compile.PyCompileError as error:
            raise VenvstacksError(f"lock-tool-tree: cannot compile {name}: {error.msg}") from error
    return modules


def main(argv: list[str]) -> int:
    """Run `lock-tool-tree` with `argv`."""
    build_tree(parse_request(argv))
    return 0
