"""What a venvstacks stack build costs: cold, no-op, incremental, from a remote cache, deploy, floor.

    python3 bench/run_bench.py [--runs N] [--cold-runs N] [--out DIR] [--keep] [--no-xz]
                               [--bazel-startup-option OPTION] [--only STEP,...]

Builds a realistic stack with a real Bazel (tests/bazel.sh) in a scratch workspace under /tmp:

    runtime      cpython3_11     the host's CPython in PBS layout (tests/support/local_pbs.py),
                                 served on 127.0.0.1 (python-build-standalone is on GitHub)
    framework    sci_framework   numpy + scipy + scikit-learn, real wheels from PyPI
    application  app_report      on the framework, with one small pure-Python package (tabulate)
    application  app_stats       on the framework, code only

It builds against a copy of this checkout taken at start (tracked and untracked, not ignored,
files), so that edits made to the checkout while it runs do not change the code measured. It
locks the stack once (`bazel run //stacks:<layer>.lock`, not timed; PyPI must be reachable),
builds it once to fill Bazel's repository cache (not timed), then measures, each figure the
median of N runs (`--runs`, default 3; `--cold-runs` for the cold and fresh-checkout builds,
default the same):

* cold build: a fresh output base per run (new Bazel server, nothing built), the repository
  cache warm so that no download is timed; total wall time of the command, Bazel's own elapsed
  time and critical path, and per layer the action's wall time (from `--profile`) and the tool
  process's own time in it (the rest is sandbox set-up and output handling); and each layer's
  loader check (a validation action beside its archive action) as a share of that archive
  action (target: under 5%);
* no-op rebuild: the same build again, server up, nothing changed;
* incremental rebuild: app_report's requirements switched between `tabulate` and `tabulate<0.9`
  (both locks made once beforehand, so relocking is not timed), the actions that ran listed;
* fresh checkout with a warm remote cache: one untimed-for-the-ratio build populates an nginx
  WebDAV cache on 127.0.0.1 (tests/support/remote_cache.py), then each run copies the workspace
  to a new directory and builds it in a fresh output base with `--remote_cache`; ratio to cold,
  and from `--profile` Bazel's server launch and repository fetching. Interleaved with those
  runs, the same for a baseline, "Bazel alone": a workspace without dependencies whose one
  genrule is a remote-cache hit, i.e. Bazel's own fixed cost, which no ruleset can remove;
* deploy: the tool's `deploy` subcommand called directly on the four archives (no Bazel),
  alternating with `zstd -dc | tar -x` of the same archives (the ratio is the median over the
  pairs, in wall and in CPU time); and `bazel run //stacks:app_report.deploy` for scale;
* images: the tool's `image-layer` of the four archives (no Bazel), alternating with `tar -czf`
  of the deployed layer directories (ratio: median over the pairs); then `stack_image` of both
  applications on one small base, and the bytes the second image adds over the first
  (venvstacks_bench/steps/images.py);
* archives: each layer unpacked and packed again with the tool's archive.py as .tar.zst and
  .tar.xz (1 run: xz is slow), size and time; the .tar.zst is checked to be byte-identical to
  Bazel's, and each archive's decompression is timed; plus a zstd level sweep over the
  framework's tar (levels interleaved, median of N);
* the floor: the framework's wheels unzipped into one directory and tarred through zstd at
  archive.py's level and thread count; the ratio of the framework layer's cold build to it;
* the framework layer's build phases: `build-layer` run outside Bazel on the action's own inputs
  (bench/tool_phases.py), a timer around each phase (install, bytecode, scan, compression...),
  alternating with the floor runs; the ratio to the floor is the median over the pairs;
* loader_check: the framework's loader check (`check-libraries`) run outside Bazel on its
  action's own command line, alternating with its `build-layer`; its share of the build in CPU
  and wall time, the median over the pairs (target: under 5%);
* platforms: two more workspaces of the same stack whose runtime targets the host platform only,
  or all five python-build-standalone platforms (macos_arm64 too, since the default macOS
  floor, 14.0, admits scipy's arm64 wheels); the host's runtime as above, the others small
  fixture PBS archives (tests/support/fixture_pbs.py), all `venvstacks.runtime_archive`s on
  127.0.0.1. Locking: every layer's `bazel run //stacks:<layer>.lock` with the lock files
  removed first, the two workspaces alternating (N pairs); the cold build: `//stacks:stack` for
  the host platform, against every platform one after the other (`--platforms=...`), each in a
  fresh output base with the repository cache warm (every platform built once beforehand, not
  timed), alternating (`--cold-runs` of each). Ratios all / one: the median over the pairs.
* platform_switch: the stack for the host and windows_x86_64, the host's build right after
  Windows' against a no-op build, and without per-platform output directories
  (venvstacks_bench/steps/platform_switch.py).
* torch: a second workspace, a torch-scale stack: the host's runtime with `glibc_minimum = "2.28"`
  (torch ships only manylinux_2_28 wheels), a framework `torch_framework` holding PyTorch's CPU
  build (`torch==2.13.0+cpu`, the wheel these machines keep in /opt/wheels, or in
  $VENVSTACKS_BENCH_TORCH_WHEELS, hard-linked into the workspace's `wheels/` for `find_links`;
  its dependencies from PyPI) and an application `app_torch` on it; skipped with a message when
  the wheel is not there. Locked and built once with an nginx remote cache (not timed), then
  `--cold-runs` rounds, the order rotating, of: a cold build (fresh output base; each layer
  action's peak memory, the RSS of its process tree sampled from /proc), the floor of the
  framework's wheels, a fresh checkout built against the warm remote cache; ratios per round
  (framework action / floor, fresh checkout / cold build), then the median. Then an
  application-only change (its source edited) in a fresh checkout and output base with
  `--remote_download_minimal`: what nginx's access log says was downloaded, and whether the
  framework's archive was. Then the framework's `build-layer` outside Bazel (phases, peak
  memory) alternating with the floor (N pairs), and deploy of the three archives alternating
  with `tar -x` of them (N pairs).
* remote_execution: the main stack built on a local REAPI service (BuildGrid with PostgreSQL and
  the tests' worker, tests/support/reapi_service.py, on 127.0.0.1): a cold build on an empty
  service against the local cold build, then fresh checkouts against the warm service with
  `--remote_download_toplevel` and `--remote_download_minimal`, with the bytes each received.

Prints one Markdown table (and the machine it ran on) and writes `DIR/bench-<time>.json` and
`.md` (and `latest.json`/`latest.md`; default DIR: bench/results). Machines are shared: compare
the ratios within one run; absolute times move with the load (recorded as load averages).
A full run takes about 6 minutes on 2 cores (the .tar.xz re-pack is 1.5 of them), plus
about 7.5 for `platforms` (measured under a load of 5) and about 8 for `torch` (under a load
of 4 to 6). `--only` runs some of the measurements (after the same set-up); a step that fails is reported, the others
still run, and the exit status is 1. `--keep`
leaves the scratch directory (workspaces, output bases, profiles, execution logs) for
inspection; otherwise every Bazel server it started is shut down and its output base removed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from venvstacks_testing.http_server import serve_directory
from venvstacks_testing.local_pbs import make_local_runtime

# bench/'s own modules (this file is run as a script and loaded by path in the tests).
sys.path.insert(0, str(Path(__file__).resolve().parent))
from venvstacks_bench.bazel import CHECKOUT, STARTUP_OPTIONS, remove_tree
from venvstacks_bench.core import Bench
from venvstacks_bench.host import loadavg, log, machine_info
from venvstacks_bench.steps import REPORT, STEPS
from venvstacks_bench.workspace import FRAMEWORK, RUNTIME


def render(results: dict[str, Any], runs: int, cold_runs: int) -> str:
    """The report: the code, machine and stack measured, then each step's rows of one Markdown table."""
    m = results["machine"]
    code = results.get("code", {})
    version = f"{code['git'][:12]} + {code['modified_files']} modified/untracked file(s)" if code.get("git") else "?"
    lines = [
        f"- Code: rules_venvstacks {version}; {results.get('date', '')}.",
        f"- Machine: {m['cpu_model']}, {m['cores']} cores ({m['cores_available']} available), {m['memory']},"
        f" Linux {m['kernel']}; {m['bazel']}; runtime CPython {m['runtime_python']} (host Python {m['host_python']});"
        f" load average at start {m['load_at_start']}, at end {m.get('load_at_end')}.",
        f"- Stack: {RUNTIME} + {FRAMEWORK} ({', '.join(results['stack'][FRAMEWORK])}) + app_report"
        f" ({', '.join(results['stack']['app_report']) or 'no packages'}) + app_stats (code only).",
        "",
        "| measure | median | runs | detail |",
        "| --- | ---: | ---: | --- |",
    ]
    for step in REPORT:
        lines += step.report(results, runs, cold_runs)
    return "\n".join(lines) + "\n"


@contextmanager
def scratch_dir(keep: bool) -> Iterator[Path]:
    """A new directory under /tmp for the run, removed at the end unless `keep`."""
    path = Path(tempfile.mkdtemp(prefix="venvstacks-bench-", dir="/tmp"))
    try:
        yield path
    finally:
        if keep:
            log(f"kept the scratch directory {path}")
        else:
            remove_tree(path)


def main(argv: list[str]) -> int:
    """The bench's command line (see the module's docstring); the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per cheap measurement (median; default 3)")
    parser.add_argument("--cold-runs", type=int, help="runs of the cold and fresh-checkout builds (default: --runs)")
    parser.add_argument(
        "--out", type=Path, default=CHECKOUT / "bench" / "results", help="where the JSON and Markdown go"
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory and output bases")
    parser.add_argument("--no-xz", action="store_true", help="skip the .tar.xz re-pack (the slowest step)")
    parser.add_argument(
        "--only",
        type=lambda text: [name for name in text.split(",") if name],
        default=[],
        metavar="STEP[,STEP]",
        help=f"run only these measurements (after the untimed set-up): {', '.join(STEPS)}",
    )
    parser.add_argument(
        "--bazel-startup-option",
        action="append",
        default=[],
        metavar="OPTION",
        help="a Bazel startup option for every command (repeatable), e.g. --host_jvm_args=-XX:TieredStopAtLevel=1",
    )
    args = parser.parse_args(argv)
    STARTUP_OPTIONS[:] = args.bazel_startup_option
    unknown = sorted(set(args.only) - set(STEPS))
    if unknown:
        parser.error(f"--only: unknown step(s) {', '.join(unknown)}; the steps are {', '.join(STEPS)}")
    if args.runs < 1 or (args.cold_runs is not None and args.cold_runs < 1):
        parser.error("--runs and --cold-runs must be at least 1")
    cold_runs = args.cold_runs or args.runs
    started = time.perf_counter()
    with scratch_dir(args.keep) as scratch, ExitStack() as stack:
        runtime = make_local_runtime(scratch)
        runtime_url = stack.enter_context(serve_directory(scratch))
        bench = Bench(scratch, args.runs, cold_runs, args.keep, not args.no_xz)
        bench.results["machine"] = machine_info(runtime.python_version)
        try:
            bench.setup(runtime_url, runtime)
            for name in STEPS:
                if args.only and name not in args.only:
                    continue
                load = loadavg()
                step_start = time.perf_counter()
                try:
                    STEPS[name].run(bench)
                except Exception:  # keep the other measurements; the run still fails
                    log(f"step {name} failed:\n{traceback.format_exc()}")
                    bench.results.setdefault("failed_steps", {})[name] = traceback.format_exc()[-4000:]
                bench.results.setdefault("step_seconds", {})[name] = {
                    "seconds": round(time.perf_counter() - step_start, 1),
                    "load_before": load,
                }
        finally:
            bench.shutdown()
        results = bench.results
    results["machine"]["load_at_end"] = loadavg()
    results["bench_seconds"] = round(time.perf_counter() - started, 1)
    results["runs"] = args.runs
    results["cold_runs"] = cold_runs
    results["date"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    for name in (f"bench-{stamp}", "latest"):  # first, so that a failure to render loses nothing
        (args.out / f"{name}.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    table = render(results, args.runs, cold_runs)
    print(table)
    for name in (f"bench-{stamp}", "latest"):
        (args.out / f"{name}.md").write_text(table)
    log(f"wrote {args.out / f'bench-{stamp}.json'} and .md ({results['bench_seconds']:.0f} s in all)")
    if results.get("failed_steps"):
        log(f"these steps failed (see the JSON): {', '.join(results['failed_steps'])}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
