"""`check-layer-stack`: what one layer shadows, or is shadowed by, among the layers of its stack.

Runs as a Bazel validation action of each framework and application layer, on the contents
documents (`build.layer_contents`) of the layer and of the frameworks below it, in sys.path order;
it reads no archive. venvstacks lets layers shadow each other; so does this check, with a
warning, except where the result cannot work:

* **warning**: a top-level import name in two layers of the stack, unless every copy is a
  namespace-package portion (those merge): the first on sys.path that is not a namespace
  portion is imported, the others are hidden from every interpreter of the stack (two
  distributions providing one name, `opencv-python` and `opencv-python-headless` for one; a
  regular package such as `nvidia/__init__.py` split over two layers);
* **warning**: a shared library name linked by two layers: one process loads one library of a
  name, the first on the library search path;
* **error**: an application's `launch_module` whose top-level name is also a lower layer's
  module or package (a namespace portion on both sides excepted): the lower layer's code is
  hidden from the application, and which one `python -m` runs is a matter of path order;
* **error**: a top-level name in two layers of which one copy is first-party code (a layer's
  `srcs` or `deps`), namespace portions on every side excepted: first-party code must not hide
  a package the lock chose, nor be hidden by one, nor hide another layer's first-party code;
* **error**: an import name that a pip-hub wheel among the layer's `deps` installs (`--hub-import`)
  and that neither a locked package of the layer nor one of a layer below provides: the lock
  owns third-party packages, so the requirement must be added there.

A clash between two frameworks that both sit below one lower framework is reported by that
framework's own check, not again by every layer above it.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from venvstacks_tool.build.layer_contents import LayerContents, NameEntry, read_contents
from venvstacks_tool.core.cli import add_repeatable, subcommand_parser
from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.core.fsutil import write_bytes_atomic


@dataclass(frozen=True)
class StackCheck:
    """What `check-layer-stack` was asked to check, validated."""

    layer_name: str
    contents: Path
    lower_contents: tuple[Path, ...]
    launch_module: str
    hub_imports: tuple[tuple[str, str], ...]  # (import name, "//lib -> ... -> @hub//wheel")
    lock_target: str  # the layer's `.lock` target, named in the fix for a missing hub import
    output: Path


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of `check-layer-stack` (reads `@paramfile` arguments)."""
    parser = subcommand_parser("check-layer-stack", "Check a layer and the frameworks below it for shadowing.")
    parser.add_argument("--layer-name", required=True, help="the layer checked")
    parser.add_argument("--contents", required=True, type=Path, help="the layer's own contents document")
    add_repeatable(
        parser,
        "--lower-contents",
        "lower_contents",
        "PATH",
        "the contents document of a framework below, in sys.path order (repeatable)",
        type=Path,
    )
    parser.add_argument("--launch-module", default="", help="an application layer's launch module")
    add_repeatable(
        parser,
        "--hub-import",
        "hub_imports",
        "NAME=PATH",
        "an import name a pip-hub wheel of the layer's deps installs, with the labels leading to it (repeatable)",
    )
    parser.add_argument("--lock-target", default="", help="the layer's .lock target (for --hub-import errors)")
    parser.add_argument("--output", required=True, type=Path, help="the report to write (the warnings, if any)")
    return parser


def parse_request(argv: list[str]) -> StackCheck:
    """Parse `check-layer-stack`'s command line."""
    args = build_parser().parse_args(argv)
    hub_imports = []
    for value in args.hub_imports:
        name, sep, path = value.partition("=")
        if not sep or not name.isidentifier() or not path:
            raise VenvstacksError(f"layer {args.layer_name!r}: --hub-import {value!r} is not of the form NAME=PATH")
        hub_imports.append((name, path))
    if hub_imports and not args.lock_target:
        raise VenvstacksError(f"layer {args.layer_name!r}: --hub-import needs --lock-target")
    return StackCheck(
        args.layer_name,
        args.contents,
        tuple(args.lower_contents),
        args.launch_module,
        tuple(hub_imports),
        args.lock_target,
        args.output,
    )


def _describe(layer: str, entry: NameEntry) -> str:
    owner = f", from {entry.owner}" if entry.owner else ""
    return f"{entry.path!r} (layer {layer!r}{owner})"


def _reported_here(layers: list[str], stack: list[LayerContents]) -> bool:
    """Whether this layer's check reports a clash between `layers`, not a lower framework's own check.

    A clash that involves this layer is its own; one between frameworks is reported by the
    lowest layer whose stack holds them all.
    """
    if stack[0].layer_name in layers:
        return True
    return not any(set(layers) <= {lower.layer_name, *lower.lower_layers} for lower in stack[1:])


def launch_module_error(own: LayerContents, lowers: list[LayerContents], launch_module: str) -> str | None:
    """The error for a launch module whose top-level name a lower layer also provides, or None."""
    top = launch_module.split(".")[0]
    mine = own.names.get(top)
    if mine is None:
        return None  # build-layer already refused a launch module missing from the layer
    for lower in lowers:
        theirs = lower.names.get(top)
        if theirs is not None and not (mine.merges() and theirs.merges()):
            mine_text = _describe(own.layer_name, mine)
            return (
                f"application layer {own.layer_name!r}: launch_module {launch_module!r} is {mine_text},"
                f" and {_describe(lower.layer_name, theirs)} has the same top-level name {top!r}: one hides the other"
                " from the whole stack; rename the launch module"
            )
    return None


def _shadowed_names(stack: list[LayerContents]) -> Iterator[tuple[str, list[tuple[str, NameEntry]]]]:
    """(name, [(layer, entry)] in sys.path order) for each top-level name this layer's check reports.

    Names in one layer only, and names every copy of which is a namespace portion, are left out.
    """
    for name in sorted({name for layer in stack for name in layer.names}):
        holders = [(layer.layer_name, layer.names[name]) for layer in stack if name in layer.names]
        if len(holders) < 2 or all(entry.merges() for _, entry in holders):
            continue
        if _reported_here([layer for layer, _ in holders], stack):
            yield name, holders


def _hiding(name: str, holders: list[tuple[str, NameEntry]]) -> str:
    """'top-level name N: <the copy imported> hides <the others>'."""
    # The path finder imports the first copy that is not a namespace portion.
    winner = next((layer, entry) for layer, entry in holders if not entry.merges())
    hidden = ", ".join(_describe(layer, entry) for layer, entry in holders if (layer, entry) != winner)
    return f"top-level name {name!r}: {_describe(*winner)} hides {hidden}"


def first_party_errors(stack: list[LayerContents], reported: set[str] | None = None) -> list[str]:
    """One line per top-level name of `stack` (but those `reported`) that first-party code shares with another layer."""
    return [
        f"{_hiding(name, holders)}; first-party code must not share a top-level name with another layer:"
        " rename the first-party module (or drop the requirement that installs the other)"
        for name, holders in _shadowed_names(stack)
        if any(entry.first_party for _, entry in holders) and name not in (reported or set())
    ]


def missing_hub_imports(
    stack: list[LayerContents], hub_imports: tuple[tuple[str, str], ...], lock_target: str
) -> list[str]:
    """One line per hub-wheel import name that no locked package of `stack` provides."""
    provided = {name for layer in stack for name, entry in layer.names.items() if not entry.first_party}
    layer_target = lock_target.removesuffix(".lock")
    return [
        f"{path} needs the import name {name!r}, which no locked package of this layer or of a layer below"
        f" provides (third-party packages come from the lock); add the requirement to {layer_target}'s"
        f" requirements and run `bazel run {lock_target}`"
        for name, path in hub_imports
        if name not in provided
    ]


def shadowing_warnings(stack: list[LayerContents]) -> list[str]:
    """One line per shadowed name or shared library in `stack` (the layer, then its frameworks in order).

    A name that first-party code holds is an error instead (`first_party_errors`).
    """
    warnings = [
        f"{_hiding(name, holders)} in layer {stack[0].layer_name!r} and the layers above it"
        for name, holders in _shadowed_names(stack)
        if not any(entry.first_party for _, entry in holders)
    ]
    for library in sorted({library for layer in stack for library in layer.dynlibs}):
        files = [(layer.layer_name, layer.dynlibs[library]) for layer in stack if library in layer.dynlibs]
        if len(files) > 1 and _reported_here([layer for layer, _ in files], stack):
            listed = ", ".join(f"{path!r} (layer {layer!r})" for layer, path in files)
            warnings.append(
                f"shared library {library!r} is in several layers: {listed}; a process loads one library of a"
                " name, the first on the library search path, for every extension module that loads it by name"
            )
    return warnings


def check_stack(request: StackCheck) -> str:
    """Run the checks; raise VenvstacksError for an error, return the report (warnings) otherwise."""
    layer = request.layer_name
    own = read_contents(request.contents, layer)
    lowers = [read_contents(path, layer) for path in request.lower_contents]
    if own.layer_name != layer:
        raise VenvstacksError(f"layer {layer!r}: {str(request.contents)!r} is layer {own.layer_name!r}'s contents")
    errors = []
    launch_error = launch_module_error(own, lowers, request.launch_module) if request.launch_module else None
    if launch_error is not None:
        errors.append(launch_error)
    # The launch module's clash is already said, with its own fix.
    reported = {request.launch_module.split(".")[0]} if launch_error is not None else set()
    errors += [f"layer {layer!r}: {line}" for line in first_party_errors([own, *lowers], reported)]
    missing = missing_hub_imports([own, *lowers], request.hub_imports, request.lock_target)
    errors += [f"layer {layer!r}: {line}" for line in missing]
    if errors:
        raise VenvstacksError("\n".join(errors))
    return "".join(f"warning: layer {layer!r}: {line}\n" for line in shadowing_warnings([own, *lowers]))


def main(argv: list[str]) -> int:
    """Run `check-layer-stack` with `argv`; errors are raised as VenvstacksError."""
    request = parse_request(argv)
    report = check_stack(request)
    # The warnings go to stdout, which Bazel shows for the action, and into the report it keeps.
    print(report, end="")
    write_bytes_atomic(request.output, report.encode("utf-8"))
    return 0
