"""`python3 bench/bench_scale.py [--sizes 10,20,40,80] [--runs N]`: how every cost grows with the stack.

A generated monorepo-sized stack (bench/venvstacks_bench/scale_stack.py: three frameworks, one on
another, and N applications over them, each with its own `py_library` and one or two small
pure-Python packages from PyPI), for the host's platform, at each size of `--sizes`, each in a
workspace and output base of its own, the sizes one after the other. At each size it times:

- `bazel run //stacks:stack.lock` with every lock removed (from scratch, against PyPI), then again
  with nothing changed; the locks are then kept in `--lock-cache`, keyed by the generated inputs,
  and reused by the next run (`--reuse-locks` skips the timed locking when they are there);
- loading + analysis: `bazel build --nobuild //stacks:stack` on a fresh server (after `shutdown`;
  the module extension, which reads every lock, runs again), Bazel's `runAnalysisPhase` and the
  command without the server's launch from `--profile`, the server's CPU time since its launch
  (JVM start-up and warm-up included), the server's heap after it (`bazel info
  used-heap-size-after-gc`) and its process's resident memory; then, the server up, the same after
  an edit of stacks/BUILD.bazel (its package loaded and every layer analysed again, the extension
  not run), with the server's CPU time (`--analysis-only` stops each size here);
- a cold build (`bazel clean`, the repository cache and fetched repositories kept; with
  `--all-platforms` the four other platforms first, one after the other): Bazel's elapsed time,
  critical path, the actions run by mnemonic, the CPU time of the server and of the actions (the
  server's waited-for children), and the validation actions (`VenvstacksLayerChecks`): their
  number and summed time from `--profile`;
- a no-op build; an application-only change (app_000's first-party module edited): the elapsed
  time, the actions' CPU time and every action that ran;
- `bazel run //stacks:stack.deploy -- DIR` into an empty directory, and again after the
  application-only change (only that application is unpacked), and the bytes the deployed stack
  takes on disk;
- with `--remote-execution`, last, the cold build on the local BuildGrid
  (tests/support/reapi_service.py: BuildGrid, PostgreSQL and the workers on 127.0.0.1) with 1
  worker, then with 2 (`--remote-workers`; at the sizes of `--remote-sizes`, default every one),
  each against a new, empty service (`bazel clean` before): every action is
  executed remotely, on the same cores as Bazel, so this is the protocol's and the service's cost
  and how it grows, not a build farm's speed.

CPU time is what a loaded, shared machine changes least: compare its growth first.
Cheap figures (analysis, no-op, the change) are medians of `--runs`. Prints a Markdown table with
each figure against the size and the growth factor from the size before, and writes it and the
JSON into `--out` (`scale-<time>.md`/`.json`; the JSON of the sizes done so far is also written
after each size, `scale-<time>.partial.json`). A command of its own beside run_bench.py: that
script's set-up builds the numpy/scipy stack, which this one does not need.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from venvstacks_testing.http_server import serve_directory
from venvstacks_testing.local_pbs import make_local_runtime
from venvstacks_testing.stack_workspace import read_execution_log

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_bench import scratch_dir

from venvstacks_bench.bazel import CHECKOUT, Workspace, remove_tree
from venvstacks_bench.host import loadavg, log, machine_info
from venvstacks_bench.logs import profile_events
from venvstacks_bench.scale_stack import (
    APP_FRAMEWORKS,
    CHANGED_APP,
    TARGET,
    app_sources,
    layer_names,
    lock_key,
    module_text,
    write_scale_stack,
)
from venvstacks_bench.stats import median
from venvstacks_bench.steps.platforms import HOST_PLATFORM, host_and_fixture_archives, platform_flag
from venvstacks_bench.steps.remote_execution import REMOTE_TIMEOUT, buildgrid_missing
from venvstacks_bench.workspace import snapshot_rules
from venvstacks_tool.core.platforms import PLATFORMS

DEFAULT_LOCK_CACHE = Path("/var/cache/rules_venvstacks/bench-scale-locks")
REMOTE_WORKERS = (1, 2)  # the table's rows for the local BuildGrid (`--remote-workers`), one service each
CHECKS_PROGRESS = "Checking layer "  # the VenvstacksLayerChecks actions' progress message (layer.bzl)


def main(argv: list[str]) -> int:
    """Measure each size of `--sizes` and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,20,40,80", help="numbers of applications (default 10,20,40,80)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each cheap measurement (median; default 3)")
    parser.add_argument("--lock-cache", type=Path, default=DEFAULT_LOCK_CACHE, help="where the locks are kept")
    parser.add_argument("--reuse-locks", action="store_true", help="do not time locking when the locks are cached")
    parser.add_argument(
        "--analysis-only",
        action="store_true",
        help="stop each size after locking and the loading + analysis figures (no build, no-op, change or deploy)",
    )
    parser.add_argument("--out", type=Path, default=CHECKOUT / "bench" / "results")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    parser.add_argument(
        "--all-platforms",
        action="store_true",
        help="the runtime for all five platforms (fixture PBS archives beside the host's); the cold build for each",
    )
    parser.add_argument(
        "--remote-execution",
        action="store_true",
        help="also the cold build on the local BuildGrid with 1 and with 2 workers, at each size",
    )
    parser.add_argument(
        "--remote-sizes", help="with --remote-execution: only at these sizes (default: every size of --sizes)"
    )
    parser.add_argument(
        "--remote-workers", default="1,2", help="with --remote-execution: the numbers of workers (default 1,2)"
    )
    args = parser.parse_args(argv)
    if args.remote_execution and args.analysis_only:
        parser.error("--remote-execution builds: it cannot go with --analysis-only")
    missing = buildgrid_missing() if args.remote_execution else None
    if missing is not None:
        parser.error(f"--remote-execution: {missing}")
    sizes = [int(size) for size in args.sizes.split(",") if size]
    args.remote_sizes = [int(size) for size in (args.remote_sizes or args.sizes).split(",") if size]
    args.remote_workers = [int(workers) for workers in args.remote_workers.split(",") if workers]
    if min(sizes, default=0) < len(APP_FRAMEWORKS):
        parser.error(f"--sizes: at least {len(APP_FRAMEWORKS)} applications, so that every framework is in the stack")
    results: dict[str, Any] = {"sizes": {}}
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    with scratch_dir(args.keep) as scratch:
        runtime = make_local_runtime(scratch)
        results["machine"] = machine_info(runtime.python_version)
        rules = scratch / "rules_venvstacks"
        results["code"] = snapshot_rules(rules)
        with serve_directory(scratch) as runtime_url:
            others = [p.name for p in PLATFORMS if p.name != HOST_PLATFORM] if args.all_platforms else []
            archives = host_and_fixture_archives(scratch, runtime_url, runtime, others) if others else []
            args.platforms = [a.platform for a in archives] or [HOST_PLATFORM]
            results["platforms"] = args.platforms
            for apps in sizes:
                ws = Workspace(scratch / f"ws-{apps}", scratch / f"ob-{apps}")
                write_scale_stack(ws.root, rules, module_text(rules, runtime_url, runtime, apps, archives), apps)
                partial = args.out / f"scale-{stamp}.partial.json"  # a run stopped later keeps what it measured
                try:
                    figures = results["sizes"][apps] = _measure(ws, scratch, apps, args, runtime.python_version)
                    partial.write_text(json.dumps(results, indent=2, sort_keys=True))
                    if args.remote_execution and apps in args.remote_sizes:
                        figures["remote"] = {}
                        for workers in args.remote_workers:
                            figures["remote"][workers] = _remote_cold_build(ws, scratch, apps, workers)
                            partial.write_text(json.dumps(results, indent=2, sort_keys=True))
                finally:
                    ws.shutdown(remove=not args.keep)
                log(f"{apps} applications: {json.dumps(results['sizes'][apps], sort_keys=True)[:2000]}")
    results["machine"]["load_at_end"] = loadavg()
    results["date"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    table = render(results)
    print(table)
    (args.out / f"scale-{stamp}.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    (args.out / f"scale-{stamp}.md").write_text(table)
    return 0


def _measure(ws: Workspace, scratch: Path, apps: int, args: Any, python_version: str) -> dict[str, Any]:
    figures: dict[str, Any] = {"load_at_start": loadavg()}
    figures.update(_lock(ws, apps, args, python_version))
    runs = args.runs
    ws.bazel("build", "--nobuild", TARGET)  # untimed: the wheel repositories fetched
    analysis: list[dict[str, float | None]] = []
    for i in range(runs):
        ws.shutdown(remove=False)
        profile = scratch / f"analysis-{apps}-{i}.profile.json"
        result = ws.bazel("build", "--nobuild", f"--profile={profile}", TARGET)
        cpu = _server_cpu(ws)[0]  # a fresh server: its CPU time since its launch, before `info` forces a GC
        heap = _megabytes(ws.bazel("info", "used-heap-size-after-gc").stdout.strip())
        analysis.append(
            {"wall": result.wall, **_analysis_phases(profile), "cpu": cpu, "heap": heap, "rss": _server_rss_mb(ws)}
        )
    figures["analysis"] = _median(analysis, "analysis")
    figures["analysis_command"] = _median(analysis, "command")
    figures["analysis_wall"] = _median(analysis, "wall")
    figures["analysis_cpu"] = _median(analysis, "cpu")
    figures["heap_after_analysis_mb"] = _median(analysis, "heap")
    figures["rss_after_analysis_mb"] = _median(analysis, "rss")
    reanalysis = []
    build_file = ws.root / "stacks" / "BUILD.bazel"
    text = build_file.read_text()
    for i in range(runs):  # the server up, the stack's package edited: loaded and analysed again
        build_file.write_text(f"{text}# edit {i}\n")
        profile = scratch / f"reanalysis-{apps}-{i}.profile.json"
        cpu = _server_cpu(ws)[0]
        ws.bazel("build", "--nobuild", f"--profile={profile}", TARGET)
        reanalysis.append({**_analysis_phases(profile), "cpu": _server_cpu(ws)[0] - cpu})
    build_file.write_text(text)
    figures["reanalysis"] = _median(reanalysis, "analysis")
    figures["reanalysis_cpu"] = _median(reanalysis, "cpu")
    if args.analysis_only:
        return figures

    ws.bazel("clean")
    for platform in args.platforms[1:]:  # the foreign platforms first, so the host's is built last
        figures.setdefault("cold_foreign", {})[platform] = _build(ws, scratch, f"cold-{apps}-{platform}", platform)
    figures["cold"] = _build(ws, scratch, f"cold-{apps}")
    figures["heap_after_build_mb"] = _megabytes(ws.bazel("info", "used-heap-size-after-gc").stdout.strip())
    figures["rss_after_build_mb"] = _server_rss_mb(ws)
    figures["noop"] = median([_build(ws, scratch, f"noop-{apps}-{i}")["elapsed"] for i in range(runs)])

    dest = scratch / f"deployed-{apps}"
    figures["deploy_all"] = ws.bazel("run", f"{TARGET}.deploy", "--", str(dest)).wall
    figures["deployed_bytes"] = _disk_bytes(dest)
    changes = []
    for i in range(runs):
        _edit_changed_app(ws.root, f"# change {i}\n")
        changes.append(_build(ws, scratch, f"change-{apps}-{i}"))
    figures["app_change"] = median([c["elapsed"] for c in changes])
    figures["app_change_cpu"] = median([c["cpu_actions"] for c in changes])
    figures["app_change_actions"] = sorted({tuple(c["executed"]) for c in changes})
    figures["deploy_changed_app"] = ws.bazel("run", f"{TARGET}.deploy", "--", str(dest)).wall
    figures["heap_at_end_mb"] = _megabytes(ws.bazel("info", "used-heap-size-after-gc").stdout.strip())
    shutil.rmtree(dest, ignore_errors=True)
    return figures


def _remote_cold_build(ws: Workspace, scratch: Path, apps: int, workers: int) -> dict[str, Any]:
    """The cold build on a new, empty local BuildGrid with `workers` workers (`_build`'s figures)."""
    from venvstacks_testing.reapi_service import reapi_service

    log(f"{apps} applications: the cold build on the local BuildGrid, {workers} worker(s)")
    with reapi_service(scratch / f"reapi-{apps}-{workers}", workers=workers) as service:
        ws.bazel("clean")
        built = _build(ws, scratch, f"remote-{apps}-{workers}", remote=(*service.bazel_flags(), REMOTE_TIMEOUT))
        built["leases"] = len(service.executed_leases())
    remove_tree(scratch / f"reapi-{apps}-{workers}")
    return built


def _lock(ws: Workspace, apps: int, args: Any, python_version: str) -> dict[str, Any]:
    """Locks the stack (timed from scratch and unchanged), or takes the cached locks."""
    cache = args.lock_cache / lock_key(apps, python_version, args.platforms)
    stacks = ws.root / "stacks"
    names = [f"pylock.{layer}.toml" for layer in layer_names(apps)]
    if args.reuse_locks and all((cache / name).exists() for name in names):
        for name in names:
            shutil.copyfile(cache / name, stacks / name)
        return {"lock_scratch": None, "lock_unchanged": None}
    ws.bazel("info", "output_base")  # the server up: its start is not locking
    scratch_lock = ws.bazel("run", f"{TARGET}.lock").wall
    unchanged = ws.bazel("run", f"{TARGET}.lock").wall
    cache.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copyfile(stacks / name, cache / name)
    return {"lock_scratch": scratch_lock, "lock_unchanged": unchanged}


def _build(
    ws: Workspace, scratch: Path, name: str, platform: str | None = None, remote: tuple[str, ...] = ()
) -> dict[str, Any]:
    """`bazel build //stacks:stack` (for `platform`, else the host's; with the `remote` execution
    flags, else locally) with an execution log and a profile: times, what ran, the validations."""
    log, profile = scratch / f"{name}.exec.json", scratch / f"{name}.profile.json"
    flags = [platform_flag(platform)] if platform else []
    flags += remote
    cpu_before = _server_cpu(ws)
    result = ws.bazel("build", f"--execution_log_json_file={log}", f"--profile={profile}", *flags, TARGET)
    cpu_after = _server_cpu(ws)
    entries = read_execution_log(log)
    mnemonics = _count(entry.get("mnemonic", "?") for entry in entries)
    checks = [
        e["dur"] / 1e6
        for e in profile_events(profile)
        if e.get("cat") == "action processing" and e.get("name", "").startswith(CHECKS_PROGRESS)
    ]
    return {
        "wall": result.wall,
        "elapsed": result.elapsed,
        "critical_path": result.critical_path,
        "actions": mnemonics,
        "runners": _count(e.get("runner", "?") for e in entries),
        "executed": sorted(f"{e.get('mnemonic')} {e.get('targetLabel')}" for e in entries),
        "checks": {"count": len(checks), "seconds": sum(checks)},
        "cpu_server": cpu_after[0] - cpu_before[0],
        "cpu_actions": cpu_after[1] - cpu_before[1],
    }


def _count(names: Iterable[str]) -> dict[str, int]:
    """How many times each name comes (sorted by name)."""
    counts: dict[str, int] = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items()))


def _server_rss_mb(ws: Workspace) -> float:
    """The Bazel server process's resident memory (MB): the JVM's whole footprint, not its heap alone."""
    pid = ws.bazel("info", "server_pid").stdout.strip()
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))) / 1024


def _server_cpu(ws: Workspace) -> tuple[float, float]:
    """The Bazel server's CPU seconds so far: (its own, its finished children's).

    CPU time is what a loaded, shared machine changes least, so the growth of these is the work's.
    The children are the sandboxes of the actions and the processes in them (each waited for), so
    the second figure's growth over a build is the actions' CPU time.
    """
    pid = ws.bazel("info", "server_pid").stdout.strip()
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    tick = os.sysconf("SC_CLK_TCK")
    # After the command name: state, ppid, ...; utime, stime, cutime, cstime are the 12th to 15th.
    return (int(fields[11]) + int(fields[12])) / tick, (int(fields[13]) + int(fields[14])) / tick


def _edit_changed_app(root: Path, marker: str) -> None:
    """The application-only change: CHANGED_APP's first-party `__init__.py` gets `marker`."""
    path, text = next((p, t) for p, t in app_sources(0, marker).items() if p.endswith("__init__.py"))
    assert CHANGED_APP in path
    (root / path).write_text(text)


def _analysis_phases(profile: Path) -> dict[str, float | None]:
    """Of a `build --nobuild`'s `--profile` (seconds): `command`, from the server taking the command
    to the end of analysis (module resolution, loading, analysis; not the server's launch), and
    `analysis`, Bazel's `runAnalysisPhase` (loading the packages and analysing the targets)."""
    events = json.loads(profile.read_text()).get("traceEvents", [])
    markers = {e["name"]: e["ts"] for e in events if e.get("cat") == "build phase marker" and e.get("ph") == "i"}
    analysis = [e["dur"] for e in events if e.get("name") == "runAnalysisPhase" and e.get("ph") == "X"]
    start, end = markers.get("Initialize command"), markers.get("Complete build")
    return {
        "command": (end - start) / 1e6 if start is not None and end is not None else None,
        "analysis": analysis[0] / 1e6 if analysis else None,
    }


def _megabytes(text: str) -> float:
    """`bazel info used-heap-size-after-gc` ("123MB") in MB."""
    return float(text.removesuffix("MB"))


def _median(runs: list[dict[str, float | None]], key: str) -> float | None:
    """The median of the runs' `key` figures that are there."""
    return median([value for value in (r[key] for r in runs) if value is not None])


def _disk_bytes(root: Path) -> int:
    """The bytes a tree takes on disk (allocated blocks; each hard-linked file once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for directory, _, files in os.walk(root):
        for name in files:
            stat = os.lstat(os.path.join(directory, name))
            if (stat.st_dev, stat.st_ino) not in seen:
                seen.add((stat.st_dev, stat.st_ino))
                total += stat.st_blocks * 512
    return total


# The table's rows: (label, figure from a size's results, format).
ROWS: tuple[tuple[str, Any, str], ...] = (
    ("`stack.lock` from scratch (s)", lambda f: f["lock_scratch"], "{:.1f}"),
    ("`stack.lock`, nothing changed (s)", lambda f: f["lock_unchanged"], "{:.2f}"),
    ("loading + analysis (`runAnalysisPhase`), fresh server (s)", lambda f: f["analysis"], "{:.2f}"),
    ("`build --nobuild`, fresh server, without its launch (s)", lambda f: f["analysis_command"], "{:.2f}"),
    ("the same, the server's CPU time since its launch (s)", lambda f: f["analysis_cpu"], "{:.2f}"),
    ("loading + analysis after an edit of stacks/BUILD.bazel, server up (s)", lambda f: f["reanalysis"], "{:.2f}"),
    ("the same, the server's CPU time (s)", lambda f: f["reanalysis_cpu"], "{:.2f}"),
    ("`build --nobuild`, fresh server, command wall (s)", lambda f: f["analysis_wall"], "{:.2f}"),
    ("server heap after analysis (MB, after GC)", lambda f: f["heap_after_analysis_mb"], "{:.0f}"),
    ("server process's resident memory after analysis (MB)", lambda f: f["rss_after_analysis_mb"], "{:.0f}"),
    (
        "cold build for the four other platforms, one after the other, Bazel elapsed (s)",
        lambda f: sum(b["elapsed"] for b in f["cold_foreign"].values()),
        "{:.1f}",
    ),
    ("cold build, Bazel elapsed (s)", lambda f: f["cold"]["elapsed"], "{:.1f}"),
    ("cold build, critical path (s)", lambda f: f["cold"]["critical_path"], "{:.1f}"),
    ("cold build, the actions' CPU time (s)", lambda f: f["cold"]["cpu_actions"], "{:.1f}"),
    ("cold build, the server's CPU time (s)", lambda f: f["cold"]["cpu_server"], "{:.1f}"),
    ("cold build, actions run", lambda f: sum(f["cold"]["actions"].values()), "{:d}"),
    ("validation actions (`VenvstacksLayerChecks`)", lambda f: f["cold"]["actions"]["VenvstacksLayerChecks"], "{:d}"),
    ("validation actions, summed time (s)", lambda f: f["cold"]["checks"]["seconds"], "{:.1f}"),
    ("server heap after the cold build (MB, after GC)", lambda f: f["heap_after_build_mb"], "{:.0f}"),
    ("server process's resident memory after the cold build (MB)", lambda f: f["rss_after_build_mb"], "{:.0f}"),
    ("no-op build, Bazel elapsed (s)", lambda f: f["noop"], "{:.2f}"),
    ("application-only change, Bazel elapsed (s)", lambda f: f["app_change"], "{:.2f}"),
    ("application-only change, actions run", lambda f: len(f["app_change_actions"][0]), "{:d}"),
    ("application-only change, the actions' CPU time (s)", lambda f: f["app_change_cpu"], "{:.2f}"),
    ("deploy of the whole stack into an empty directory (s)", lambda f: f["deploy_all"], "{:.1f}"),
    ("deploy again after the application-only change (s)", lambda f: f["deploy_changed_app"], "{:.2f}"),
    ("deployed stack on disk (MB)", lambda f: f["deployed_bytes"] / 1e6, "{:.0f}"),
    *(
        row
        for workers in REMOTE_WORKERS
        for row in (
            (
                f"cold build on the local BuildGrid, {workers} worker{'s' if workers > 1 else ''}, Bazel elapsed (s)",
                lambda f, w=workers: f["remote"][w]["elapsed"],
                "{:.1f}",
            ),
            (
                "the same, critical path (s)",
                lambda f, w=workers: f["remote"][w]["critical_path"],
                "{:.1f}",
            ),
            (
                "the same, actions executed remotely",
                lambda f, w=workers: f["remote"][w]["runners"]["remote"],
                "{:d}",
            ),
            (
                "the same, the server's CPU time (s)",
                lambda f, w=workers: f["remote"][w]["cpu_server"],
                "{:.1f}",
            ),
        )
    ),
)


def render(results: dict[str, Any]) -> str:
    """The Markdown table: one row a figure, one column a size, with the growth from the size before."""
    sizes = sorted(results["sizes"])
    lines = [
        f"- Code: {results['code']}; {results['date']}; load at end {results['machine']['load_at_end']}.",
        f"- Platforms: {', '.join(results['platforms'])} (the host's first; rows naming no platform: the host's).",
        f"- Load at the start of each size: {', '.join(str(results['sizes'][s]['load_at_start']) for s in sizes)}.",
        "",
        "| figure | " + " | ".join(f"{s} apps" for s in sizes) + " |",
        "| --- |" + " ---: |" * len(sizes),
    ]
    for label, get, fmt in ROWS:
        cells, before = [], None
        for size in sizes:
            try:
                value = get(results["sizes"][size])
            except (KeyError, TypeError, IndexError):
                value = None
            cell = "" if value is None else fmt.format(value)
            if value is not None and before:
                cell += f" (x{value / before:.2f})"
            cells.append(cell)
            before = value
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    changed = {tuple(actions) for s in sizes for actions in results["sizes"][s].get("app_change_actions", [])}
    lines += ["", f"Actions run by the application-only change, at every size: {sorted(changed)}"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
