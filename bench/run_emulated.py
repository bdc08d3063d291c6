"""Start-up of a deployed linux_aarch64 application under qemu-user against the same on x86_64.

    python bench/run_emulated.py --native DEST_X86_64 --emulated DEST_AARCH64 [--rounds N]

Takes two deployments of the same stack (tests/integration/test_aarch64.py makes them, and
docs/platforms.md says how by hand) and times `DEST/APP/bin/python -m APP` for every
application layer in them (a layer with `launch_module` in its config), `rounds` times each
with the order rotating, after one untimed run. The aarch64 programs run through binfmt_misc
with `QEMU_LD_PREFIX` at the Debian arm64 root (`venvstacks_testing.emulation`, which sets up
what is missing). Prints each median and the ratio emulated/native: what the emulation costs a
test that runs the applications.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from venvstacks_testing.emulation import aarch64_emulation

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_startup  # bench/ is on sys.path (above)
from run_startup import time_rotating

CONFIG = "share/venv/metadata/venvstacks_layer.json"


def applications(dest: Path) -> list[str]:
    """The application layers deployed in `dest`, sorted."""
    return sorted(
        config.parents[3].name
        for config in dest.glob(f"*/{CONFIG}")
        if json.loads(config.read_text()).get("launch_module")
    )


def main(argv: list[str]) -> int:
    """Times both deployments' applications and prints the medians with their ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--native", type=Path, required=True, help="the x86_64 deployment")
    parser.add_argument("--emulated", type=Path, required=True, help="the aarch64 deployment of the same stack")
    parser.add_argument("--rounds", type=int, default=5, help="timed runs of each command (default: %(default)s)")
    args = parser.parse_args(argv)
    apps = applications(args.native)
    if not apps or apps != applications(args.emulated):
        raise SystemExit(f"run_emulated: the two deployments hold different applications: {apps}")
    env = {**bench_startup.startup_env(os.environ), **aarch64_emulation().env}
    commands = {
        f"{app} {kind}": [str(dest / app / "bin" / "python"), "-m", app]
        for app in apps
        for kind, dest in (("native", args.native), ("emulated", args.emulated))
    }
    medians = time_rotating(commands, env, args.rounds)
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(
        f"{'application':<14} {'native s':>9} {'emulated s':>11} {'ratio':>7}   (median of {args.rounds}; load {load})"
    )
    for app in apps:
        native, emulated = medians[f"{app} native"], medians[f"{app} emulated"]
        print(f"{app:<14} {native:>9.3f} {emulated:>11.3f} {emulated / native:>7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
