"""Versioned layers through a real Bazel: two versions of a framework deployed side by side, each app on its own.

The stack workspace of `stack_workspace` (this machine's CPython in PBS layout, served on
127.0.0.1) with two more layers: `vfw`, a versioned framework holding `six` from PyPI, and
`vapp`, a versioned application on it, locked by `bazel run //:stack.lock` against PyPI. Locked,
built and deployed into DEST (the archive, both metadata files, the layer config and the
framework's image layer named for `NAME@1`); then only the app's launch module changes: its
`.lock_test` reports the lock stale, and a relock bumps the app alone to version 2 (venvstacks
bumps a versioned application when its launch module changes), whose build publishes the hashes
the lock records (the launch module's, and its support module `vhelp`'s). Then only the support
module changes: stale again, and the relock bumps the app alone to version 3. Then the
framework's requirement changes, the stack is relocked (the framework becomes version 2, the app
4: the app's lock names the framework's), rebuilt and deployed into the same DEST. `vfw@1`,
`vapp@1`, `vfw@2` and `vapp@4` are then all there, and each app runs on its own framework.
Last, a versioned layer whose lock has no lock version fails at analysis naming the target and
the `.lock` to run.
"""

from __future__ import annotations

import json
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from venvstacks_testing.stack_workspace import ExtraLayers, Stack, make_stack, serve_stack_sources

pytestmark = pytest.mark.integration

APP_MAIN = """\
import json
import sys

import six

print(json.dumps({"six": six.__version__, "six_file": six.__file__, "prefix": sys.prefix}))
"""

# The versioned layers, on the workspace's runtime; SIX is the framework's pin of six (PyPI's).
VERSIONED_LAYERS = """
framework_layer(
    name = "vfw",
    requirements = ["six==SIX"],
    runtime = ":cpython",
    versioned = True,
)

application_layer(
    name = "vapp",
    srcs = ["vapp/__main__.py", "vhelp.py"],
    frameworks = [":vfw"],
    launch_module = "vapp",
    runtime = ":cpython",
    versioned = True,
)
"""


def versioned_layers(six_version: str) -> ExtraLayers:
    return ExtraLayers(
        build=VERSIONED_LAYERS.replace("SIX", six_version), locks=("vfw", "vapp"), stack_layers=(":vapp",)
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("versioned")
    with serve_stack_sources(root / "sources") as sources:
        stack = make_stack(root / "ws", sources, extra=versioned_layers("1.16.0"))
        stack.workspace.write("vapp/__main__.py", APP_MAIN)
        stack.workspace.write("vhelp.py", "HELP = 1\n")
        try:
            yield stack
        finally:
            stack.workspace.shutdown()


def tool_line(stack: Stack, layer: str, key: str) -> str:
    """The `key = ...` line of the layer's lock's `[tool.venvstacks]` table."""
    tool = (stack.root / f"pylock.{layer}.toml").read_text().partition("[tool.venvstacks]")[2]
    return next(line for line in tool.splitlines() if line.startswith(f"{key} = "))


def lock_versions(stack: Stack) -> dict[str, str]:
    """Each layer's `lock-version` line in its lock's `[tool.venvstacks]` (not PEP 751's, the format's)."""
    return {name: tool_line(stack, name, "lock-version") for name in ("vfw", "vapp")}


def lock_build_deploy(stack: Stack, six_version: str, dest: Path) -> None:
    stack.extra = versioned_layers(six_version)
    stack.write()
    stack.workspace.bazel("run", "//:stack.lock")
    stack.workspace.bazel("run", "//:vapp.deploy", "--", str(dest))


def deployed(dest: Path) -> list[str]:
    return sorted(p.name for p in dest.iterdir() if not p.name.startswith("."))


def run_app(dest: Path, install_target: str) -> dict[str, str]:
    python = dest / install_target / "bin" / "python"
    result = subprocess.run([str(python), "-m", "vapp"], capture_output=True, text=True, check=True)
    return dict(json.loads(result.stdout))


def test_two_versions_of_a_framework_deploy_side_by_side(stack: Stack, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    lock_build_deploy(stack, "1.16.0", dest)
    assert lock_versions(stack) == {"vfw": "lock-version = 1", "vapp": "lock-version = 1"}
    assert deployed(dest) == ["cpython", "vapp@1", "vfw@1"]

    # What the build names for the version: the archive, the layer config, both metadata files.
    assert stack.workspace.output("vfw@1.tar.zst").is_file()
    metadata = json.loads(stack.workspace.output("vapp.json").read_text())
    assert (metadata["layer_name"], [lower["name"] for lower in metadata["required_layers"]]) == (
        "vapp@1",
        ["cpython", "vfw@1"],
    )
    config = json.loads((dest / "vapp@1" / "share/venv/metadata/venvstacks_layer.json").read_text())
    assert (config["install_target"], config["lower_layers"]) == ("vapp@1", ["vfw@1"])
    published = json.loads(stack.workspace.output("__venvstacks__/linux_x86_64/env_metadata/vapp.json").read_text())
    assert (published["layer_name"], published["install_target"], published["lock_version"]) == ("vapp", "vapp@1", 1)
    assert (published["required_layers"], published["archive_name"]) == (["vfw@1"], "vapp@1.tar.zst")

    # The framework's image layer: its directory under the image prefix is the install target too.
    stack.workspace.bazel("build", "//:vfw.image_layer")
    with tarfile.open(stack.workspace.output("vfw.image_layer.tar.gz")) as blob:
        parts = [name.lstrip("./").split("/") for name in blob.getnames()]
    top = {part[2] for part in parts if len(part) > 2 and part[2]}
    assert top == {"vfw@1"}, top

    # Only the launch module changes: the lock is stale, and a relock bumps the app alone.
    stack.workspace.write("vapp/__main__.py", APP_MAIN + "# changed\n")
    stale = stack.workspace.bazel("test", "--test_output=errors", "//:vapp.lock_test", check=False)
    assert stale.returncode != 0
    log = stale.stdout + stale.stderr
    assert "launch module 'vapp' of versioned application layer 'vapp' changed" in log, log[-2000:]
    assert "run `bazel run //:vapp.lock`" in log, log[-2000:]
    stack.workspace.bazel("run", "//:stack.lock")
    assert lock_versions(stack) == {"vfw": "lock-version = 1", "vapp": "lock-version = 2"}
    stack.workspace.bazel("build", "//:vapp")
    assert stack.workspace.output("vapp@2.tar.zst").is_file()
    published = json.loads(stack.workspace.output("__venvstacks__/linux_x86_64/env_metadata/vapp.json").read_text())
    recorded = tool_line(stack, "vapp", "launch-module-hash")
    assert recorded == f'launch-module-hash = "{published["app_launch_module_hash"]}"', (recorded, published)
    [support] = published["app_support_modules"]
    assert support["name"] == "vhelp"
    assert f'{{ name = "vhelp", hash = "{support["hash"]}" }}' in (stack.root / "pylock.vapp.toml").read_text()

    # Only the support module changes: stale again, and the relock bumps the app alone.
    stack.workspace.write("vhelp.py", "HELP = 2\n")
    stale = stack.workspace.bazel("test", "--test_output=errors", "//:vapp.lock_test", check=False)
    assert stale.returncode != 0
    log = stale.stdout + stale.stderr
    assert "the support module(s) 'vhelp' changed since it was locked" in log, log[-2000:]
    stack.workspace.bazel("run", "//:stack.lock")
    assert lock_versions(stack) == {"vfw": "lock-version = 1", "vapp": "lock-version = 3"}

    # The framework's requirement changes: both locks change, so both versions are bumped.
    lock_build_deploy(stack, "1.17.0", dest)
    assert lock_versions(stack) == {"vfw": "lock-version = 2", "vapp": "lock-version = 4"}
    assert deployed(dest) == ["cpython", "vapp@1", "vapp@4", "vfw@1", "vfw@2"]
    old, new = run_app(dest, "vapp@1"), run_app(dest, "vapp@4")
    assert (old["six"], new["six"]) == ("1.16.0", "1.17.0")
    assert Path(old["six_file"]).is_relative_to(dest / "vfw@1"), old
    assert Path(new["six_file"]).is_relative_to(dest / "vfw@2"), new

    # A lock without its version (as locked before the layer was versioned) fails at analysis.
    lock = stack.root / "pylock.vfw.toml"
    lock.write_text(lock.read_text().replace("\nlock-version = 2\n", "\n"))
    failed = stack.workspace.bazel("build", "--nobuild", "//:vfw", check=False)
    assert failed.returncode != 0
    assert (
        "//:vfw: versioned = True, but pylock.vfw.toml has no lock version (locked before the layer was"
        " versioned); run `bazel run //:vfw.lock`"
    ) in failed.stderr, failed.stderr[-3000:]
