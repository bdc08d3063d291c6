"""Locks, stacked layers, deployment and tests through a real Bazel, against a local PEP 503 index.

One workspace for the module: a runtime (the host CPython in PBS layout), a framework layer and
an application layer on it, resolved against wheels the test builds and serves on 127.0.0.1.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.bazel_workspace import Workspace
from support.http_server import serve_directory
from support.local_pbs import LocalRuntime, make_local_runtime
from support.wheel_index import WheelIndex, build_wheel

pytestmark = pytest.mark.integration

APP_MAIN = """\
import json
import apppkg
import fwpkg
import shared

print(json.dumps({"shared": shared.__file__, "fwpkg": fwpkg.__file__, "apppkg": apppkg.__file__}))
"""


def _build_file(index_url: str, app_requirements: list[str]) -> str:
    return f"""\
load(
    "@rules_venvstacks//rules_venvstacks:defs.bzl",
    "application_layer",
    "framework_layer",
    "layer_stack",
    "runtime_layer",
)

runtime_layer(name = "cpython", runtime = "@cpython_local")

framework_layer(
    name = "framework",
    index_url = "{index_url}",
    requirements = ["fwpkg", "shared==1.0"],
    runtime = ":cpython",
)

application_layer(
    name = "app",
    srcs = ["app/__main__.py"],
    frameworks = [":framework"],
    index_url = "{index_url}",
    launch_module = "app",
    requirements = {json.dumps(app_requirements)},
    runtime = ":cpython",
)

# A wheel made by another rule of the build, installed into the app layer.
genrule(
    name = "localpkg_wheel",
    srcs = ["wheels/localpkg-1.0-py3-none-any.whl.in"],
    outs = ["localpkg-1.0-py3-none-any.whl"],
    cmd = "cp $< $@",
)

application_layer(
    name = "hello",
    srcs = [":localpkg_wheel"],
    find_links = ["findlinks"],
    frameworks = [":framework"],
    index_url = "{index_url}",
    requirements = ["localtool"],
    launch_module = "hello.py",
    runtime = ":cpython",
)

layer_stack(name = "stack", layers = [":app", ":hello"])
"""


class Stack:
    """The workspace, its index and a way to rewrite the app's requirements."""

    def __init__(self, workspace: Workspace, index: WheelIndex, index_url: str) -> None:
        self.workspace = workspace
        self.index = index
        self.index_url = index_url

    def set_app_requirements(self, requirements: list[str]) -> None:
        self.workspace.write("BUILD.bazel", _build_file(self.index_url, requirements))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A locked workspace: framework (fwpkg, shared 1.0) and app (apppkg, which needs shared)."""
    index = WheelIndex(tmp_path_factory.mktemp("index"))
    index.add_wheel("shared", "1.0")
    index.add_wheel("shared", "2.0")
    index.add_wheel("fwpkg", "1.0", ["shared>=1"])
    index.add_wheel("apppkg", "1.0", ["shared"])
    index.add_sdist("sdistonly", "1.0")
    runtimes = tmp_path_factory.mktemp("pbs")
    runtime: LocalRuntime = make_local_runtime(runtimes)
    with index.serve() as index_url, serve_directory(runtimes) as runtime_url:
        workspace = Workspace(tmp_path_factory.mktemp("stack_ws"))
        workspace.write_module(f"""\
            venvstacks.runtime(
                name = "cpython_local",
                python_version = "{runtime.python_version}",
                urls = ["{runtime_url}/{runtime.path.name}"],
                sha256 = "{runtime.sha256}",
            )
            venvstacks.lock(name = "framework", file = "//:pylock.framework.toml")
            venvstacks.lock(name = "app", file = "//:pylock.app.toml")
            venvstacks.lock(name = "hello", file = "//:pylock.hello.toml")
            use_repo(venvstacks, "cpython_local", "venvstacks_wheels")
            """)
        workspace.write("app/__main__.py", APP_MAIN)
        workspace.write(
            "hello.py", 'import fwpkg, localpkg, localtool\nprint("hello from", fwpkg.__name__, localpkg.__name__)\n'
        )
        build_wheel(workspace.root / "findlinks", "localtool", "1.0")
        wheel = build_wheel(workspace.root / "wheels", "localpkg", "1.0")
        wheel.rename(wheel.with_name(wheel.name + ".in"))
        result = Stack(workspace, index, index_url)
        result.set_app_requirements(["apppkg"])
        workspace.bazel("run", "//:framework.lock")
        workspace.bazel("run", "//:app.lock")
        workspace.bazel("run", "//:hello.lock")
        try:
            yield result
        finally:
            workspace.shutdown()


def _lock_packages(path: Path) -> dict[str, str]:
    import tomllib

    lock = tomllib.loads(path.read_text())
    return {package["name"]: package["version"] for package in lock.get("packages", [])}


def test_locks_pin_wheels_and_exclude_what_the_framework_provides(stack: Stack) -> None:
    root = stack.workspace.root
    assert _lock_packages(root / "pylock.framework.toml") == {"fwpkg": "1.0", "shared": "1.0"}
    assert _lock_packages(root / "pylock.app.toml") == {"apppkg": "1.0"}
    import tomllib

    app_lock = tomllib.loads((root / "pylock.app.toml").read_text())
    assert {"name": "shared", "version": "1.0", "layer": "framework"} in app_lock["tool"]["venvstacks"]["provided"]
    wheel = app_lock["packages"][0]["wheels"][0]
    assert wheel["url"].startswith(stack.index_url.removesuffix("/simple"))
    assert wheel["hashes"]["sha256"] == stack.index.sha256(stack.index.files_dir / wheel["name"])
    assert (root / "app.requirements.txt").exists()


def test_bazel_test_all_runs_lock_tests_and_the_deployed_app(stack: Stack) -> None:
    result = stack.workspace.bazel("test", "//:all", check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    for target in ("//:framework.lock_test", "//:app.lock_test", "//:app.test"):
        assert f"{target}" in output


def test_deployed_app_imports_framework_packages_from_the_framework_layer(stack: Stack, tmp_path: Path) -> None:
    dest = tmp_path / "deployed at another path"
    stack.workspace.bazel("run", "//:app.deploy", "--", str(dest))
    output = subprocess.run(
        [dest / "app" / "bin" / "python", "-m", "app"], check=True, capture_output=True, text=True
    ).stdout
    files = json.loads(output.strip().splitlines()[-1])
    assert files["shared"].startswith(str(dest / "framework")), files
    assert files["fwpkg"].startswith(str(dest / "framework")), files
    assert files["apppkg"].startswith(str(dest / "app")), files
    assert not list((dest / "app" / "lib").glob("python3*/site-packages/shared")), "installed twice"
    stack.workspace.bazel("build", "//:stack")
    metadata = json.loads(stack.workspace.output("stack.json").read_text())
    assert sorted(metadata["layers"]) == ["app", "cpython", "framework", "hello"]


def test_launch_module_file_a_wheel_built_by_another_rule_and_find_links(stack: Stack, tmp_path: Path) -> None:
    stack.workspace.bazel("run", "//:hello.deploy", "--", str(tmp_path))
    result = subprocess.run([tmp_path / "hello" / "bin" / "python", "-m", "hello"], capture_output=True, text=True)
    assert result.stdout == "hello from fwpkg localpkg\n", result.stderr
    # The find-links wheel is locked by its path beside the lock, not this machine's file:// URL.
    assert (
        'path = "findlinks/localtool-1.0-py3-none-any.whl"' in (stack.workspace.root / "pylock.hello.toml").read_text()
    )
    config = json.loads((tmp_path / "hello/share/venv/metadata/venvstacks_layer.json").read_text())
    assert config["launch_module"] == "hello"


def test_stale_lock_fails_its_test_with_the_command_to_run(stack: Stack) -> None:
    stack.set_app_requirements(["apppkg", "shared"])
    try:
        result = stack.workspace.bazel("test", "//:app.lock_test", "--test_output=errors", check=False)
        assert result.returncode != 0
        assert "bazel run //:app.lock" in result.stdout + result.stderr
    finally:
        stack.set_app_requirements(["apppkg"])


def test_requirement_conflicting_with_a_lower_layer_names_both_layers(stack: Stack) -> None:
    stack.set_app_requirements(["apppkg", "shared>=2"])
    try:
        result = stack.workspace.bazel("run", "//:app.lock", check=False)
        assert result.returncode != 0
        output = result.stdout + result.stderr
        assert "'app'" in output and "'framework'" in output and "shared" in output, output[-4000:]
    finally:
        stack.set_app_requirements(["apppkg"])


def test_package_without_a_wheel_fails_at_lock_time(stack: Stack) -> None:
    stack.set_app_requirements(["apppkg", "sdistonly"])
    try:
        result = stack.workspace.bazel("run", "//:app.lock", check=False)
        assert result.returncode != 0
        assert "sdistonly" in result.stdout + result.stderr
    finally:
        stack.set_app_requirements(["apppkg"])


def test_wheel_that_does_not_match_its_lock_hash_fails_naming_wheel_and_lock(stack: Stack) -> None:
    lock = stack.workspace.root / "pylock.app.toml"
    original = lock.read_text()
    wheel = stack.index.files_dir / "apppkg-1.0-py3-none-any.whl"
    real = stack.index.sha256(wheel)
    lock.write_text(original.replace(real, "f" * 64))
    try:
        result = stack.workspace.bazel("build", "//:app", check=False)
        assert result.returncode != 0
        output = result.stdout + result.stderr
        assert "apppkg-1.0-py3-none-any.whl" in output and "pylock.app.toml" in output, output[-4000:]
        assert f"Checksum was {real}" in output
    finally:
        lock.write_text(original)


def test_wheel_missing_from_the_index_fails_naming_wheel_and_lock(stack: Stack, tmp_path: Path) -> None:
    wheel = stack.index.files_dir / "apppkg-1.0-py3-none-any.whl"
    moved = tmp_path / wheel.name
    shutil.move(wheel, moved)
    try:
        # A fresh output base: the wheel must not come from the repository cache either.
        result = stack.workspace.bazel(
            "build", "--repository_cache=", "//:app", check=False, startup=(f"--output_base={tmp_path / 'ob'}",)
        )
        assert result.returncode != 0
        output = result.stdout + result.stderr
        assert "apppkg-1.0-py3-none-any.whl" in output and "pylock.app.toml" in output, output[-4000:]
    finally:
        shutil.move(moved, wheel)
        stack.workspace.bazel("shutdown", check=False, startup=(f"--output_base={tmp_path / 'ob'}",))
