"""Locking and the cold build for every platform the stack can be locked for, against the host's alone.

Two more workspaces of the same stack: the host's runtime as in set-up, small fixture PBS archives
(tests/support/fixture_pbs.py) for the other platforms, all served on 127.0.0.1.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from venvstacks_bench.bazel import Workspace
from venvstacks_bench.core import Bench
from venvstacks_bench.host import loadavg, log, quiesce
from venvstacks_bench.report import loads_text, s, times, verdict
from venvstacks_bench.stats import median, paired_ratio
from venvstacks_bench.workspace import (
    APPS,
    FRAMEWORK,
    TARGET,
    RuntimeArchive,
    lock_packages,
    platforms_module_text,
    write_workspace,
)
from venvstacks_testing.fixture_pbs import make_fixture_runtime
from venvstacks_tool.core.platforms import PLATFORMS, by_name

# The platforms step: the host's runtime is this machine's CPython (Linux x86_64); the other
# platforms get fixture PBS archives of this version (tests/support/fixture_pbs.py).
HOST_PLATFORM = "linux_x86_64"
FOREIGN_PYTHON = "3.11.14"
# Every platform, the host first. macos_arm64 locks since the default macOS floor is 14.0
# (scipy's and scikit-learn's cp311 arm64 wheels need 12.0; PBS' own floor there is 11.0).
ALL_PLATFORMS = (HOST_PLATFORM, *(p.name for p in PLATFORMS if p.name != HOST_PLATFORM))


def platform_flag(name: str) -> str:
    """The `--platforms` flag that builds for the platform `name`."""
    return f"--platforms=@rules_venvstacks//platforms:{name}"


def lock_round(ws: Workspace) -> dict[str, Any]:
    """`bazel run //stacks:<layer>.lock` for every layer, bottom up, the lock files removed first."""
    for path in [*ws.root.glob("stacks/pylock.*.toml"), *ws.root.glob("stacks/*.requirements.txt")]:
        path.unlink()
    load = loadavg()
    quiesce()
    layers = {layer: ws.bazel("run", f"//stacks:{layer}.lock").wall for layer in (FRAMEWORK, *APPS)}
    return {"total": sum(layers.values()), "layers": layers, "load": load}


def lock_packages_all(ws: Workspace) -> dict[str, list[str]]:
    """Each layer's locked `name==version`s in `ws` (a package twice: its versions differ by platform)."""
    return {layer: lock_packages(ws.root / "stacks" / f"pylock.{layer}.toml") for layer in (FRAMEWORK, *APPS)}


def run(bench: Bench) -> None:
    """Locking and the cold build for every platform of ALL_PLATFORMS against the host platform alone."""
    one, every = (platform_workspace(bench, count) for count in (1, len(ALL_PLATFORMS)))
    try:
        lock = platform_locks(bench, one, every)
        cold = platform_cold(bench, every)
    finally:
        for ws in (one, every):
            ws.shutdown(remove=not bench.keep)
    bench.results["platforms"] = {"platforms": list(ALL_PLATFORMS), "lock": lock, "cold": cold}


def runtime_archives(bench: Bench) -> list[RuntimeArchive]:
    """The host's runtime, then a fixture PBS archive for every other platform (served under runtime_url)."""
    return host_and_fixture_archives(bench.scratch, bench.runtime_url, bench.runtime, ALL_PLATFORMS[1:])


def host_and_fixture_archives(
    scratch: Path, runtime_url: str, runtime: Any, others: Sequence[str]
) -> list[RuntimeArchive]:
    """The host's runtime (a LocalRuntime served under `runtime_url`), then a fixture PBS archive
    for each platform of `others`, written to `scratch`/pbs (served under `runtime_url`/pbs)."""
    archives = [
        RuntimeArchive(HOST_PLATFORM, f"{runtime_url}/{runtime.path.name}", runtime.sha256, runtime.python_version)
    ]
    for name in others:
        fixture = make_fixture_runtime(scratch / "pbs", by_name(name), FOREIGN_PYTHON)
        url = f"{runtime_url}/pbs/{fixture.path.name}"
        archives.append(RuntimeArchive(name, url, fixture.sha256, fixture.python_version))
    return archives


def platform_workspace(bench: Bench, count: int, rules: Path | None = None, suffix: str = "") -> Workspace:
    """The bench's stack for the first `count` platforms (host first), with its own output base.

    On the bench's copy of the rules, or on `rules` (then give a `suffix` for the directories).
    """
    root = bench.scratch / f"ws-platforms-{count}{suffix}"
    rules = rules or bench.rules
    write_workspace(root, rules, platforms_module_text(rules, runtime_archives(bench)[:count]))
    return Workspace(root, bench.scratch / f"ob-platforms-{count}{suffix}")


def platform_locks(bench: Bench, one: Workspace, every: Workspace) -> dict[str, Any]:
    """Every layer locked from scratch, the two workspaces alternating; per workspace the total."""
    for ws in (one, every):  # untimed: server up, the runtime for the tool fetched (upper locks need lower ones)
        ws.bazel("build", f"//stacks:{FRAMEWORK}.lock")
    runs: dict[str, list[dict[str, Any]]] = {"one": [], "all": []}
    for i in range(bench.runs):
        for kind in ("one", "all") if i % 2 == 0 else ("all", "one"):
            log(f"lock, {kind} platform(s) {i + 1}/{bench.runs}: every layer, lock files removed")
            runs[kind].append(lock_round(one if kind == "one" else every))
    return {
        "runs": runs,
        "one": median([r["total"] for r in runs["one"]]),
        "all": median([r["total"] for r in runs["all"]]),
        "ratio": paired_ratio(runs["all"], runs["one"]),
        "packages": {kind: lock_packages_all(ws) for kind, ws in (("one", one), ("all", every))},
    }


def platform_cold(bench: Bench, every: Workspace) -> dict[str, Any]:
    """`//stacks:stack` for the host platform against every platform, each in fresh output bases."""
    log("building the stack for every platform once (fills the repository cache; not timed)")
    for name in ALL_PLATFORMS:
        every.bazel("build", platform_flag(name), TARGET)
    runs: dict[str, list[dict[str, Any]]] = {"one": [], "all": []}
    for i in range(bench.cold_runs):
        for kind in ("one", "all") if i % 2 == 0 else ("all", "one"):
            names = ALL_PLATFORMS[:1] if kind == "one" else ALL_PLATFORMS
            log(f"cold build, {len(names)} platform(s) {i + 1}/{bench.cold_runs} (fresh output base)")
            runs[kind].append(platform_cold_run(bench, every.root, f"{kind}-{i}", names))
    per_platform = {name: median([r["platforms"][name]["wall"] for r in runs["all"]]) for name in ALL_PLATFORMS}
    return {
        "runs": runs,
        "one": median([r["total"] for r in runs["one"]]),
        "all": median([r["total"] for r in runs["all"]]),
        "ratio": paired_ratio(runs["all"], runs["one"]),
        "per_platform": per_platform,
    }


def platform_cold_run(bench: Bench, root: Path, name: str, platforms: Sequence[str]) -> dict[str, Any]:
    """`platforms` built one after the other in one fresh output base: the total and each build."""
    ws = Workspace(root, bench.scratch / f"ob-platforms-cold-{name}")
    load = loadavg()
    quiesce()
    builds = {}
    start = time.perf_counter()
    try:
        for platform_name in platforms:
            builds[platform_name] = platform_build(bench, ws, f"platforms-cold-{name}-{platform_name}", platform_name)
        total = time.perf_counter() - start
    finally:
        ws.shutdown(remove=not bench.keep)
    return {"total": total, "platforms": builds, "load": load}


def platform_build(bench: Bench, ws: Workspace, name: str, platform_name: str) -> dict[str, Any]:
    """One `//stacks:stack` build for `platform_name`: times, per-action times, how many actions ran."""
    # No convenience symlinks: bazel-bin keeps pointing at the lock workspace's output base.
    result, actions, ran = bench.timed_build(ws, name, "--symlink_prefix=/", platform_flag(platform_name))
    return {
        "wall": result.wall,
        "elapsed": result.elapsed,
        "critical_path": result.critical_path,
        "actions": actions,
        "executed": len(ran["executed"]),
    }


def render_platforms(entry: dict[str, Any], runs: int, cold_runs: int) -> list[str]:
    """The platforms step's rows: locking and the cold build, one platform against all of them.

    The target of both ratios: N platforms cost less than N times one.
    """
    lock, cold = entry["lock"], entry["cold"]
    count = len(entry["platforms"])
    layers = ", ".join(lock["runs"]["one"][0]["layers"])
    rows = []
    for kind, label in (("one", f"host only ({entry['platforms'][0]})"), ("all", f"{count} platforms")):
        per_layer = "; ".join(
            f"{layer} {s(median([r['layers'][layer] for r in lock['runs'][kind]]))}"
            for layer in lock["runs"][kind][0]["layers"]
        )
        rows.append(
            f"| lock, {label}: `bazel run` of every layer's lock, lock files removed | {s(lock[kind])} | {runs} |"
            f" {per_layer}; load at start {loads_text(lock['runs'][kind])} |"
        )
    rows.append(
        f"| **lock, {count} platforms / 1** (median of paired runs) | {times(lock['ratio'])} | {runs} |"
        f" {verdict(lock['ratio'], count, '{:.2f}x')} ({layers}) |"
    )
    one = cold["runs"]["one"]
    host_elapsed = median([r["platforms"][entry["platforms"][0]]["elapsed"] or 0.0 for r in one])
    rows.append(
        f"| cold build, host platform only (fresh output base, warm repository cache) | {s(cold['one'])} |"
        f" {cold_runs} | Bazel elapsed {s(host_elapsed)};"
        f" load at start {loads_text(one)} |"
    )
    per_platform = "; ".join(f"{name} {s(value)}" for name, value in cold["per_platform"].items())
    rows.append(
        f"| cold build, {count} platforms one after the other (same fresh output base) | {s(cold['all'])} |"
        f" {cold_runs} | {per_platform}; load at start {loads_text(cold['runs']['all'])} |"
    )
    rows.append(
        f"| **cold build, {count} platforms / 1** (median of paired runs) | {times(cold['ratio'])} | {cold_runs} |"
        f" {verdict(cold['ratio'], count, '{:.2f}x')} |"
    )
    return rows


def report(results: dict[str, Any], runs: int, cold_runs: int) -> list[str]:
    """The platforms step's rows, if it ran."""
    return render_platforms(results["platforms"], runs, cold_runs) if results.get("platforms") else []
