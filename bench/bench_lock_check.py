"""What the stale-lock validation action costs: one `check-lock` per layer in every build.

    python3 bench/bench_lock_check.py [--runs N] [--scratch DIR]

Each framework and application layer's build runs `venvstacks_tool check-lock` as a validation
action (docs/locking.md, "A stale lock at build time"). This times that process outside Bazel on
a realistic pair of locks: the golden lock (tests/golden/pylock.golden.toml: three platforms,
every feature of the form) as the framework below, and an application lock of the same size
above it, fresh. The runs alternate with the floor of any tool action, the interpreter started
as actions start it (`python -I -c pass`), N times each. Prints one Markdown row: the medians and
their ratio. Inside Bazel the action also pays the sandbox's set-up for the runtime's files, as
every tool action does (the layer metadata action, for one). Needs the development install.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from venvstacks_tool.lock import lock_command, pylock

CHECKOUT = Path(__file__).resolve().parents[1]
ENTRY = CHECKOUT / "tools" / "bin" / "venvstacks_tool.py"
GOLDEN = CHECKOUT / "tests" / "golden" / "pylock.golden.toml"


def write_locks(directory: Path) -> list[str]:
    """A framework lock (the golden one) and a fresh application lock on it; the `check-lock` arguments."""
    framework = pylock.read_lock(GOLDEN)
    framework_path = directory / "pylock.framework.toml"
    framework_path.write_bytes(GOLDEN.read_bytes())
    app_path = directory / "pylock.app.toml"
    argv = ["--layer-name", "app", "--layer-kind", "application", "--python-version", framework.python_version]
    for triple in framework.platforms:
        argv += ["--platform", triple]
    argv += ["--requirement", "click", "--lower-lock", f"{framework.layer}={framework_path}"]
    argv += ["--lock-target", "//stacks:app.lock", "--lock", str(app_path)]
    request = lock_command.parse_check_request(argv).inputs
    digest = lock_command._read_inputs(request).hash(request)
    app = dataclasses.replace(framework, layer="app", kind="application", inputs_hash=digest)
    pylock.write_lock(app_path, app)
    return [*argv, "--stale", "warn", "--report", str(directory / "_app.lock_check.txt")]


def timed(command: list[str]) -> float:
    """Wall seconds of one run of `command`, which must succeed silently."""
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    if result.stderr:
        raise SystemExit(f"{command[3] if len(command) > 3 else command}: {result.stderr.strip()}")
    return time.perf_counter() - start


def main(argv: list[str]) -> int:
    """Run the bench; print the Markdown row."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="runs of each command (default 15)")
    parser.add_argument("--scratch", type=Path, default=None, help="where the locks are written (default: a temp dir)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.scratch) as scratch:
        check = [sys.executable, "-I", str(ENTRY), "check-lock", *write_locks(Path(scratch))]
        floor = [sys.executable, "-I", "-c", "pass"]
        timed(check)  # warm the file cache once, untimed
        checks, floors = [], []
        for _ in range(args.runs):
            checks.append(timed(check))
            floors.append(timed(floor))
        outcome = (Path(scratch) / "_app.lock_check.txt").read_text().strip()
    check_s, floor_s = statistics.median(checks), statistics.median(floors)
    print("| check-lock (fresh, golden-size locks) | interpreter start (`python -I -c pass`) | ratio | runs |")
    print("| --- | --- | --- | --- |")
    print(f"| {check_s * 1000:.0f} ms ({outcome}) | {floor_s * 1000:.0f} ms | {check_s / floor_s:.1f}x | {args.runs} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
