"""The loader check's cost: the framework's `check-libraries` against its `build-layer`, outside Bazel.

Both run on the action's own inputs and command line (from the warm-up build's execution log),
alternating, so each pair runs under the same load; the check's outputs go to the scratch
directory. In Bazel the check is a validation action beside the archive action, so on an idle
machine with a free core it adds no wall time at all; what it costs is its CPU time, compared here
with the archive action's (target: under 5%).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

from venvstacks_bench.bazel import remove_tree
from venvstacks_bench.core import Bench
from venvstacks_bench.host import children_cpu, log, quiesce
from venvstacks_bench.report import s, verdict
from venvstacks_bench.stats import median

# The target: the loader check under 5% of the framework layer's build.
LOADER_TARGET_SHARE = 0.05


def _params_to_scratch(command: list[str], execroot: Path, out: Path) -> list[str]:
    """The check's command with a copy of its params file whose report and document go to `out`."""
    params = execroot / command[-1].lstrip("@")
    lines = params.read_text().splitlines()
    for flag, name in (("--output", "loader.txt"), ("--libraries", "libraries.json")):
        lines[lines.index(flag) + 1] = str(out / name)
    copy = out / "loader.params"
    copy.write_text("\n".join(lines) + "\n")
    return [*command[:-1], f"@{copy}"]


def _check_once(bench: Bench, out: Path) -> dict[str, float]:
    execroot = bench.main.execroot()
    command = _params_to_scratch(bench.tool["loader_command"], execroot, out)
    quiesce()
    cpu, start = children_cpu(), time.perf_counter()
    subprocess.run(command, cwd=execroot, env=bench.tool["loader_env"], check=True, capture_output=True)
    return {"wall": time.perf_counter() - start, "cpu": children_cpu() - cpu}


def run(bench: Bench) -> None:
    """The framework's build-layer and its loader check, alternating (paired runs, same inputs)."""
    checks, builds = [], []
    for i in range(bench.runs):
        for kind in ("check", "build") if i % 2 == 0 else ("build", "check"):
            out = bench.scratch / f"loader-{kind}"
            out.mkdir()
            if kind == "check":
                log(f"framework check-libraries {i + 1}/{bench.runs} outside Bazel (same inputs)")
                checks.append(_check_once(bench, out))
            else:
                log(f"framework build-layer {i + 1}/{bench.runs} outside Bazel (same inputs)")
                wall, data = bench.tool_run("build-layer", bench.tool["framework_params"], str(out))
                builds.append({"wall": wall, "cpu": data["cpu"]})
            remove_tree(out)
    pairs = list(zip(checks, builds, strict=True))
    bench.results["loader_check"] = {
        "checks": checks,
        "builds": builds,
        "check_wall": median([c["wall"] for c in checks]),
        "check_cpu": median([c["cpu"] for c in checks]),
        "build_wall": median([b["wall"] for b in builds]),
        "build_cpu": median([b["cpu"] for b in builds]),
        "share_cpu": median([c["cpu"] / b["cpu"] for c, b in pairs if b["cpu"]]),
        "share_wall": median([c["wall"] / b["wall"] for c, b in pairs if b["wall"]]),
    }


def report(results: dict[str, Any], runs: int, cold_runs: int) -> list[str]:
    """The loader check's row: its share of the framework layer's build, in CPU and wall time."""
    entry = results.get("loader_check")
    if not entry:
        return []
    return [
        f"| **loader check / framework `build-layer`** (CPU time, outside Bazel, median of paired runs) |"
        f" {entry['share_cpu']:.1%} | {runs} | {verdict(entry['share_cpu'], LOADER_TARGET_SHARE, '{:.1%}')};"
        f" check CPU {s(entry['check_cpu'])} (wall {s(entry['check_wall'])}), build-layer CPU"
        f" {s(entry['build_cpu'])} (wall {s(entry['build_wall'])}); in wall time {entry['share_wall']:.1%};"
        f" in Bazel it runs beside the archive action, not after it |"
    ]
