"""`lock-stack`: lock every layer of a stack in one process, each as soon as the layers below it are locked.

`bazel run //stacks:STACK.lock` (`layer_stack`) runs it with a plan, a JSON file the rule writes
(`lock_rules.bzl` `_lock_all_impl`; keep the field names in sync):

    {"layers": [{"layer": NAME, "arguments": [ARG, ...], "lower_locks": [[LOWER, PATH], ...]}, ...]}

`arguments` are the layer's `lock` arguments as its own `.lock` target gives them (paths relative
to the runfiles directory), without the lower layers' locks: `lower_locks` names those, lowest
layer first, by their path in the source tree, where this command writes them before it reads
them. Every layer a plan's layer sits on is in the plan, before it. The command's own extra
arguments (`bazel run STACK.lock -- --upgrade`) go to every layer.

Each layer is the very `lock` of `lock_command` (same request, same lock), run in a thread of this
process: a layer starts when every layer below it is locked or found up to date, so an
application never waits for another stack's framework, and at most `MAX_CONCURRENT_LAYERS` are
resolved at once (each runs one resolver process per target platform). With uv, every layer's
runs share one uv cache made here and removed at the end (`--uv-cache-dir` overrides it).
One process instead of one per layer saves the interpreter's start and the imports of every
layer but the first (docs/performance.md, run 13). A layer that fails does not stop the layers
beside it; the layers above it are not locked, and each error is one line at the end.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import json
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from venvstacks_tool.core.cli import subcommand_parser
from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.lock import lock_command

# At most this many layers resolved at once: each starts a resolver process per target platform,
# so a stack of 20 applications on one framework must not start 100 of them.
MAX_CONCURRENT_LAYERS = 4


@dataclass(frozen=True)
class PlannedLayer:
    """One layer of the plan: its parsed `lock` request and the layers of the plan it sits on."""

    name: str
    request: lock_command.LockRequest
    lower: tuple[str, ...]


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of `lock-stack`; arguments it does not know go to every layer's `lock`."""
    parser = subcommand_parser("lock-stack", "Lock every layer of a stack, each after the layers below it.")
    parser.add_argument("--plan", required=True, type=Path, help="the stack's plan (JSON, written by STACK.lock)")
    return parser


def _plan_entries(path: Path) -> list[tuple[str, list[str], list[tuple[str, str]]]]:
    """(layer, arguments, lower locks) of each layer of the plan at `path`, checked for shape and order."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        entries = [
            (
                str(entry["layer"]),
                [str(argument) for argument in entry["arguments"]],
                [(str(lower), str(relative)) for lower, relative in entry["lower_locks"]],
            )
            for entry in document["layers"]
        ]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise VenvstacksError(f"{path}: not a stack lock plan: {error}") from error
    seen: set[str] = set()
    for layer, _, lower_locks in entries:
        if layer in seen:
            raise VenvstacksError(f"{path}: layer '{layer}' is planned twice")
        for lower, _ in lower_locks:
            if lower not in seen:
                raise VenvstacksError(f"{path}: layer '{layer}' sits on '{lower}', which is not planned before it")
        seen.add(layer)
    return entries


def read_plan(path: Path, extra: Sequence[str]) -> list[PlannedLayer]:
    """Every layer of the plan as a parsed request (`extra` added to each), lower layers first.

    All requests are parsed before any layer is locked, so a malformed argument writes nothing.
    """
    layers = []
    for layer, arguments, lower_locks in _plan_entries(path):
        request = lock_command.parse_request([*arguments, *extra])
        workspace = lock_command.workspace_dir(request)
        inputs = dataclasses.replace(
            request.inputs, lower_locks=tuple((lower, workspace / relative) for lower, relative in lower_locks)
        )
        lower = tuple(name for name, _ in lower_locks)
        layers.append(PlannedLayer(layer, dataclasses.replace(request, inputs=inputs), lower))
    return layers


def run_after_lower(
    lower: Mapping[str, Sequence[str]], run: Callable[[str], object], max_workers: int = MAX_CONCURRENT_LAYERS
) -> dict[str, str]:
    """Run `run(name)` for each name of `lower` once every name it lists has run; return the failures.

    Names run in threads, at most `max_workers` at once, each as soon as what it lists is done
    (`lower` must list only names of `lower`, without cycles). A VenvstacksError is a failure
    ({name -> message}); the names that list a failed name, directly or not, are not run and
    fail with a message naming it. Any other exception is raised once the running names end.
    """
    waiting = {name: set(below) for name, below in lower.items()}
    failures: dict[str, str] = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=max_workers) as pool:
        running: dict[concurrent.futures.Future[object], str] = {}
        while waiting or running:
            for name in [name for name, below in waiting.items() if not below]:
                del waiting[name]
                running[pool.submit(run, name)] = name
            if not running:
                break  # what waits lists a name that never ran: a failed one, or one not in `lower`
            done, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in done:
                name = running.pop(future)
                try:
                    future.result()
                except VenvstacksError as error:
                    failures[name] = str(error)
                    continue
                for below in waiting.values():
                    below.discard(name)
    for name in lower:
        if name not in failures and name in waiting:
            failed = next((below for below in _below(name, lower) if below in failures), None)
            why = f"the lock of layer '{failed}', below it, failed" if failed else "a layer below it is not planned"
            failures[name] = f"layer '{name}' was not locked: {why}"
    return failures


def _below(name: str, lower: Mapping[str, Sequence[str]]) -> Iterator[str]:
    """The names `name` lists in `lower`, directly then further down, each once."""
    seen: set[str] = set()
    pending = list(lower[name])
    while pending:
        below = pending.pop(0)
        if below not in seen:
            seen.add(below)
            yield below
            pending += lower.get(below, ())


@contextmanager
def _shared_uv_cache(layers: Sequence[PlannedLayer]) -> Iterator[list[PlannedLayer]]:
    """`layers`, those that resolve with uv given one uv cache that lives as long as the command.

    The upper layers' runs then find the index pages and the interpreter's description that the
    lower layers' runs fetched; nothing of the cache reaches a lock. A cache given on the command
    line (`--uv-cache-dir`) is used as it is.
    """
    if all(layer.request.resolver != "uv" or layer.request.uv_cache_dir for layer in layers):
        yield list(layers)
        return
    with tempfile.TemporaryDirectory(prefix="venvstacks-uv-cache-") as cache:
        yield [
            dataclasses.replace(layer, request=dataclasses.replace(layer.request, uv_cache_dir=Path(cache)))
            if layer.request.resolver == "uv" and not layer.request.uv_cache_dir
            else layer
            for layer in layers
        ]


def lock_stack(plan: Path, extra: Sequence[str]) -> int:
    """Lock every layer of `plan`; print each failure on one line and return 1 if any, else 0."""
    with _shared_uv_cache(read_plan(plan, extra)) as layers:
        by_name = {layer.name: layer for layer in layers}
        failures = run_after_lower(
            {layer.name: layer.lower for layer in layers}, lambda name: lock_command.lock(by_name[name].request)
        )
    for name in by_name:
        if name in failures:
            print(f"venvstacks: error: {failures[name]}", file=sys.stderr)
    return 1 if failures else 0


def main(argv: list[str]) -> int:
    """Run `lock-stack` with `argv`."""
    args, extra = build_parser().parse_known_args(argv)
    return lock_stack(args.plan, extra)
