"""A venvstacks project converted by `import-venvstacks`, then locked and built by a real Bazel.

venvstacks' own `minimal_project` (from its 0.8.0b2 sdist): a runtime, six frameworks in
diamond and C3 shapes (one named `layerF@1`, `@` and all), and two applications. The converted
MODULE.bazel fragment is used as written, plus the one line every integration test adds: the
host platform's runtime from this machine's CPython (`local-runtime`'s tag), as
python-build-standalone lives on GitHub.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from venvstacks_maint import import_venvstacks
from venvstacks_maint.local_runtime import make_local_runtime, runtime_archive_tag
from venvstacks_testing.bazel_workspace import CHECKOUT, Workspace
from venvstacks_testing.venvstacks_sdist import sdist_tests_dir

pytestmark = pytest.mark.integration


def test_minimal_project_converts_locks_and_builds(tmp_path: Path) -> None:
    root = Path(shutil.copytree(sdist_tests_dir() / "minimal_project", tmp_path / "ws"))
    assert import_venvstacks.main([str(root / "venvstacks.toml")]) == 0
    fragment = (root / import_venvstacks.MODULE_FRAGMENT_NAME).read_text()
    (tmp_path / "pbs").mkdir()
    runtime = make_local_runtime(tmp_path / "pbs")
    workspace = Workspace(root)
    workspace.write(
        "MODULE.bazel",
        'module(name = "converted")\n\nbazel_dep(name = "rules_venvstacks")\n'
        f'local_path_override(module_name = "rules_venvstacks", path = "{CHECKOUT}")\n\n'
        + fragment
        + runtime_archive_tag(runtime, "cpython_3_11"),
    )
    workspace.write(".bazelrc", (CHECKOUT / ".bazelrc").read_text())
    try:
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
