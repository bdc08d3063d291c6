"""The README's main job: build the example runtime layer, unpack it, run its interpreter.

    python3 examples/run_example.py [--dest DIR]

Builds examples/runtime_layer with a real Bazel (tests/bazel.sh). python-build-standalone is
downloaded from GitHub; where GitHub is unreachable (as on the project's CI machines), the
example's runtime declaration is swapped, in a temporary copy, for a PBS-layout archive made
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
import tarfile
import tempfile
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(CHECKOUT / "tests"))

from support.bazel_workspace import Workspace  # noqa: E402
from support.http_server import serve_directory  # noqa: E402
from support.local_pbs import make_local_runtime  # noqa: E402

EXAMPLE = CHECKOUT / "examples" / "runtime_layer"
_RUNTIME_BLOCK = re.compile(r"# RUNTIME-BEGIN.*?# RUNTIME-END", re.DOTALL)


def github_reachable() -> bool:
    """True when a TCP connection to github.com:443 opens within 5 seconds."""
    try:
        socket.create_connection(("github.com", 443), timeout=5).close()
    except OSError:
        return False
    return True


def _copy_example(destination: Path, runtime_block: str | None) -> Workspace:
    shutil.copytree(EXAMPLE, destination)
    module = (destination / "MODULE.bazel").read_text()
    module = module.replace('path = "../.."', f'path = "{CHECKOUT}"')
    if runtime_block is not None:
        module = _RUNTIME_BLOCK.sub(runtime_block, module)
    (destination / "MODULE.bazel").write_text(module)
    return Workspace(destination)


def _unpack_tar_zst(archive: Path, destination: Path) -> None:
    import zstandard

    with (
        archive.open("rb") as raw,
        zstandard.ZstdDecompressor().stream_reader(raw) as stream,
        tarfile.open(fileobj=stream, mode="r|") as tar,
    ):
        tar.extractall(destination, filter="tar")


def run(dest: Path, scratch: Path, local_runtime: bool) -> dict[str, str]:
    """Builds, unpacks into `dest` and runs the layer's interpreter; returns what it printed."""
    if not local_runtime and github_reachable():
        print("run_example: building the example as written (PBS from GitHub)")
        return _build_and_run(_copy_example(scratch / "example", None), dest)
    runtime = make_local_runtime(scratch)
    reason = "asked for" if local_runtime else "GitHub is unreachable"
    print(f"run_example: {reason}: using {runtime.path.name} (made from this machine's CPython) served on 127.0.0.1")
    with serve_directory(scratch) as url:
        block = (
            "venvstacks.runtime(\n"
            '    name = "cpython3_12",\n'
            f'    python_version = "{runtime.python_version}",\n'
            f'    urls = ["{url}/{runtime.path.name}"],\n'
            f'    sha256 = "{runtime.sha256}",\n'
            ")"
        )
        return _build_and_run(_copy_example(scratch / "example", block), dest)


def _build_and_run(workspace: Workspace, dest: Path) -> dict[str, str]:
    try:
        workspace.bazel("build", "//:cpython3_12_layer")
        archive = workspace.output("cpython3_12_layer.tar.zst")
        metadata = json.loads(workspace.output("cpython3_12_layer.json").read_text())
    finally:
        workspace.shutdown()
    size, sha256 = metadata["archive"]["size"], metadata["archive"]["sha256"]
    print(f"run_example: built {archive.name}: {size} bytes, sha256 {sha256}")
    _unpack_tar_zst(archive, dest)
    python = dest / metadata["layer_name"] / "bin" / "python3"
    code = "import json, sys; print(json.dumps({'version': sys.version.split()[0], 'prefix': sys.prefix}))"
    output = subprocess.run([python, "-I", "-c", code], check=True, capture_output=True, text=True).stdout
    result = json.loads(output)
    print(f"run_example: {python} runs CPython {result['version']} with sys.prefix {result['prefix']}")
    return result


def main(argv: list[str]) -> int:
    """Command-line entry."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, help="where to unpack the layer (default: a temporary directory)")
    parser.add_argument(
        "--local-runtime",
        action="store_true",
        help="use a PBS-layout archive of this machine's CPython, without trying GitHub",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="venvstacks-example-") as scratch:
        dest = args.dest or Path(scratch) / "deployed"
        dest.mkdir(parents=True, exist_ok=True)
        run(dest, Path(scratch), args.local_runtime)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
