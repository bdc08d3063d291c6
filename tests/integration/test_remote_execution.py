"""Remote execution on a real REAPI service: every layer action of a stack runs on a BuildGrid
worker, and the archives are the bytes of a local sandboxed build.

The service is `support.reapi_service`: BuildGrid (PyPI) with its scheduler in a private
PostgreSQL, serving CAS, action cache and execution on 127.0.0.1, and two workers
(`support/reapi_worker.py`) that stage each action's input root from CAS into a fresh directory
and run it with only the action's environment in a network namespace of their own. The stack is
`support.stack_workspace`'s runtime + framework + app, locked against a local index (locking is
a `bazel run` target and stays local, and says so with the remote execution setting); one test
builds `examples/stack` itself (numpy from PyPI, its checked-in locks) remotely and locally.

Then build without the bytes (`--remote_download_minimal` / `toplevel`: which layer outputs
Bazel reads from the service, counted on the wire by the service's metering relay; `bazel run
//:app.deploy` and `bazel test //:app.test` fetch exactly what they use) and failures: a worker
killed mid-action (restarted, or not), an action that fails on a worker, the service down (with
and without `--remote_local_fallback`). After each failure a clean rebuild has the reference
bytes. These tests run last: the last one stops and restarts BuildGrid.

The rules come from a snapshot of this checkout taken at the start, so edits made to the
checkout while the module runs cannot make two builds differ. Each build gets a fresh output
base; every Bazel server is shut down and every output base deleted at the end, and the
service is stopped.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from venvstacks_testing.bazel_workspace import BAZEL_SH, CHECKOUT, Workspace
from venvstacks_testing.reapi_service import ReapiService, reapi_service
from venvstacks_testing.stack_workspace import (
    APP_MAIN,
    LAYER_OUTPUTS,
    LAYER_TARGETS,
    Stack,
    copy_checkout,
    describe_spawns,
    make_stack,
    read_execution_log,
    serve_stack_sources,
    sha256,
)

pytestmark = pytest.mark.integration

# Every action that builds a layer or its metadata.
LAYER_ACTION_MNEMONICS = ("VenvstacksRuntimeLayer", "VenvstacksLayer", "VenvstacksLayerMetadata")
# The local reference: sandboxed, without network.
LOCAL_FLAGS = ("--spawn_strategy=linux-sandbox", "--sandbox_default_allow_network=false")
# docs/remote-execution.md's lines besides the executor and instance name.
REMOTE_EXECUTION_SETTING = "--@rules_venvstacks//settings:remote_execution"
DOCUMENTED_REMOTE_FLAGS = ("--remote_timeout=120s", REMOTE_EXECUTION_SETTING)
# docs/remote-execution.md's line for build without the bytes: the JSON outputs (the layers'
# archive records and metadata, a few kB each) come to disk, so a local fallback can run a
# metadata action, which reads the records of the layers below.
RECORDS_REGEX = "--remote_download_regex=.*\\.json$"
# The first line of a `.lock` target run with the remote execution setting.
RUNS_LOCALLY = "{target}: locking runs on this machine, not on the remote executor: the resolver needs the network"
# examples/stack's layers, runtime first (each has an archive and a metadata file in bazel-bin/stacks).
EXAMPLE_LAYERS = ("cpython3_11", "numpy_framework", "app_report", "app_stats")
LOCAL_RUNNERS = ("linux-sandbox", "processwrapper-sandbox", "local", "worker", "sandboxed")

# Two genrules with one command (different outputs, so different action keys): what an action
# sees of its environment, and whether it can open a TCP connection to the local wheel index.
WITNESS_BUILD = """\
[
    genrule(
        name = name,
        outs = [name + ".txt"],
        cmd = "{{ env | sort; if (exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null; " +
              "then echo network=reachable; else echo network=unreachable; fi; }} > $@",
    )
    for name in ("remote", "local")
]
"""
# Variables bash sets itself in every genrule (not from the action's environment).
SHELL_VARIABLES = {"PWD", "SHLVL", "_", "OLDPWD"}


@dataclass
class Build:
    """One build: its layer outputs' hashes, its layer-action spawns, output and wall time."""

    name: str
    hashes: dict[str, str]
    spawns: list[dict[str, Any]]
    output: str
    seconds: float
    returncode: int = 0
    entries: list[dict[str, Any]] = field(default_factory=list)

    def processes_line(self) -> str:
        """Bazel's `INFO: N processes: ...` summary."""
        lines = [line for line in self.output.splitlines() if line.startswith("INFO:") and " processes" in line]
        return lines[-1] if lines else ""

    def by_target(self) -> dict[tuple[str, str], dict[str, Any]]:
        """The spawns keyed by (target, mnemonic); fails on a duplicate."""
        spawns: dict[tuple[str, str], dict[str, Any]] = {}
        for spawn in self.spawns:
            key = (spawn["targetLabel"], spawn["mnemonic"])
            assert key not in spawns, f"{self.name}: two spawns for {key}"
            spawns[key] = spawn
        return spawns


@dataclass
class Running:
    """A Bazel command started in the background (`Context.start_build`)."""

    name: str
    args: tuple[str, ...]
    process: subprocess.Popen[str]
    log_file: Path
    started: float


@dataclass
class Context:
    """The module's shared state: the service, the locked stack, the output bases used, the timings."""

    base: Path
    service: ReapiService
    stack: Stack
    output_bases: list[Path] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def bazel(self, output_base: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        if output_base not in self.output_bases:
            self.output_bases.append(output_base)
        result = subprocess.run(
            [str(BAZEL_SH), f"--output_base={output_base}", *args],
            cwd=self.stack.root,
            capture_output=True,
            text=True,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"bazel {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-6000:]}\n"
                f"--- service logs\n{self.service.logs()}"
            )
        return result

    def build(self, name: str, output_base: Path, *flags: str, targets: Sequence[str] = LAYER_TARGETS) -> Build:
        """Builds `targets` with an execution log; keeps the layer outputs' hashes."""
        return self.finish_build(self.start_build(name, output_base, *flags, targets=targets), check=True)

    def start_build(
        self, name: str, output_base: Path, *flags: str, targets: Sequence[str] = LAYER_TARGETS, command: str = "build"
    ) -> Running:
        """Starts `bazel build` (or `command`) of `targets` in the background, with an execution log."""
        if output_base not in self.output_bases:
            self.output_bases.append(output_base)
        log_file = self.base / "logs" / f"{name}.json"
        log_file.parent.mkdir(parents=True, exist_ok=True)
        log_file.unlink(missing_ok=True)
        args = (command, f"--execution_log_json_file={log_file}", *flags, *targets)
        process = subprocess.Popen(
            [str(BAZEL_SH), f"--output_base={output_base}", *args],
            cwd=self.stack.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        return Running(name, args, process, log_file, time.monotonic())

    def finish_build(self, running: Running, check: bool = True, timeout: float = 600.0) -> Build:
        """Waits for a started build; its layer outputs' hashes (those on disk) and layer spawns."""
        try:
            output, _ = running.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            running.process.kill()
            output, _ = running.process.communicate()
            raise AssertionError(
                f"bazel {' '.join(running.args)}: no result in {timeout}s:\n{output[-6000:]}"
            ) from None
        seconds = time.monotonic() - running.started
        self.timings[running.name] = seconds
        if check and running.process.returncode != 0:
            raise AssertionError(
                f"bazel {' '.join(running.args)} failed ({running.process.returncode}):\n{output[-6000:]}"
                f"\n--- service logs\n{self.service.logs()}"
            )
        hashes = {
            output_name: sha256(self.stack.workspace.output(output_name))
            for output_name in LAYER_OUTPUTS
            if self.stack.workspace.output(output_name).exists()
        }
        entries = read_execution_log(running.log_file) if running.log_file.exists() else []
        spawns = [entry for entry in entries if entry.get("mnemonic") in LAYER_ACTION_MNEMONICS]
        return Build(running.name, hashes, spawns, output, seconds, running.process.returncode, entries)

    def shutdown(self, output_base: Path) -> None:
        self.bazel(output_base, "shutdown", check=False)


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Context]:
    """A locked stack workspace on a snapshot of the rules, and a running BuildGrid with 2 workers."""
    base = tmp_path_factory.mktemp("remote_execution")
    rules = copy_checkout(base / "checkout" / "rules_venvstacks")
    with serve_stack_sources(base / "sources") as sources, reapi_service(base / "reapi", workers=2) as service:
        stack = make_stack(base / "ws", sources, rules)
        context = Context(base, service, stack)
        try:
            lock_base = base / "output_bases" / "lock"
            for layer in ("framework", "app"):
                context.bazel(lock_base, "run", f"//:{layer}.lock")
            context.shutdown(lock_base)
            yield context
        finally:
            for output_base in context.output_bases:
                context.shutdown(output_base)
                shutil.rmtree(output_base, ignore_errors=True)
            print("\nbuild times (s):", json.dumps({k: round(v, 1) for k, v in context.timings.items()}))


def _remote_flags(service: ReapiService) -> tuple[str, ...]:
    """The flags of a build on the service."""
    return (*service.bazel_flags(), *DOCUMENTED_REMOTE_FLAGS)


def _assert_all_remote(build: Build, expected: int) -> None:
    """`expected` layer spawns, each executed by the service (no cache hit), and no local process."""
    assert len(build.spawns) == expected, describe_spawns(build.spawns)
    for spawn in build.spawns:
        assert spawn.get("runner") == "remote", describe_spawns(build.spawns)
        assert not spawn.get("cacheHit") and not spawn.get("remoteCacheHit"), describe_spawns(build.spawns)
    summary = build.processes_line()
    assert " remote" in summary, summary
    for runner in LOCAL_RUNNERS:
        assert f" {runner}" not in summary.split(":", 2)[-1], summary


def _wall_times(build: Build) -> dict[str, str]:
    """Each layer spawn's total time, as the execution log gives it."""
    return {
        f"{spawn['targetLabel']} {spawn['mnemonic']}": spawn.get("metrics", {}).get("totalTime", "?")
        for spawn in build.spawns
    }


@pytest.fixture(scope="module")
def local(ctx: Context) -> Build:
    """A clean local build, sandboxed and without network: the reference bytes."""
    output_base = ctx.base / "output_bases" / "local"
    build = ctx.build("local", output_base, *LOCAL_FLAGS)
    ctx.shutdown(output_base)
    assert sorted(build.hashes) == sorted(LAYER_OUTPUTS), build.hashes
    return build


def test_every_layer_action_runs_on_the_service_and_matches_the_local_bytes(ctx: Context, local: Build) -> None:
    """A clean build with `--remote_executor` in a fresh output base: each of the 5 layer actions
    (3 archives, 2 metadata) has the runner "remote" in the execution log, no process ran
    locally, the workers ran them, and all six outputs are byte-identical to the local build's.
    """
    before = ctx.service.cas_usage()
    output_base = ctx.base / "output_bases" / "remote"
    remote = ctx.build("remote", output_base, *_remote_flags(ctx.service))
    _assert_all_remote(remote, 2 * len(LAYER_TARGETS) - 1)
    assert len(ctx.service.executed_leases()) >= len(remote.spawns), ctx.service.executed_leases()
    assert remote.hashes == local.hashes, f"remote {remote.hashes}\nlocal {local.hashes}"
    after = ctx.service.cas_usage()
    print(
        f"\nclean build: local {local.seconds:.1f}s, remote {remote.seconds:.1f}s; {remote.processes_line()}"
        f"\nremote spawn times {_wall_times(remote)}\nlocal spawn times {_wall_times(local)}"
        f"\nCAS after the first remote build: {after[0] - before[0]} blobs, {(after[1] - before[1]) / 1e6:.1f} MB"
    )


def test_an_app_change_runs_only_the_app_remotely_and_uploads_only_its_inputs(ctx: Context, local: Build) -> None:
    """After the clean remote build, a change to the app's code reruns the app's two actions, on
    the service, and adds only a few blobs to the CAS (the runtime tree is there already); the
    result is the bytes of a local build of the same change.
    """
    output_base = ctx.base / "output_bases" / "remote"
    if not (output_base / "execroot").exists():
        ctx.build("remote", output_base, *_remote_flags(ctx.service))
    ctx.stack.workspace.write("app/__main__.py", APP_MAIN + "print('changed')\n")
    try:
        before = ctx.service.cas_usage()
        remote = ctx.build("remote_app_change", output_base, *_remote_flags(ctx.service))
        after = ctx.service.cas_usage()
        assert sorted(remote.by_target()) == [("//:app", "VenvstacksLayer"), ("//:app", "VenvstacksLayerMetadata")]
        _assert_all_remote(remote, 2)
        local_base = ctx.base / "output_bases" / "local_app_change"
        local_change = ctx.build("local_app_change", local_base, *LOCAL_FLAGS)
        ctx.shutdown(local_base)
        assert remote.hashes == local_change.hashes
        assert remote.hashes["app.tar.zst"] != local.hashes["app.tar.zst"]
        assert remote.hashes["framework.tar.zst"] == local.hashes["framework.tar.zst"]
        new_blobs, new_bytes = after[0] - before[0], after[1] - before[1]
        # The app's source, its command, input tree nodes, outputs, stdout/stderr: not the runtime's files.
        assert new_blobs < 60, (new_blobs, new_bytes)
        print(
            f"\napp change: remote {remote.seconds:.1f}s, local (fresh output base) {local_change.seconds:.1f}s;"
            f" {remote.processes_line()}; CAS +{new_blobs} blobs, +{new_bytes / 1e3:.0f} kB"
            f"\nremote spawn times {_wall_times(remote)}"
        )
    finally:
        ctx.stack.workspace.write("app/__main__.py", APP_MAIN)


def test_another_output_base_gets_every_layer_from_the_services_action_cache(ctx: Context, local: Build) -> None:
    """What one machine executed remotely, another gets as action cache hits from the same
    service: a fresh output base runs no layer action, and the bytes are the local build's.
    """
    output_base = ctx.base / "output_bases" / "remote_again"
    again = ctx.build("remote_again", output_base, *_remote_flags(ctx.service))
    ctx.shutdown(output_base)
    assert len(again.spawns) == 2 * len(LAYER_TARGETS) - 1, describe_spawns(again.spawns)
    assert all(spawn.get("runner") == "remote cache hit" for spawn in again.spawns), describe_spawns(again.spawns)
    assert again.hashes == local.hashes
    print(f"\nfresh output base, warm service: {again.seconds:.1f}s; {again.processes_line()}")


def _example_workspace(ctx: Context, directory: Path) -> Workspace:
    """A copy of examples/stack on the rules snapshot, with the test stack's host runtime.

    `examples/run_example.py` makes the copy, as the README's run does where GitHub is
    unreachable: a `runtime_archive` tag for the host appended (this machine's CPython, here served
    on 127.0.0.1); the copy's `local_path_override` names the rules snapshot; the locks are the
    checked-in ones.
    """
    spec = importlib.util.spec_from_file_location("run_example", CHECKOUT / "examples" / "run_example.py")
    assert spec is not None and spec.loader is not None
    run_example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run_example)
    runtime = ctx.stack.sources.runtime
    url = f"{ctx.stack.sources.runtime_url}/{runtime.path.name}"
    block = (
        f'venvstacks.runtime_archive(runtime = "cpython3_11", platform = "linux_x86_64", python_version ='
        f' "{runtime.python_version}", urls = ["{url}"], sha256 = "{runtime.sha256}")'
    )
    # copy_example writes WORKDIR/example, the tag appended to its MODULE.bazel.
    assert directory.name == "example", directory
    copy: Path = run_example.copy_example(directory.parent, block)
    module = copy / "MODULE.bazel"
    rules = ctx.base / "checkout" / "rules_venvstacks"
    module.write_text(module.read_text().replace('path = "../.."', f'path = "{rules}"'))
    workspace = Workspace(copy)
    return workspace


def test_the_example_stack_builds_on_the_service_byte_identical_to_a_local_build(ctx: Context) -> None:
    """examples/stack itself (a numpy framework and two apps from PyPI wheels, checked-in locks)
    for the host platform: every layer action (runtime, framework, both apps, their metadata)
    runs on the service, and every archive and metadata file is the local sandboxed build's.
    """
    workspace = _example_workspace(ctx, ctx.base / "example")
    example = Context(ctx.base, ctx.service, dataclasses.replace(ctx.stack, workspace=workspace))
    outputs = [f"stacks/{name}.{ext}" for name in EXAMPLE_LAYERS for ext in ("tar.zst", "json")]
    targets = [f"//stacks:{name}" for name in EXAMPLE_LAYERS]
    hashes: dict[str, dict[str, str]] = {}
    builds: dict[str, Build] = {}
    try:
        for name, flags in (("example_local", LOCAL_FLAGS), ("example_remote", _remote_flags(ctx.service))):
            output_base = ctx.base / "output_bases" / name
            builds[name] = example.build(name, output_base, *flags, targets=targets)
            hashes[name] = {path: sha256(workspace.output(path)) for path in outputs}
            example.shutdown(output_base)
    finally:
        ctx.output_bases += example.output_bases
        ctx.timings.update(example.timings)
    remote = builds["example_remote"]
    _assert_all_remote(remote, 2 * len(EXAMPLE_LAYERS) - 1)
    assert hashes["example_remote"] == hashes["example_local"], hashes
    print(
        f"\nexamples/stack: local {builds['example_local'].seconds:.1f}s, remote {remote.seconds:.1f}s;"
        f" {remote.processes_line()}\nremote spawn times {_wall_times(remote)}"
    )


def test_an_action_on_a_worker_sees_only_its_environment_and_no_network(ctx: Context) -> None:
    """A genrule run by a worker sees exactly the variables of its action (plus what bash sets)
    and cannot connect to the wheel index on 127.0.0.1; the same command run locally can, so
    the probe itself works.
    """
    port = ctx.stack.index_url.split(":")[2].split("/")[0]
    ctx.stack.workspace.write("witness/BUILD.bazel", WITNESS_BUILD.format(port=port))
    output_base = ctx.base / "output_bases" / "remote"
    remote = ctx.build("witness_remote", output_base, *_remote_flags(ctx.service), targets=("//witness:remote",))
    local = ctx.build(
        "witness_local",
        output_base,
        *_remote_flags(ctx.service),
        "--strategy=Genrule=local",
        targets=("//witness:local",),
    )
    seen = ctx.stack.workspace.output("witness/remote.txt").read_text().splitlines()
    assert "network=unreachable" in seen, seen
    assert "network=reachable" in ctx.stack.workspace.output("witness/local.txt").read_text().splitlines()
    log = read_execution_log(ctx.base / "logs" / "witness_remote.json")
    (spawn,) = [entry for entry in log if entry.get("mnemonic") == "Genrule"]
    assert spawn.get("runner") == "remote", describe_spawns(log)
    carried = {variable["name"] for variable in spawn.get("environmentVariables", [])}
    names = {line.split("=", 1)[0] for line in seen if "=" in line and not line.startswith("network=")}
    assert names - SHELL_VARIABLES == carried, (sorted(names), sorted(carried))
    assert "remote" in remote.processes_line() and "local" in local.processes_line()


def _launcher_lines(stderr: str) -> list[str]:
    """What a `bazel run` target printed to stderr, after Bazel's own lines."""
    lines = stderr.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("INFO: Running command line:")]
    assert starts, stderr[-2000:]
    return lines[starts[-1] + 1 :]


def test_locking_stays_local_with_the_remote_executor_set(ctx: Context) -> None:
    """`bazel run NAME.lock` with the remote execution flags of the `.bazelrc` (which `run`
    inherits from `build`) runs pip on this machine against the index and rewrites the same lock:
    building a lock target registers no action that runs on the service. With the documented
    remote execution setting, the launcher says so in its first line; without it, it does not.
    """
    lock = ctx.stack.root / "pylock.app.toml"
    before = lock.read_bytes()
    leases = len(ctx.service.executed_leases())
    output_base = ctx.base / "output_bases" / "remote"
    result = ctx.bazel(output_base, "run", *_remote_flags(ctx.service), "//:app.lock")
    assert lock.read_bytes() == before
    assert len(ctx.service.executed_leases()) == leases, ctx.service.executed_leases()
    assert " remote." not in result.stderr and " remote," not in result.stderr, result.stderr[-2000:]
    printed = _launcher_lines(result.stderr)
    assert printed[0].startswith(RUNS_LOCALLY.format(target="//:app.lock")), printed[:3]
    # The stack's `.lock` (all layers in one run) says it too.
    stack = ctx.bazel(output_base, "run", *_remote_flags(ctx.service), "//:stack.lock")
    assert _launcher_lines(stack.stderr)[0].startswith(RUNS_LOCALLY.format(target="//:stack.lock"))
    assert len(ctx.service.executed_leases()) == leases, ctx.service.executed_leases()
    plain = ctx.bazel(ctx.base / "output_bases" / "lock", "run", "//:app.lock")
    assert not any("locking runs on this machine" in line for line in _launcher_lines(plain.stderr))
    assert lock.read_bytes() == before


# --- build without the bytes -------------------------------------------------------------------


@dataclass
class Metered:
    """What one Bazel command read from the service, through `ReapiService.meter`."""

    down: int
    up: int
    reads: list[tuple[str, int]]

    def outputs_read(self, known: dict[str, str]) -> list[str]:
        """The names in `known` (name -> sha256) of the blobs read, sorted."""
        by_hash = {digest: name for name, digest in known.items()}
        return sorted({by_hash[digest] for digest, _ in self.reads if digest in by_hash})

    def describe(self) -> str:
        read_bytes = sum(size for _, size in self.reads)
        return f"{self.down / 1e3:.1f} kB down ({len(self.reads)} blobs read by ByteStream, {read_bytes / 1e3:.1f} kB)"


def _metered(ctx: Context, run: Any) -> tuple[Any, Metered]:
    """Runs `run()` with the meter reset before; its result and what went through the meter."""
    meter = ctx.service.meter
    assert meter is not None
    meter.reset()
    result = run()
    # Bazel's last responses are in by the time the command returns; the relay may lag a little.
    time.sleep(0.3)
    return result, Metered(*meter.snapshot())


def _reference_outputs(ctx: Context, local: Build) -> dict[str, str]:
    """name -> sha256 of every layer output of the local build, and of `stack.json` (built here)."""
    known = dict(local.hashes)
    stack_json = ctx.base / "stack.json"
    if not stack_json.exists():
        output_base = ctx.base / "output_bases" / "local"
        ctx.bazel(output_base, "build", *LOCAL_FLAGS, "//:stack")
        shutil.copy(ctx.stack.workspace.output("stack.json"), stack_json)
        ctx.shutdown(output_base)
    known["stack.json"] = sha256(stack_json)
    return known


# The test runs every time (a cached result would say nothing about what the run fetches).
NO_TEST_CACHE = ("--nocache_test_results",)
ARCHIVES = ("cpython.tar.zst", "framework.tar.zst", "app.tar.zst")
LAYER_METADATA = ("cpython.json", "framework.json", "app.json")


def test_build_without_the_bytes_downloads_only_what_is_used(ctx: Context, local: Build, tmp_path: Path) -> None:
    """`--remote_download_minimal`: building `//:stack` in a fresh output base downloads no layer
    output at all; `bazel run //:app.deploy -- DIR` then fetches exactly the three archives and
    their metadata (and the deployed app runs); `bazel test //:app.test` runs on a worker and
    fetches none. `--remote_download_toplevel` fetches exactly the stack's top-level outputs (the
    three archives and stack.json); a local test run then fetches only the metadata it lacks.
    Measured on the wire: the digests in the client's ByteStream `Read` requests.
    """
    known = _reference_outputs(ctx, local)
    flags = (*ctx.service.metered_flags(), *DOCUMENTED_REMOTE_FLAGS)
    figures: dict[str, str] = {}

    minimal_base = ctx.base / "output_bases" / "bwtb_minimal"
    minimal = (*flags, "--remote_download_minimal")
    build, metered = _metered(ctx, lambda: ctx.build("bwtb_minimal", minimal_base, *minimal, targets=("//:stack",)))
    assert len(build.spawns) == 2 * len(LAYER_TARGETS) - 1, describe_spawns(build.spawns)
    assert all(spawn.get("runner", "").startswith("remote") for spawn in build.spawns), describe_spawns(build.spawns)
    assert metered.outputs_read(known) == [], metered.reads
    assert build.hashes == {}, f"layer outputs on disk: {sorted(build.hashes)}"
    assert not ctx.stack.workspace.output("stack.json").exists()
    figures["build //:stack, minimal"] = metered.describe()

    dest = tmp_path / "deployed"
    _, metered = _metered(ctx, lambda: ctx.bazel(minimal_base, "run", *minimal, "//:app.deploy", "--", str(dest)))
    assert metered.outputs_read(known) == sorted(ARCHIVES + LAYER_METADATA), metered.reads
    figures["run //:app.deploy, minimal"] = metered.describe()
    ran = subprocess.run(
        [dest / "app" / "bin" / "python", "-m", "app"], capture_output=True, text=True, check=True, timeout=60
    )
    files = json.loads(ran.stdout.strip().splitlines()[-1])
    assert files["fwpkg"].startswith(str(dest / "framework")), files
    assert files["apppkg"].startswith(str(dest / "app")), files

    test, metered = _metered(
        ctx,
        lambda: ctx.finish_build(
            ctx.start_build(
                "bwtb_test", minimal_base, *minimal, *NO_TEST_CACHE, command="test", targets=("//:app.test",)
            )
        ),
    )
    assert "//:app.test" in test.output and "PASSED" in test.output, test.output[-3000:]
    runners = {entry.get("mnemonic"): entry.get("runner") for entry in test.entries}
    assert runners.get("TestRunner") == "remote", describe_spawns(test.entries)
    assert metered.outputs_read(known) == [], metered.reads
    figures["test //:app.test (on a worker), minimal"] = metered.describe()
    ctx.shutdown(minimal_base)

    toplevel_base = ctx.base / "output_bases" / "bwtb_toplevel"
    toplevel = (*flags, "--remote_download_toplevel")
    build, metered = _metered(ctx, lambda: ctx.build("bwtb_toplevel", toplevel_base, *toplevel, targets=("//:stack",)))
    assert metered.outputs_read(known) == sorted([*ARCHIVES, "stack.json"]), metered.reads
    assert build.hashes == {name: known[name] for name in ARCHIVES}, build.hashes
    figures["build //:stack, toplevel"] = metered.describe()

    local_test = (*toplevel, *NO_TEST_CACHE, "--strategy=TestRunner=local")
    test, metered = _metered(
        ctx,
        lambda: ctx.finish_build(
            ctx.start_build("bwtb_local_test", toplevel_base, *local_test, command="test", targets=("//:app.test",))
        ),
    )
    assert "PASSED" in test.output, test.output[-3000:]
    runners = {entry.get("mnemonic"): entry.get("runner") for entry in test.entries}
    assert runners.get("TestRunner") == "local", describe_spawns(test.entries)
    assert metered.outputs_read(known) == sorted(LAYER_METADATA), metered.reads
    figures["test //:app.test (local runner) after the toplevel build"] = metered.describe()
    ctx.shutdown(toplevel_base)
    print("\nbytes from the service:\n" + "\n".join(f"  {name}: {value}" for name, value in figures.items()))


# --- failures ------------------------------------------------------------------------------------

FAILING_BUILD = """\
genrule(
    name = "broken",
    outs = ["broken.txt"],
    cmd = "echo \\"broken: $$((6 * 7)) bytes of the wheel are corrupt\\" >&2; exit 1",
)
"""


def _error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("ERROR:")]


def _clean_rebuild_matches(ctx: Context, local: Build, name: str) -> Build:
    """A fresh output base against the service: every layer output has the reference bytes."""
    output_base = ctx.base / "output_bases" / name
    build = ctx.build(name, output_base, *_remote_flags(ctx.service))
    ctx.shutdown(output_base)
    assert build.hashes == local.hashes, f"{name}: {build.hashes}\nreference {local.hashes}"
    return build


def test_a_worker_killed_mid_action_is_run_again_and_nothing_corrupt_is_cached(ctx: Context, local: Build) -> None:
    """A worker is SIGKILLed (with its action) while it runs the framework layer's action; it is
    restarted with the same bot id, as a supervisor would. BuildGrid requeues the lease of the
    closed session, a worker runs it, and the build (`--remote_retries=2`) succeeds with the
    reference bytes. A clean rebuild from the service's cache has them too.
    """
    ctx.service.hold_file.write_text("framework.tar.zst\n")
    output_base = ctx.base / "output_bases" / "killed_worker"
    flags = (*_remote_flags(ctx.service), "--remote_retries=2", "--noremote_accept_cached")
    running = ctx.start_build("killed_worker", output_base, *flags)
    try:
        index = ctx.service.holding_worker()
        ctx.service.kill_worker(index)
    finally:
        ctx.service.hold_file.unlink(missing_ok=True)
    ctx.service.start_worker(index)
    build = ctx.finish_build(running)
    ctx.shutdown(output_base)
    _assert_all_remote(build, 2 * len(LAYER_TARGETS) - 1)
    assert build.hashes == local.hashes, f"{build.hashes}\nreference {local.hashes}"
    again = _clean_rebuild_matches(ctx, local, "after_killed_worker")
    print(
        f"\nworker {index + 1} killed while it held the framework action: build {build.seconds:.1f}s,"
        f" {build.processes_line()}; clean rebuild {again.processes_line()}"
    )


def test_a_worker_that_dies_mid_action_loses_its_lease_to_the_other_worker(ctx: Context, local: Build) -> None:
    """A worker is SIGKILLed while it runs the app layer's action and is not restarted. It stops
    reporting its session; BuildGrid closes the session after its keepalive (30 s here) and
    requeues the lease; the other worker runs it, and the build has the reference bytes.
    """
    ctx.service.hold_file.write_text("app.tar.zst\n")
    output_base = ctx.base / "output_bases" / "dead_worker"
    flags = (*_remote_flags(ctx.service), "--remote_retries=2", "--noremote_accept_cached")
    running = ctx.start_build("dead_worker", output_base, *flags)
    try:
        index = ctx.service.holding_worker()
        ctx.service.kill_worker(index)
        killed = time.monotonic()
    finally:
        ctx.service.hold_file.unlink(missing_ok=True)
    try:
        build = ctx.finish_build(running, timeout=300)
        waited = time.monotonic() - killed
    finally:
        ctx.service.start_worker(index)
    ctx.shutdown(output_base)
    _assert_all_remote(build, 2 * len(LAYER_TARGETS) - 1)
    assert build.hashes == local.hashes, f"{build.hashes}\nreference {local.hashes}"
    print(
        f"\nworker {index + 1} killed while it held the app action, not restarted: the build finished"
        f" {waited:.1f}s later ({build.seconds:.1f}s in all), {build.processes_line()}"
    )


def test_a_failing_remote_action_gives_its_error_and_stderr_and_is_not_cached(ctx: Context, local: Build) -> None:
    """An action that exits 1 on a worker: Bazel's error names the target, gives the exit code and
    the action's stderr; the next build runs it on the service again (BuildGrid caches no
    failed result), and the layers built beside it are still the reference bytes.
    """
    ctx.stack.workspace.write("broken/BUILD.bazel", FAILING_BUILD)
    output_base = ctx.base / "output_bases" / "remote"
    outputs = []
    for attempt in ("broken", "broken_again"):
        leases = len(ctx.service.executed_leases())
        build = ctx.finish_build(
            ctx.start_build(attempt, output_base, *_remote_flags(ctx.service), targets=("//broken:broken",)),
            check=False,
        )
        assert build.returncode != 0
        errors = _error_lines(build.output)
        assert any("//broken:broken" in line and "(Exit 1)" in line for line in errors), build.output[-3000:]
        # The action's stderr (the command line in the error has `$((6 * 7))`, not 42).
        assert "broken: 42 bytes of the wheel are corrupt" in build.output, build.output[-3000:]
        (spawn,) = [entry for entry in build.entries if entry.get("mnemonic") == "Genrule"]
        assert spawn.get("runner") == "remote" and not spawn.get("remoteCacheHit"), describe_spawns(build.entries)
        assert len(ctx.service.executed_leases()) > leases, "the failed action was not run again on the service"
        outputs.append(errors)
    layers = ctx.build("after_broken", output_base, *_remote_flags(ctx.service))
    assert layers.hashes == local.hashes
    print(f"\na failing remote action: {outputs[0]}")


def test_the_service_down_fails_naming_the_layer_and_local_fallback_builds_it(ctx: Context, local: Build) -> None:
    """BuildGrid stopped before the build: in a fresh output base the build fails with Bazel's
    UNAVAILABLE error on a layer action, naming the layer; with `--remote_local_fallback` the same
    build runs every action locally and gives the reference bytes. In an output base that built
    without the bytes, with the documented `--remote_download_regex` for the layers' archive
    records, the fallback rebuilds a changed app locally, metadata included (without it, the
    metadata action failed: its lower layers' records were only on the service). Once the
    service is back, a clean rebuild has the reference bytes.
    """
    minimal_base = ctx.base / "output_bases" / "bwtb_minimal_down"
    minimal = ("--remote_download_minimal", RECORDS_REGEX)
    ctx.build("bwtb_minimal_down", minimal_base, *_remote_flags(ctx.service), *minimal)
    on_disk = sorted(p.name for p in ctx.stack.workspace.output("").iterdir() if p.is_file())
    assert {"_app.archive.json", "_framework.archive.json", "cpython.json"} <= set(on_disk), on_disk
    assert not [name for name in on_disk if name.endswith(".tar.zst")], on_disk
    ctx.service.stop_server()
    try:
        flags = (*_remote_flags(ctx.service), "--remote_retries=1")
        output_base = ctx.base / "output_bases" / "service_down"
        down = ctx.finish_build(ctx.start_build("service_down", output_base, *flags), check=False)
        assert down.returncode != 0
        errors = _error_lines(down.output)
        assert any("Failed to query remote execution capabilities: UNAVAILABLE" in line for line in errors), errors
        named = [line for line in errors if "layer" in line and "failed" in line and "UNAVAILABLE" in line]
        assert named and any(f"//:{name}" in named[0] for name in ("cpython", "framework", "app")), errors
        fallback = ctx.build("service_down_fallback", output_base, *flags, "--remote_local_fallback")
        ctx.shutdown(output_base)
        assert len(fallback.spawns) == 2 * len(LAYER_TARGETS) - 1, describe_spawns(fallback.spawns)
        assert all(spawn.get("runner") in LOCAL_RUNNERS for spawn in fallback.spawns), describe_spawns(fallback.spawns)
        assert fallback.hashes == local.hashes, f"{fallback.hashes}\nreference {local.hashes}"

        ctx.stack.workspace.write("app/__main__.py", APP_MAIN + "print('offline')\n")
        try:
            stranded = ctx.finish_build(
                ctx.start_build(
                    "bwtb_minimal_down_fallback",
                    minimal_base,
                    *flags,
                    *minimal,
                    "--remote_local_fallback",
                ),
                check=False,
            )
        finally:
            ctx.stack.workspace.write("app/__main__.py", APP_MAIN)
        ctx.shutdown(minimal_base)
        assert stranded.returncode == 0, _error_lines(stranded.output)
        assert sorted(stranded.by_target()) == [("//:app", "VenvstacksLayer"), ("//:app", "VenvstacksLayerMetadata")]
        assert all(spawn.get("runner") in LOCAL_RUNNERS for spawn in stranded.spawns), describe_spawns(stranded.spawns)
        print(
            f"\nservice down: {named[0]}\nwith --remote_local_fallback: {fallback.processes_line()}"
            f" in {fallback.seconds:.1f}s\nfallback after a minimal build (records downloaded): app rebuilt locally"
            f" in {stranded.seconds:.1f}s, {stranded.processes_line()}"
        )
    finally:
        ctx.service.start_server()
    again = _clean_rebuild_matches(ctx, local, "after_service_down")
    print(f"service back: clean rebuild {again.processes_line()} in {again.seconds:.1f}s")
