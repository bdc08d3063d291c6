"""`bazel run` of a layer (the per-user run cache), `layer_stack`'s `.deploy`, and what `bazel build` leaves.

One workspace for the module, the stack of tests/integration/test_stack.py (through
`venvstacks_testing.stack_workspace`) with one more application, `echo`, that reports its
arguments, working directory and stdin and exits with the status it is asked for. The run cache
is a directory of the test (`VENVSTACKS_RUN_CACHE`, under /tmp, which tests/bazel.sh shares
with the Bazel it runs).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from venvstacks_testing.stack_workspace import ExtraLayers, Stack, make_stack, serve_stack_sources

pytestmark = pytest.mark.integration

ECHO = ExtraLayers(
    build="""
application_layer(
    name = "echo",
    frameworks = [":framework"],
    index_url = "{index_url}",
    launch_module = "echo_app.py",
    runtime = ":cpython",
)
""",
    locks=("echo",),
    stack_layers=(":app", ":echo"),
)

ECHO_APP = """\
import json
import os
import sys

import fwpkg

args = sys.argv[1:]
stdin = sys.stdin.read() if "--stdin" in args else ""
print(json.dumps({"args": args, "cwd": os.getcwd(), "stdin": stdin, "python": sys.executable}))
sys.exit(int(args[args.index("--exit") + 1]) if "--exit" in args else 0)
"""

MARKER = ".venvstacks-run-complete"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A locked and built workspace: framework, app, echo; a fresh run cache in the environment."""
    cache = tmp_path_factory.mktemp("run_cache")
    saved = os.environ.get("VENVSTACKS_RUN_CACHE")
    os.environ["VENVSTACKS_RUN_CACHE"] = str(cache)
    with serve_stack_sources(tmp_path_factory.mktemp("sources")) as sources:
        result = make_stack(tmp_path_factory.mktemp("run_ws"), sources, extra=ECHO)
        result.workspace.write("echo_app.py", ECHO_APP)
        result.lock()
        try:
            yield result
        finally:
            result.workspace.shutdown()
            if saved is None:
                os.environ.pop("VENVSTACKS_RUN_CACHE", None)
            else:
                os.environ["VENVSTACKS_RUN_CACHE"] = saved


def _cache() -> Path:
    return Path(os.environ["VENVSTACKS_RUN_CACHE"])


def _entries() -> set[str]:
    return {path.name for path in _cache().iterdir() if path.is_dir()}


def _echo(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_bazel_run_passes_arguments_working_directory_stdin_and_exit_code(stack: Stack) -> None:
    workspace = stack.workspace
    (workspace.root / "sub dir").mkdir(exist_ok=True)
    first = workspace.bazel("run", "//:echo", "--", "a b", "--flag")
    report = _echo(first)
    assert report["args"] == ["a b", "--flag"], first.stdout
    assert report["cwd"] == str(workspace.root), "BUILD_WORKING_DIRECTORY is the working directory"
    (key,) = _entries()
    assert report["python"] == str(_cache() / key / "echo" / "bin" / "python")
    assert (_cache() / key / MARKER).is_file()

    failed = workspace.bazel("run", "//:echo", "--", "--exit", "3", check=False)
    assert failed.returncode == 3, failed.stderr[-3000:]
    assert _entries() == {key}, "an unchanged stack reuses its entry"

    # The launcher alone (what `bazel run` starts), from another directory and with stdin.
    launcher = workspace.output("echo")
    direct = subprocess.run(
        [launcher, "--stdin"], input="piped", cwd=workspace.root / "sub dir", capture_output=True, text=True
    )
    assert direct.returncode == 0, direct.stderr
    assert _echo(direct) | {"python": ""} == {
        "args": ["--stdin"],
        "cwd": str(workspace.root / "sub dir"),
        "stdin": "piped",
        "python": "",
    }


def test_bazel_run_of_a_framework_or_runtime_runs_its_interpreter(stack: Stack) -> None:
    for target, probe in (("framework", "import fwpkg, sys"), ("cpython", "import sys")):
        result = stack.workspace.bazel("run", f"//:{target}", "--", "-c", f"{probe}; print(sys.prefix)")
        prefix = Path(result.stdout.strip().splitlines()[-1])
        assert prefix.name == target and prefix.parent.parent == _cache(), result.stdout


def test_two_runs_at_once_deploy_once_and_both_run(stack: Stack) -> None:
    workspace = stack.workspace
    workspace.bazel("build", "//:app")
    launcher = workspace.output("app")
    runs = [subprocess.Popen([launcher], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [run.communicate(timeout=600) for run in runs]
    for run, (stdout, stderr) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, stderr
        assert json.loads(stdout.strip().splitlines()[-1])["apppkg"].startswith(str(_cache())), stdout
    # The deploy reports on stderr: the application's stdout is its own.
    deployed = [stderr.count("deployed layer 'app'") for _, stderr in outputs]
    assert sorted(deployed) == [0, 1], outputs


def test_a_changed_app_runs_from_a_new_entry(stack: Stack) -> None:
    workspace = stack.workspace
    workspace.bazel("run", "//:echo")
    before = _entries()
    workspace.write("echo_app.py", "print('changed')\n" + ECHO_APP)
    try:
        result = workspace.bazel("run", "//:echo", "--", "x")
    finally:
        workspace.write("echo_app.py", ECHO_APP)
    assert result.stdout.splitlines()[-2:-1] == ["changed"] and _echo(result)["args"] == ["x"], result.stdout
    new = _entries() - before
    assert len(new) == 1 and before <= _entries(), "a new key, the old entry kept for its own runs"
    assert _echo(workspace.bazel("run", "//:echo", "--", "y"))["args"] == ["y"]
    assert _entries() == before | new, "the stack changed back: its old entry is reused"


def test_a_tampered_archive_is_not_run_and_leaves_no_complete_entry(stack: Stack) -> None:
    workspace = stack.workspace
    workspace.write("echo_app.py", "print('tampered build')\n" + ECHO_APP)
    try:
        workspace.bazel("build", "//:echo")
        before = _entries()
        archive = workspace.output("echo.tar.zst")
        saved = archive.read_bytes()
        archive.chmod(0o644)
        archive.write_bytes(saved[:-1] + bytes([saved[-1] ^ 1]))
        try:
            result = subprocess.run([workspace.output("echo")], capture_output=True, text=True)
        finally:
            archive.write_bytes(saved)
    finally:
        workspace.write("echo_app.py", ECHO_APP)
    assert result.returncode != 0
    assert "not the archive the build wrote" in result.stderr, result.stderr
    assert "tampered build" not in result.stdout
    assert _entries() == before, "the failed deploy left no directory"
    assert all((_cache() / key / MARKER).is_file() for key in _entries())


def test_stack_deploy_deploys_every_layer_once(stack: Stack, tmp_path: Path) -> None:
    dest = tmp_path / "whole"
    result = stack.workspace.bazel("run", "//:stack.deploy", "--", str(dest))
    deployed = sorted(line.split("'")[1] for line in result.stdout.splitlines() if line.startswith("deployed layer"))
    assert deployed == ["app", "cpython", "echo", "framework"], result.stdout
    for app in ("app", "echo"):
        subprocess.run([dest / app / "bin" / "python", "-m", app if app == "app" else "echo_app"], check=True)
    usage = stack.workspace.bazel("run", "//:stack.deploy", check=False)
    assert usage.returncode == 2, usage.stderr
    assert re.search(r"usage: bazel run (@@)?//:stack\.deploy -- DIR \[--force\]", usage.stderr), usage.stderr
    assert "unpacks every layer of the stacks of 'app', 'echo' into DIR" in usage.stderr


def test_bazel_build_of_an_app_leaves_every_layer_for_a_deploy_by_hand(stack: Stack, tmp_path: Path) -> None:
    workspace = stack.workspace
    workspace.bazel("clean")
    workspace.bazel("build", "//:app")
    names = ("cpython", "framework", "app")
    for name in names:
        assert workspace.output(f"{name}.tar.zst").is_file() and workspace.output(f"{name}.json").is_file(), name
    dest = tmp_path / "by hand"
    archives = [str(workspace.output(f"{name}.tar.zst")) for name in names]
    subprocess.run(
        [sys.executable, "-m", "venvstacks_tool", "deploy", "--dest", str(dest)]
        + [arg for archive in archives for arg in ("--archive", archive)],
        check=True,
        cwd=workspace.root,
    )
    assert (dest / "app" / "bin" / "python").exists()
