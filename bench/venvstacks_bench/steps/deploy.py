"""Deploy: the tool's `deploy` of the four archives (no Bazel) against `zstd -dc | tar -x` of them.

The two alternate (the ratio is the median over the pairs, in wall and in CPU time); plus
`bazel run //stacks:app_report.deploy` for scale. `deploy_pair` serves the torch step too.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Sequence
from typing import Any

from venvstacks_bench.bazel import remove_tree
from venvstacks_bench.core import Bench
from venvstacks_bench.host import children_cpu, log, quiesce
from venvstacks_bench.report import s, verdict
from venvstacks_bench.stats import median

# The target: deploy within 1.5 times `tar -x` of the same archives.
DEPLOY_TARGET_RATIO = 1.5


def deploy_pair(
    bench: Bench, archives: Sequence[str], index: int, prefix: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The tool's deploy and `tar -x` of the same archives, one after the other (the order
    alternates with `index`), each into a new directory `prefix-{tool,tar}-index`: both runs."""
    tar_script = (
        'set -e; dest=$1; shift; for a in "$@"; do zstd -dcq -- "$a" | tar -xf - -C "$dest"; done'
        if shutil.which("zstd")
        else 'set -e; dest=$1; shift; for a in "$@"; do tar --zstd -xf "$a" -C "$dest"; done'
    )
    runs: dict[str, dict[str, Any]] = {}
    for kind in ("tool", "tar") if index % 2 == 0 else ("tar", "tool"):
        dest = bench.scratch / f"{prefix}-{kind}-{index}"
        if kind == "tool":
            wall, data = bench.tool_run("deploy", str(dest), *archives)
            runs[kind] = {"wall": wall, **data}
            continue
        dest.mkdir()
        quiesce()
        cpu = children_cpu()
        start = time.perf_counter()
        subprocess.run(["bash", "-c", tar_script, "tar-x", str(dest), *archives], check=True)
        runs[kind] = {"wall": time.perf_counter() - start, "cpu": children_cpu() - cpu}
    return runs["tool"], runs["tar"]


def run(bench: Bench) -> None:
    """The tool's deploy and `tar -x` alternate (paired runs); each into a new directory."""
    archives = [str(a) for a in bench.archives()]
    tool_runs, tar_runs, bazel_runs, tool3_runs = [], [], [], []
    for i in range(bench.runs):
        log(f"deploy {i + 1}/{bench.runs}: the tool and tar -x (alternating), bazel run")
        tool_run, tar_run = deploy_pair(bench, archives, i, "deploy")
        tool_runs.append(tool_run)
        tar_runs.append(tar_run)
        # bazel run of one application's stack (3 layers), against the tool on the same 3.
        quiesce()
        result = bench.main.bazel("run", "//stacks:app_report.deploy", "--", str(bench.scratch / f"deploy-bazel-{i}"))
        bazel_runs.append(result.wall)
        wall, _ = bench.tool_run("deploy", str(bench.scratch / f"deploy-tool3-{i}"), *archives[:3])
        tool3_runs.append(wall)
    bench.tar_tree = bench.scratch / f"deploy-tar-{bench.runs - 1}"
    for path in bench.scratch.glob("deploy-*"):
        if path != bench.tar_tree:
            remove_tree(path)
    names = tool_runs[0]["phases"]
    bench.results["deploy"] = {
        "tool_wall": median([r["wall"] for r in tool_runs]),
        "tool_cpu": median([r["cpu"] for r in tool_runs]),
        "tool_phases": {name: median([r["phases"].get(name, 0.0) for r in tool_runs]) for name in names},
        "tar_wall": median([r["wall"] for r in tar_runs]),
        "tar_cpu": median([r["cpu"] for r in tar_runs]),
        "ratio_wall": median([t["wall"] / x["wall"] for t, x in zip(tool_runs, tar_runs, strict=True)]),
        "ratio_cpu": median([t["cpu"] / x["cpu"] for t, x in zip(tool_runs, tar_runs, strict=True) if x["cpu"]]),
        "tar_command": "zstd -dc | tar -x" if shutil.which("zstd") else "tar --zstd -x",
        "bazel_run_app_report": median(bazel_runs),
        "tool_app_report_layers": median(tool3_runs),
        "missing_hooks": tool_runs[0].get("missing_hooks", []),
        "runs": {"tool": tool_runs, "tar": tar_runs, "bazel_run": bazel_runs, "tool_3_layers": tool3_runs},
    }


def report(results: dict[str, Any], runs: int, cold_runs: int) -> list[str]:
    """The deploy rows: the tool, tar -x, their ratio against its target, bazel run."""
    lines: list[str] = []
    row = lines.append
    deploy = results.get("deploy", {})
    if deploy:
        tar_command = deploy["tar_command"].replace("|", "\\|")  # a table cell
        phases = ", ".join(f"{k} {v:.2f} s" for k, v in deploy["tool_phases"].items() if v >= 0.005)
        row(
            f"| deploy whole stack: tool `deploy`, 4 archives (no Bazel) | {s(deploy['tool_wall'], 2)} | {runs} |"
            f" CPU {s(deploy['tool_cpu'], 2)}; {phases} |"
        )
        row(
            f"| `{tar_command}` of the same 4 archives | {s(deploy['tar_wall'], 2)} | {runs} |"
            f" CPU {s(deploy['tar_cpu'], 2)} |"
        )
        row(
            f"| **deploy / tar -x** (median of paired runs) | {deploy['ratio_wall']:.2f}x | {runs} |"
            f" {verdict(deploy['ratio_wall'], DEPLOY_TARGET_RATIO, '{:.2f}x')};"
            f" in CPU time {deploy['ratio_cpu'] or 0:.2f}x |"
        )
        row(
            f"| `bazel run //stacks:app_report.deploy` (3 layers, server up) | {s(deploy['bazel_run_app_report'], 2)} |"
            f" {runs} | the tool alone on the same 3 archives: {s(deploy['tool_app_report_layers'], 2)} |"
        )
    return lines
