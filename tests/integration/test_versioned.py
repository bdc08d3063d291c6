"""Versioned layers through a real Bazel: two versions of a framework deployed side by side, each app on its own.

A runtime (this machine's CPython in PBS layout, served on 127.0.0.1), a versioned framework
holding `six` from PyPI and a versioned application on it, locked by `bazel run //:stack.lock`
against PyPI. Locked, built and deployed into DEST; then the framework's requirement changes,
the stack is relocked (framework and app both become version 2: the app's lock names the
framework's), rebuilt and deployed into the same DEST. `framework@1`, `app@1`, `framework@2` and
`app@2` are then all there, and each app runs on its own framework. Last, a versioned layer
whose lock has no lock version fails at analysis naming the target and the `.lock` to run.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from venvstacks_testing.bazel_workspace import Workspace
from venvstacks_testing.http_server import serve_directory
from venvstacks_testing.local_pbs import make_local_runtime

pytestmark = pytest.mark.integration

APP_MAIN = """\
import json
import sys

import six

print(json.dumps({"six": six.__version__, "six_file": six.__file__, "prefix": sys.prefix}))
"""


def build_file(six_version: str) -> str:
    return textwrap.dedent(f"""\
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
            requirements = ["six=={six_version}"],
            runtime = ":cpython",
            versioned = True,
        )

        application_layer(
            name = "app",
            srcs = ["app/__main__.py"],
            frameworks = [":framework"],
            launch_module = "app",
            runtime = ":cpython",
            versioned = True,
        )

        layer_stack(name = "stack", layers = [":app"])
        """)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    root = tmp_path_factory.mktemp("versioned")
    runtimes = root / "pbs"
    runtimes.mkdir()
    runtime = make_local_runtime(runtimes)
    workspace = Workspace(root / "ws")
    with serve_directory(runtimes) as runtime_url:
        workspace.write_module(f"""\
            venvstacks.runtime(
                name = "cpython_local",
                python_version = "{runtime.python_version}",
                urls = ["{runtime_url}/{runtime.path.name}"],
                sha256 = "{runtime.sha256}",
            )
            venvstacks.lock(name = "framework", file = "//:pylock.framework.toml")
            venvstacks.lock(name = "app", file = "//:pylock.app.toml")
            use_repo(venvstacks, "cpython_local", "venvstacks_wheels")
            """)
        workspace.write("app/__main__.py", APP_MAIN)
        try:
            yield workspace
        finally:
            workspace.shutdown()


def lock_versions(workspace: Workspace) -> dict[str, str]:
    """Each layer's `lock-version` line in its lock's `[tool.venvstacks]` (not PEP 751's, the format's)."""
    found = {}
    for name in ("framework", "app"):
        tool = (workspace.root / f"pylock.{name}.toml").read_text().partition("[tool.venvstacks]")[2]
        found[name] = next(line for line in tool.splitlines() if line.startswith("lock-version = "))
    return found


def lock_build_deploy(workspace: Workspace, six_version: str, dest: Path) -> None:
    workspace.write("BUILD.bazel", build_file(six_version))
    workspace.bazel("run", "//:stack.lock")
    workspace.bazel("run", "//:app.deploy", "--", str(dest))


def run_app(dest: Path, install_target: str) -> dict[str, str]:
    python = dest / install_target / "bin" / "python"
    result = subprocess.run([str(python), "-m", "app"], capture_output=True, text=True, check=True)
    return dict(json.loads(result.stdout))


def test_two_versions_of_a_framework_deploy_side_by_side(workspace: Workspace, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    lock_build_deploy(workspace, "1.16.0", dest)
    assert lock_versions(workspace) == {"framework": "lock-version = 1", "app": "lock-version = 1"}
    assert sorted(p.name for p in dest.iterdir() if not p.name.startswith(".")) == ["app@1", "cpython", "framework@1"]

    # What the build names for the version: the archive, the layer config, venvstacks' metadata.
    assert workspace.output("framework@1.tar.zst").is_file()
    config = json.loads((dest / "app@1" / "share/venv/metadata/venvstacks_layer.json").read_text())
    assert (config["install_target"], config["lower_layers"]) == ("app@1", ["framework@1"])
    published = json.loads(workspace.output("__venvstacks__/linux_x86_64/env_metadata/app.json").read_text())
    assert (published["layer_name"], published["install_target"], published["lock_version"]) == ("app", "app@1", 1)
    assert published["required_layers"] == ["framework@1"]
    assert published["archive_name"] == "app@1.tar.zst"

    # The framework's requirement changes: both locks change, so both versions are bumped.
    lock_build_deploy(workspace, "1.17.0", dest)
    assert lock_versions(workspace) == {"framework": "lock-version = 2", "app": "lock-version = 2"}
    deployed = sorted(p.name for p in dest.iterdir() if not p.name.startswith("."))
    assert deployed == ["app@1", "app@2", "cpython", "framework@1", "framework@2"]
    old, new = run_app(dest, "app@1"), run_app(dest, "app@2")
    assert (old["six"], new["six"]) == ("1.16.0", "1.17.0")
    assert Path(old["six_file"]).is_relative_to(dest / "framework@1"), old
    assert Path(new["six_file"]).is_relative_to(dest / "framework@2"), new

    # A lock without its version (as locked before the layer was versioned) fails at analysis.
    lock = workspace.root / "pylock.framework.toml"
    lock.write_text(lock.read_text().replace("\nlock-version = 2\n", "\n"))
    failed = workspace.bazel("build", "--nobuild", "//:framework", check=False)
    assert failed.returncode != 0
    assert (
        ":framework: versioned = True, but pylock.framework.toml has no lock version (locked before the layer"
        " was versioned); run `bazel run //:framework.lock`"
    ) in failed.stderr, failed.stderr[-3000:]
