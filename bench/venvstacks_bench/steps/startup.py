"""Each application's start-up, deployed from the stack and from a plain venv of the same files.

The commands and their timing: bench/bench_startup.py.
"""

from __future__ import annotations

import os
from typing import Any

import bench_startup

from venvstacks_bench.bazel import remove_tree
from venvstacks_bench.core import Bench
from venvstacks_bench.host import loadavg, log, quiesce
from venvstacks_bench.report import s, times
from venvstacks_bench.workspace import APPS, FRAMEWORK, RUNTIME


def run(bench: Bench) -> None:
    """Each application's start-up, deployed from the stack and from a plain venv of the same files."""
    dest = bench.scratch / "startup-stack"
    bench.tool_run("deploy", str(dest), *[str(a) for a in bench.archives()])
    runtime_python = dest / RUNTIME / "bin" / "python3"
    rounds = max(10, 5 * bench.runs)
    commands: dict[str, tuple[list[str], list[str]]] = {}
    for app in APPS:
        plain = bench_startup.make_plain_venv(
            runtime_python, [dest / app, dest / FRAMEWORK], bench.scratch / f"startup-venv-{app}"
        )
        stacked = dest / app / "bin" / "python"
        if app == APPS[0]:
            commands["python -c pass"] = ([str(stacked), "-c", "pass"], [str(plain), "-c", "pass"])
        commands[f"python -m {app}"] = ([str(stacked), "-m", app], [str(plain), "-m", app])
    log(f"start-up: {len(commands)} commands, {rounds} runs each of the stack and of a plain venv, alternating")
    quiesce()
    load = loadavg()
    bench.results["startup"] = {
        "rounds": rounds,
        "load": load,
        "commands": bench_startup.compare(commands, bench_startup.startup_env(os.environ), rounds),
    }
    for path in [dest, *bench.scratch.glob("startup-venv-*")]:
        remove_tree(path)


def report(results: dict[str, Any], runs: int, cold_runs: int) -> list[str]:
    """A start-up row per command: the deployed stack against a plain venv."""
    lines: list[str] = []
    row = lines.append
    start = results.get("startup", {})
    for label, entry in start.get("commands", {}).items():
        row(
            f"| **start-up `{label}`**: deployed stack / plain venv of the same files | {times(entry['ratio'])} |"
            f" {start['rounds']} | stack {s(entry['stack'], 3)}, plain venv {s(entry['plain_venv'], 3)};"
            f" `PYTHONDONTWRITEBYTECODE=1`; load at start {start['load']} |"
        )
    return lines
