"""Start-up of a deployed application against a plain venv holding the same packages.

`bench/run_bench.py --only startup` deploys the bench's stack with the tool, then makes, for each
application, one plain virtual environment on the same deployed runtime whose site-packages is
a copy of the application layer's and its framework's (the same files, `.pyc` included, minus the
stacking files). What is left between the two is the cost of stacking: the extra site
directories on `sys.path` and the `.pth` processing of each lower layer. Each command is started
`rounds` times per side, the two sides alternating (and which goes first alternating too), with
the same environment; the figure is the median.

venvstacks' own deployment of the same stack is not measured here: venvstacks fetches its
runtimes from GitHub, which these machines cannot reach. A plain venv is the lower bound of any
layered deployment of the same packages (venvstacks adds a `sitecustomize` that calls
`site.addsitedir` for each lower layer, much as ours does).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

# Files of a layer's site-packages that only make sense in a stack.
STACKING_FILES = ("_venvstacks_stack.pth", "_venvstacks_stack.py")


def site_packages(layer: Path) -> Path:
    """The one `lib/pythonX.Y/site-packages` of a deployed POSIX layer."""
    found = sorted(layer.glob("lib/python3.*/site-packages"))
    if len(found) != 1:
        raise RuntimeError(f"{layer}: expected one lib/python3.*/site-packages, found {found}")
    return found[0]


def make_plain_venv(runtime_python: Path, layers: Sequence[Path], destination: Path) -> Path:
    """A venv at `destination` on `runtime_python` holding the site-packages of `layers` (upper first).

    Returns the venv's interpreter. Files are hard-linked where the file system allows; an upper
    layer's file wins over a lower one's, as on the stack's `sys.path`.
    """
    subprocess.run([str(runtime_python), "-m", "venv", "--without-pip", str(destination)], check=True)
    target = site_packages(destination)
    for layer in reversed(layers):  # lowest first, so upper layers overwrite
        source = site_packages(layer)
        shutil.copytree(
            source,
            target,
            dirs_exist_ok=True,
            copy_function=_link_or_copy,
            ignore=lambda _dir, names: [n for n in names if n in STACKING_FILES],
        )
    return destination / "bin" / "python"


def _link_or_copy(source: str, destination: str) -> None:
    if os.path.lexists(destination):
        os.unlink(destination)
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


def time_once(argv: Sequence[str], env: Mapping[str, str]) -> float:
    """Wall seconds of one run of `argv`, which must succeed."""
    start = time.perf_counter()
    result = subprocess.run(argv, env=dict(env), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.decode()[-2000:]}")
    return seconds


def compare(
    commands: Mapping[str, tuple[Sequence[str], Sequence[str]]], env: Mapping[str, str], rounds: int
) -> dict[str, Any]:
    """Median start-up of each command, the stack's and the plain venv's argv alternating.

    `commands` maps a label to (stack argv, plain venv argv). One untimed run of each first.
    """
    results: dict[str, Any] = {}
    for label, (stack_argv, plain_argv) in commands.items():
        time_once(stack_argv, env)
        time_once(plain_argv, env)
        stack_times: list[float] = []
        plain_times: list[float] = []
        for i in range(rounds):
            order = ((stack_argv, stack_times), (plain_argv, plain_times))
            for argv, times in order if i % 2 == 0 else reversed(order):
                times.append(time_once(argv, env))
        stack, plain = statistics.median(stack_times), statistics.median(plain_times)
        results[label] = {
            "stack": stack,
            "plain_venv": plain,
            "ratio": stack / plain,
            "stack_all": stack_times,
            "plain_all": plain_times,
        }
    return results


def startup_env(base: Mapping[str, str]) -> dict[str, str]:
    """The environment both sides start in: nothing of the caller's Python set-up, no bytecode writes.

    `PYTHONDONTWRITEBYTECODE=1` as on these machines (and as for a read-only deployment), so a
    module without a shipped `.pyc` is compiled at every start on either side.
    """
    env = {key: value for key, value in base.items() if not key.startswith("PYTHON")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env
