"""`lock` and `check-lock`: resolve a layer into one lock for all its target platforms; check it is fresh.

`lock` runs through `bazel run //stacks:<layer>.lock` on the execution platform's interpreter
(the host's), whose X.Y must be the target runtime's X.Y; markers are evaluated for each target
platform anyway, never for the host:

1. parses the arguments once into a `LockRequest`, reads the requirements (inline and
   requirements.in files, with line numbers for errors) and the locks of the layers below, which
   must cover the same platforms; fails early, naming both layers and the package, when a
   top-level requirement excludes a version a lower layer pins on a platform it applies to;
2. resolves with `resolve.resolve`: pip's own resolver (or uv's with `--resolver uv`: one
   `uv pip compile` per platform, `uv_resolver`), binary-only, once per target platform in
   a child process whose marker environment is the target's, with the lower layers' pins of that
   platform as constraints and the current lock's versions preferred (unless `--upgrade`); the
   hash of every wheel comes from the index, no wheel is downloaded, and the host's pip
   configuration is ignored;
3. writes the lock (`pylock`) and a requirements.txt with `--hash` lines for people into the
   source tree, atomically. A package a lower layer installs on a platform is `provided` there,
   not installed again; local find-links wheels are recorded by a `path` relative to the lock
   (refused outside the workspace); no URL written carries credentials.

`check-lock` (a `bazel test`, no network) recomputes `inputs_hash` from the staged inputs and
compares it with the lock's `inputs-hash`; it also fails when a lower lock lacks one of the layer's platforms,
and, for a versioned application, when its launch module's hash is not the lock's
`launch-module-hash` (lock/lock_version.py).
The same command is each layer's stale-lock validation action at build time (`--report`, with
`--stale warn` unless //settings:stale_lock is `error`): one definition of fresh for both.

`cli` maps `check-lock` to `check_lock_main` here and `lock` to `main`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import os
import re
import sys
import tempfile
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from venvstacks_tool.core.cli import add_repeatable, split_pair, subcommand_parser
from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.core.fsutil import write_bytes_atomic
from venvstacks_tool.core.launch_module import SupportModule, module_hash, support_modules
from venvstacks_tool.core.platforms import (
    DEFAULT_FLOORS,
    TargetPlatform,
    WheelFloors,
    by_triple,
    parse_floor,
    platforms_problem,
)
from venvstacks_tool.core.project_names import normalize_name
from venvstacks_tool.core.protocol import LAYER_KINDS, PYTHON_VERSION_RE
from venvstacks_tool.lock import lock_version, pylock, resolve, sdists, uv_resolver
from venvstacks_tool.lock.index_options import DEFAULT_INDEX_URL, IndexOptions
from venvstacks_tool.lock.named_indexes import NO_NAMED_INDEXES, NamedIndexes
from venvstacks_tool.lock.results import ResolvedWheel
from venvstacks_tool.lock.urls import file_url_path, strip_credentials

if TYPE_CHECKING:
    from packaging.requirements import Requirement

# The resolvers `lock` can run (`--resolver`); //settings:resolver chooses one for `.lock` targets.
RESOLVERS = ("pip", "uv")
# Bump when what `inputs_hash` covers changes, so every lock reads as stale once.
# 2: the Python X.Y instead of the full version, the sorted platforms instead of one.
_INPUTS_SCHEMA = "rules_venvstacks.lock-inputs.2"


# --- requests --------------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerInputs:
    """What `lock` and `check-lock` share: everything `inputs_hash` covers, as given on the command line.

    `platforms` are the target triples, sorted and checked (known, no duplicates);
    `python_version` is the target runtime's full version (`3.11.7`), used for markers.
    `versioned`: the lock carries a lock version (lock/lock_version.py); not among the inputs
    `inputs_hash` covers, but a lock that does not fit it is stale all the same.
    `launch_module` and `app_module_files` ({destination below site-packages: file}, the
    layer's own files, `srcs` and first-party `deps`): a versioned application's lock records the
    hashes of its launch module and of its support modules (the other top-level modules of those
    files), so a change of any of them bumps the lock version as venvstacks bumps it; also not in
    `inputs_hash`.
    """

    layer_name: str
    layer_kind: str
    python_version: str
    platforms: tuple[str, ...]
    requirements: tuple[str, ...]
    requirements_in: tuple[Path, ...]
    lower_locks: tuple[tuple[str, Path], ...]
    index_url: str
    extra_index_urls: tuple[str, ...]
    find_links: tuple[str, ...]
    lock_target: str
    floors: WheelFloors = DEFAULT_FLOORS
    named_indexes: NamedIndexes = NO_NAMED_INDEXES
    versioned: bool = False
    build_from_sdist: tuple[str, ...] = ()
    launch_module: str = ""
    app_module_files: tuple[tuple[str, Path], ...] = ()

    @property
    def target_platforms(self) -> tuple[TargetPlatform, ...]:
        """The TargetPlatform of each triple, in `platforms` order."""
        return tuple(by_triple(triple) for triple in self.platforms)

    @property
    def launch_module_hash(self) -> str | None:
        """What the lock records of the launch module: its hash for a versioned application, else None.

        None too when the module is none of the layer's own files (it comes from a wheel), as the
        published metadata then leaves `app_launch_module_hash` out.
        """
        if not self._records_modules:
            return None
        return module_hash(self.launch_module.partition(".")[0], dict(self.app_module_files))

    @property
    def support_modules(self) -> tuple[SupportModule, ...] | None:
        """What the lock records of the support modules: a versioned application's (maybe none), else None."""
        if not self._records_modules:
            return None
        return support_modules(self.launch_module, dict(self.app_module_files), layer=self.layer_name)

    @property
    def _records_modules(self) -> bool:
        """Whether the lock records module hashes: only a versioned application's does."""
        return self.versioned and self.layer_kind == "application" and bool(self.launch_module)

    @property
    def hint(self) -> str:
        """The command that re-locks this layer, for messages."""
        return f"`bazel run {self.lock_target or self.layer_name + '.lock'}`"


@dataclass(frozen=True)
class LockRequest:
    """The arguments of `lock`: the layer's inputs and where to write its lock.

    `output_lock` and `output_requirements` are relative to `workspace_dir` (None: take
    $BUILD_WORKSPACE_DIRECTORY, which `bazel run` sets); `upgrade` re-resolves from scratch.
    `resolver` is `pip` or `uv` (then `uv` is the binary); both write the same lock, so the
    choice is not among the inputs a lock is fresh against. `uv_cache_dir` is a uv cache shared
    with the other layers a `stack.lock` locks (None: a fresh one for this layer).
    """

    inputs: LayerInputs
    workspace_dir: Path | None
    output_lock: str
    output_requirements: str
    upgrade: bool
    resolver: str = "pip"
    uv: Path | None = None
    uv_cache_dir: Path | None = None


# What `check-lock` does with a stale lock (`--stale`): fail (the `.lock_test`s, and builds with
# //settings:stale_lock=error), or warn and succeed (the build's validation action by default).
STALE_ACTIONS = ("fail", "warn")


@dataclass(frozen=True)
class CheckRequest:
    """The arguments of `check-lock`: the layer's inputs and its lock file (which need not exist).

    `stale` is one of STALE_ACTIONS; `report` (the validation action's output) is written with
    the outcome's line whenever the check does not fail.
    """

    inputs: LayerInputs
    lock: Path
    stale: str = "fail"
    report: Path | None = None


def _lower_lock(value: str) -> tuple[str, str]:
    layer, sep, path = value.partition("=")
    if not sep or not layer or not path:
        raise argparse.ArgumentTypeError(f"expected LAYER=PATH, got {value!r}")
    return layer, path


def _add_layer_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments `lock` and `check-lock` share (everything `inputs_hash` covers)."""
    parser.add_argument("--layer-name", required=True, help="the layer's name, e.g. app")
    parser.add_argument("--layer-kind", required=True, choices=LAYER_KINDS, help="the layer's kind")
    parser.add_argument(
        "--python-version", required=True, help="the target runtime's full version, e.g. 3.12.7 (for markers)"
    )
    parser.add_argument(
        "--platform",
        action="append",
        required=True,
        dest="platforms",
        metavar="TRIPLE",
        help="a target platform, e.g. x86_64-unknown-linux-gnu; repeatable, one per platform the lock covers",
    )
    add_repeatable(
        parser, "--requirement", "requirements", "REQ", "a top-level requirement (PEP 508); repeatable, order kept"
    )
    add_repeatable(
        parser,
        "--requirements-in",
        "requirements_in",
        "PATH",
        "a requirements.in file (one requirement a line, no options); repeatable",
        type=Path,
    )
    add_repeatable(
        parser,
        "--lower-lock",
        "lower_locks",
        "LAYER=PATH",
        "the lock of a layer below this one; repeatable, in stacking order (lowest first)",
        type=_lower_lock,
    )
    parser.add_argument("--index-url", default=DEFAULT_INDEX_URL, help="the package index (PEP 503)")
    add_repeatable(parser, "--extra-index-url", "extra_index_urls", "URL", "another package index; repeatable")
    add_repeatable(
        parser,
        "--find-links",
        "find_links",
        "PATH_OR_URL",
        "a directory of wheels (relative to the workspace) or a URL; repeatable",
    )
    _add_named_index_arguments(parser)
    parser.add_argument("--lock-target", default="", help="the layer's lock target, e.g. //stacks:app.lock")
    add_repeatable(
        parser,
        "--build-from-sdist",
        "build_from_sdist",
        "NAME",
        "a package installed from a wheel built from its sdist (lock/sdists.py); repeatable",
    )
    parser.add_argument(
        "--versioned", action="store_true", help="the layer is versioned: its lock carries a lock version"
    )
    parser.add_argument("--launch-module", default="", help="an application's launch module, e.g. app.main")
    add_repeatable(
        parser,
        "--app-module-file",
        "app_module_files",
        "DEST=PATH",
        "a file of the application's own code (srcs, first-party deps), by its destination below site-packages;"
        " repeatable",
    )
    parser.add_argument(
        "--glibc-minimum",
        default="",
        help=f"Linux wheels must run on this glibc, e.g. 2.17 (PBS' own; default: {_dotted(DEFAULT_FLOORS.glibc)})",
    )
    parser.add_argument(
        "--macos-minimum",
        default="",
        help=f"macOS wheels must run on this release, e.g. 10.15 (PBS' own; default: {_dotted(DEFAULT_FLOORS.macos)})",
    )


def _add_named_index_arguments(parser: argparse.ArgumentParser) -> None:
    """The named-index arguments: what the layer rules computed at analysis (docs/locking.md, "Named indexes")."""
    add_repeatable(parser, "--named-index", "named_indexes", "NAME=URL", "a named index the layer uses; repeatable")
    add_repeatable(
        parser, "--package-index", "package_indexes", "PROJECT=NAME", "PROJECT comes from index NAME only; repeatable"
    )
    add_repeatable(
        parser, "--priority-index", "priority_indexes", "NAME", "an index searched first, in order; repeatable"
    )


def _dotted(floor: tuple[int, int] | None) -> str:
    """ "2.28" for (2, 28)."""
    assert floor is not None
    return f"{floor[0]}.{floor[1]}"


def _checked_platforms(layer: str, triples: Sequence[str]) -> tuple[str, ...]:
    """`triples` sorted; an unknown or repeated one is a VenvstacksError naming the known platforms."""
    problem = platforms_problem(triples)
    if problem is not None:
        raise VenvstacksError(f"layer '{layer}': --platform: {problem.message}")
    return tuple(sorted(triples))


def _names(triples: Sequence[str]) -> str:
    """The short names of `triples`, for messages: "linux_x86_64, windows_x86_64"."""
    return ", ".join(by_triple(triple).name for triple in triples)


def _layer_inputs(args: argparse.Namespace) -> LayerInputs:
    """The shared arguments, checked: the only place an argparse.Namespace is read."""
    layer = str(args.layer_name)
    if not PYTHON_VERSION_RE.fullmatch(args.python_version):
        raise VenvstacksError(
            f"layer '{layer}': --python-version {args.python_version!r} is not a full Python version such as"
            " 3.11.7 (markers need all three parts)"
        )
    return LayerInputs(
        layer_name=layer,
        layer_kind=str(args.layer_kind),
        python_version=str(args.python_version),
        platforms=_checked_platforms(layer, list(args.platforms)),
        requirements=tuple(args.requirements),
        requirements_in=tuple(args.requirements_in),
        lower_locks=tuple((name, Path(path)) for name, path in args.lower_locks),
        index_url=str(args.index_url),
        extra_index_urls=tuple(args.extra_index_urls),
        find_links=tuple(args.find_links),
        lock_target=str(args.lock_target),
        named_indexes=NamedIndexes.parse(layer, args.named_indexes, args.package_indexes, args.priority_indexes),
        versioned=bool(args.versioned),
        launch_module=str(args.launch_module),
        app_module_files=tuple(
            (dest, Path(path))
            for dest, path in (
                split_pair(value, "--app-module-file", f"layer '{layer}'", "DEST=PATH")
                for value in args.app_module_files
            )
        ),
        build_from_sdist=tuple(sorted({normalize_name(name) for name in args.build_from_sdist})),
        floors=WheelFloors(
            glibc=parse_floor(args.glibc_minimum, f"layer '{layer}': --glibc-minimum") or DEFAULT_FLOORS.glibc,
            macos=parse_floor(args.macos_minimum, f"layer '{layer}': --macos-minimum") or DEFAULT_FLOORS.macos,
        ),
    )


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of `lock` (reads `@paramfile` arguments)."""
    parser = subcommand_parser("lock", "Resolve a layer's requirements into its lock file in the source tree.")
    _add_layer_arguments(parser)
    parser.add_argument(
        "--workspace-dir",
        type=Path,
        default=None,
        help="the source tree (default: $BUILD_WORKSPACE_DIRECTORY, set by `bazel run`)",
    )
    parser.add_argument("--output-lock", required=True, help="the lock file to write, relative to the workspace")
    parser.add_argument(
        "--output-requirements",
        help="the requirements.txt to write, relative to the workspace (default: next to the lock)",
    )
    parser.add_argument(
        "--upgrade",
        action="store_true",
        help="re-resolve from scratch instead of keeping the current lock's versions where they still fit",
    )
    parser.add_argument(
        "--resolver",
        choices=RESOLVERS,
        default="pip",
        help="the resolver: pip's (in a child per platform) or uv's (`uv pip compile` per platform); same lock."
        " The `.lock` targets pass //settings:resolver (uv unless set to pip)",
    )
    parser.add_argument("--uv", type=Path, default=None, help="the uv binary, for --resolver uv")
    parser.add_argument(
        "--uv-cache-dir",
        type=Path,
        default=None,
        help="uv's cache, shared by the layers one `stack.lock` locks (default: a fresh one per layer)",
    )
    return parser


def build_check_parser() -> argparse.ArgumentParser:
    """Return the argument parser of `check-lock` (reads `@paramfile` arguments)."""
    parser = subcommand_parser(
        "check-lock", "Fail, with the command to run, when a layer's lock is stale against its inputs."
    )
    _add_layer_arguments(parser)
    parser.add_argument("--lock", required=True, type=Path, help="the lock file (need not exist)")
    parser.add_argument(
        "--stale",
        choices=STALE_ACTIONS,
        default="fail",
        help="what a stale or missing lock does: fail (exit 1), or warn on stderr and exit 0",
    )
    parser.add_argument(
        "--report", type=Path, default=None, help="write the outcome here (a build validation action's output)"
    )
    return parser


def parse_request(argv: Sequence[str]) -> LockRequest:
    """The `lock` command line as a LockRequest (argparse exits on a malformed one)."""
    args = build_parser().parse_args(list(argv))
    output_lock = str(args.output_lock)
    return LockRequest(
        inputs=_layer_inputs(args),
        workspace_dir=args.workspace_dir,
        output_lock=output_lock,
        output_requirements=str(args.output_requirements or default_requirements_path(output_lock)),
        upgrade=bool(args.upgrade),
        resolver=str(args.resolver),
        uv=args.uv,
        uv_cache_dir=args.uv_cache_dir,
    )


def parse_check_request(argv: Sequence[str]) -> CheckRequest:
    """The `check-lock` command line as a CheckRequest (argparse exits on a malformed one)."""
    args = build_check_parser().parse_args(list(argv))
    return CheckRequest(inputs=_layer_inputs(args), lock=args.lock, stale=str(args.stale), report=args.report)


# --- inputs hash -----------------------------------------------------------------------------


def python_minor(python_version: str) -> str:
    """`3.11` of `3.11.7` (or of `3.11`): what a lock depends on, not the patch release."""
    major, minor = python_version.split(".")[:2]
    return f"{major}.{minor}"


def inputs_hash(
    *,
    layer_name: str,
    layer_kind: str,
    requirements: Sequence[str],
    requirements_in: Sequence[bytes],
    python_version: str,
    platforms: Sequence[str],
    lower_locks: Sequence[tuple[str, bytes]],
    index_url: str,
    extra_index_urls: Sequence[str],
    find_links: Sequence[str],
    floors: Mapping[str, str] | None = None,
    named_indexes: Mapping[str, object] | None = None,
    build_from_sdist: Sequence[str] = (),
) -> str:
    """`sha256:<hex>` of everything a lock is resolved from, and of nothing of the machine it runs on.

    Covers the layer's name and kind, the inline requirements (in order), the content of each
    requirements.in file (not its path), the Python X.Y (not the patch release: a runtime patch
    bump, or a fallback to the machine's own CPython of that X.Y, leaves a checked-in lock fresh),
    the sorted target platforms, each lower layer's name and the sha256 of its lock file's bytes,
    and the index configuration as given (credentials in URLs left out, so they neither leak
    through the hash nor make it differ between users), and the glibc/macOS floors of the systems
    the platforms run (`floors`: a Linux-only lock's hash has no macOS floor, so changing that
    floor leaves it fresh), and the named indexes when the layer routes a project (`NamedIndexes.for_hash`).
    """
    document = {
        "schema": _INPUTS_SCHEMA,
        "layer": {"name": layer_name, "kind": layer_kind},
        "requirements": list(requirements),
        "requirements_in": [hashlib.sha256(content).hexdigest() for content in requirements_in],
        "python": python_minor(python_version),
        "platforms": sorted(platforms),
        "lower_layers": [[name, hashlib.sha256(data).hexdigest()] for name, data in lower_locks],
        "index": {
            "index_url": strip_credentials(index_url),
            "extra_index_urls": [strip_credentials(url) for url in extra_index_urls],
            "find_links": [strip_credentials(link) for link in find_links],
        },
    }
    if floors:
        document["wheel_floors"] = dict(floors)
    if named_indexes:
        document["named_indexes"] = dict(named_indexes)
    if build_from_sdist:  # absent when empty: the locks written before it stay fresh
        document["build_from_sdist"] = sorted(build_from_sdist)
    blob = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def _read_input(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as error:
        raise VenvstacksError(f"{path}: {what} does not exist") from error
    except OSError as error:
        raise VenvstacksError(f"{path}: cannot read {what}: {error.strerror}") from error


@dataclass(frozen=True)
class _LowerLock:
    """The lock of a layer below, as staged: its bytes (for the hash) and its content."""

    layer: str
    path: Path
    data: bytes
    lock: pylock.Lock


@dataclass(frozen=True)
class _Inputs:
    """The staged inputs of a lock, read once."""

    requirements_in: list[tuple[Path, bytes]]
    lower_locks: list[_LowerLock]

    def hash(self, request: LayerInputs) -> str:
        """`inputs_hash` of these inputs and `request`."""
        return inputs_hash(
            layer_name=request.layer_name,
            layer_kind=request.layer_kind,
            requirements=request.requirements,
            requirements_in=[data for _, data in self.requirements_in],
            python_version=request.python_version,
            platforms=request.platforms,
            lower_locks=[(lower.layer, lower.data) for lower in self.lower_locks],
            index_url=request.index_url,
            extra_index_urls=request.extra_index_urls,
            find_links=request.find_links,
            floors=request.floors.as_dict(platform.os for platform in request.target_platforms),
            named_indexes=request.named_indexes.for_hash() if request.named_indexes else None,
            build_from_sdist=request.build_from_sdist,
        )


def _read_inputs(request: LayerInputs) -> _Inputs:
    """Read the requirements files and lower locks; a lower lock of another layer, or lacking a platform, fails."""
    requirements_in = [(path, _read_input(path, "the requirements file")) for path in request.requirements_in]
    lower_locks = []
    for layer, path in request.lower_locks:
        data = _read_input(path, f"the lock of layer '{layer}'")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise VenvstacksError(f"{path}: not UTF-8 text: {error}") from error
        lock = pylock.parse_lock(text, str(path))
        if lock.layer != layer:
            raise VenvstacksError(f"{path}: the lock of layer '{lock.layer}' was given as the lock of layer '{layer}'")
        missing = sorted(set(request.platforms) - set(lock.platforms))
        if missing:
            # Per-platform constraints need the lower layer's choice on every platform of this one;
            # a lower layer may cover more (a layer's `platforms` may narrow its frameworks').
            raise VenvstacksError(
                f"layer '{request.layer_name}' is locked for {_names(request.platforms)} but layer '{layer}'"
                f" for {_names(sorted(lock.platforms))} ({path}), without {_names(missing)}; re-lock '{layer}'"
                " for every platform of the layers above it"
            )
        lower_locks.append(_LowerLock(layer, path, data, lock))
    return _Inputs(requirements_in, lower_locks)


# --- check-lock ------------------------------------------------------------------------------


def lock_problem(request: CheckRequest) -> str | None:
    """The line saying why the lock is missing, unreadable or stale, with the command to run; None when fresh.

    A lower lock lacking one of the platforms (or of another layer) raises a VenvstacksError (one line).
    """
    inputs = request.inputs
    digest = _read_inputs(inputs).hash(inputs)
    hint = f"run {inputs.hint}"
    path = request.lock
    if not path.is_file():
        return f"{path} does not exist: {hint}"
    try:
        recorded = pylock.read_lock(path)
    except VenvstacksError as error:
        return f"{path} is not a valid lock ({error}): {hint}"
    if recorded.inputs_hash != digest:
        return (
            f"{path} is stale against its inputs (requirements, Python, platforms, lower layers' locks,"
            f" indexes): {hint}"
        )
    versioning = lock_version.versioning_problem(recorded, versioned=inputs.versioned)
    if versioning is not None:
        return f"{path} {versioning}: {hint}"
    if recorded.launch_module_hash != inputs.launch_module_hash:
        what = "changed since it was locked" if recorded.launch_module_hash else "is not recorded in it yet"
        return (
            f"{path} is stale: the launch module '{inputs.launch_module}' of versioned application layer"
            f" '{inputs.layer_name}' {what} (its lock version follows it): {hint}"
        )
    support = inputs.support_modules
    if recorded.support_modules != support:
        change = _support_modules_change(recorded.support_modules, support or ())
        return (
            f"{path} is stale: {change}, in versioned application layer '{inputs.layer_name}'"
            f" (its lock version follows them): {hint}"
        )
    return None


def _support_modules_change(recorded: tuple[SupportModule, ...] | None, current: tuple[SupportModule, ...]) -> str:
    """What differs between the support modules a lock records and the application's, for messages."""
    if recorded is None:
        return "the support modules are not recorded in it yet"
    old, new = {m.name: m.hash for m in recorded}, {m.name: m.hash for m in current}
    changed = sorted(name for name in old.keys() | new.keys() if old.get(name) != new.get(name))
    return "the support module(s) " + ", ".join(f"'{name}'" for name in changed) + " changed since it was locked"


def check_lock(request: CheckRequest) -> int:
    """Print the problem and return 1 when the lock is missing or stale (0 with `--stale warn`); 0 when fresh.

    With `report`, the outcome is also written there unless the check fails (a validation
    action's output: a failed action leaves none).
    """
    problem = lock_problem(request)
    warn = request.stale == "warn"
    if problem is not None:
        print(f"warning: {problem}" if warn else problem, file=sys.stderr)
        if not warn:
            return 1
    if request.report is not None:
        write_bytes_atomic(request.report, f"{problem or 'fresh'}\n".encode())
    return 0


def check_lock_main(argv: list[str]) -> int:
    """Run `check-lock` with `argv`."""
    return check_lock(parse_check_request(argv))


# --- requirements ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _TopLevel:
    """A top-level requirement and where it was declared."""

    written: str  # as the user wrote it (recorded in the lock and given to pip)
    requirement: Requirement
    origin: str

    @property
    def text(self) -> str:
        """The normalized form, for messages."""
        return str(self.requirement)


def _parse_requirement(text: str, origin: str) -> Requirement:
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        return Requirement(text)
    except InvalidRequirement as error:
        # packaging adds the requirement and a caret on lines of their own: keep the message one line.
        reason = (str(error).splitlines() or ["not PEP 508"])[0]
        raise VenvstacksError(f"{origin}: invalid requirement {text!r}: {reason}") from error


def _requirements_in_lines(path: Path, data: bytes) -> list[tuple[int, str]]:
    """(line number, requirement) of a requirements.in file: comments, blank lines and `\\` joins handled."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise VenvstacksError(f"{path}: not UTF-8 text: {error}") from error
    result: list[tuple[int, str]] = []
    pending = ""
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not pending:
            start = number
        line = re.sub(r"(^|\s)#.*$", "", raw).rstrip()
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = (pending + line).strip()
        pending = ""
        if not line:
            continue
        if line.startswith("-"):
            option = line.split()[0].split("=")[0]
            raise VenvstacksError(
                f"{path}:{start}: options such as {option!r} are not supported in a layer's requirements"
                " file; list requirements only (indexes and find-links are set on the layer)"
            )
        result.append((start, line))
    if pending.strip():
        result.append((start, pending.strip()))
    return result


def _top_level_requirements(request: LayerInputs, inputs: _Inputs) -> list[_TopLevel]:
    origin = f"layer '{request.layer_name}' --requirement"
    result = [
        _TopLevel(text.strip(), _parse_requirement(text.strip(), origin), origin) for text in request.requirements
    ]
    for path, data in inputs.requirements_in:
        for number, text in _requirements_in_lines(path, data):
            origin = f"{path}:{number}"
            result.append(_TopLevel(text, _parse_requirement(text, origin), origin))
    return result


def _applies(requirement: Requirement, environment: Mapping[str, str]) -> bool:
    """Whether a requirement's marker holds in a target's marker `environment`."""
    return requirement.marker is None or requirement.marker.evaluate({**environment, "extra": ""})


# --- lower layers ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Pin:
    """A package that a lower layer installs on a platform."""

    version: str
    layer: str
    source: str  # the lock file that pins it

    def describe(self) -> str:
        """`layer 'framework' (stacks/pylock.framework.toml)`, for messages."""
        return f"layer '{self.layer}' ({self.source})"


def _lower_pins(inputs: _Inputs, platforms: Sequence[str]) -> dict[str, dict[str, _Pin]]:
    """{triple -> {normalized name -> pin}} from the lower layers' locks (the lowest layer that installs it wins).

    A lower lock's package applies to the platforms its platform-wheels name (a lock in the old
    single-platform form: its one platform, which is this layer's).
    """
    pins: dict[str, dict[str, _Pin]] = {triple: {} for triple in platforms}
    provided_elsewhere: list[tuple[str, _Pin]] = []
    for lower in inputs.lower_locks:
        for package in lower.lock.packages:
            name = normalize_name(package.name)
            pin = _Pin(package.version, lower.layer, str(lower.path))
            for triple in package.platform_wheels:
                previous = pins[triple].setdefault(name, pin)
                if previous.version != pin.version:
                    raise VenvstacksError(
                        f"layers '{previous.layer}' and '{lower.layer}' both install {name} on"
                        f" {by_triple(triple).name}, at versions {previous.version} ({previous.source}) and"
                        f" {pin.version} ({lower.path}); re-lock '{lower.layer}'"
                    )
        for provided in lower.lock.provided:
            pin = _Pin(provided.version, provided.layer, str(lower.path))
            provided_elsewhere.append((normalize_name(provided.name), pin))
    # A lower lock's own `provided` list covers layers further down that were not passed; it does
    # not say on which platforms, so it constrains every platform (a constraint installs nothing).
    for name, pin in provided_elsewhere:
        for triple in platforms:
            pins[triple].setdefault(name, pin)
    return pins


def _check_against_lower_pins(
    request: LayerInputs, requirements: Sequence[_TopLevel], pins: Mapping[str, Mapping[str, _Pin]]
) -> None:
    """Fail, naming both layers and the package, when a requirement excludes a lower layer's pin on a platform."""
    from packaging.utils import canonicalize_name

    for top in requirements:
        requirement = top.requirement
        name = str(canonicalize_name(requirement.name))
        excluded: dict[_Pin, list[str]] = {}
        for platform in request.target_platforms:
            pin = pins[platform.triple].get(name)
            if pin is None or not _applies(requirement, platform.marker_environment(request.python_version)):
                continue
            if requirement.url or not requirement.specifier.contains(pin.version, prereleases=True):
                excluded.setdefault(pin, []).append(platform.name)
        for pin, names in excluded.items():
            where = "" if len(names) == len(request.platforms) else f" on {', '.join(names)}"
            raise VenvstacksError(
                f"layer '{request.layer_name}' requires '{top.text}' but layer '{pin.layer}' pins"
                f" {name}=={pin.version}{where} ({pin.source})"
            )


# --- the lock's packages ---------------------------------------------------------------------


def _locked_wheel(layer: str, wheel: ResolvedWheel, workspace: Path, lock_dir: Path) -> pylock.LockedWheel:
    """The lock entry of a picked wheel; a local file (find-links) becomes a path beside the lock.

    PEP 751 paths are relative to the lock file, so a checked-in lock names no machine's
    directories; a wheel outside the workspace could not be fetched elsewhere and is refused.
    """
    if wheel.local_path is None:
        return pylock.LockedWheel(wheel.file_name, strip_credentials(wheel.url), wheel.sha256)
    local = wheel.local_path.resolve()
    if not local.is_relative_to(workspace.resolve()):
        raise VenvstacksError(
            f"layer '{layer}': {wheel.file_name} would be locked as {local}, outside the workspace; put the"
            " find-links directory in the workspace or serve it over HTTP"
        )
    return pylock.LockedWheel(wheel.file_name, "", wheel.sha256, path=os.path.relpath(local, lock_dir.resolve()))


def _recorded_sdist(layer: str, built: pylock.BuiltFromSdist, workspace: Path, lock_dir: Path) -> pylock.BuiltFromSdist:
    """`built` as the lock records it: a local sdist (from find-links) by its path beside the lock, as a local wheel."""
    sdist = built.sdist
    if not sdist.url.startswith("file:"):
        return built
    local = ResolvedWheel("", "", sdist.name, sdist.url, sdist.sha256, local_path=file_url_path(sdist.url))
    return dataclasses.replace(built, sdist=_locked_wheel(layer, local, workspace, lock_dir))


def _lock_packages(
    request: LayerInputs,
    result: resolve.MultiResolution,
    pins: Mapping[str, Mapping[str, _Pin]],
    workspace: Path,
    lock_dir: Path,
    built: Mapping[str, sdists.PreparedSdist],
) -> tuple[list[pylock.LockedPackage], list[pylock.ProvidedPackage]]:
    """This layer's packages, one per (name, version) with the wheel of each platform, and what lower layers provide.

    A package of `built` (`build_from_sdist`) is recorded with its sdist instead of the wheel the
    resolver found in the find-links directory of the built wheels.
    """
    wheels: dict[tuple[str, str], dict[str, pylock.LockedWheel]] = {}
    platform_wheels: dict[tuple[str, str], dict[str, str]] = {}
    provided: set[pylock.ProvidedPackage] = set()
    for platform in request.target_platforms:
        for name, wheel in result.for_platform(platform).items():
            pin = pins[platform.triple].get(name)
            if pin is not None:
                provided.add(pylock.ProvidedPackage(name, pin.version, pin.layer))
                continue
            key = (name, wheel.version)
            if name in built:
                if wheel.version != built[name].version:
                    raise VenvstacksError(
                        f"layer '{request.layer_name}': '{name}' is built from its sdist"
                        f" {built[name].built.sdist.name}, but {platform.name} resolves it to version"
                        f" {wheel.version}; pin it in the requirements"
                    )
                platform_wheels.setdefault(key, {})[platform.triple] = built[name].wheel_names[platform.triple]
                wheels.setdefault(key, {})
                continue
            locked = _locked_wheel(request.layer_name, wheel, workspace, lock_dir)
            previous = wheels.setdefault(key, {}).setdefault(wheel.file_name, locked)
            if previous.sha256 != locked.sha256:
                raise VenvstacksError(
                    f"layer '{request.layer_name}': {wheel.file_name} ('{name}') has sha256 {previous.sha256} for one"
                    f" platform and {locked.sha256} for {platform.name}; the indexes serve different files"
                    " under one name"
                )
            platform_wheels.setdefault(key, {})[platform.triple] = wheel.file_name
    packages = []
    for name, version in sorted(wheels):
        package = pylock.LockedPackage(
            name,
            version,
            sorted(wheels[name, version].values(), key=lambda w: w.name),
            platform_wheels[name, version],
        )
        marker = pylock.package_marker(package, request.platforms)
        from_sdist = (
            _recorded_sdist(request.layer_name, built[name].built, workspace, lock_dir) if name in built else None
        )
        packages.append(
            pylock.LockedPackage(package.name, version, package.wheels, package.platform_wheels, marker, from_sdist)
        )
    return packages, sorted(provided, key=lambda p: (p.name, p.version, p.layer))


# --- lock ------------------------------------------------------------------------------------


def default_requirements_path(lock_path: str) -> str:
    """`stacks/app.pylock.toml` (or `stacks/pylock.app.toml`) -> `stacks/app.requirements.txt`."""
    directory, _, name = lock_path.rpartition("/")
    stem = name.removesuffix(".toml").removesuffix(".pylock").removeprefix("pylock.")
    return (directory + "/" if directory else "") + stem + ".requirements.txt"


def workspace_dir(request: LockRequest) -> Path:
    """The source tree the request writes into: `--workspace-dir`, else $BUILD_WORKSPACE_DIRECTORY."""
    if request.workspace_dir is not None:
        return request.workspace_dir
    workspace = os.environ.get("BUILD_WORKSPACE_DIRECTORY")
    if not workspace:
        raise VenvstacksError(
            "lock: no --workspace-dir and BUILD_WORKSPACE_DIRECTORY is not set; run it with"
            f" `bazel run {request.inputs.lock_target or '<layer>.lock'}`"
        )
    return Path(workspace)


def _check_interpreter(request: LayerInputs) -> None:
    """The running interpreter's X.Y must be the target's: pip runs here and only its markers are replaced."""
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    if running != python_minor(request.python_version):
        raise VenvstacksError(
            f"layer '{request.layer_name}' is locked for Python {request.python_version}, but the lock runs on"
            f" Python {running}.{sys.version_info.micro}: run it with a Python {python_minor(request.python_version)}"
        )


def _current_lock(path: Path, location: str) -> pylock.Lock | None:
    """The lock at `path` (workspace-relative: `location`), or None when there is none or it is unreadable.

    Also None when it fails the reader's checks (a bad sha256, a wheel path out of the
    workspace): it is then resolved and written again rather than kept.
    """
    if not path.is_file():
        return None
    try:
        return pylock.read_lock(path, location=location)
    except VenvstacksError:
        return None


def _preferred(current: pylock.Lock | None) -> dict[str, str]:
    """{name -> version} of the current lock, to keep where it still fits ({} if none).

    A package at two versions (platforms that could not agree) is left to the resolver.
    """
    if current is None:
        return {}
    versions: dict[str, set[str]] = {}
    for package in current.packages:
        versions.setdefault(normalize_name(package.name), set()).add(package.version)
    return {name: next(iter(found)) for name, found in sorted(versions.items()) if len(found) == 1}


def render_requirements(lock: pylock.Lock, lock_path: str, lock_target: str) -> str:
    """The requirements.txt written next to the lock: this layer's wheels with `--hash` and markers, for people."""
    command = f"`bazel run {lock_target}`" if lock_target else "`bazel run` of the layer's .lock target"
    lines = [
        f"# This file is generated by {command} with {lock_path}; do not edit.",
        f"# Layer '{lock.layer}' ({lock.kind}), Python {lock.python_version} on {', '.join(sorted(lock.platforms))};"
        " the wheels of this layer only, with the hash of every file locked.",
    ]
    for provided in sorted(lock.provided, key=lambda p: (normalize_name(p.name), p.version)):
        lines.append(f"# {provided.name}=={provided.version}: provided by layer '{provided.layer}'")
    for package in sorted(lock.packages, key=lambda p: (normalize_name(p.name), p.version)):
        files = [package.built.sdist] if package.built is not None else package.wheels
        hashes = sorted(wheel.sha256 for wheel in files)
        marker = pylock.package_marker(package, lock.platforms)
        lines.append(f"{package.name}=={package.version}" + (f" ; {marker}" if marker else "") + " \\")
        lines += [f"    --hash=sha256:{h}" + (" \\" if i < len(hashes) - 1 else "") for i, h in enumerate(hashes)]
    return "\n".join(lines) + "\n"


def _versioned(lock: pylock.Lock, previous: pylock.Lock | None, inputs: LayerInputs) -> pylock.Lock:
    """`lock` with the module hashes and the lock version it gets replacing `previous` (lock/lock_version.py)."""
    lock = dataclasses.replace(
        lock, launch_module_hash=inputs.launch_module_hash, support_modules=inputs.support_modules
    )
    version = lock_version.next_lock_version(previous, lock, versioned=inputs.versioned)
    return dataclasses.replace(lock, lock_version=version)


def _write_requirements(workspace: Path, request: LockRequest, locked: pylock.Lock) -> None:
    """Write the requirements.txt for people next to the lock (unchanged bytes are not rewritten)."""
    path = workspace / request.output_requirements
    data = render_requirements(locked, request.output_lock, request.inputs.lock_target).encode("utf-8")
    if not path.is_file() or path.read_bytes() != data:
        write_bytes_atomic(path, data)


def _say(message: str, stream: TextIO | None = None) -> None:
    """Print `message` as one line in one write: `lock-stack` locks layers in threads, whose lines must not mix."""
    (stream or sys.stdout).write(message + "\n")


def _routed(layer: str, named: NamedIndexes, index: IndexOptions) -> AbstractContextManager[IndexOptions]:
    """`index_router.routed`, imported only for a layer with named indexes (http.server and urllib.request
    cost every lock run's start a quarter of a second)."""
    if not named:
        return contextlib.nullcontext(index)
    from venvstacks_tool.lock import index_router

    return index_router.routed(layer, named, index)


def lock(request: LockRequest) -> pylock.Lock:
    """Resolve the layer for every platform, write its lock and requirements.txt into the workspace; return the lock."""
    layer_inputs = request.inputs
    layer = layer_inputs.layer_name
    workspace = workspace_dir(request)
    _check_interpreter(layer_inputs)

    inputs = _read_inputs(layer_inputs)
    digest = inputs.hash(layer_inputs)
    top_level = _top_level_requirements(layer_inputs, inputs)
    pins = _lower_pins(inputs, layer_inputs.platforms)
    _check_against_lower_pins(layer_inputs, top_level, pins)
    index = IndexOptions.create(
        layer_inputs.index_url, layer_inputs.extra_index_urls, layer_inputs.find_links, base_dir=workspace
    )
    lock_file = workspace / request.output_lock
    platforms = layer_inputs.target_platforms
    uv = uv_resolver.check_uv(request.uv, layer) if request.resolver == "uv" else None
    previous = _current_lock(lock_file, request.output_lock)
    if previous is not None and previous.inputs_hash == digest and not request.upgrade:
        # Same inputs, same answer: resolving again would keep every pin anyway (the current
        # versions are preferred), and costs an index round trip per platform. Only the lock
        # version may need writing (the layer became versioned, or stopped being, or a versioned
        # application's launch module changed).
        current = _versioned(previous, previous, layer_inputs)
        if current != previous:
            pylock.write_lock(lock_file, current, layer_inputs.lock_target or None)
        _write_requirements(workspace, request, current)
        _say(
            f"venvstacks: layer '{layer}' is up to date: its inputs are unchanged since {request.output_lock} was"
            " written (`-- --upgrade` resolves it afresh)"
        )
        return current

    _say(
        f"venvstacks: resolving {len(top_level)} requirement(s) of layer '{layer}' for"
        f" {', '.join(p.name for p in platforms)} with {request.resolver}...",
        sys.stderr,
    )
    preferred = {} if request.upgrade else _preferred(previous)
    with tempfile.TemporaryDirectory(prefix="venvstacks-lock-") as tmp:
        built: dict[str, sdists.PreparedSdist] = {}
        if layer_inputs.build_from_sdist:
            built, wheel_dir = sdists.prepare(
                layer,
                layer_inputs.build_from_sdist,
                {normalize_name(top.requirement.name): str(top.requirement.specifier) for top in top_level},
                platforms,
                layer_inputs.python_version,
                index,
                preferred,
                Path(tmp),
                layer_inputs.floors,
                uv,
                request.uv_cache_dir,
                named=layer_inputs.named_indexes,
            )
            # The resolvers see the built wheels as find-links, pinned to the sdists' versions.
            index = dataclasses.replace(index, find_links=(*index.find_links, str(wheel_dir)))
            preferred = {**preferred, **{name: sdist.version for name, sdist in built.items()}}
        with _routed(layer, layer_inputs.named_indexes, index) as routed_index:
            result = resolve.resolve(
                layer,
                platforms,
                layer_inputs.python_version,
                [top.written for top in top_level],
                {triple: {name: pin.version for name, pin in by_name.items()} for triple, by_name in pins.items()},
                routed_index,
                preferred,
                Path(tmp),
                pinned_by={name: pin.describe() for by_name in pins.values() for name, pin in by_name.items()},
                floors=layer_inputs.floors,
                uv=uv,
                uv_cache_dir=request.uv_cache_dir,
            )
    for triple in result.without_preferred:
        _say(
            f"venvstacks: layer '{layer}': the current lock's versions no longer resolve on {by_triple(triple).name};"
            " resolved afresh there",
            sys.stderr,
        )
    for name, versions in result.divergent().items():
        detail = ", ".join(f"{by_triple(triple).name} {version}" for triple, version in sorted(versions.items()))
        _say(f"venvstacks: layer '{layer}': no version of {name} fits every platform: {detail}", sys.stderr)
    packages, provided = _lock_packages(layer_inputs, result, pins, workspace, lock_file.parent, built)

    resolved = pylock.Lock(
        layer=layer,
        kind=layer_inputs.layer_kind,
        inputs_hash=digest,
        python_version=layer_inputs.python_version,
        platforms=list(layer_inputs.platforms),
        requirements=[top.written for top in top_level],
        packages=packages,
        provided=provided,
    )
    locked = _versioned(resolved, previous, layer_inputs)
    pylock.write_lock(lock_file, locked, layer_inputs.lock_target or None)
    _write_requirements(workspace, request, locked)
    version = "" if locked.lock_version is None else f", lock version {locked.lock_version}"
    _say(
        f"venvstacks: locked layer '{layer}' for {len(platforms)} platform(s): {len(packages)} package(s),"
        f" {len(provided)} provided by lower layers{version} -> {request.output_lock}"
    )
    return locked


def main(argv: list[str]) -> int:
    """Run `lock` with `argv`; errors are raised as VenvstacksError."""
    lock(parse_request(argv))
    return 0
