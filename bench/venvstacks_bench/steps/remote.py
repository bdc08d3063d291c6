"""A fresh checkout with a warm remote cache, against the cold build and against Bazel alone.

One build populates an nginx WebDAV cache on 127.0.0.1 (tests/support/remote_cache.py), then each
run copies the workspace to a new directory and builds it in a fresh output base with
`--remote_cache`; interleaved with those runs, the same for a workspace without dependencies whose
one genrule is a remote-cache hit: Bazel's own fixed cost, which no ruleset can remove.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from venvstacks_bench.bazel import Workspace, remove_tree
from venvstacks_bench.core import Bench
from venvstacks_bench.host import loadavg, log
from venvstacks_bench.logs import profile_phases
from venvstacks_bench.report import s, times, verdict
from venvstacks_bench.stats import median, median_phases, ratio
from venvstacks_bench.workspace import copy_workspace

# The Bazel-alone baseline of the fresh-checkout measurement: a workspace with no dependencies
# and one genrule, so that all that is left is Bazel's own fixed cost and one remote-cache hit.
BASELINE_TARGET = "//:hello"
BASELINE_MODULE = 'module(name = "bazel_baseline")\n'
BASELINE_BUILD = """\
genrule(
    name = "hello",
    outs = ["hello.txt"],
    cmd = "echo hello > $@",
)
"""


# The target: a fresh checkout with a warm remote cache within 10% of the cold build.
REMOTE_TARGET_RATIO = 0.10


def write_baseline_workspace(root: Path, bazelrc: Path) -> None:
    """The Bazel-alone workspace: a MODULE.bazel without dependencies, `bazelrc` if it exists, one genrule."""
    root.mkdir(parents=True)
    (root / "MODULE.bazel").write_text(BASELINE_MODULE)
    (root / "BUILD.bazel").write_text(BASELINE_BUILD)
    if bazelrc.exists():
        shutil.copyfile(bazelrc, root / ".bazelrc")


def run(bench: Bench) -> None:
    """Fresh checkouts against a warm remote cache, interleaved with the Bazel-alone baseline."""
    try:
        from venvstacks_testing.remote_cache import remote_cache
    except ImportError as error:
        log(f"skipping the remote-cache measurement: tests/support/remote_cache.py is missing ({error})")
        bench.results["remote"] = {"skipped": str(error)}
        return
    with remote_cache(bench.scratch / "remote-cache") as cache:
        flag = f"--remote_cache={cache.url}"
        log("populating the remote cache: a cold build in another checkout with --remote_cache")
        root = bench.scratch / "populate"
        copy_workspace(bench.main.root, root)
        ws = Workspace(root, bench.scratch / "ob-populate")
        result, _, ran = bench.timed_build(ws, "populate", flag)
        ws.shutdown(remove=not bench.keep)
        populate = {"wall": result.wall, "elapsed": result.elapsed, "ran": ran}
        baseline_root = bench.scratch / "baseline"
        write_baseline_workspace(baseline_root, bench.main.root / ".bazelrc")
        log("populating the remote cache for the Bazel-alone baseline (an empty workspace, one genrule)")
        baseline_populate = baseline_build(bench, baseline_root, "baseline-populate", flag)
        runs, baseline_runs = [], []
        for i in range(bench.cold_runs):
            # Alternating which goes first, so that load and caches weigh on both alike.
            for kind in ("fresh", "baseline") if i % 2 == 0 else ("baseline", "fresh"):
                if kind == "fresh":
                    log(f"fresh checkout {i + 1}/{bench.cold_runs} with the warm remote cache")
                    runs.append(fresh_checkout(bench, i, flag))
                else:
                    log(f"Bazel alone {i + 1}/{bench.cold_runs}: empty workspace, fresh output base, 1 cache hit")
                    baseline_runs.append(baseline_fresh(bench, baseline_root, i, flag))
    bench.results["remote"] = {
        "populate": populate,
        "runs": runs,
        "wall": median([r["wall"] for r in runs]),
        "elapsed": median([r["elapsed"] for r in runs if r["elapsed"] is not None]),
        "profile": median_phases(runs),
        "bazel_baseline": {
            "populate": baseline_populate,
            "runs": baseline_runs,
            "wall": median([r["wall"] for r in baseline_runs]),
            "elapsed": median([r["elapsed"] for r in baseline_runs if r["elapsed"] is not None]),
            "remote_cache_hit": all(r["remote_cache_hit"] for r in baseline_runs),
            "profile": median_phases(baseline_runs),
        },
    }


def fresh_checkout(bench: Bench, index: int, flag: str) -> dict[str, Any]:
    """One fresh checkout of the stack built in a new output base against the remote cache."""
    root = bench.scratch / f"fresh-{index}"
    copy_workspace(bench.main.root, root)
    ws = Workspace(root, bench.scratch / f"ob-fresh-{index}")
    load = loadavg()
    result, actions, ran = bench.timed_build(ws, f"fresh-{index}", flag)
    ws.shutdown(remove=not bench.keep)
    if not bench.keep:
        remove_tree(root)
    return {
        "wall": result.wall,
        "elapsed": result.elapsed,
        "actions": actions,
        "ran": ran,
        "load": load,
        "profile": profile_phases(bench.profile_file(f"fresh-{index}")),
    }


def baseline_build(bench: Bench, root: Path, name: str, flag: str) -> dict[str, Any]:
    """The baseline's genrule built in `root` with a new output base (shut down after)."""
    ws = Workspace(root, bench.scratch / f"ob-{name}")
    load = loadavg()
    result, _, ran = bench.timed_build(ws, name, flag, target=BASELINE_TARGET)
    ws.shutdown(remove=not bench.keep)
    return {
        "wall": result.wall,
        "elapsed": result.elapsed,
        "ran": ran,
        "remote_cache_hit": ran["remote_cache_hits"] == 1 and not ran["executed"],
        "load": load,
        "profile": profile_phases(bench.profile_file(name)),
    }


def baseline_fresh(bench: Bench, template: Path, index: int, flag: str) -> dict[str, Any]:
    """One fresh checkout of the baseline workspace: copied like the stack's, built like it."""
    root = bench.scratch / f"baseline-{index}"
    copy_workspace(template, root)
    run = baseline_build(bench, root, f"baseline-{index}", flag)
    if not bench.keep:
        remove_tree(root)
    return run


def render_baseline(baseline: dict[str, Any], fresh_wall: float | None, cold_wall: float | None, runs: int) -> str:
    """The table row of the Bazel-alone baseline, set against the cold build and the fresh checkout."""
    share = ratio(baseline["wall"], cold_wall)
    rest = fresh_wall - baseline["wall"] if fresh_wall is not None and baseline["wall"] is not None else None
    hits = sum(r["remote_cache_hit"] for r in baseline["runs"])
    phases = baseline.get("profile", {})
    return (
        f"| &nbsp;&nbsp;Bazel alone: empty workspace, fresh output base, 1 remote-cache hit | {s(baseline['wall'])} |"
        f" {runs} | {'n/a' if share is None else f'{share:.0%}'} of cold; the stack's fresh checkout minus this:"
        f" {s(rest)}; Bazel elapsed {s(baseline['elapsed'])}; genrule a remote cache hit in"
        f" {hits}/{len(baseline['runs'])} runs; server launch {s(phases.get('server_launch'), 2)},"
        f" repository fetching {s(phases.get('repository_fetch'), 2)} |"
    )


def report(results: dict[str, Any], runs: int, cold_runs: int) -> list[str]:
    """The remote cache's rows: populating it, the fresh checkout, the Bazel-alone baseline."""
    lines: list[str] = []
    row = lines.append
    cold = results.get("cold", {})
    remote = results.get("remote", {})
    if remote and "skipped" not in remote:
        share = ratio(remote["wall"], cold.get("wall"))
        hits = [r["ran"]["remote_cache_hits"] for r in remote["runs"]]
        spawns = [r["ran"]["spawns"] for r in remote["runs"]]
        row(
            f"| cold build + upload to the remote cache (populating it) | {s(remote['populate']['wall'])} | 1 |"
            f" {times(ratio(remote['populate']['wall'], cold.get('wall')))} the cold build |"
        )
        profile = remote.get("profile", {})
        row(
            f"| fresh checkout, warm remote cache (nginx on 127.0.0.1) | {s(remote['wall'])} | {cold_runs} |"
            f" {verdict(share, REMOTE_TARGET_RATIO, '{:.0%}')} of cold; Bazel elapsed {s(remote['elapsed'])};"
            f" remote cache hits {min(hits)}/{max(spawns)} spawns; server launch {s(profile.get('server_launch'), 2)},"
            f" repository fetching {s(profile.get('repository_fetch'), 2)} |"
        )
        baseline = remote.get("bazel_baseline")
        if baseline:
            row(render_baseline(baseline, remote["wall"], cold.get("wall"), cold_runs))
    return lines
