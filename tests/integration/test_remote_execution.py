"""Remote execution on a real REAPI service: every layer action of a stack runs on a BuildGrid
worker, and the archives are the bytes of a local sandboxed build.

The service is `support.reapi_service`: BuildGrid (PyPI) with its scheduler in a private
PostgreSQL, serving CAS, action cache and execution on 127.0.0.1, and two workers
(`support/reapi_worker.py`) that stage each action's input root from CAS into a fresh directory
and run it with only the action's environment in a network namespace of their own. The stack is
`support.stack_workspace`'s runtime + framework + app, locked against a local index (locking is
a `bazel run` target and stays local).

The rules come from a snapshot of this checkout taken at the start, so edits made to the
checkout while the module runs cannot make two builds differ. Each build gets a fresh output
base; every Bazel server is shut down and every output base deleted at the end, and the
service is stopped.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from venvstacks_testing.bazel_workspace import BAZEL_SH
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
DOCUMENTED_REMOTE_FLAGS = ("--remote_timeout=120s",)
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
        log_file = self.base / "logs" / f"{name}.json"
        log_file.parent.mkdir(parents=True, exist_ok=True)
        start = time.monotonic()
        result = self.bazel(output_base, "build", f"--execution_log_json_file={log_file}", *flags, *targets)
        seconds = time.monotonic() - start
        self.timings[name] = seconds
        hashes = {
            output: sha256(self.stack.workspace.output(output))
            for output in LAYER_OUTPUTS
            if self.stack.workspace.output(output).exists()
        }
        entries = read_execution_log(log_file)
        spawns = [entry for entry in entries if entry.get("mnemonic") in LAYER_ACTION_MNEMONICS]
        return Build(name, hashes, spawns, result.stdout + result.stderr, seconds)

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


def test_locking_stays_local_with_the_remote_executor_set(ctx: Context) -> None:
    """`bazel run NAME.lock` with the remote execution flags of the `.bazelrc` (which `run`
    inherits from `build`) runs pip on this machine against the index and rewrites the same lock:
    building a lock target registers no action that runs on the service.
    """
    lock = ctx.stack.root / "pylock.app.toml"
    before = lock.read_bytes()
    leases = len(ctx.service.executed_leases())
    output_base = ctx.base / "output_bases" / "remote"
    result = ctx.bazel(output_base, "run", *_remote_flags(ctx.service), "//:app.lock")
    assert lock.read_bytes() == before
    assert len(ctx.service.executed_leases()) == leases, ctx.service.executed_leases()
    assert " remote." not in result.stderr and " remote," not in result.stderr, result.stderr[-2000:]
