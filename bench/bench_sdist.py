"""What building a package from its sdist costs: at lock time, and the build action itself.

    python3 bench/bench_sdist.py [--runs N] [--scratch DIR]

Two measurements, outside Bazel, N runs each (default 3), the two sides of each ratio alternating
so that a shared machine's load hits both alike; each figure is a median:

* lock: `venvstacks_tool lock --upgrade` of a three-platform layer `click` + `docopt==0.6.2` with
  `--build-from-sdist docopt` (the sdist picked, downloaded, its build requirements resolved, the
  wheel built once with pip), against the same layer with `click` alone; PyPI must be reachable;
* build: `venvstacks_tool build-sdist` of docopt's sdist with its locked setuptools wheel (what
  the `VenvstacksBuildSdist` action runs: unpack, install the build wheel, two backend hooks in a
  subprocess, the deterministic rewrite), against the floor of any tool action
  (`python -I -c pass`). Inside Bazel the action also pays the sandbox's set-up.

Prints one Markdown row per measurement. Needs the development install and pyproject-hooks
(tests/requirements.txt).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from venvstacks_tool.lock import pylock

CHECKOUT = Path(__file__).resolve().parents[1]
ENTRY = CHECKOUT / "tools" / "bin" / "venvstacks_tool.py"
PLATFORMS = ("x86_64-unknown-linux-gnu", "aarch64-apple-darwin", "x86_64-pc-windows-msvc")
PY = ".".join(str(part) for part in sys.version_info[:3])


def timed(command: list[str]) -> float:
    """Wall seconds of one run of `command`, which must succeed."""
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command[:4])}...: {result.stderr.strip()[-2000:]}")
    return time.perf_counter() - start


def lock_command(workspace: Path, requirements: list[str], sdists: list[str]) -> list[str]:
    """`lock --upgrade` of layer `app` with `requirements`, `sdists` built from their sdists."""
    argv = [sys.executable, "-I", str(ENTRY), "lock", "--layer-name", "app", "--layer-kind", "application"]
    argv += ["--python-version", PY, "--workspace-dir", str(workspace), "--output-lock", "pylock.app.toml", "--upgrade"]
    argv += [argument for triple in PLATFORMS for argument in ("--platform", triple)]
    argv += [argument for requirement in requirements for argument in ("--requirement", requirement)]
    return argv + [argument for name in sdists for argument in ("--build-from-sdist", name)]


def download(url: str, directory: Path) -> Path:
    import urllib.request

    path = directory / url.rpartition("/")[2]
    with urllib.request.urlopen(url, timeout=300) as response:
        path.write_bytes(response.read())
    return path


def alternate(runs: int, first: list[str], second: list[str]) -> tuple[float, float]:
    """Medians of `runs` runs of each command, alternating."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(runs):
        times[0].append(timed(first))
        times[1].append(timed(second))
    return statistics.median(times[0]), statistics.median(times[1])


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scratch", type=Path, default=None)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-sdist-", dir=args.scratch) as tmp:
        scratch = Path(tmp)
        with_sdist, wheels_only = scratch / "with_sdist", scratch / "wheels_only"
        with_sdist.mkdir()
        wheels_only.mkdir()
        sdist_lock = lock_command(with_sdist, ["click", "docopt==0.6.2"], ["docopt"])
        lock_with, lock_without = alternate(args.runs, sdist_lock, lock_command(wheels_only, ["click"], []))

        [docopt] = [p for p in pylock.read_lock(with_sdist / "pylock.app.toml").packages if p.name == "docopt"]
        assert docopt.built is not None
        sdist = download(docopt.built.sdist.url, scratch)
        build = [sys.executable, "-I", str(ENTRY), "build-sdist", "--sdist", str(sdist)]
        build += ["--sdist-sha256", docopt.built.sdist.sha256, "--wheel-name", docopt.built.wheel_name]
        build += ["--package", "docopt 0.6.2", "--lock=bench", "--output", str(scratch / docopt.built.wheel_name)]
        for wheel in docopt.built.build_wheels:
            build += ["--build-wheel", f"{download(wheel.url, scratch)}={wheel.sha256}"]
        build_time, floor = alternate(args.runs, build, [sys.executable, "-I", "-c", "pass"])

    print("| measurement | with the sdist | baseline | ratio |")
    print("| --- | --- | --- | --- |")
    print(
        f"| lock, 3 platforms: click + docopt (build_from_sdist) vs click | {lock_with:.2f} s | {lock_without:.2f} s"
        f" | {lock_with / lock_without:.2f}x |"
    )
    print(
        f"| build-sdist of docopt 0.6.2 vs `python -I -c pass` | {build_time:.2f} s | {floor:.3f} s"
        f" | {build_time / floor:.0f}x |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
