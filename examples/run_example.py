"""The README's main job: lock, build, test and deploy the example stack, then run both apps.

    python3 examples/run_example.py [--dest DIR] [--local-runtime]

Works on a copy of examples/stack (a runtime, a numpy framework layer, two application layers)
with a real Bazel (tests/bazel.sh) and real PyPI:

1. `bazel run //stacks:<layer>.lock` for each layer, framework first (the example ships no locks:
   a lock is specific to the runtime it was resolved on);
2. `bazel build //stacks:stack` and `bazel test //stacks:all`;
3. `bazel run //stacks:<app>.deploy -- DEST` for both applications, then runs each with
   `DEST/<app>/bin/python -m <app>` and checks that numpy came from the framework layer.

python-build-standalone is downloaded from GitHub; where GitHub is unreachable (as on the
project's CI machines), the copy's runtime declaration is swapped for a PBS-layout archive made
from this machine's CPython and served on 127.0.0.1, and the script says so.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from venvstacks_testing.bazel_workspace import Workspace
from venvstacks_testing.http_server import serve_directory
from venvstacks_testing.local_pbs import make_local_runtime

CHECKOUT = Path(__file__).resolve().parents[1]

EXAMPLE = CHECKOUT / "examples" / "stack"
LAYERS = ["numpy_framework", "app_report", "app_stats"]
APPS = ["app_report", "app_stats"]
_RUNTIME_BLOCK = re.compile(r"# RUNTIME-BEGIN.*?# RUNTIME-END", re.DOTALL)


def github_reachable() -> bool:
    """True when a TCP connection to github.com:443 opens within 5 seconds."""
    try:
        socket.create_connection(("github.com", 443), timeout=5).close()
    except OSError:
        return False
    return True


def copy_example(destination: Path, runtime_block: str | None) -> Workspace:
    """Copies examples/stack to `destination`, pointing it at this checkout's rules."""
    shutil.copytree(EXAMPLE, destination)
    module = (destination / "MODULE.bazel").read_text()
    module = module.replace('path = "../.."', f'path = "{CHECKOUT}"')
    if runtime_block is not None:
        module = _RUNTIME_BLOCK.sub(runtime_block, module)
    (destination / "MODULE.bazel").write_text(module)
    return Workspace(destination)


def write_locks(workspace: Workspace) -> None:
    """Re-locks every layer in the copy and copies the locks back into examples/stack/stacks."""
    for layer in LAYERS:
        print(f"run_example: bazel run //stacks:{layer}.lock", flush=True)
        workspace.bazel("run", f"//stacks:{layer}.lock")
        for name in (f"pylock.{layer}.toml", f"{layer}.requirements.txt"):
            shutil.copyfile(workspace.root / "stacks" / name, EXAMPLE / "stacks" / name)


def run_stack(workspace: Workspace, dest: Path, *, relock: bool, other_platform: bool) -> dict[str, dict[str, str]]:
    """Builds, tests and deploys the stack (re-locking first if asked); runs each app; returns what each printed."""
    try:
        if relock:
            write_locks(workspace)
        print("run_example: bazel build //stacks:stack && bazel test //stacks:all", flush=True)
        workspace.bazel("build", "//stacks:stack")
        workspace.bazel("test", "//stacks:all")
        if other_platform:
            print(
                "run_example: bazel build --platforms=@rules_venvstacks//platforms:windows_x86_64 //stacks:app_report"
            )
            workspace.bazel("build", "--platforms=@rules_venvstacks//platforms:windows_x86_64", "//stacks:app_report")
        else:
            print("run_example: skipping the Windows build: its runtime comes from GitHub, which is unreachable")
        metadata = json.loads(workspace.output("stacks/stack.json").read_text())
        for name, layer in sorted(metadata["layers"].items()):
            print(f"run_example: layer {name}: {layer['archive']['size']} bytes, sha256 {layer['archive']['sha256']}")
        for app in APPS:
            workspace.bazel("run", f"//stacks:{app}.deploy", "--", str(dest))
    finally:
        workspace.shutdown()
    results = {}
    for app in APPS:
        python = dest / app / "bin" / "python"
        output = subprocess.run([python, "-m", app], check=True, capture_output=True, text=True).stdout
        print(output, end="")
        results[app] = json.loads(output.strip().splitlines()[-1])
        numpy_file = Path(results[app]["numpy_file"])
        if not numpy_file.is_relative_to(dest / "numpy_framework"):
            raise SystemExit(f"run_example: {app} imported numpy from {numpy_file}, not from the framework layer")
    print(f"run_example: both applications ran from {dest}, numpy from {dest / 'numpy_framework'}")
    return results


def run(dest: Path, scratch: Path, local_runtime: bool, relock: bool) -> dict[str, dict[str, str]]:
    """Runs the example, with the local runtime when asked or when GitHub is unreachable."""
    if not local_runtime and github_reachable():
        print("run_example: building the example as written (PBS from GitHub)")
        return run_stack(copy_example(scratch / "example", None), dest, relock=relock, other_platform=True)
    runtime = make_local_runtime(scratch)
    reason = "asked for" if local_runtime else "GitHub is unreachable"
    print(f"run_example: {reason}: using {runtime.path.name} (this machine's CPython) served on 127.0.0.1")
    with serve_directory(scratch) as url:
        # The host's runtime only: the other platforms keep the table's (GitHub) archives, which
        # are fetched only when their platform is built. The locks stay fresh: they depend on
        # the Python X.Y and the platforms, not on the runtime's patch version or its source.
        block = (
            "venvstacks.runtime_archive(\n"
            '    runtime = "cpython3_11",\n'
            '    platform = "linux_x86_64",\n'
            f'    python_version = "{runtime.python_version}",\n'
            f'    urls = ["{url}/{runtime.path.name}"],\n'
            f'    sha256 = "{runtime.sha256}",\n'
            ")"
        )
        return run_stack(copy_example(scratch / "example", block), dest, relock=relock, other_platform=False)


def main(argv: list[str]) -> int:
    """Command-line entry."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, help="where to deploy the stack (default: a temporary directory)")
    parser.add_argument(
        "--local-runtime",
        action="store_true",
        help="use a PBS-layout archive of this machine's CPython, without trying GitHub",
    )
    parser.add_argument(
        "--write-locks",
        action="store_true",
        help="re-lock every layer (network) and copy the locks into examples/stack/stacks",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="venvstacks-example-") as scratch:
        dest = args.dest.resolve() if args.dest else Path(scratch) / "deployed"
        dest.mkdir(parents=True, exist_ok=True)
        run(dest, Path(scratch), args.local_runtime, args.write_locks)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
