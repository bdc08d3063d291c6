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
  process's own time in it (the rest is sandbox set-up and output handling);
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
* archives: each layer unpacked and packed again with the tool's archive.py as .tar.zst and
  .tar.xz (1 run: xz is slow), size and time; the .tar.zst is checked to be byte-identical to
  Bazel's, and each archive's decompression is timed; plus a zstd level sweep over the
  framework's tar (levels interleaved, median of N);
* the floor: the framework's wheels unzipped into one directory and tarred through zstd at
  archive.py's level and thread count; the ratio of the framework layer's cold build to it;
* the framework layer's build phases: `build-layer` run outside Bazel on the action's own inputs
  (bench/tool_phases.py), a timer around each phase (install, bytecode, scan, compression...),
  alternating with the floor runs; the ratio to the floor is the median over the pairs;
* platforms: two more workspaces of the same stack whose runtime targets the host platform only,
  or every python-build-standalone platform the stack can be locked for (four of the five:
  not macos_arm64, see UNLOCKABLE_PLATFORMS); the host's runtime as above, the others small
  fixture PBS archives (tests/support/fixture_pbs.py), all `venvstacks.runtime_archive`s on
  127.0.0.1. Locking: every layer's `bazel run //stacks:<layer>.lock` with the lock files
  removed first, the two workspaces alternating (N pairs); the cold build: `//stacks:stack` for
  the host platform, against every platform one after the other (`--platforms=...`), each in a
  fresh output base with the repository cache warm (every platform built once beforehand, not
  timed), alternating (`--cold-runs` of each). Ratios all / one: the median over the pairs.
* platform_switch: the stack for the host and windows_x86_64, the host's build right after
  Windows' against a no-op build, and without per-platform output directories (bench_platform_switch.py).
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
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from venvstacks_testing.fixture_pbs import make_fixture_runtime
from venvstacks_testing.http_server import serve_directory
from venvstacks_testing.local_pbs import make_local_runtime
from venvstacks_testing.stack_workspace import copy_checkout
from venvstacks_tool.core.platforms import PLATFORMS, by_name

# bench/'s own modules (this file is run as a script and loaded by path in the tests).
sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_locking
import bench_platform_switch
import bench_startup

CHECKOUT = Path(__file__).resolve().parents[1]

BAZEL_SH = CHECKOUT / "tests" / "bazel.sh"
# Startup options for every Bazel command of the run (`--bazel-startup-option`), e.g. a JVM flag.
STARTUP_OPTIONS: list[str] = []
TOOL_PHASES = CHECKOUT / "bench" / "tool_phases.py"

RUNTIME = "cpython3_11"
FRAMEWORK = "sci_framework"
FRAMEWORK_REQUIREMENTS = ["numpy", "scipy", "scikit-learn"]
APPS = ("app_report", "app_stats")
# app_report's requirements, switched between these for the incremental rebuild.
APP_REPORT_VARIANTS = (["tabulate"], ["tabulate<0.9"])
LAYERS = (RUNTIME, FRAMEWORK, *APPS)
TARGET = "//stacks:stack"
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
ZSTD_LEVELS = ("1", "3", "6", "9", "12")
# The platforms step: the host's runtime is this machine's CPython (Linux x86_64); the other
# platforms get fixture PBS archives of this version (tests/support/fixture_pbs.py).
HOST_PLATFORM = "linux_x86_64"
FOREIGN_PYTHON = "3.11.14"
# Platforms this stack cannot be locked for, and why (the lock fails naming the package).
UNLOCKABLE_PLATFORMS = {
    "macos_arm64": "scipy and scikit-learn ship cp311 arm64 wheels for macOS 12.0 and later only;"
    " python-build-standalone's floor there is 11.0",
}
ALL_PLATFORMS = (
    HOST_PLATFORM,
    *(p.name for p in PLATFORMS if p.name != HOST_PLATFORM and p.name not in UNLOCKABLE_PLATFORMS),
)
# The targets of the issue.
NOOP_TARGET_S = 1.0
REMOTE_TARGET_RATIO = 0.10
FLOOR_TARGET_RATIO = 2.0
DEPLOY_TARGET_RATIO = 1.5
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
# Its targets (the issue's "Speed where users wait", item 3).
TORCH_FLOOR_TARGET_RATIO = 1.5
TORCH_DEPLOY_TARGET_RATIO = 1.0
TORCH_APP_MAIN = """\
import torch

x = torch.arange(6.0).reshape(2, 3)
print(torch.__version__, float((x @ x.T).sum()))
"""

APP_REPORT_MAIN = """\
import numpy
import tabulate

rows = [[name, float(f(numpy.arange(10.0)))] for name, f in (("sum", numpy.sum), ("mean", numpy.mean))]
print(tabulate.tabulate(rows, headers=["stat", "value"]))
"""
APP_STATS_MAIN = """\
import numpy
import scipy.stats
import sklearn.linear_model

x = numpy.arange(20.0).reshape(-1, 1)
model = sklearn.linear_model.LinearRegression().fit(x, 3 * x.ravel() + 1)
print(round(float(model.coef_[0]), 3), round(float(scipy.stats.norm.cdf(0.0)), 3))
"""


def log(message: str) -> None:
    print(f"run_bench: {message}", file=sys.stderr, flush=True)


def loadavg() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


# --- Bazel --------------------------------------------------------------------------------------

_ELAPSED_RE = re.compile(r"Elapsed time: ([0-9.]+)s(?:, Critical Path: ([0-9.]+)s)?")


@dataclass
class BazelResult:
    wall: float
    elapsed: float | None
    critical_path: float | None
    stdout: str
    stderr: str


@dataclass
class Workspace:
    """A scratch Bazel workspace and the output base its commands use."""

    root: Path
    output_base: Path
    started: list[Path] = field(default_factory=list)

    def bazel(self, *args: str, check: bool = True) -> BazelResult:
        command = [str(BAZEL_SH), f"--output_base={self.output_base}", *STARTUP_OPTIONS, *args]
        if self.output_base not in self.started:
            self.started.append(self.output_base)
        start = time.perf_counter()
        result = subprocess.run(command, cwd=self.root, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - start
        if check and result.returncode != 0:
            raise RuntimeError(
                f"bazel {' '.join(args)} failed ({result.returncode}) in {self.root}:\n{result.stderr[-6000:]}"
            )
        matches = list(_ELAPSED_RE.finditer(result.stderr))
        match = matches[-1] if matches else None
        elapsed = float(match.group(1)) if match else None
        critical = float(match.group(2)) if match and match.group(2) else None
        return BazelResult(wall, elapsed, critical, result.stdout, result.stderr)

    def shutdown(self, remove: bool) -> None:
        subprocess.run(
            [str(BAZEL_SH), f"--output_base={self.output_base}", *STARTUP_OPTIONS, "shutdown"],
            cwd=self.root,
            capture_output=True,
            check=False,
        )
        if remove:
            remove_tree(self.output_base)

    def output(self, relative: str) -> Path:
        return (self.root / "bazel-bin" / relative).resolve()

    def execroot(self) -> Path:
        return self.output_base / "execroot" / "_main"


def remove_tree(path: Path) -> None:
    """rm -rf, also for Bazel's read-only output trees."""
    if path.exists():
        subprocess.run(["chmod", "-R", "u+w", str(path)], capture_output=True, check=False)
        shutil.rmtree(path, ignore_errors=True)


def read_execution_log(path: Path) -> list[dict[str, Any]]:
    """The entries of an `--execution_log_json_file` (concatenated JSON objects)."""
    if not path.exists():
        return []
    text = path.read_text()
    decoder = json.JSONDecoder()
    entries, position = [], 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position >= len(text):
            return entries
        entry, position = decoder.raw_decode(text, position)
        entries.append(entry)


_LABEL_RE = re.compile(r"(@?@?[\w.~+-]*//[^\s']*)")


def profile_events(path: Path) -> list[dict[str, Any]]:
    """The complete (`ph == "X"`) events of a `--profile` (Chrome trace JSON); none if it is missing."""
    if not path.exists():
        return []
    return [e for e in json.loads(path.read_text()).get("traceEvents", []) if e.get("ph") == "X"]


def profile_actions(path: Path) -> dict[str, dict[str, float]]:
    """Per action (its target label, plus " (metadata)" for a layer's metadata action): the action's wall
    time, its child process's and its sandbox set-up's (seconds)."""
    events = profile_events(path)
    result: dict[str, dict[str, float]] = {}
    for action in (e for e in events if e.get("cat") == "action processing"):
        match = _LABEL_RE.search(action.get("name", ""))
        if not match:
            continue
        begin, end, tid = action["ts"], action["ts"] + action["dur"], action.get("tid")

        def inside(name: str, begin: float = begin, end: float = end, tid: Any = tid) -> float:
            return sum(
                e["dur"] for e in events if e.get("name") == name and e.get("tid") == tid and begin <= e["ts"] <= end
            )

        # A layer has two actions: its archive, and its metadata (progress "Writing the metadata ...").
        key = match.group(1) + (" (metadata)" if action.get("name", "").startswith("Writing the metadata") else "")
        entry = result.setdefault(key, {"action": 0.0, "process": 0.0, "sandbox_setup": 0.0})
        entry["action"] += action["dur"] / 1e6
        entry["process"] += inside("subprocess.run") / 1e6
        entry["sandbox_setup"] += inside("sandbox.createFileSystem") / 1e6
    return result


def union_seconds(intervals: Sequence[tuple[float, float]]) -> float:
    """The time covered by (begin, end) intervals in microseconds, overlaps counted once, in seconds."""
    covered, reach = 0.0, float("-inf")
    for begin, end in sorted(intervals):
        if end > reach:
            covered += end - max(begin, reach)
            reach = end
    return covered / 1e6


def _is_repository_fetch(event: dict[str, Any]) -> bool:
    # Bazel 7: category "Fetching repository" (named after the repository), plus "fetching: repository
    # @@..." progress events in "general information", which lie inside the former.
    name = event.get("name", "").lower()
    return event.get("cat") == "Fetching repository" or name.startswith(("fetching repository", "fetching: repository"))


def profile_phases(path: Path) -> dict[str, float | None]:
    """Bazel's fixed costs in a `--profile` (seconds): server start, and repository fetching.

    `server_launch` is the "Launch Blaze" event (client start to the server taking the command;
    None if there is none: the server was already up). `repository_fetch` is the time covered by
    any repository fetch; fetches run in parallel, so their intervals are merged, not summed.
    """
    events = profile_events(path)
    launch = [e["dur"] for e in events if e.get("name") == "Launch Blaze"]
    fetches = [(e["ts"], e["ts"] + e["dur"]) for e in events if _is_repository_fetch(e)]
    return {
        "server_launch": sum(launch) / 1e6 if launch else None,
        "repository_fetch": union_seconds(fetches),
    }


def _remote_hit(entry: dict[str, Any]) -> bool:
    # Bazel 7's JSON log marks a remote cache hit with runner "remote cache hit" and cacheHit.
    return bool(entry.get("remoteCacheHit") or entry.get("cacheHit") or entry.get("runner") == "remote cache hit")


def executed(entries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """What an execution log says ran: spawns, remote cache hits, and the actions executed.

    Local action-cache hits do not appear in the log at all.
    """
    hits = [e for e in entries if _remote_hit(e)]
    ran = [e for e in entries if not _remote_hit(e)]
    return {
        "spawns": len(entries),
        "remote_cache_hits": len(hits),
        "executed": sorted(f"{e.get('mnemonic')} {e.get('targetLabel')}" for e in ran),
    }


# --- the workspace ----------------------------------------------------------------------------------


def snapshot_rules(destination: Path) -> dict[str, Any]:
    """Copies the checkout's files (tracked, and untracked but not ignored) to `destination`.

    The bench builds against this copy, so edits made to the checkout while it runs (other people
    work in it) cannot change the code being measured half-way. Returns the git state it copied.
    """
    git = ["git", "-C", str(CHECKOUT)]
    if subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True).returncode != 0:
        shutil.copytree(CHECKOUT, destination, symlinks=True, ignore=shutil.ignore_patterns("bazel-*", ".git"))
        return {"git": None}
    copy_checkout(destination)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    status = subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True).stdout
    return {"git": head, "modified_files": len(status.splitlines())}


@dataclass(frozen=True)
class RuntimeArchive:
    """One platform's PBS archive of the runtime, as a `venvstacks.runtime_archive` tag gives it."""

    platform: str
    url: str
    sha256: str
    python_version: str


def stack_module(rules: Path, runtime_tags: str) -> str:
    """The bench's MODULE.bazel around `runtime_tags` (the runtime's extension tags): deps, locks, repos."""
    locks = "".join(
        f'venvstacks.lock(name = "{name}", file = "//stacks:pylock.{name}.toml")\n' for name in (FRAMEWORK, *APPS)
    )
    return f"""\
module(name = "venvstacks_bench")

bazel_dep(name = "rules_venvstacks")
local_path_override(module_name = "rules_venvstacks", path = "{rules}")

venvstacks = use_extension("@rules_venvstacks//rules_venvstacks:extensions.bzl", "venvstacks")
{runtime_tags}{locks}use_repo(venvstacks, "{RUNTIME}", "venvstacks_wheels")
"""


def module_text(rules: Path, runtime_url: str, runtime: Any) -> str:
    """The main workspace's module: one runtime archive, for the host."""
    return stack_module(
        rules,
        f"""\
venvstacks.runtime(
    name = "{RUNTIME}",
    python_version = "{runtime.python_version}",
    urls = ["{runtime_url}/{runtime.path.name}"],
    sha256 = "{runtime.sha256}",
)
""",
    )


def platforms_module_text(rules: Path, archives: Sequence[RuntimeArchive]) -> str:
    """A module whose runtime targets the platforms of `archives`, each given as a `runtime_archive`."""
    xy = ".".join(archives[0].python_version.split(".")[:2])
    tags = [
        f'venvstacks.runtime(\n    name = "{RUNTIME}",\n    python_version = "{xy}",\n'
        f"    platforms = {json.dumps([a.platform for a in archives])},\n)\n"
    ]
    tags += [
        f'venvstacks.runtime_archive(\n    runtime = "{RUNTIME}",\n    platform = "{a.platform}",\n'
        f'    python_version = "{a.python_version}",\n    urls = ["{a.url}"],\n    sha256 = "{a.sha256}",\n)\n'
        for a in archives
    ]
    return stack_module(rules, "".join(tags))


# The start of both stacks' stacks/BUILD.bazel: the rules and the runtime layer.
STACK_BUILD_HEADER = f"""\
load(
    "@rules_venvstacks//rules_venvstacks:defs.bzl",
    "application_layer",
    "framework_layer",
    "layer_stack",
    "runtime_layer",
)

runtime_layer(name = "{RUNTIME}", runtime = "@{RUNTIME}")
"""


def build_text(app_report_requirements: Sequence[str]) -> str:
    return (
        STACK_BUILD_HEADER
        + f"""\

framework_layer(
    name = "{FRAMEWORK}",
    requirements = {json.dumps(FRAMEWORK_REQUIREMENTS)},
    runtime = ":{RUNTIME}",
)

application_layer(
    name = "app_report",
    srcs = ["app_report/__main__.py"],
    frameworks = [":{FRAMEWORK}"],
    launch_module = "app_report",
    requirements = {json.dumps(list(app_report_requirements))},
    runtime = ":{RUNTIME}",
)

application_layer(
    name = "app_stats",
    srcs = ["app_stats/__main__.py"],
    frameworks = [":{FRAMEWORK}"],
    launch_module = "app_stats",
    runtime = ":{RUNTIME}",
)

layer_stack(name = "stack", layers = [":app_report", ":app_stats"])
"""
    )


def write_workspace_files(root: Path, rules: Path, module: str) -> None:
    """The torch stack in `root` with `module` as its MODULE.bazel (no locks yet, no wheels/)."""
    (root / "stacks" / TORCH_APP).mkdir(parents=True, exist_ok=True)
    (root / "MODULE.bazel").write_text(module)
    (root / ".bazelrc").write_text((rules / ".bazelrc").read_text())
    (root / "stacks" / "BUILD.bazel").write_text(torch_build_text())
    (root / "stacks" / TORCH_APP / "__main__.py").write_text(TORCH_APP_MAIN)


def access_log_gets(text: str) -> list[dict[str, Any]]:
    """The GET requests of nginx access-log lines ("combined" format): path, status, bytes sent."""
    result = []
    for line in text.splitlines():
        # 127.0.0.1 - - [date] "GET /cas/abc HTTP/1.1" 200 1234 "-" "agent"
        parts = line.split('"')
        try:
            method, path, _ = parts[1].split(" ")
            status, sent = parts[2].split()[:2]
        except (IndexError, ValueError):
            continue
        if method == "GET":
            result.append({"path": path, "status": int(status), "bytes": int(sent) if sent.isdigit() else 0})
    return result


def write_workspace(root: Path, rules: Path, module: str) -> None:
    """The bench's stack in `root` with `module` as its MODULE.bazel (no locks yet)."""
    (root / "stacks" / "app_report").mkdir(parents=True, exist_ok=True)
    (root / "stacks" / "app_stats").mkdir(parents=True, exist_ok=True)
    (root / "MODULE.bazel").write_text(module)
    (root / ".bazelrc").write_text((rules / ".bazelrc").read_text())
    (root / "stacks" / "BUILD.bazel").write_text(build_text(APP_REPORT_VARIANTS[0]))
    (root / "stacks" / "app_report" / "__main__.py").write_text(APP_REPORT_MAIN)
    (root / "stacks" / "app_stats" / "__main__.py").write_text(APP_STATS_MAIN)


def copy_workspace(source: Path, destination: Path) -> None:
    """A fresh checkout: the sources (locks included), none of the bazel-* symlinks."""
    shutil.copytree(
        source, destination, symlinks=True, ignore=lambda d, names: [n for n in names if n.startswith("bazel-")]
    )


def write_baseline_workspace(root: Path, bazelrc: Path) -> None:
    """The Bazel-alone workspace: a MODULE.bazel without dependencies, `bazelrc` if it exists, one genrule."""
    root.mkdir(parents=True)
    (root / "MODULE.bazel").write_text(BASELINE_MODULE)
    (root / "BUILD.bazel").write_text(BASELINE_BUILD)
    if bazelrc.exists():
        shutil.copyfile(bazelrc, root / ".bazelrc")


def torch_module_text(rules: Path, runtime_url: str, runtime: Any) -> str:
    """The torch workspace's module: the host's runtime, with the glibc floor torch's wheels need."""
    locks = "".join(
        f'venvstacks.lock(name = "{name}", file = "//stacks:pylock.{name}.toml")\n'
        for name in (TORCH_FRAMEWORK, TORCH_APP)
    )
    return f"""\
module(name = "venvstacks_bench_torch")

bazel_dep(name = "rules_venvstacks")
local_path_override(module_name = "rules_venvstacks", path = "{rules}")

venvstacks = use_extension("@rules_venvstacks//rules_venvstacks:extensions.bzl", "venvstacks")
venvstacks.runtime(
    name = "{RUNTIME}",
    python_version = "{runtime.python_version}",
    urls = ["{runtime_url}/{runtime.path.name}"],
    sha256 = "{runtime.sha256}",
    glibc_minimum = "{TORCH_GLIBC}",
)
{locks}use_repo(venvstacks, "{RUNTIME}", "venvstacks_wheels")
"""


def torch_build_text() -> str:
    """A framework with PyTorch (its wheel from `wheels/`, the rest from PyPI) and an application on it."""
    return (
        STACK_BUILD_HEADER
        + f"""\

framework_layer(
    name = "{TORCH_FRAMEWORK}",
    find_links = ["wheels"],
    requirements = {json.dumps(TORCH_REQUIREMENTS)},
    runtime = ":{RUNTIME}",
)

application_layer(
    name = "{TORCH_APP}",
    srcs = ["{TORCH_APP}/__main__.py"],
    frameworks = [":{TORCH_FRAMEWORK}"],
    launch_module = "{TORCH_APP}",
    runtime = ":{RUNTIME}",
)

layer_stack(name = "stack", layers = [":{TORCH_APP}"])
"""
    )


def link_tree(source: Path, destination: Path) -> None:
    """A fresh checkout of `source` whose files are hard links (the 192 MB wheel is not copied)."""

    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(
        source,
        destination,
        symlinks=True,
        copy_function=link,
        ignore=lambda d, names: [n for n in names if n.startswith("bazel-")],
    )


# --- memory of process trees ----------------------------------------------------------------------


def process_table() -> dict[int, tuple[int, int, str]]:
    """pid -> (parent pid, resident set size in bytes, command line) of every process (Linux /proc)."""
    page = os.sysconf("SC_PAGE_SIZE")
    table = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:  # it ended meanwhile
            continue
        fields = stat[stat.rindex(b")") + 2 :].split()  # state, ppid, ..., rss is the 22nd
        table[int(entry.name)] = (int(fields[1]), int(fields[21]) * page, cmdline.replace(b"\0", b" ").decode())
    return table


def tree_rss(table: dict[int, tuple[int, int, str]], root_key: Any) -> dict[str, int]:
    """The resident memory of process trees: per tree root, its own RSS plus all its descendants'.

    A root is a process for which `root_key(command_line)` gives a key and whose parent gives
    none; trees with the same key are added up. RSS counts shared pages in each process (the
    interpreter's libraries in every compiler), so the sum slightly overstates the tree's use.
    """
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    result: dict[str, int] = {}
    for pid, (ppid, _, command) in table.items():
        key = root_key(command)
        if key is None or (ppid in table and root_key(table[ppid][2]) is not None):
            continue
        total, pending = 0, [pid]
        while pending:
            current = pending.pop()
            total += table[current][1]
            pending += children.get(current, [])
        result[key] = result.get(key, 0) + total
    return result


def tool_action_key(command: str) -> str | None:
    """A tool process of a Bazel action, keyed by its params file (`@bazel-out/....params`), or None."""
    if "venvstacks_tool.py" not in command:
        return None
    params = [word for word in command.split() if word.startswith("@")]
    return params[-1] if params else command


def tool_phases_key(command: str) -> str | None:
    return "tool_phases" if "tool_phases.py" in command else None


class PeakMemory:
    """While in the `with` block, samples the process trees `root_key` picks (see tree_rss) every
    `interval` seconds in a thread; `peaks` holds each key's largest total, in bytes."""

    def __init__(self, root_key: Any, interval: float = 0.1) -> None:
        import threading

        self.root_key, self.interval = root_key, interval
        self.peaks: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for key, rss in tree_rss(process_table(), self.root_key).items():
                self.peaks[key] = max(rss, self.peaks.get(key, 0))
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()


def memory_by_action(peaks: dict[str, int], entries: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The sampled peaks of a build's tool processes named after their actions (from the execution
    log: its params file), with what Bazel's log says of memory (`metrics`: the declared estimate)."""
    result = {}
    for entry in entries:
        args = entry.get("commandArgs") or []
        if not args or args[-1] not in peaks:
            continue
        metrics = entry.get("metrics") or {}
        result[f"{entry.get('mnemonic')} {entry.get('targetLabel')}"] = {
            "peak_rss_bytes": peaks[args[-1]],
            "bazel_metrics_memory": {k: v for k, v in metrics.items() if "memory" in k.lower()},
        }
    return result


def layer_wheels(params: Path, execroot: Path) -> list[str]:
    """The layer's own wheels: the `--wheel PATH=SHA256` arguments of its build-layer action.

    (Not every `.whl` input of the action: the tool's own wheels are inputs too, kept as zips.)
    """
    lines = params.read_text().splitlines()
    return sorted(
        str(execroot / lines[i + 1].rpartition("=")[0]) for i, line in enumerate(lines[:-1]) if line == "--wheel"
    )


def lock_packages(lock: Path) -> list[str]:
    import tomllib

    data = tomllib.loads(lock.read_text())
    return [f"{p['name']}=={p['version']}" for p in data.get("packages", [])]


# --- measurements -----------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def median_phases(runs: Sequence[dict[str, Any]]) -> dict[str, float | None]:
    """The median of each `profile_phases` figure over runs that have one."""
    keys = ("server_launch", "repository_fetch")
    return {key: median([r["profile"][key] for r in runs if r["profile"].get(key) is not None]) for key in keys}


def paired_ratio(numerators: Sequence[dict[str, Any]], denominators: Sequence[dict[str, Any]]) -> float | None:
    """The median over pairs of runs (run next to each other) of one's "total" over the other's."""
    return median([a["total"] / b["total"] for a, b in zip(numerators, denominators, strict=True) if b["total"]])


def order_balanced_ratio(ratios: Sequence[float]) -> float | None:
    """The median, over blocks of two pairs run in opposite orders (A then B, B then A), of the
    geometric mean of the two pairs' ratios: a position effect (whichever runs first in a pair is
    slower, say) multiplies one ratio and divides the other, so it cancels. None for fewer than 2."""
    blocks = [(ratios[i] * ratios[i + 1]) ** 0.5 for i in range(0, len(ratios) - 1, 2)]
    return median(blocks)


def platform_flag(name: str) -> str:
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


def children_cpu() -> float:
    """User + system CPU seconds of every child process waited for so far (and their children)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def quiesce() -> None:
    """Flush dirty pages before a timed step, so one step's writeback is not billed to the next."""
    os.sync()


@dataclass
class Bench:
    scratch: Path
    runs: int
    cold_runs: int
    keep: bool
    xz: bool
    main: Workspace = field(init=False)
    results: dict[str, Any] = field(default_factory=dict)
    tool: dict[str, Any] = field(default_factory=dict)  # interpreter, env for tool_phases.py
    variant_locks: list[str] = field(default_factory=list)
    variant: int = 0
    tar_tree: Path | None = None
    rules: Path = field(init=False)
    runtime_url: str = ""
    runtime: Any = None  # the host's LocalRuntime, served under runtime_url

    def __post_init__(self) -> None:
        self.main = Workspace(self.scratch / "ws", self.scratch / "ob-main")
        self.rules = self.scratch / "rules_venvstacks"

    # setup ---------------------------------------------------------------------------------------

    def setup(self, runtime_url: str, runtime: Any) -> None:
        ws = self.main
        self.results["code"] = snapshot_rules(self.rules)
        log(f"measuring a copy of {CHECKOUT} taken now: {self.rules}")
        write_workspace(ws.root, self.rules, module_text(self.rules, runtime_url, runtime))
        self.runtime_url, self.runtime = runtime_url, runtime
        log(f"locking the stack in {ws.root} (not timed; resolves against PyPI)")
        for layer in (FRAMEWORK, *APPS):
            ws.bazel("run", f"//stacks:{layer}.lock")
        lock = ws.root / "stacks" / "pylock.app_report.toml"
        self.variant_locks.append(lock.read_text())
        (ws.root / "stacks" / "BUILD.bazel").write_text(build_text(APP_REPORT_VARIANTS[1]))
        ws.bazel("run", "//stacks:app_report.lock")
        self.variant_locks.append(lock.read_text())
        log("building the stack with both app_report variants (fills the repository cache; not timed)")
        entries = []
        for variant in (1, 0):
            self.set_variant(variant)
            log_file = self.scratch / f"warmup-{variant}.exec.json"
            ws.bazel("build", f"--execution_log_json_file={log_file}", TARGET)
            entries += read_execution_log(log_file)
        framework = next(
            e
            for e in entries
            if e.get("targetLabel", "").endswith(f":{FRAMEWORK}") and e.get("mnemonic") == "VenvstacksLayer"
        )
        execroot = ws.execroot()
        env = {item["name"]: item["value"] for item in framework.get("environmentVariables", [])}
        tool_path = os.pathsep.join(
            str(execroot / p) for p in env.get("VENVSTACKS_TOOL_PATH", "").split(os.pathsep) if p
        )
        env["VENVSTACKS_TOOL_PATH"] = tool_path
        env["PATH"] = os.environ.get("PATH", "/usr/bin:/bin")
        params = execroot / framework["commandArgs"][-1].lstrip("@")
        self.tool = {
            "python": str(execroot / framework["commandArgs"][0]),
            "env": env,
            "framework_params": str(params),
            "framework_wheels": layer_wheels(params, execroot),
        }
        self.results["stack"] = {
            layer: lock_packages(ws.root / "stacks" / f"pylock.{layer}.toml") for layer in (FRAMEWORK, *APPS)
        }
        self.results["stack"]["app_report variants"] = [list(v) for v in APP_REPORT_VARIANTS]
        self.results["stack"]["framework wheels"] = {
            Path(w).name: os.path.getsize(w) for w in self.tool["framework_wheels"]
        }

    def set_variant(self, index: int) -> None:
        root = self.main.root
        (root / "stacks" / "BUILD.bazel").write_text(build_text(APP_REPORT_VARIANTS[index]))
        (root / "stacks" / "pylock.app_report.toml").write_text(self.variant_locks[index])
        self.variant = index

    def tool_run(self, *args: str, cwd: Path | None = None) -> tuple[float, dict[str, Any]]:
        """Runs bench/tool_phases.py on the runtime interpreter; (wall seconds, its JSON + "cpu")."""
        command = [self.tool["python"], "-I", str(TOOL_PHASES), args[0], str(self.rules / "tools"), *args[1:]]
        quiesce()
        cpu = children_cpu()
        start = time.perf_counter()
        result = subprocess.run(
            command, cwd=cwd or self.main.execroot(), env=self.tool["env"], capture_output=True, text=True, check=False
        )
        wall = time.perf_counter() - start
        cpu = children_cpu() - cpu
        lines = [line for line in result.stdout.splitlines() if line.startswith("BENCH-JSON: ")]
        if result.returncode != 0 or not lines:
            raise RuntimeError(f"tool_phases {args[0]} failed ({result.returncode}):\n{result.stderr[-4000:]}")
        return wall, {**json.loads(lines[-1].removeprefix("BENCH-JSON: ")), "cpu": cpu}

    # cold ----------------------------------------------------------------------------------------

    def profile_file(self, name: str) -> Path:
        """Where `timed_build(..., name, ...)` writes its `--profile`."""
        return self.scratch / f"{name}.profile.json"

    def timed_build(
        self, ws: Workspace, name: str, *flags: str, target: str = TARGET
    ) -> tuple[BazelResult, dict[str, Any], dict[str, Any]]:
        """`bazel build target` with an execution log and a profile: (result, per-action times, what ran)."""
        exec_log = self.scratch / f"{name}.exec.json"
        profile = self.profile_file(name)
        result = ws.bazel("build", f"--execution_log_json_file={exec_log}", f"--profile={profile}", *flags, target)
        return result, profile_actions(profile), executed(read_execution_log(exec_log))

    def cold(self) -> None:
        runs = []
        for i in range(self.cold_runs):
            log(f"cold build {i + 1}/{self.cold_runs} (fresh output base)")
            ws = Workspace(self.main.root, self.scratch / f"ob-cold-{i}")
            load = loadavg()
            quiesce()
            # No convenience symlinks: bazel-bin of the workspace keeps pointing at the main output base.
            result, actions, ran = self.timed_build(ws, f"cold-{i}", "--symlink_prefix=/")
            ws.shutdown(remove=not self.keep)
            runs.append(
                {
                    "wall": result.wall,
                    "elapsed": result.elapsed,
                    "critical_path": result.critical_path,
                    "actions": actions,
                    "ran": ran,
                    "load": load,
                }
            )
        per_layer = {}
        for label in sorted({label for run in runs for label in run["actions"]}):
            per_layer[label] = {
                key: median([run["actions"][label][key] for run in runs if label in run["actions"]])
                for key in ("action", "process", "sandbox_setup")
            }
        self.results["cold"] = {
            "runs": runs,
            "wall": median([r["wall"] for r in runs]),
            "elapsed": median([r["elapsed"] for r in runs if r["elapsed"] is not None]),
            "critical_path": median([r["critical_path"] for r in runs if r["critical_path"] is not None]),
            "per_target": per_layer,
        }

    # no-op ---------------------------------------------------------------------------------------

    def noop(self) -> None:
        log(f"no-op rebuilds ({self.runs})")
        self.main.bazel("build", TARGET)  # same flags as the timed runs: server up, analysis cached
        runs = []
        for _ in range(self.runs):
            result = self.main.bazel("build", TARGET)
            runs.append({"wall": result.wall, "elapsed": result.elapsed})
        # What tests/bazel.sh itself costs per command here (namespace, mounts, Bazel's client).
        wrapper = []
        for _ in range(self.runs):
            start = time.perf_counter()
            subprocess.run([str(BAZEL_SH), "--version"], capture_output=True, check=True, cwd=self.main.root)
            wrapper.append(time.perf_counter() - start)
        self.results["noop"] = {
            "runs": runs,
            "wall": median([r["wall"] for r in runs]),
            "elapsed": median([r["elapsed"] for r in runs if r["elapsed"] is not None]),
            "wrapper_version_call": median(wrapper),
        }

    # incremental -----------------------------------------------------------------------------------

    def incremental(self) -> None:
        runs = []
        for i in range(self.runs):
            self.set_variant(1 - self.variant)
            log(
                f"incremental rebuild {i + 1}/{self.runs}"
                f" (app_report requirements: {APP_REPORT_VARIANTS[self.variant]})"
            )
            result, actions, ran = self.timed_build(self.main, f"incremental-{i}")
            runs.append(
                {
                    "wall": result.wall,
                    "elapsed": result.elapsed,
                    "critical_path": result.critical_path,
                    "actions": actions,
                    "ran": ran,
                    "variant": self.variant,
                }
            )
        if self.variant != 0:
            self.set_variant(0)
            self.main.bazel("build", TARGET)
        self.results["incremental"] = {
            "runs": runs,
            "wall": median([r["wall"] for r in runs]),
            "elapsed": median([r["elapsed"] for r in runs if r["elapsed"] is not None]),
        }

    # remote cache ----------------------------------------------------------------------------------

    def remote(self) -> None:
        """Fresh checkouts against a warm remote cache, interleaved with the Bazel-alone baseline."""
        try:
            from venvstacks_testing.remote_cache import remote_cache
        except ImportError as error:
            log(f"skipping the remote-cache measurement: tests/support/remote_cache.py is missing ({error})")
            self.results["remote"] = {"skipped": str(error)}
            return
        with remote_cache(self.scratch / "remote-cache") as cache:
            flag = f"--remote_cache={cache.url}"
            log("populating the remote cache: a cold build in another checkout with --remote_cache")
            root = self.scratch / "populate"
            copy_workspace(self.main.root, root)
            ws = Workspace(root, self.scratch / "ob-populate")
            result, _, ran = self.timed_build(ws, "populate", flag)
            ws.shutdown(remove=not self.keep)
            populate = {"wall": result.wall, "elapsed": result.elapsed, "ran": ran}
            baseline_root = self.scratch / "baseline"
            write_baseline_workspace(baseline_root, self.main.root / ".bazelrc")
            log("populating the remote cache for the Bazel-alone baseline (an empty workspace, one genrule)")
            baseline_populate = self.baseline_build(baseline_root, "baseline-populate", flag)
            runs, baseline_runs = [], []
            for i in range(self.cold_runs):
                # Alternating which goes first, so that load and caches weigh on both alike.
                for kind in ("fresh", "baseline") if i % 2 == 0 else ("baseline", "fresh"):
                    if kind == "fresh":
                        log(f"fresh checkout {i + 1}/{self.cold_runs} with the warm remote cache")
                        runs.append(self.fresh_checkout(i, flag))
                    else:
                        log(f"Bazel alone {i + 1}/{self.cold_runs}: empty workspace, fresh output base, 1 cache hit")
                        baseline_runs.append(self.baseline_fresh(baseline_root, i, flag))
        self.results["remote"] = {
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

    def fresh_checkout(self, index: int, flag: str) -> dict[str, Any]:
        """One fresh checkout of the stack built in a new output base against the remote cache."""
        root = self.scratch / f"fresh-{index}"
        copy_workspace(self.main.root, root)
        ws = Workspace(root, self.scratch / f"ob-fresh-{index}")
        load = loadavg()
        result, actions, ran = self.timed_build(ws, f"fresh-{index}", flag)
        ws.shutdown(remove=not self.keep)
        if not self.keep:
            remove_tree(root)
        return {
            "wall": result.wall,
            "elapsed": result.elapsed,
            "actions": actions,
            "ran": ran,
            "load": load,
            "profile": profile_phases(self.profile_file(f"fresh-{index}")),
        }

    def baseline_build(self, root: Path, name: str, flag: str) -> dict[str, Any]:
        """The baseline's genrule built in `root` with a new output base (shut down after)."""
        ws = Workspace(root, self.scratch / f"ob-{name}")
        load = loadavg()
        result, _, ran = self.timed_build(ws, name, flag, target=BASELINE_TARGET)
        ws.shutdown(remove=not self.keep)
        return {
            "wall": result.wall,
            "elapsed": result.elapsed,
            "ran": ran,
            "remote_cache_hit": ran["remote_cache_hits"] == 1 and not ran["executed"],
            "load": load,
            "profile": profile_phases(self.profile_file(name)),
        }

    def baseline_fresh(self, template: Path, index: int, flag: str) -> dict[str, Any]:
        """One fresh checkout of the baseline workspace: copied like the stack's, built like it."""
        root = self.scratch / f"baseline-{index}"
        copy_workspace(template, root)
        run = self.baseline_build(root, f"baseline-{index}", flag)
        if not self.keep:
            remove_tree(root)
        return run

    # deploy ----------------------------------------------------------------------------------------

    def archives(self) -> list[Path]:
        return [self.main.output(f"stacks/{layer}.tar.zst") for layer in LAYERS]

    def deploy_pair(self, archives: Sequence[str], index: int, prefix: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """The tool's deploy and `tar -x` of the same archives, one after the other (the order
        alternates with `index`), each into a new directory `prefix-{tool,tar}-index`: both runs."""
        tar_script = (
            'set -e; dest=$1; shift; for a in "$@"; do zstd -dcq -- "$a" | tar -xf - -C "$dest"; done'
            if shutil.which("zstd")
            else 'set -e; dest=$1; shift; for a in "$@"; do tar --zstd -xf "$a" -C "$dest"; done'
        )
        runs: dict[str, dict[str, Any]] = {}
        for kind in ("tool", "tar") if index % 2 == 0 else ("tar", "tool"):
            dest = self.scratch / f"{prefix}-{kind}-{index}"
            if kind == "tool":
                wall, data = self.tool_run("deploy", str(dest), *archives)
                runs[kind] = {"wall": wall, **data}
                continue
            dest.mkdir()
            quiesce()
            cpu = children_cpu()
            start = time.perf_counter()
            subprocess.run(["bash", "-c", tar_script, "tar-x", str(dest), *archives], check=True)
            runs[kind] = {"wall": time.perf_counter() - start, "cpu": children_cpu() - cpu}
        return runs["tool"], runs["tar"]

    def deploy(self) -> None:
        """The tool's deploy and `tar -x` alternate (paired runs); each into a new directory."""
        archives = [str(a) for a in self.archives()]
        tool_runs, tar_runs, bazel_runs, tool3_runs = [], [], [], []
        for i in range(self.runs):
            log(f"deploy {i + 1}/{self.runs}: the tool and tar -x (alternating), bazel run")
            tool_run, tar_run = self.deploy_pair(archives, i, "deploy")
            tool_runs.append(tool_run)
            tar_runs.append(tar_run)
            # bazel run of one application's stack (3 layers), against the tool on the same 3.
            quiesce()
            result = self.main.bazel("run", "//stacks:app_report.deploy", "--", str(self.scratch / f"deploy-bazel-{i}"))
            bazel_runs.append(result.wall)
            wall, _ = self.tool_run("deploy", str(self.scratch / f"deploy-tool3-{i}"), *archives[:3])
            tool3_runs.append(wall)
        self.tar_tree = self.scratch / f"deploy-tar-{self.runs - 1}"
        for path in self.scratch.glob("deploy-*"):
            if path != self.tar_tree:
                remove_tree(path)
        names = tool_runs[0]["phases"]
        self.results["deploy"] = {
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

    # archives ----------------------------------------------------------------------------------------

    def archive_sizes(self) -> None:
        tree = self.tar_tree  # the last `tar -x` of the archives
        out = self.scratch / "repack"
        out.mkdir(exist_ok=True)
        specs = [f"{layer}={archive}" for layer, archive in zip(LAYERS, self.archives(), strict=True)]
        if not self.xz:
            log("re-packing each layer as .tar.zst (--no-xz: .tar.xz skipped)")
        else:
            log("re-packing each layer as .tar.zst and .tar.xz (1 run; xz takes a while)")
        formats = "tar.zst,tar.xz" if self.xz else "tar.zst"
        _, data = self.tool_run("repack", str(tree), str(out), formats, *specs)
        self.results["archives"] = data
        log(f"zstd level sweep over the {FRAMEWORK} tree")
        _, sweep = self.tool_run("zstd-levels", str(tree / FRAMEWORK), str(self.runs), *ZSTD_LEVELS)
        self.results["zstd_levels"] = sweep
        remove_tree(tree)

    # compression settings ------------------------------------------------------------------------

    def compression(self) -> None:
        """The framework's archive re-packed with each compression setting, in .tar.zst and .tar.xz."""
        out = self.scratch / "compression"
        out.mkdir(exist_ok=True)
        formats = "tar.zst,tar.xz" if self.xz else "tar.zst"
        log(f"re-packing {FRAMEWORK} with each compression setting ({formats}; 1 run: the size settings are slow)")
        framework = self.archives()[LAYERS.index(FRAMEWORK)]
        _, data = self.tool_run("compression", str(framework), str(out), formats)
        self.results["compression"] = data
        remove_tree(out)

    # locking against uv ---------------------------------------------------------------------------

    def lock_vs_uv(self) -> None:
        """`bazel run //stacks:stack.lock` from scratch against uv locking the same layers (paired runs)."""
        ws = self.main
        stacks = ws.root / "stacks"
        saved = {path: path.read_text() for path in stacks.glob("pylock.*.toml")}
        uv = bench_locking.uv_command(self.scratch)
        layers = {FRAMEWORK: FRAMEWORK_REQUIREMENTS, **{app: [] for app in APPS}}
        layers["app_report"] = list(APP_REPORT_VARIANTS[self.variant])
        python = ".".join(self.runtime.python_version.split(".")[:2])
        ws.bazel("build", "//stacks:stack.lock")  # untimed: the lock launcher and its runtime built
        ours, theirs = [], []
        try:
            for i in range(self.runs):
                for kind in ("ours", "uv") if i % 2 == 0 else ("uv", "ours"):
                    quiesce()
                    load = loadavg()
                    if kind == "ours":
                        for path in saved:
                            path.unlink()
                        log(f"lock {i + 1}/{self.runs}: bazel run //stacks:stack.lock, lock files removed")
                        ours.append({"wall": ws.bazel("run", "//stacks:stack.lock").wall, "load": load})
                    else:
                        log(f"lock {i + 1}/{self.runs}: uv pip compile per layer, no cache")
                        per_layer = bench_locking.uv_lock_layers(
                            uv,
                            layers,
                            {app: FRAMEWORK for app in APPS},
                            python,
                            "x86_64-manylinux_2_17",
                            self.scratch / f"uv-lock-{i}",
                        )
                        theirs.append({"wall": sum(per_layer.values()), "layers": per_layer, "load": load})
            # Nothing changed since the last lock: every layer is kept without asking the index.
            unchanged = []
            for i in range(self.runs):
                log(f"relock {i + 1}/{self.runs}: bazel run //stacks:stack.lock, nothing changed")
                quiesce()
                unchanged.append(ws.bazel("run", "//stacks:stack.lock").wall)
        finally:
            for path, text in saved.items():
                path.write_text(text)
        self.results["lock_vs_uv"] = {
            "ours": median([r["wall"] for r in ours]),
            "uv": median([r["wall"] for r in theirs]),
            "ratio": median([o["wall"] / t["wall"] for o, t in zip(ours, theirs, strict=True)]),
            "unchanged": median(unchanged),
            "runs": {"ours": ours, "uv": theirs, "unchanged": unchanged},
        }

    # start-up --------------------------------------------------------------------------------------

    def startup(self) -> None:
        """Each application's start-up, deployed from the stack and from a plain venv of the same files."""
        dest = self.scratch / "startup-stack"
        self.tool_run("deploy", str(dest), *[str(a) for a in self.archives()])
        runtime_python = dest / RUNTIME / "bin" / "python3"
        rounds = max(10, 5 * self.runs)
        commands: dict[str, tuple[list[str], list[str]]] = {}
        for app in APPS:
            plain = bench_startup.make_plain_venv(
                runtime_python, [dest / app, dest / FRAMEWORK], self.scratch / f"startup-venv-{app}"
            )
            stacked = dest / app / "bin" / "python"
            if app == APPS[0]:
                commands["python -c pass"] = ([str(stacked), "-c", "pass"], [str(plain), "-c", "pass"])
            commands[f"python -m {app}"] = ([str(stacked), "-m", app], [str(plain), "-m", app])
        log(f"start-up: {len(commands)} commands, {rounds} runs each of the stack and of a plain venv, alternating")
        quiesce()
        load = loadavg()
        self.results["startup"] = {
            "rounds": rounds,
            "load": load,
            "commands": bench_startup.compare(commands, bench_startup.startup_env(os.environ), rounds),
        }
        for path in [dest, *self.scratch.glob("startup-venv-*")]:
            remove_tree(path)

    # floor and phases ----------------------------------------------------------------------------

    def floor_and_phases(self) -> None:
        """The floor and build-layer outside Bazel, alternating (paired runs, same wheels)."""
        floors, builds = [], []
        for i in range(self.runs):
            for kind in ("floor", "build") if i % 2 == 0 else ("build", "floor"):
                if kind == "floor":
                    log(f"floor {i + 1}/{self.runs}: unzip the framework's wheels, tar | zstd")
                    wall, data = self.tool_run("floor", str(self.scratch / "floor"), *self.tool["framework_wheels"])
                    floors.append(data)
                    remove_tree(self.scratch / "floor")
                else:
                    log(f"framework build-layer {i + 1}/{self.runs} outside Bazel, by phase (same inputs)")
                    out = self.scratch / "phases"
                    out.mkdir()
                    wall, data = self.tool_run("build-layer", self.tool["framework_params"], str(out))
                    builds.append({"wall": wall, **data})
                    remove_tree(out)
        self.results["floor"] = {
            "runs": floors,
            **{
                key: median([r[key] for r in floors])
                for key in ("unzip", "pack", "total", "cpu_floor", "bytecode_compile_all_cores")
            },
            "archive_bytes": floors[0]["archive_bytes"],
            "tree_files": floors[0]["tree_files"],
            "tree_bytes": floors[0]["tree_bytes"],
            "zstd": floors[0]["zstd"],
        }
        names = sorted({name for run in builds for name in run["phases"]})
        pairs = list(zip(builds, floors, strict=True))
        self.results["phases"] = {
            "runs": builds,
            "total": median([r["total"] for r in builds]),
            "wall": median([r["wall"] for r in builds]),
            "cpu": median([r["cpu"] for r in builds]),
            "phases": {name: median([r["phases"].get(name, 0.0) for r in builds]) for name in names},
            "tree_files": builds[0].get("tree_files"),
            "tree_bytes": builds[0].get("tree_bytes"),
            "missing_hooks": builds[0].get("missing_hooks", []),
            # Per pair (run next to each other, so under the same load), then the median.
            "ratio_to_floor_wall": median([b["wall"] / f["total"] for b, f in pairs]),
            "ratio_to_floor_cpu": median([b["cpu"] / f["cpu_floor"] for b, f in pairs if f["cpu_floor"]]),
            "install_to_unzip": median([(b.get("install") or 0.0) / f["unzip"] for b, f in pairs if f["unzip"]]),
        }

    # platforms ---------------------------------------------------------------------------------------

    def platforms(self) -> None:
        """Locking and the cold build for every platform of ALL_PLATFORMS against the host platform alone."""
        one, every = (self.platform_workspace(count) for count in (1, len(ALL_PLATFORMS)))
        try:
            lock = self.platform_locks(one, every)
            cold = self.platform_cold(every)
        finally:
            for ws in (one, every):
                ws.shutdown(remove=not self.keep)
        self.results["platforms"] = {"platforms": list(ALL_PLATFORMS), "lock": lock, "cold": cold}

    def platform_switch(self) -> None:
        """Back to the host platform after another one: bench/bench_platform_switch.py."""
        names = (HOST_PLATFORM, bench_platform_switch.OTHER)
        root = self.scratch / "ws-platform-switch"
        archives = [a for a in self.runtime_archives() if a.platform in names]
        write_workspace(root, self.rules, platforms_module_text(self.rules, archives))
        own, shared = (Workspace(root, self.scratch / f"ob-platform-switch-{kind}") for kind in ("own", "shared"))
        try:
            lock_round(own)  # untimed
            other = platform_flag(bench_platform_switch.OTHER)
            self.results["platform_switch"] = bench_platform_switch.measure(
                own, shared, TARGET, other, self.scratch, self.runs
            )
        finally:
            for ws in (own, shared):
                ws.shutdown(remove=not self.keep)

    def runtime_archives(self) -> list[RuntimeArchive]:
        """The host's runtime, then a fixture PBS archive for every other platform (served under runtime_url)."""
        host = RuntimeArchive(
            HOST_PLATFORM,
            f"{self.runtime_url}/{self.runtime.path.name}",
            self.runtime.sha256,
            self.runtime.python_version,
        )
        archives = [host]
        for name in ALL_PLATFORMS[1:]:
            fixture = make_fixture_runtime(self.scratch / "pbs", by_name(name), FOREIGN_PYTHON)
            url = f"{self.runtime_url}/pbs/{fixture.path.name}"
            archives.append(RuntimeArchive(name, url, fixture.sha256, fixture.python_version))
        return archives

    def platform_workspace(self, count: int) -> Workspace:
        """The bench's stack for the first `count` platforms (host first), with its own output base."""
        root = self.scratch / f"ws-platforms-{count}"
        write_workspace(root, self.rules, platforms_module_text(self.rules, self.runtime_archives()[:count]))
        return Workspace(root, self.scratch / f"ob-platforms-{count}")

    def platform_locks(self, one: Workspace, every: Workspace) -> dict[str, Any]:
        """Every layer locked from scratch, the two workspaces alternating; per workspace the total."""
        for ws in (one, every):  # untimed: server up, the runtime for the tool fetched (upper locks need lower ones)
            ws.bazel("build", f"//stacks:{FRAMEWORK}.lock")
        runs: dict[str, list[dict[str, Any]]] = {"one": [], "all": []}
        for i in range(self.runs):
            for kind in ("one", "all") if i % 2 == 0 else ("all", "one"):
                log(f"lock, {kind} platform(s) {i + 1}/{self.runs}: every layer, lock files removed")
                runs[kind].append(lock_round(one if kind == "one" else every))
        return {
            "runs": runs,
            "one": median([r["total"] for r in runs["one"]]),
            "all": median([r["total"] for r in runs["all"]]),
            "ratio": paired_ratio(runs["all"], runs["one"]),
            "packages": {kind: lock_packages_all(ws) for kind, ws in (("one", one), ("all", every))},
        }

    def platform_cold(self, every: Workspace) -> dict[str, Any]:
        """`//stacks:stack` for the host platform against every platform, each in fresh output bases."""
        log("building the stack for every platform once (fills the repository cache; not timed)")
        for name in ALL_PLATFORMS:
            every.bazel("build", platform_flag(name), TARGET)
        runs: dict[str, list[dict[str, Any]]] = {"one": [], "all": []}
        for i in range(self.cold_runs):
            for kind in ("one", "all") if i % 2 == 0 else ("all", "one"):
                names = ALL_PLATFORMS[:1] if kind == "one" else ALL_PLATFORMS
                log(f"cold build, {len(names)} platform(s) {i + 1}/{self.cold_runs} (fresh output base)")
                runs[kind].append(self.platform_cold_run(every.root, f"{kind}-{i}", names))
        per_platform = {name: median([r["platforms"][name]["wall"] for r in runs["all"]]) for name in ALL_PLATFORMS}
        return {
            "runs": runs,
            "one": median([r["total"] for r in runs["one"]]),
            "all": median([r["total"] for r in runs["all"]]),
            "ratio": paired_ratio(runs["all"], runs["one"]),
            "per_platform": per_platform,
        }

    def platform_cold_run(self, root: Path, name: str, platforms: Sequence[str]) -> dict[str, Any]:
        """`platforms` built one after the other in one fresh output base: the total and each build."""
        ws = Workspace(root, self.scratch / f"ob-platforms-cold-{name}")
        load = loadavg()
        quiesce()
        builds = {}
        start = time.perf_counter()
        try:
            for platform_name in platforms:
                builds[platform_name] = self.platform_build(ws, f"platforms-cold-{name}-{platform_name}", platform_name)
            total = time.perf_counter() - start
        finally:
            ws.shutdown(remove=not self.keep)
        return {"total": total, "platforms": builds, "load": load}

    def platform_build(self, ws: Workspace, name: str, platform_name: str) -> dict[str, Any]:
        """One `//stacks:stack` build for `platform_name`: times, per-action times, how many actions ran."""
        # No convenience symlinks: bazel-bin keeps pointing at the lock workspace's output base.
        result, actions, ran = self.timed_build(ws, name, "--symlink_prefix=/", platform_flag(platform_name))
        return {
            "wall": result.wall,
            "elapsed": result.elapsed,
            "critical_path": result.critical_path,
            "actions": actions,
            "executed": len(ran["executed"]),
        }

    # torch -------------------------------------------------------------------------------------------

    def torch(self) -> None:
        """A torch-scale stack: the framework action against the floor, deploy against `tar -x`, a fresh
        checkout with a warm remote cache against the cold build, an application-only change built
        with `--remote_download_minimal`, and each layer action's peak memory."""
        wheel = TORCH_WHEEL_DIR / TORCH_WHEEL
        if not wheel.is_file():
            log(f"skipping the torch step: {wheel} is not there (set VENVSTACKS_BENCH_TORCH_WHEELS to its directory)")
            self.results["torch"] = {"skipped": f"{wheel} is missing"}
            return
        from venvstacks_testing.remote_cache import remote_cache

        root = self.scratch / "ws-torch"
        write_workspace_files(root, self.rules, torch_module_text(self.rules, self.runtime_url, self.runtime))
        (root / "wheels").mkdir()
        try:
            os.link(wheel, root / "wheels" / wheel.name)
        except OSError:
            shutil.copyfile(wheel, root / "wheels" / wheel.name)
        ws = Workspace(root, self.scratch / "ob-torch")
        entry: dict[str, Any] = {"wheel": str(wheel), "wheel_bytes": wheel.stat().st_size}
        self.results["torch"] = entry
        try:
            log(f"locking the torch stack in {root} (not timed; torch from wheels/, the rest from PyPI)")
            for layer in (TORCH_FRAMEWORK, TORCH_APP):
                ws.bazel("run", f"//stacks:{layer}.lock")
            entry["packages"] = lock_packages(root / "stacks" / f"pylock.{TORCH_FRAMEWORK}.toml")
            with remote_cache(self.scratch / "remote-cache-torch") as cache:
                flag = f"--remote_cache={cache.url}"
                log("building the torch stack once with --remote_cache (fills both caches; not timed)")
                exec_log = self.scratch / "torch-warmup.exec.json"
                warm = ws.bazel("build", f"--execution_log_json_file={exec_log}", flag, TARGET)
                entry["warmup_wall"] = warm.wall
                framework = next(
                    e
                    for e in read_execution_log(exec_log)
                    if e.get("targetLabel", "").endswith(f":{TORCH_FRAMEWORK}")
                    and e.get("mnemonic") == "VenvstacksLayer"
                )
                execroot = ws.execroot()
                params = execroot / framework["commandArgs"][-1].lstrip("@")
                wheels = layer_wheels(params, execroot)
                entry["framework_wheels"] = {Path(w).name: os.path.getsize(w) for w in wheels}
                entry["archive_bytes"] = {
                    layer: ws.output(f"stacks/{layer}.tar.zst").stat().st_size for layer in TORCH_LAYERS
                }
                record = json.loads(ws.output(f"stacks/_{TORCH_FRAMEWORK}.archive.json").read_text())
                entry["framework_sha256"] = record["archive"]["sha256"]
                entry["cold"] = self.torch_cold(ws, flag, wheels)
                entry["app_change"] = self.torch_app_change(ws, cache, flag, entry["framework_sha256"])
            entry["phases"] = self.torch_phases(ws, params, wheels)
            entry["deploy"] = self.torch_deploy(ws)
        finally:
            ws.shutdown(remove=not self.keep)

    def torch_cold(self, ws: Workspace, flag: str, wheels: Sequence[str]) -> dict[str, Any]:
        """Per round: a cold build (fresh output base, memory sampled), the floor, a fresh checkout
        with the warm remote cache; the order rotates. Ratios per round, then the median."""
        rounds = []
        for i in range(self.cold_runs):
            kinds = ("cold", "floor", "fresh")
            run: dict[str, Any] = {}
            for kind in kinds[i % 3 :] + kinds[: i % 3]:
                if kind == "cold":
                    log(f"torch: cold build {i + 1}/{self.cold_runs} (fresh output base, memory sampled)")
                    cold_ws = Workspace(ws.root, self.scratch / f"ob-torch-cold-{i}")
                    load = loadavg()
                    quiesce()
                    with PeakMemory(tool_action_key) as memory:
                        result, actions, _ = self.timed_build(cold_ws, f"torch-cold-{i}", "--symlink_prefix=/")
                    cold_ws.shutdown(remove=not self.keep)
                    entries = read_execution_log(self.scratch / f"torch-cold-{i}.exec.json")
                    run["cold"] = {
                        "wall": result.wall,
                        "elapsed": result.elapsed,
                        "critical_path": result.critical_path,
                        "actions": actions,
                        "memory": memory_by_action(memory.peaks, entries),
                        "load": load,
                    }
                elif kind == "floor":
                    log(f"torch: floor {i + 1}/{self.cold_runs}: unzip the framework's wheels, tar | zstd")
                    _, data = self.tool_run("floor", str(self.scratch / "floor-torch"), *wheels, cwd=ws.execroot())
                    remove_tree(self.scratch / "floor-torch")
                    run["floor"] = {**data, "load": loadavg()}
                else:
                    log(f"torch: fresh checkout {i + 1}/{self.cold_runs} with the warm remote cache")
                    root = self.scratch / f"torch-fresh-{i}"
                    link_tree(ws.root, root)
                    fresh_ws = Workspace(root, self.scratch / f"ob-torch-fresh-{i}")
                    load = loadavg()
                    quiesce()
                    result, _, ran = self.timed_build(fresh_ws, f"torch-fresh-{i}", flag)
                    fresh_ws.shutdown(remove=not self.keep)
                    if not self.keep:
                        remove_tree(root)
                    run["fresh"] = {
                        "wall": result.wall,
                        "elapsed": result.elapsed,
                        "ran": ran,
                        "load": load,
                        "profile": profile_phases(self.profile_file(f"torch-fresh-{i}")),
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

    def torch_app_change(self, ws: Workspace, cache: Any, flag: str, framework_sha256: str) -> dict[str, Any]:
        """The application's source edited in a fresh checkout, built in a fresh output base with
        `--remote_download_minimal`: what was downloaded from the cache (nginx's access log)."""
        runs = []
        log_path = cache.state / "access.log"
        for i in range(self.cold_runs):
            log(f"torch: application-only change {i + 1}/{self.cold_runs} (fresh output base, minimal download)")
            root = self.scratch / f"torch-app-{i}"
            link_tree(ws.root, root)
            source = root / "stacks" / TORCH_APP / "__main__.py"
            source.unlink()  # a hard link: edit a copy, never the original workspace's file
            source.write_text(TORCH_APP_MAIN + f"print('edit {i} at {time.time()}')\n")
            app_ws = Workspace(root, self.scratch / f"ob-torch-app-{i}")
            offset = log_path.stat().st_size if log_path.exists() else 0
            load = loadavg()
            quiesce()
            result, _, ran = self.timed_build(app_ws, f"torch-app-{i}", flag, "--remote_download_minimal")
            app_ws.shutdown(remove=not self.keep)
            if not self.keep:
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

    def torch_phases(self, ws: Workspace, params: Path, wheels: Sequence[str]) -> dict[str, Any]:
        """The framework's `build-layer` outside Bazel (memory sampled) alternating with the floor."""
        builds, floors = [], []
        for i in range(self.runs):
            for kind in ("build", "floor") if i % 2 == 0 else ("floor", "build"):
                if kind == "floor":
                    log(f"torch: floor {i + 1}/{self.runs} (paired with build-layer outside Bazel)")
                    _, data = self.tool_run("floor", str(self.scratch / "floor-torch"), *wheels, cwd=ws.execroot())
                    remove_tree(self.scratch / "floor-torch")
                    floors.append(data)
                    continue
                log(f"torch: framework build-layer {i + 1}/{self.runs} outside Bazel, by phase, memory sampled")
                out = self.scratch / "phases-torch"
                out.mkdir()
                with PeakMemory(tool_phases_key) as memory:
                    wall, data = self.tool_run("build-layer", str(params), str(out), cwd=ws.execroot())
                remove_tree(out)
                builds.append({"wall": wall, **data, "peak_rss_bytes": memory.peaks.get("tool_phases")})
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

    def torch_deploy(self, ws: Workspace) -> dict[str, Any]:
        """The tool's deploy of the torch stack's three archives against `tar -x` of them, paired."""
        archives = [str(ws.output(f"stacks/{layer}.tar.zst")) for layer in TORCH_LAYERS]
        tool_runs, tar_runs = [], []
        for i in range(self.runs):
            log(f"torch: deploy {i + 1}/{self.runs}: the tool and tar -x (alternating)")
            tool_run, tar_run = self.deploy_pair(archives, i, "deploy-torch")
            tool_runs.append(tool_run)
            tar_runs.append(tar_run)
            for path in self.scratch.glob("deploy-torch-*"):
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

    # remote execution (tests/support/reapi_service.py) -------------------------------------------

    def remote_execution(self) -> None:
        """The stack built on a local REAPI service: BuildGrid + PostgreSQL + 2 workers on 127.0.0.1.

        The workers share this machine's cores with Bazel, so this measures the protocol's and the
        service's overhead, not a build farm. One cold build against an empty service (every action
        executed remotely), then fresh checkouts against the warm service (action-cache hits) with
        the default `--remote_download_toplevel` and with `--remote_download_minimal`, alternating.
        Bytes are what the service sent to Bazel through the service's metering relay, and the
        blobs Bazel read by ByteStream. The local reference is the `cold` step's sandboxed build
        (measured here once if that step did not run).
        """
        try:
            from venvstacks_testing.reapi_service import ReapiServiceError, ensure_buildgrid, reapi_service
        except ImportError as error:
            log(f"skipping remote execution: tests/support/reapi_service.py is missing ({error})")
            self.results["remote_execution"] = {"skipped": str(error)}
            return
        try:
            ensure_buildgrid()
        except ReapiServiceError as error:
            log(f"skipping remote execution: no BuildGrid ({error})")
            self.results["remote_execution"] = {"skipped": str(error)}
            return

        def run(name: str, *flags: str, meter: Any = None) -> dict[str, Any]:
            root = self.scratch / f"rx-{name}"
            copy_workspace(self.main.root, root)
            ws = Workspace(root, self.scratch / f"ob-rx-{name}")
            load = loadavg()
            quiesce()
            if meter is not None:
                meter.reset()
            result, _, ran = self.timed_build(ws, f"rx-{name}", *flags)
            down, up, reads = meter.snapshot() if meter is not None else (None, None, [])
            ws.shutdown(remove=not self.keep)
            remove_tree(root)
            return {
                "wall": result.wall,
                "elapsed": result.elapsed,
                "ran": ran,
                "down": down,
                "up": up,
                "read_blobs": len(reads),
                "read_bytes": sum(size for _, size in reads),
                "load": load,
            }

        entry: dict[str, Any] = {}
        if not self.results.get("cold", {}).get("wall"):
            log("remote execution: the local reference, a cold sandboxed build (the cold step did not run)")
            entry["local_cold"] = run("local-cold")
        with reapi_service(self.scratch / "reapi", workers=2) as service:
            flags = (*service.metered_flags(), "--remote_timeout=120s")
            log("remote execution: cold build against an empty service")
            entry["cold"] = run("cold", *flags, meter=service.meter)
            blobs, stored = service.cas_usage()
            entry["cas"] = {"blobs": blobs, "bytes": stored}
            entry["toplevel"], entry["minimal"] = [], []
            for i in range(self.cold_runs):
                for kind in ("toplevel", "minimal") if i % 2 == 0 else ("minimal", "toplevel"):
                    log(f"remote execution: fresh checkout {i + 1}/{self.cold_runs}, --remote_download_{kind}")
                    entry[kind].append(run(f"{kind}-{i}", *flags, f"--remote_download_{kind}", meter=service.meter))
        for kind in ("toplevel", "minimal"):
            entry[f"{kind}_wall"] = median([r["wall"] for r in entry[kind]])
            entry[f"{kind}_down"] = median([r["down"] for r in entry[kind]])
        self.results["remote_execution"] = entry

    def shutdown(self) -> None:
        self.main.shutdown(remove=False)


# --- machine and report ----------------------------------------------------------------------------------


def machine_info(runtime_version: str) -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    bazel = subprocess.run([str(BAZEL_SH), "--version"], capture_output=True, text=True, check=False).stdout.strip()
    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "cores_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory": memory,
        "kernel": platform.release(),
        "host_python": platform.python_version(),
        "runtime_python": runtime_version,
        "bazel": bazel + "".join(f" {option}" for option in STARTUP_OPTIONS),
        "load_at_start": loadavg(),
    }


def s(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f} s"


def mb(value: float | None) -> str:
    return "n/a" if value is None else f"{value / 1e6:.1f} MB"


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def times(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def verdict(value: float | None, limit: float, fmt: str) -> str:
    if value is None:
        return "n/a"
    return f"{fmt.format(value)}, target < {fmt.format(limit)}: **{'met' if value < limit else 'not met'}**"


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


def loads_text(runs: Sequence[dict[str, Any]]) -> str:
    """The 1-minute load average at the start of each run, e.g. "2.1, 3.0"."""
    return ", ".join(f"{r['load'][0]:.1f}" if r.get("load") else "?" for r in runs)


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


def kb(value: float | None) -> str:
    return "n/a" if value is None else f"{value / 1e3:.1f} kB"


def gb(value: float | None) -> str:
    return "n/a" if value is None else f"{value / 1e9:.2f} GB"


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


def render(results: dict[str, Any], runs: int, cold_runs: int) -> str:
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
    row = lines.append
    cold = results.get("cold", {})
    per = cold.get("per_target", {})
    if cold:
        row(
            f"| cold build, whole stack (fresh output base, warm repository cache) | {s(cold['wall'])} | {cold_runs} |"
            f" Bazel elapsed {s(cold['elapsed'])}, critical path {s(cold['critical_path'])};"
            " wall includes server start |"
        )
        for label, entry in per.items():
            row(
                f"| &nbsp;&nbsp;cold: action `{label}` | {s(entry['action'])} | {cold_runs} |"
                f" tool process {s(entry['process'])}, sandbox set-up {s(entry['sandbox_setup'])} |"
            )
    noop = results.get("noop", {})
    if noop:
        row(
            f"| no-op rebuild (server up) | {s(noop['elapsed'], 2)} | {runs} |"
            f" Bazel elapsed; {verdict(noop['elapsed'], NOOP_TARGET_S, '{:.2f} s')}. Command wall {s(noop['wall'], 2)},"
            f" of which tests/bazel.sh + client ≈ {s(noop['wrapper_version_call'], 2)} |"
        )
    incremental = results.get("incremental", {})
    if incremental:
        ran = sorted({a for r in incremental["runs"] for a in r["ran"]["executed"]})
        row(
            f"| incremental: app_report requirements changed (relock not timed) | {s(incremental['wall'])} | {runs} |"
            f" Bazel elapsed {s(incremental['elapsed'])}; actions run: {', '.join(ran)} |"
        )
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
    archives = results.get("archives", {})
    for layer, entry in archives.get("layers", {}).items():
        zst, xz = entry["tar.zst"], entry.get("tar.xz")
        xz_text = (
            f"{mb(xz['bytes'])} in {s(xz['seconds'])} (decompress {s(xz['decompress_seconds'], 2)})"
            if xz
            else "skipped"
        )
        same = "identical to Bazel's" if entry.get("identical_to_bazel_output") else "NOT identical to Bazel's"
        row(
            f"| archive `{layer}`: .tar.zst / .tar.xz | {mb(zst['bytes'])} / {xz_text.split(' in ')[0]} | 1 |"
            f" unpacked {mb(entry['tree_bytes'])} in {entry['tree_files']} files; zst {s(zst['seconds'])}"
            f" (decompress {s(zst['decompress_seconds'], 2)}; {same}),"
            f" xz {xz_text} |"
        )
    sweep = results.get("zstd_levels", {})
    if sweep:
        parts = [
            f"{level['level']}: {mb(level['bytes'])} {s(level['seconds'])} (unpack {s(level['decompress_seconds'], 2)})"
            for level in sweep["levels"]
        ]
        row(
            f"| zstd levels on the `{FRAMEWORK}` tar ({mb(sweep['tar_bytes'])}, {sweep['threads']} threads) |"
            f" | {sweep['rounds']} | level: size, time (decompression) — {'; '.join(parts)} |"
        )
    comp = results.get("compression", {})
    for entry in comp.get("settings", []):
        default = next(e for e in comp["settings"] if e["format"] == entry["format"] and e["setting"] == "default")
        row(
            f'| `{comp["layer"]}` as .{entry["format"]}, `compression = "{entry["setting"]}"` | {mb(entry["bytes"])}'
            f" | 1 | {entry['bytes'] / default['bytes']:.2f}x the default's size; packed in {s(entry['seconds'])}"
            f" ({times(ratio(entry['seconds'], default['seconds']))} the default's time); decompressed in"
            f" {s(entry['decompress_seconds'], 2)} |"
        )
    locking = results.get("lock_vs_uv", {})
    if locking:
        row(
            f"| **lock every layer from scratch: `bazel run //stacks:stack.lock` / uv** (paired) |"
            f" {times(locking['ratio'])} | {runs} | ours {s(locking['ours'])}, `uv pip compile --no-cache"
            f" --generate-hashes` per layer {s(locking['uv'])}; {verdict(locking['ratio'], 2.0, '{:.2f}x')} |"
        )
        row(
            f"| relock the whole stack, nothing changed: `bazel run //stacks:stack.lock` | {s(locking['unchanged'], 2)}"
            f" | {runs} | every layer kept without asking the index; {verdict(locking['unchanged'], 3.0, '{:.1f} s')} |"
        )
    start = results.get("startup", {})
    for label, entry in start.get("commands", {}).items():
        row(
            f"| **start-up `{label}`**: deployed stack / plain venv of the same files | {times(entry['ratio'])} |"
            f" {start['rounds']} | stack {s(entry['stack'], 3)}, plain venv {s(entry['plain_venv'], 3)};"
            f" `PYTHONDONTWRITEBYTECODE=1`; load at start {start['load']} |"
        )
    floor = results.get("floor", {})
    phases = results.get("phases", {})
    if floor:
        row(
            f"| **floor**: unzip the {len(results['stack']['framework wheels'])} framework wheels + tar \\| zstd"
            f" -{floor['zstd'][0]} ({floor['zstd'][1]} threads) | {s(floor['total'])} | {runs} |"
            f" CPU {s(floor['cpu_floor'])}; unzip {s(floor['unzip'])}, pack {s(floor['pack'])};"
            f" {mb(floor['tree_bytes'])} in {floor['tree_files']} files -> {mb(floor['archive_bytes'])};"
            " bytecode compile of the same tree on all cores (not in the floor)"
            f" {s(floor['bytecode_compile_all_cores'])} |"
        )
        framework = per.get(f"//stacks:{FRAMEWORK}", {}).get("action")
        share = ratio(framework, floor["total"]) or 0
        row(
            f"| **framework layer build / floor** (cold Bazel action / floor) | {share:.2f}x |"
            f" | {verdict(ratio(framework, floor['total']), FLOOR_TARGET_RATIO, '{:.2f}x')} (action {s(framework)},"
            f" floor {s(floor['total'])}; not run side by side); against floor + bytecode compile"
            f" {ratio(framework, floor['total'] + floor['bytecode_compile_all_cores']) or 0:.2f}x |"
        )
    if phases:
        row(
            f"| **framework `build-layer` outside Bazel / floor** (median of paired runs) |"
            f" {phases['ratio_to_floor_wall']:.2f}x | {runs} |"
            f" {verdict(phases['ratio_to_floor_wall'], FLOOR_TARGET_RATIO, '{:.2f}x')}; in CPU time"
            f" {phases['ratio_to_floor_cpu'] or 0:.2f}x; installing the wheels (bytecode compile overlapping)"
            f" / plain unzip of the same wheels {phases.get('install_to_unzip') or 0:.2f}x |"
        )
        ordered = sorted(phases["phases"].items(), key=lambda kv: -kv[1])
        parts = [f"{name} {value:.2f} s ({value / phases['total']:.0%})" for name, value in ordered if value >= 0.01]
        row(
            f"| framework `build-layer` outside Bazel, by phase | {s(phases['total'])} | {runs} |"
            f" CPU {s(phases['cpu'])}; {'; '.join(parts)}; installed tree {mb(phases['tree_bytes'])}"
            f" in {phases['tree_files']} files |"
        )
    rx = results.get("remote_execution", {})
    if rx.get("cold"):
        local_cold = cold.get("wall") or rx.get("local_cold", {}).get("wall")
        row(
            f"| remote execution, local BuildGrid + 2 workers on the same cores: cold build, empty service"
            f" | {s(rx['cold']['wall'])} | 1 | local sandboxed cold build {s(local_cold)}"
            f" ({times(ratio(rx['cold']['wall'], local_cold))}); {len(rx['cold']['ran']['executed'])} actions executed"
            f" remotely; {mb(rx['cold']['up'])} up, {mb(rx['cold']['down'])} down |"
        )
        for kind in ("toplevel", "minimal"):
            last = rx[kind][-1]
            row(
                f"| remote execution: fresh checkout, warm service, `--remote_download_{kind}`"
                f" | {s(rx[f'{kind}_wall'])} | {len(rx[kind])} | {last['ran']['remote_cache_hits']} remote cache hits;"
                f" {rx[f'{kind}_down'] / 1e3:,.1f} kB down, of which {last['read_blobs']} blobs read by ByteStream"
                f" ({last['read_bytes'] / 1e3:,.1f} kB) |"
            )
    if results.get("platforms"):
        lines += render_platforms(results["platforms"], runs, cold_runs)
    if results.get("platform_switch"):
        lines += bench_platform_switch.rows(results["platform_switch"])
    if results.get("torch"):
        lines += render_torch(results["torch"], runs, cold_runs)
    return "\n".join(lines) + "\n"


# The measurements, in the order they run (names of Bench methods; `--only` picks some).
STEPS = (
    "cold",
    "noop",
    "incremental",
    "remote",
    "deploy",
    "archive_sizes",
    "compression",
    "startup",
    "lock_vs_uv",
    "floor_and_phases",
    "platforms",
    "platform_switch",
    "torch",
    "remote_execution",
)


@contextmanager
def scratch_dir(keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="venvstacks-bench-", dir="/tmp"))
    try:
        yield path
    finally:
        if keep:
            log(f"kept the scratch directory {path}")
        else:
            remove_tree(path)


def main(argv: list[str]) -> int:
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
                step = getattr(bench, name)
                load = loadavg()
                step_start = time.perf_counter()
                try:
                    step()
                except Exception:  # keep the other measurements; the run still fails
                    log(f"step {name} failed:\n{traceback.format_exc()}")
                    bench.results.setdefault("failed_steps", {})[name] = traceback.format_exc()[-4000:]
                bench.results.setdefault("step_seconds", {})[step.__name__] = {
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
