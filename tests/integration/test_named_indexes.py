"""Named indexes through a real Bazel: a "pytorch-like" index beside a stand-in for PyPI, both on 127.0.0.1.

The PyPI stand-in serves `torchlike` 2.1, `cpuextra` 1.0 and `shared` 1.0/2.0; the pytorch-like
index serves `torchlike` 2.0+cpu, `cpuextra` 0.5+cpu and a decoy `fwpkg` 9.9. The framework takes
torchlike from the named index only (`package_indexes`); the app, on it, searches that index
first (`priority_indexes`) for its own `cpuextra`. Locked with pip and with uv, then built.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import tomllib

from venvstacks_testing.archives import archive_listing
from venvstacks_testing.bazel_workspace import Workspace
from venvstacks_testing.stack_workspace import APP_MAIN, module_body, serve_stack_sources
from venvstacks_testing.wheel_index import WheelIndex

pytestmark = pytest.mark.integration

BUILD = """\
load(
    "@rules_venvstacks//rules_venvstacks:defs.bzl",
    "application_layer",
    "framework_layer",
    "layer_stack",
    "runtime_layer",
)

package(default_visibility = ["//conflict:__pkg__"])

runtime_layer(name = "cpython", runtime = "@cpython_local")

framework_layer(
    name = "framework",
    index_url = "{pypi}",
    package_indexes = {{"TorchLike": "pytorch_cpu"}},
    requirements = ["fwpkg", "torchlike"],
    runtime = ":cpython",
)

application_layer(
    name = "app",
    srcs = ["app/__main__.py"],
    frameworks = [":framework"],
    index_url = "{pypi}",
    launch_module = "app",
    priority_indexes = ["pytorch_cpu"],
    requirements = ["apppkg", "cpuextra"],
    runtime = ":cpython",
)

layer_stack(name = "stack", layers = [":app"])
"""

# Frameworks that take torchlike from two indexes, for the analysis-time conflict.
CONFLICT_BUILD = """\
load("@rules_venvstacks//rules_venvstacks:defs.bzl", "application_layer", "framework_layer")

framework_layer(name = "cpu", package_indexes = {"torchlike": "pytorch_cpu"}, runtime = "//:cpython")

framework_layer(name = "plain", package_indexes = {"torchlike": "pypi"}, runtime = "//:cpython")

application_layer(name = "both", frameworks = [":cpu", ":plain"], launch_module = "x", runtime = "//:cpython")

application_layer(
    name = "accepted",
    frameworks = [":cpu", ":plain"],
    index_overrides = {"pypi": "pytorch_cpu"},
    launch_module = "x",
    runtime = "//:cpython",
)

framework_layer(name = "unknown", package_indexes = {"x": "nope"}, runtime = "//:cpython")
"""


@dataclass
class Indexes:
    """The workspace and the two served indexes."""

    workspace: Workspace
    pypi: WheelIndex
    pypi_url: str
    pytorch: WheelIndex
    pytorch_url: str


@pytest.fixture(scope="module")
def indexes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Indexes]:
    with serve_stack_sources(tmp_path_factory.mktemp("sources")) as sources:
        pypi = sources.index
        pypi.add_wheel("torchlike", "2.1")
        pypi.add_wheel("cpuextra", "1.0")
        pytorch = WheelIndex(tmp_path_factory.mktemp("pytorch"))
        pytorch.add_wheel("torchlike", "2.0+cpu")
        pytorch.add_wheel("cpuextra", "0.5+cpu")
        pytorch.add_wheel("fwpkg", "9.9")
        with pytorch.serve() as pytorch_url:
            workspace = Workspace(tmp_path_factory.mktemp("named_indexes_ws"))
            named = (
                f'venvstacks.index(name = "pytorch_cpu", url = "{pytorch_url}")\n'
                f'venvstacks.index(name = "pypi", url = "{sources.index_url}")\n'
            )
            workspace.write_module(module_body(sources.runtime, sources.runtime_url) + named)
            workspace.write("BUILD.bazel", BUILD.format(pypi=sources.index_url))
            workspace.write("app/__main__.py", APP_MAIN.replace("import shared", "import shared, torchlike, cpuextra"))
            workspace.write("conflict/BUILD.bazel", CONFLICT_BUILD)
            try:
                yield Indexes(workspace, pypi, sources.index_url, pytorch, pytorch_url)
            finally:
                workspace.shutdown()


def _locked(path: Path) -> dict[str, tuple[str, str]]:
    """{name: (version, unquoted wheel URL)} of a lock's packages."""
    packages = tomllib.loads(path.read_text()).get("packages", [])
    return {p["name"]: (p["version"], urllib.parse.unquote(p["wheels"][0]["url"])) for p in packages}


@pytest.mark.parametrize("resolver", ["pip", "uv"])
def test_packages_lock_from_their_named_index_and_the_stack_builds(indexes: Indexes, resolver: str) -> None:
    root = indexes.workspace.root
    for lock in root.glob("pylock.*.toml"):
        lock.unlink()
    indexes.workspace.bazel("run", f"--@rules_venvstacks//settings:resolver={resolver}", "//:stack.lock")
    pytorch_files = indexes.pytorch_url.removesuffix("/simple") + "/files/"
    pypi_files = indexes.pypi_url.removesuffix("/simple") + "/files/"
    framework = _locked(root / "pylock.framework.toml")
    # Only the named index is asked for torchlike: its older +cpu build, at its real URL.
    assert framework["torchlike"] == ("2.0+cpu", pytorch_files + "torchlike-2.0+cpu-py3-none-any.whl")
    # Everything else from the layer's index: the named index's newer `fwpkg` is never seen.
    assert framework["fwpkg"] == ("1.0", pypi_files + "fwpkg-1.0-py3-none-any.whl")
    assert framework["shared"] == ("2.0", pypi_files + "shared-2.0-py3-none-any.whl")
    app = _locked(root / "pylock.app.toml")
    # The app searches the named index first: it has cpuextra, so it alone answers; apppkg is not there.
    assert app == {
        "cpuextra": ("0.5+cpu", pytorch_files + "cpuextra-0.5+cpu-py3-none-any.whl"),
        "apppkg": ("1.0", pypi_files + "apppkg-1.0-py3-none-any.whl"),
    }
    assert "127.0.0.1" in (root / "pylock.app.toml").read_text()  # the real indexes' URLs, not the router's
    indexes.workspace.bazel("test", "//:framework.lock_test", "//:app.lock_test")
    # The wheels from the named index are fetched by Bazel's downloader and installed.
    indexes.workspace.bazel("build", "//:app")
    framework_files = archive_listing(indexes.workspace.output("framework.tar.zst"))
    app_files = archive_listing(indexes.workspace.output("app.tar.zst"))
    assert any("/torchlike-2.0+cpu.dist-info/" in name for name in framework_files)
    assert any("/cpuextra-0.5+cpu.dist-info/" in name for name in app_files)


def test_conflicting_package_indexes_fail_at_analysis_naming_both_layers(indexes: Indexes) -> None:
    workspace = indexes.workspace
    result = workspace.bazel("build", "--nobuild", "//conflict:both.lock_inputs", check=False)
    assert result.returncode != 0
    assert (
        "//conflict:both: frameworks //conflict:cpu and //conflict:plain take 'torchlike' from different indexes"
        in result.stderr
    ), result.stderr[-3000:]
    assert 'index_overrides = {"pypi": "pytorch_cpu"}' in result.stderr
    workspace.bazel("build", "--nobuild", "//conflict:accepted.lock_inputs")
    result = workspace.bazel("build", "--nobuild", "//conflict:unknown.lock_inputs", check=False)
    assert "//conflict:unknown: `package_indexes` names index 'nope', which is not declared" in result.stderr
