"""The bench's state and set-up, shared by every step: the main workspace, locked and built once
(untimed), the tool's interpreter and environment taken from the framework's action, and the
helpers steps time things with (`timed_build`, `tool_run`)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from venvstacks_bench.bazel import CHECKOUT, BazelResult, Workspace
from venvstacks_bench.host import children_cpu, log, quiesce
from venvstacks_bench.logs import executed, profile_actions
from venvstacks_bench.workspace import (
    APP_REPORT_VARIANTS,
    APPS,
    FRAMEWORK,
    LAYERS,
    TARGET,
    TOOL_PHASES,
    build_text,
    lock_packages,
    module_text,
    snapshot_rules,
    write_workspace,
)
from venvstacks_testing.stack_workspace import read_execution_log


def layer_wheels(params: Path, execroot: Path) -> list[str]:
    """The layer's own wheels: the `--wheel PATH=SHA256` arguments of its build-layer action.

    (Not every `.whl` input of the action: the tool's own wheels are inputs too, kept as zips.)
    """
    lines = params.read_text().splitlines()
    return sorted(
        str(execroot / lines[i + 1].rpartition("=")[0]) for i, line in enumerate(lines[:-1]) if line == "--wheel"
    )


def build_layer_spawn(
    entries: Sequence[dict[str, Any]], layer: str, mnemonic: str = "VenvstacksLayer"
) -> dict[str, Any]:
    """The execution-log entry of `layer`'s build-layer action (or its action of another `mnemonic`)."""
    return next(e for e in entries if e.get("targetLabel", "").endswith(f":{layer}") and e.get("mnemonic") == mnemonic)


def build_record(result: BazelResult, actions: dict[str, Any], ran: dict[str, Any], **more: Any) -> dict[str, Any]:
    """What a step keeps of one `timed_build`: its times, the per-action times, what ran, and `more`."""
    return {
        "wall": result.wall,
        "elapsed": result.elapsed,
        "critical_path": result.critical_path,
        "actions": actions,
        "ran": ran,
        **more,
    }


@dataclass
class Bench:
    """A run of the bench: its scratch directory, run counts and options, the main workspace, the
    results so far (`results`, one key a step) and what set-up found out for the steps."""

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

    def setup(self, runtime_url: str, runtime: Any) -> None:
        """The main workspace on a copy of the checkout, locked (both app_report variants) and built, untimed."""
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
        framework = build_layer_spawn(entries, FRAMEWORK)
        execroot = ws.execroot()
        env = {item["name"]: item["value"] for item in framework.get("environmentVariables", [])}
        tool_path = os.pathsep.join(
            str(execroot / p) for p in env.get("VENVSTACKS_TOOL_PATH", "").split(os.pathsep) if p
        )
        env["VENVSTACKS_TOOL_PATH"] = tool_path
        env["PATH"] = os.environ.get("PATH", "/usr/bin:/bin")
        params = execroot / framework["commandArgs"][-1].lstrip("@")
        loader = build_layer_spawn(entries, FRAMEWORK, "VenvstacksLoaderCheck")
        self.tool = {
            "python": str(execroot / framework["commandArgs"][0]),
            "env": env,
            "framework_params": str(params),
            "framework_wheels": layer_wheels(params, execroot),
            # The framework's loader check as Bazel ran it: its command line and environment.
            "loader_command": [str(execroot / loader["commandArgs"][0]), *loader["commandArgs"][1:]],
            "loader_env": {item["name"]: item["value"] for item in loader.get("environmentVariables", [])},
        }
        self.results["stack"] = {
            layer: lock_packages(ws.root / "stacks" / f"pylock.{layer}.toml") for layer in (FRAMEWORK, *APPS)
        }
        self.results["stack"]["app_report variants"] = [list(v) for v in APP_REPORT_VARIANTS]
        self.results["stack"]["framework wheels"] = {
            Path(w).name: os.path.getsize(w) for w in self.tool["framework_wheels"]
        }

    def set_variant(self, index: int) -> None:
        """app_report's requirements and lock switched to APP_REPORT_VARIANTS[index]."""
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

    def archives(self) -> list[Path]:
        """The main stack's four layer archives, in LAYERS' order (under bazel-bin)."""
        return [self.main.output(f"stacks/{layer}.tar.zst") for layer in LAYERS]

    def shutdown(self) -> None:
        """Stops the main workspace's Bazel server (its output base is kept for inspection or reuse)."""
        self.main.shutdown(remove=False)
