"""A torch-scale stack: PyTorch's CPU build in a framework, against the floor, `tar -x` and a cold build.

Also a fresh checkout against a warm remote cache, an application-only change built with
`--remote_download_minimal`, and each layer action's peak memory. Skipped with a message when the
wheel is not there (TORCH_WHEEL_DIR).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from venvstacks_bench.bazel import Workspace, remove_tree
from venvstacks_bench.core import Bench, build_layer_spawn, layer_wheels
from venvstacks_bench.host import loadavg, log, quiesce
from venvstacks_bench.logs import access_log_gets, profile_phases
from venvstacks_bench.memory import memory_by_action, peak_memory, tool_action_key, tool_phases_key
from venvstacks_bench.report import gb, kb, loads_text, mb, s, times, verdict
from venvstacks_bench.stats import median, median_phases, order_balanced_ratio, ratio
from venvstacks_bench.steps.deploy import deploy_pair
from venvstacks_bench.steps.remote import REMOTE_TARGET_RATIO
from venvstacks_bench.workspace import (
    RUNTIME,
    STACK_BUILD_HEADER,
    TARGET,
    application_layer,
    call,
    link_tree,
    lock_packages,
    runtime_tag,
    stack_module,
    write_stack,
)
from venvstacks_testing.stack_workspace import read_execution_log

# The torch step: a second workspace whose framework holds PyTorch (a CPU build kept on these
# machines, hard-linked into the workspace: the lock refuses find-links outside it) and whose
# dependencies come from PyPI. torch ships only manylinux_2_28 wheels, hence the glibc floor.
TORCH_WHEEL_DIR = Path(os.environ.get("VENVSTACKS_BENCH_TORCH_WHEELS", "/opt/wheels"))
TORCH_WHEEL = "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"
TORCH_REQUIREMENTS = ["torch==2.13.0+cpu"]  # the local CPU build: no CUDA wheel is ever resolved
TORCH_GLIBC = "2.28"
TORCH_FRAMEWORK = "torch_framework"
TORCH_APP = "app_torch"
TORCH_LAYERS = (RUNTIME, TORCH_FRAMEWORK, TORCH_APP)
# Its targets (the "Speed where users wait", item 3).
TORCH_FLOOR_TARGET_RATIO = 1.5
TORCH_DEPLOY_TARGET_RATIO = 1.0
TORCH_APP_MAIN = """\
import torch

x = torch.arange(6.0).reshape(2, 3)
print(torch.__version__, float((x @ x.T).sum()))
"""


def torch_module_text(rules: Path, runtime_url: str, runtime: Any) -> str:
    """The torch workspace's module: the host's runtime, with the glibc floor torch's wheels need."""
    tag = runtime_tag(runtime_url, runtime, glibc_minimum=TORCH_GLIBC)
    return stack_module(rules, tag, name="venvstacks_bench_torch", locked=(TORCH_FRAMEWORK, TORCH_APP))


def torch_build_text() -> str:
    """A framework with PyTorch (its wheel from `wheels/`, the rest from PyPI) and an application on it."""
    framework = call(
        "framework_layer",
        name=TORCH_FRAMEWORK,
        find_links=["wheels"],
        requirements=TORCH_REQUIREMENTS,
        runtime=f":{RUNTIME}",
    )
    app = application_layer(TORCH_APP, TORCH_FRAMEWORK)
    return "\n".join([STACK_BUILD_HEADER, framework, app, f'layer_stack(name = "stack", layers = [":{TORCH_APP}"])\n'])


def run(bench: Bench) -> None:
    """A torch-scale stack: the framework action against the floor, deploy against `tar -x`, a fresh
    checkout with a warm remote cache against the cold build, an application-only change built
    with `--remote_download_minimal`, and each layer action's peak memory."""
    wheel = TORCH_WHEEL_DIR / TORCH_WHEEL
    if not wheel.is_file():
        log(f"skipping the torch step: {wheel} is not there (set VENVSTACKS_BENCH_TORCH_WHEELS to its directory)")
        bench.results["torch"] = {"skipped": f"{wheel} is missing"}
        return
    from venvstacks_testing.remote_cache import remote_cache

    root = bench.scratch / "ws-torch"
    module = torch_module_text(bench.rules, bench.runtime_url, bench.runtime)
    write_stack(root, bench.rules, module, torch_build_text(), {f"{TORCH_APP}/__main__.py": TORCH_APP_MAIN})
    (root / "wheels").mkdir()
    try:
        os.link(wheel, root / "wheels" / wheel.name)
    except OSError:
        shutil.copyfile(wheel, root / "wheels" / wheel.name)
    ws = Workspace(root, bench.scratch / "ob-torch")
    entry: dict[str, Any] = {"wheel": str(wheel), "wheel_bytes": wheel.stat().st_size}
    bench.results["torch"] = entry
    try:
        log(f"locking the torch stack in {root} (not timed; torch from wheels/, the rest from PyPI)")
        for layer in (TORCH_FRAMEWORK, TORCH_APP):
            ws.bazel("run", f"//stacks:{layer}.lock")
        entry["packages"] = lock_packages(root / "stacks" / f"pylock.{TORCH_FRAMEWORK}.toml")
        with remote_cache(bench.scratch / "remote-cache-torch") as cache:
            flag = f"--remote_cache={cache.url}"
            log("building the torch stack once with --remote_cache (fills both caches; not timed)")
            exec_log = bench.scratch / "torch-warmup.exec.json"
            warm = ws.bazel("build", f"--execution_log_json_file={exec_log}", flag, TARGET)
            entry["warmup_wall"] = warm.wall
            framework = build_layer_spawn(read_execution_log(exec_log), TORCH_FRAMEWORK)
            execroot = ws.execroot()
            params = execroot / framework["commandArgs"][-1].lstrip("@")
            wheels = layer_wheels(params, execroot)
            entry["framework_wheels"] = {Path(w).name: os.path.getsize(w) for w in wheels}
            entry["archive_bytes"] = {
                layer: ws.output(f"stacks/{layer}.tar.zst").stat().st_size for layer in TORCH_LAYERS
            }
            record = json.loads(ws.output(f"stacks/_{TORCH_FRAMEWORK}.archive.json").read_text())
            entry["framework_sha256"] = record["archive"]["sha256"]
            entry["cold"] = torch_cold(bench, ws, flag, wheels)
            entry["app_change"] = torch_app_change(bench, ws, cache, flag, entry["framework_sha256"])
        entry["phases"] = torch_phases(bench, ws, params, wheels)
        entry["deploy"] = torch_deploy(bench, ws)
    finally:
        ws.shutdown(remove=not bench.keep)


def torch_cold(bench: Bench, ws: Workspace, flag: str, wheels: Sequence[str]) -> dict[str, Any]:
    """Per round: a cold build (fresh output base, memory sampled), the floor, a fresh checkout
    with the warm remote cache; the order rotates. Ratios per round, then the median."""
    rounds = []
    for i in range(bench.cold_runs):
        kinds = ("cold", "floor", "fresh")
        run: dict[str, Any] = {}
        for kind in kinds[i % 3 :] + kinds[: i % 3]:
            if kind == "cold":
                log(f"torch: cold build {i + 1}/{bench.cold_runs} (fresh output base, memory sampled)")
                cold_ws = Workspace(ws.root, bench.scratch / f"ob-torch-cold-{i}")
                load = loadavg()
                quiesce()
                with peak_memory(tool_action_key) as sampled:
                    result, actions, _ = bench.timed_build(cold_ws, f"torch-cold-{i}", "--symlink_prefix=/")
                cold_ws.shutdown(remove=not bench.keep)
                entries = read_execution_log(bench.scratch / f"torch-cold-{i}.exec.json")
                run["cold"] = {
                    "wall": result.wall,
                    "elapsed": result.elapsed,
                    "critical_path": result.critical_path,
                    "actions": actions,
                    "memory": memory_by_action(sampled, entries),
                    "load": load,
                }
            elif kind == "floor":
                log(f"torch: floor {i + 1}/{bench.cold_runs}: unzip the framework's wheels, tar | zstd")
                _, data = bench.tool_run("floor", str(bench.scratch / "floor-torch"), *wheels, cwd=ws.execroot())
                remove_tree(bench.scratch / "floor-torch")
                run["floor"] = {**data, "load": loadavg()}
            else:
                log(f"torch: fresh checkout {i + 1}/{bench.cold_runs} with the warm remote cache")
                root = bench.scratch / f"torch-fresh-{i}"
                link_tree(ws.root, root)
                fresh_ws = Workspace(root, bench.scratch / f"ob-torch-fresh-{i}")
                load = loadavg()
                quiesce()
                result, _, ran = bench.timed_build(fresh_ws, f"torch-fresh-{i}", flag)
                fresh_ws.shutdown(remove=not bench.keep)
                if not bench.keep:
                    remove_tree(root)
                run["fresh"] = {
                    "wall": result.wall,
                    "elapsed": result.elapsed,
                    "ran": ran,
                    "load": load,
                    "profile": profile_phases(bench.profile_file(f"torch-fresh-{i}")),
                }
        framework = run["cold"]["actions"].get(f"//stacks:{TORCH_FRAMEWORK}", {}).get("action")
        run["framework_action"] = framework
        run["action_to_floor"] = ratio(framework, run["floor"]["total"])
        run["fresh_to_cold"] = ratio(run["fresh"]["wall"], run["cold"]["wall"])
        rounds.append(run)
    peaks: dict[str, list[int]] = {}
    for run in rounds:
        for label, value in run["cold"]["memory"].items():
            peaks.setdefault(label, []).append(value["peak_rss_bytes"])
    return {
        "runs": rounds,
        "cold_wall": median([r["cold"]["wall"] for r in rounds]),
        "cold_elapsed": median([r["cold"]["elapsed"] for r in rounds if r["cold"]["elapsed"] is not None]),
        "cold_critical_path": median(
            [r["cold"]["critical_path"] for r in rounds if r["cold"]["critical_path"] is not None]
        ),
        "framework_action": median([r["framework_action"] for r in rounds if r["framework_action"]]),
        "floor": median([r["floor"]["total"] for r in rounds]),
        "fresh_wall": median([r["fresh"]["wall"] for r in rounds]),
        "action_to_floor": median([r["action_to_floor"] for r in rounds if r["action_to_floor"]]),
        "fresh_to_cold": median([r["fresh_to_cold"] for r in rounds if r["fresh_to_cold"]]),
        "peak_rss": {label: max(values) for label, values in sorted(peaks.items())},
    }


def torch_app_change(bench: Bench, ws: Workspace, cache: Any, flag: str, framework_sha256: str) -> dict[str, Any]:
    """The application's source edited in a fresh checkout, built in a fresh output base with
    `--remote_download_minimal`: what was downloaded from the cache (nginx's access log)."""
    runs = []
    log_path = cache.state / "access.log"
    for i in range(bench.cold_runs):
        log(f"torch: application-only change {i + 1}/{bench.cold_runs} (fresh output base, minimal download)")
        root = bench.scratch / f"torch-app-{i}"
        link_tree(ws.root, root)
        source = root / "stacks" / TORCH_APP / "__main__.py"
        source.unlink()  # a hard link: edit a copy, never the original workspace's file
        source.write_text(TORCH_APP_MAIN + f"print('edit {i} at {time.time()}')\n")
        app_ws = Workspace(root, bench.scratch / f"ob-torch-app-{i}")
        offset = log_path.stat().st_size if log_path.exists() else 0
        load = loadavg()
        quiesce()
        result, _, ran = bench.timed_build(app_ws, f"torch-app-{i}", flag, "--remote_download_minimal")
        app_ws.shutdown(remove=not bench.keep)
        if not bench.keep:
            remove_tree(root)
        with open(log_path, "rb") as f:
            f.seek(offset)
            requests = access_log_gets(f.read().decode(errors="replace"))
        downloads = [r for r in requests if r["status"] == 200]
        runs.append(
            {
                "wall": result.wall,
                "elapsed": result.elapsed,
                "ran": ran,
                "load": load,
                "downloaded_bytes": sum(r["bytes"] for r in downloads),
                "downloads": len(downloads),
                "largest_download": max((r["bytes"] for r in downloads), default=0),
                "framework_archive_downloaded": any(r["path"] == f"/cas/{framework_sha256}" for r in downloads),
                "summary": [line for line in result.stderr.splitlines() if "processes:" in line][-1:],
            }
        )
    return {
        "runs": runs,
        "wall": median([r["wall"] for r in runs]),
        "downloaded_bytes": median([r["downloaded_bytes"] for r in runs]),
        "framework_archive_downloaded": any(r["framework_archive_downloaded"] for r in runs),
    }


def torch_phases(bench: Bench, ws: Workspace, params: Path, wheels: Sequence[str]) -> dict[str, Any]:
    """The framework's `build-layer` outside Bazel (memory sampled) alternating with the floor."""
    builds, floors = [], []
    for i in range(bench.runs):
        for kind in ("build", "floor") if i % 2 == 0 else ("floor", "build"):
            if kind == "floor":
                log(f"torch: floor {i + 1}/{bench.runs} (paired with build-layer outside Bazel)")
                _, data = bench.tool_run("floor", str(bench.scratch / "floor-torch"), *wheels, cwd=ws.execroot())
                remove_tree(bench.scratch / "floor-torch")
                floors.append(data)
                continue
            log(f"torch: framework build-layer {i + 1}/{bench.runs} outside Bazel, by phase, memory sampled")
            out = bench.scratch / "phases-torch"
            out.mkdir()
            with peak_memory(tool_phases_key) as sampled:
                wall, data = bench.tool_run("build-layer", str(params), str(out), cwd=ws.execroot())
            remove_tree(out)
            builds.append({"wall": wall, **data, "peak_rss_bytes": sampled.get("tool_phases")})
    names = sorted({name for run in builds for name in run["phases"]})
    pairs = list(zip(builds, floors, strict=True))
    return {
        "runs": builds,
        "floors": floors,
        "wall": median([r["wall"] for r in builds]),
        "cpu": median([r["cpu"] for r in builds]),
        "floor": median([f["total"] for f in floors]),
        "floor_unzip": median([f["unzip"] for f in floors]),
        "floor_pack": median([f["pack"] for f in floors]),
        "floor_cpu": median([f["cpu_floor"] for f in floors]),
        "floor_tree_bytes": floors[0]["tree_bytes"],
        "floor_tree_files": floors[0]["tree_files"],
        "floor_archive_bytes": floors[0]["archive_bytes"],
        "bytecode_compile_all_cores": median([f["bytecode_compile_all_cores"] for f in floors]),
        "phases": {name: median([r["phases"].get(name, 0.0) for r in builds]) for name in names},
        "tree_files": builds[0].get("tree_files"),
        "tree_bytes": builds[0].get("tree_bytes"),
        "ratio_to_floor_wall": median([b["wall"] / f["total"] for b, f in pairs]),
        "ratio_to_floor_cpu": median([b["cpu"] / f["cpu_floor"] for b, f in pairs if f["cpu_floor"]]),
        "peak_rss_bytes": max((b["peak_rss_bytes"] or 0 for b in builds), default=0),
    }


def torch_deploy(bench: Bench, ws: Workspace) -> dict[str, Any]:
    """The tool's deploy of the torch stack's three archives against `tar -x` of them, paired."""
    archives = [str(ws.output(f"stacks/{layer}.tar.zst")) for layer in TORCH_LAYERS]
    tool_runs, tar_runs = [], []
    for i in range(bench.runs):
        log(f"torch: deploy {i + 1}/{bench.runs}: the tool and tar -x (alternating)")
        tool_run, tar_run = deploy_pair(bench, archives, i, "deploy-torch")
        tool_runs.append(tool_run)
        tar_runs.append(tar_run)
        for path in bench.scratch.glob("deploy-torch-*"):
            remove_tree(path)
    return {
        "tool_wall": median([r["wall"] for r in tool_runs]),
        "tool_cpu": median([r["cpu"] for r in tool_runs]),
        "tool_phases": {
            name: median([r["phases"].get(name, 0.0) for r in tool_runs]) for name in tool_runs[0]["phases"]
        },
        "tar_wall": median([r["wall"] for r in tar_runs]),
        "tar_cpu": median([r["cpu"] for r in tar_runs]),
        "ratio_wall": median([t["wall"] / x["wall"] for t, x in zip(tool_runs, tar_runs, strict=True)]),
        "ratio_cpu": median([t["cpu"] / x["cpu"] for t, x in zip(tool_runs, tar_runs, strict=True) if x["cpu"]]),
        # Unpacking ~870 MB is dominated by the kernel (page cache, file creation), and on these
        # machines whichever of a pair runs first was up to 5x slower: see order_balanced_ratio.
        "ratio_wall_balanced": order_balanced_ratio(
            [t["wall"] / x["wall"] for t, x in zip(tool_runs, tar_runs, strict=True)]
        ),
        "runs": {"tool": tool_runs, "tar": tar_runs},
    }


def render_torch(entry: dict[str, Any], runs: int, cold_runs: int) -> list[str]:
    """The torch step's rows: the framework against the floor, deploy, remote cache, memory."""
    if "skipped" in entry:
        return [f"| torch stack | skipped | | {entry['skipped']} |"]
    rows = []
    packages = ", ".join(entry.get("packages", []))
    wheels = entry.get("framework_wheels", {})
    cold = entry.get("cold")
    if cold:
        rounds = cold["runs"]
        rows.append(
            f"| torch: cold build, whole stack (fresh output base, warm repository cache) | {s(cold['cold_wall'])} |"
            f" {cold_runs} | Bazel elapsed {s(cold['cold_elapsed'])}, critical path {s(cold['cold_critical_path'])};"
            f" {TORCH_FRAMEWORK}: {packages}; load at start {loads_text([r['cold'] for r in rounds])} |"
        )
        for label in sorted({label for r in rounds for label in r["cold"]["actions"]}):
            values = [r["cold"]["actions"][label] for r in rounds if label in r["cold"]["actions"]]
            rows.append(
                f"| &nbsp;&nbsp;torch cold: action `{label}` | {s(median([v['action'] for v in values]))} |"
                f" {cold_runs} | tool process {s(median([v['process'] for v in values]))}, sandbox set-up"
                f" {s(median([v['sandbox_setup'] for v in values]))} |"
            )
        rows.append(
            f"| torch **floor**: unzip the {len(wheels)} framework wheels ({mb(sum(wheels.values()))}) + tar \\| zstd"
            f" | {s(cold['floor'])} | {cold_runs} | run next to each cold build; load"
            f" {loads_text([r['floor'] for r in rounds])} |"
        )
        rows.append(
            f"| **torch framework layer: cold Bazel action / floor** (median of rounds) |"
            f" {times(cold['action_to_floor'])} | {cold_runs} |"
            f" {verdict(cold['action_to_floor'], TORCH_FLOOR_TARGET_RATIO, '{:.2f}x')}"
            f" (action {s(cold['framework_action'])}, floor {s(cold['floor'])}) |"
        )
        hits = [r["fresh"]["ran"]["remote_cache_hits"] for r in rounds]
        spawns = [r["fresh"]["ran"]["spawns"] for r in rounds]
        fresh_phases = median_phases([r["fresh"] for r in rounds])
        rows.append(
            f"| **torch: fresh checkout, warm remote cache / cold build** (median of rounds) |"
            f" {s(cold['fresh_wall'])} | {cold_runs} |"
            f" share of the cold build ({s(cold['cold_wall'])}):"
            f" {verdict(cold['fresh_to_cold'], REMOTE_TARGET_RATIO, '{:.0%}')};"
            f" remote cache hits {min(hits)}/{max(spawns)} spawns; server launch"
            f" {s(fresh_phases.get('server_launch'), 2)}, repository fetching"
            f" {s(fresh_phases.get('repository_fetch'), 2)}; load {loads_text([r['fresh'] for r in rounds])} |"
        )
        for label, peak in cold["peak_rss"].items():
            rows.append(
                f"| &nbsp;&nbsp;torch cold: peak memory of `{label}` | {gb(peak)} | {cold_runs} |"
                " RSS of the action's process tree, sampled every 0.1 s |"
            )
    change = entry.get("app_change")
    if change:
        run = change["runs"][-1]
        rows.append(
            f"| torch: application-only change, fresh output base, `--remote_download_minimal` |"
            f" {s(change['wall'])} | {cold_runs} | downloaded {kb(change['downloaded_bytes'])} from the cache"
            f" ({run['downloads']} blobs, largest {kb(run['largest_download'])}); framework archive downloaded:"
            f" **{'yes' if change['framework_archive_downloaded'] else 'no'}** (target: no);"
            f" {'; '.join(run['summary'])} |"
        )
    phases = entry.get("phases")
    if phases:
        ordered = sorted(phases["phases"].items(), key=lambda kv: -kv[1])
        parts = [f"{name} {value:.1f} s" for name, value in ordered if value >= 0.05]
        rows.append(
            f"| torch framework `build-layer` outside Bazel / floor (median of paired runs) |"
            f" {times(phases['ratio_to_floor_wall'])} | {runs} |"
            f" build {s(phases['wall'])} (CPU {s(phases['cpu'])}), floor {s(phases['floor'])} (unzip"
            f" {s(phases['floor_unzip'])}, pack {s(phases['floor_pack'])}; {mb(phases['floor_tree_bytes'])} in"
            f" {phases['floor_tree_files']} files); in CPU time {times(phases['ratio_to_floor_cpu'])};"
            f" peak memory {gb(phases['peak_rss_bytes'])}; {'; '.join(parts)}; installed tree"
            f" {mb(phases['tree_bytes'])} in {phases['tree_files']} files |"
        )
    deploy = entry.get("deploy")
    if deploy:
        rows.append(
            f"| **torch: deploy / tar -x** (3 archives, median of paired runs) | {times(deploy['ratio_wall'])} |"
            f" {runs} | {verdict(deploy['ratio_wall'], TORCH_DEPLOY_TARGET_RATIO, '{:.2f}x')}; deploy"
            f" {s(deploy['tool_wall'], 2)} (CPU {s(deploy['tool_cpu'], 2)}), tar -x {s(deploy['tar_wall'], 2)}"
            f" (CPU {s(deploy['tar_cpu'], 2)}); in CPU time {times(deploy['ratio_cpu'])}; balanced for the order"
            f" within pairs (geometric mean of each tool-first and tar-first pair)"
            f" {times(deploy.get('ratio_wall_balanced'))} |"
        )
    return rows


def report(results: dict[str, Any], runs: int, cold_runs: int) -> list[str]:
    """The torch step's rows, if it ran."""
    return render_torch(results["torch"], runs, cold_runs) if results.get("torch") else []
