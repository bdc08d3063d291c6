"""A venvstacks project converted by `bazel run @rules_venvstacks//tools:import_venvstacks`, then locked and built.

venvstacks' own `minimal_project` (from its 0.8.0b2 sdist): a runtime, six frameworks in
diamond and C3 shapes (one named `layerF@1`, `@` and all), and two applications. As a user would:
a MODULE.bazel with the rules and one runtime (the importer runs on its interpreter, never the
host's Python), the importer run through Bazel, then the converted MODULE.bazel fragment used as
written, plus the one line every integration test adds: the host platform's runtime from this
machine's CPython (`local-runtime`'s tag), as python-build-standalone lives on GitHub.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from venvstacks_maint import import_venvstacks
from venvstacks_maint.local_runtime import LocalRuntime, make_local_runtime, runtime_archive_tag
from venvstacks_testing.bazel_workspace import CHECKOUT, Workspace
from venvstacks_testing.venvstacks_sdist import sdist_tests_dir

pytestmark = pytest.mark.integration

HEADER = (
    'module(name = "converted")\n\nbazel_dep(name = "rules_venvstacks")\n'
    f'local_path_override(module_name = "rules_venvstacks", path = "{CHECKOUT}")\n\n'
)
IMPORTER = "@rules_venvstacks//tools:import_venvstacks"


def _runtime_only_module(runtime: LocalRuntime) -> str:
    """A user's MODULE.bazel before the import: the rules and one runtime to run the importer on."""
    return (
        HEADER
        + 'venvstacks = use_extension("@rules_venvstacks//rules_venvstacks:extensions.bzl", "venvstacks")\n'
        + f'venvstacks.runtime(name = "host_python", python_version = "{runtime.python_version}")\n'
        + runtime_archive_tag(runtime, "host_python")
    )


def _import(workspace: Workspace, root: Path, runtime: LocalRuntime) -> None:
    """`bazel run` the importer in the workspace; a second run keeps the BUILD file (--force:
    tests/unit/test_bazel_run.py)."""
    workspace.write("MODULE.bazel", _runtime_only_module(runtime))
    workspace.bazel("run", IMPORTER, "--", "venvstacks.toml")
    assert (root / "BUILD.bazel").read_text().startswith("# Generated from venvstacks.toml")
    again = workspace.bazel("run", IMPORTER, "--", "venvstacks.toml", check=False)
    assert again.returncode != 0
    assert f"{root / 'BUILD.bazel'} already exists; pass --force to overwrite it" in again.stderr


def test_minimal_project_converts_locks_and_builds(tmp_path: Path) -> None:
    root = Path(shutil.copytree(sdist_tests_dir() / "minimal_project", tmp_path / "ws"))
    (tmp_path / "pbs").mkdir()
    runtime = make_local_runtime(tmp_path / "pbs")
    workspace = Workspace(root)
    workspace.write(".bazelrc", (CHECKOUT / ".bazelrc").read_text())
    try:
        _import(workspace, root, runtime)
        fragment = (root / import_venvstacks.MODULE_FRAGMENT_NAME).read_text()
        workspace.write("MODULE.bazel", HEADER + fragment + runtime_archive_tag(runtime, "cpython_3_11"))
        # Every layer of the stack locked by one command, for the runtime's five platforms.
        workspace.bazel("run", "//:stack.lock")
        assert sorted(path.name for path in root.glob("pylock.*.toml")) == [
            "pylock.app-empty.toml",
            "pylock.app-no-framework.toml",
            *(f"pylock.framework-layer{x}.toml" for x in "ABCDE"),
            "pylock.framework-layerF@1.toml",
        ]
        # `bazel test` builds the non-test targets it is given too: every archive, in one command.
        workspace.bazel("test", "//:stack", "//:app-no-framework.test", "//:framework-layerD.lock_test")
    finally:
        workspace.shutdown()
    published = workspace.output("__venvstacks__/linux_x86_64/env_metadata")
    layer_d = json.loads((published / "framework-layerD.json").read_text())
    # venvstacks' own expectation for layerD (its minimal_project comments): B, C, A.
    assert layer_d["required_layers"] == ["framework-layerB", "framework-layerC", "framework-layerA"]
    app = json.loads((published / "app-no-framework.json").read_text())
    assert (app["runtime_layer"], app["app_launch_module"], app["required_layers"]) == ("cpython-3.11", "empty", [])
    # And for its app on layerD and layerF@1 (its comment: D, F@1, E, B, C, A).
    empty = json.loads((published / "app-empty.json").read_text())
    assert empty["required_layers"] == [f"framework-layer{x}" for x in ("D", "F@1", "E", "B", "C", "A")]
    # venvstacks' stack summary beside them: every layer's published metadata by category, each
    # layer after those it needs.
    summary = json.loads(workspace.output("__venvstacks__/linux_x86_64/venvstacks.json").read_text())["layers"]
    names = {category: [layer["install_target"] for layer in layers] for category, layers in summary.items()}
    assert names["runtimes"] == ["cpython-3.11"]
    assert sorted(names["applications"]) == ["app-empty", "app-no-framework"]
    assert sorted(names["frameworks"]) == [*(f"framework-layer{x}" for x in "ABCDE"), "framework-layerF@1"]
    assert names["frameworks"].index("framework-layerD") > names["frameworks"].index("framework-layerB")
    for layers in summary.values():
        for layer in layers:
            assert layer == json.loads((published / f"{layer['install_target']}.json").read_text())


def test_without_a_runtime_the_importer_says_what_to_declare() -> None:
    """The checkout's own module declares no runtime: analysis fails saying what to add (never the host's Python)."""
    checkout = Workspace(CHECKOUT)
    try:
        result = checkout.bazel("build", "--nobuild", "//tools:import_venvstacks", check=False)
    finally:
        checkout.shutdown()
    assert result.returncode != 0
    assert "the importer runs on a runtime of the `venvstacks` extension, and no module declares one" in result.stderr
    assert 'add `venvstacks.runtime(name = "python", python_version = "3.12")` to MODULE.bazel' in result.stderr
