"""Going back to a platform built before, against a no-op build.

`bench/run_bench.py --only platform_switch` locks the bench's stack for the host and OTHER
(untimed), builds both once, then measures `//stacks:stack` in rounds, each in one Bazel server:

- **switch-back**: the host build right after a build for OTHER, both built before. With the
  `.bazelrc` line `build --experimental_platform_in_output_dir` (the checkout's, as in
  examples/stack) each platform keeps an output directory of its own, so no layer action should
  run: Bazel only discards its analysis cache (another configuration) and checks its action cache;
- **no-op**: the same host build once more, nothing changed;
- **one directory**: the switch-back with `--noexperimental_platform_in_output_dir`, as every
  build was before the line, in an output base of its own: OTHER's build replaced the host's
  archives, so every layer action runs again.

The layer actions that ran come from each build's execution log (the tests' helpers).
"""

from __future__ import annotations

import os
import statistics
from pathlib import Path
from typing import Any, Protocol

from venvstacks_testing.stack_workspace import layer_spawns, read_execution_log

OTHER = "windows_x86_64"
ONE_DIRECTORY = "--noexperimental_platform_in_output_dir"


class BazelRun(Protocol):
    """What the bench's Bazel runner reports of one command."""

    wall: float
    elapsed: float | None


class BazelWorkspace(Protocol):
    """A workspace with its own output base, as the bench's runner has it."""

    def bazel(self, *args: str, check: bool = True) -> BazelRun: ...


def _timed_build(ws: BazelWorkspace, target: str, log: Path, *flags: str) -> dict[str, Any]:
    """`bazel build target` with an execution log: wall and Bazel's elapsed seconds, layer actions run."""
    result = ws.bazel("build", f"--execution_log_json_file={log}", *flags, target)
    return {"wall": result.wall, "elapsed": result.elapsed, "layer_actions": len(layer_spawns(read_execution_log(log)))}


def measure(
    own: BazelWorkspace, shared: BazelWorkspace, target: str, other_flag: str, logs: Path, runs: int
) -> dict[str, Any]:
    """The rounds above: `own` builds with per-platform directories, `shared` with one for all.

    Both workspaces are the same locked sources in two output bases; `other_flag` is the
    `--platforms=...` of OTHER.
    """
    rounds: dict[str, list[dict[str, Any]]] = {"switch_back": [], "noop": [], "one_directory": []}
    for ws, flags in ((own, ()), (shared, (ONE_DIRECTORY,))):
        for platform_flags in ((), (other_flag,)):  # untimed: both platforms built once
            ws.bazel("build", *flags, *platform_flags, target)
    for i in range(runs):
        load = os.getloadavg()[0]
        own.bazel("build", other_flag, target)
        rounds["switch_back"].append({**_timed_build(own, target, logs / f"switch-{i}.exec.json"), "load": load})
        rounds["noop"].append(_timed_build(own, target, logs / f"switch-noop-{i}.exec.json"))
        shared.bazel("build", ONE_DIRECTORY, other_flag, target)
        rounds["one_directory"].append(_timed_build(shared, target, logs / f"switch-one-{i}.exec.json", ONE_DIRECTORY))
    medians = {kind: statistics.median(r["wall"] for r in kind_rounds) for kind, kind_rounds in rounds.items()}
    ratios = [s["wall"] / n["wall"] for s, n in zip(rounds["switch_back"], rounds["noop"], strict=True)]
    return {"other": OTHER, "rounds": rounds, "wall": medians, "ratio_to_noop": statistics.median(ratios)}


def rows(entry: dict[str, Any]) -> list[str]:
    """The step's rows of the bench's Markdown table (measure | median | runs | detail)."""
    rounds, wall, other = entry["rounds"], entry["wall"], entry["other"]
    count = len(rounds["noop"])

    def detail(kind: str) -> str:
        actions = ", ".join(str(r["layer_actions"]) for r in rounds[kind])
        elapsed = [r["elapsed"] for r in rounds[kind] if r["elapsed"] is not None]
        bazel = f"; Bazel elapsed {statistics.median(elapsed):.2f} s" if elapsed else ""
        return f"layer actions run: {actions}{bazel}"

    loads = ", ".join(f"{r['load']:.1f}" for r in rounds["switch_back"])
    met = "met" if not any(r["layer_actions"] for r in rounds["switch_back"]) else "**not met**"
    return [
        f"| platform switch-back: the host's build right after {other}'s, both built before (per-platform"
        f" output directories) | {wall['switch_back']:.2f} s | {count} | {detail('switch_back')};"
        f" load at start {loads} |",
        f"| no-op build (the host's again, nothing changed) | {wall['noop']:.2f} s | {count} | {detail('noop')} |",
        f"| **platform switch-back / no-op** (median of paired runs) | {entry['ratio_to_noop']:.2f}x | {count} |"
        f" target: no layer action runs in a switch-back: {met} |",
        f"| platform switch-back with one output directory for every platform (`{ONE_DIRECTORY}`, as before)"
        f" | {wall['one_directory']:.1f} s | {count} | {detail('one_directory')} |",
    ]
