"""Start-up of `bazel run` of an application against its deployed interpreter started directly.

`python bench/run_startup.py [--rounds N]` builds the stack of tests/integration/test_stack.py
(through `venvstacks_testing.stack_workspace`: a runtime made from this machine's CPython, a
framework and an application, locked against wheels served on 127.0.0.1), runs the application
once with `bazel run` (which deploys its stack into a fresh run cache), then times, `rounds`
times each in turn (the order rotating every round), with the median reported:

- **bazel run**: a second `bazel run //:app` of the unchanged application (Bazel's server up);
- **launcher**: the launcher alone, `bazel-bin/app` (what `bazel run` starts: bash reads the
  key, finds the entry complete and `exec`s the interpreter);
- **direct**: `<cache>/<key>/app/bin/python -m app`, the deployed interpreter started by hand.

The ratios are against **direct**; the launcher's target is 1.2 (docs/monorepo.md).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from venvstacks_testing.bazel_workspace import BAZEL_SH
from venvstacks_testing.stack_workspace import make_stack, serve_stack_sources

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_startup  # bench/ is on sys.path (above)


def time_rotating(commands: Mapping[str, Sequence[str]], env: Mapping[str, str], rounds: int) -> dict[str, float]:
    """The median wall seconds of each command, one untimed run each first, the order rotating."""
    labels = list(commands)
    for label in labels:
        bench_startup.time_once(commands[label], env)
    times: dict[str, list[float]] = {label: [] for label in labels}
    for i in range(rounds):
        shift = i % len(labels)
        for label in labels[shift:] + labels[:shift]:
            times[label].append(bench_startup.time_once(commands[label], env))
    return {label: statistics.median(values) for label, values in times.items()}


def main(argv: list[str]) -> int:
    """Build, deploy through `bazel run`, and print the three medians with their ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10, help="timed runs of each command (default: %(default)s)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="run_startup.") as scratch_name:
        scratch = Path(scratch_name)
        env = bench_startup.startup_env(os.environ)
        env["VENVSTACKS_RUN_CACHE"] = str(scratch / "cache")
        os.environ["VENVSTACKS_RUN_CACHE"] = env["VENVSTACKS_RUN_CACHE"]
        with serve_stack_sources(scratch / "sources") as sources:
            stack = make_stack(scratch / "ws", sources)
            workspace = stack.workspace
            try:
                stack.lock()
                workspace.bazel("run", "//:app")  # builds, and deploys into the run cache
                (entry,) = (scratch / "cache").glob("*/app/bin/python")
                os.chdir(workspace.root)
                medians = time_rotating(
                    {
                        "bazel run": [str(BAZEL_SH), "run", "//:app"],
                        "launcher": [str(workspace.output("app"))],
                        "direct": [str(entry), "-m", "app"],
                    },
                    env,
                    args.rounds,
                )
            finally:
                workspace.shutdown()
    direct = medians["direct"]
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"{'command':<12} {'median s':>9} {'ratio':>7}   (median of {args.rounds} runs; load average {load})")
    for label, seconds in medians.items():
        print(f"{label:<12} {seconds:>9.4f} {seconds / direct:>7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
