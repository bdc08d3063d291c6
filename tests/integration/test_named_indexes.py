"""Named indexes through a real Bazel: a "pytorch-like" index beside a stand-in for PyPI, both on 127.0.0.1.

The stock stack of `venvstacks_testing.stack_workspace` (framework: fwpkg, shared==1.0; app:
apppkg) on its index (the PyPI stand-in: fwpkg 1.0, apppkg 1.0, shared 1.0/2.0), and a
pytorch-like index serving the same names with older local versions (`fwpkg` 0.9+cpu, `apppkg`
0.9+cpu) and a `shared` 1.0 of its own. The framework takes fwpkg from the named index only
(`package_indexes`); the app searches that index first (`priority_indexes`). Both resolvers lock,
then the stack builds. Conflicting frameworks fail at analysis.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import tomllib

from venvstacks_testing.archives import archive_listing
from venvstacks_testing.stack_workspace import ExtraLayers, Stack, make_stack, serve_stack_sources
from venvstacks_testing.wheel_index import WheelIndex

pytestmark = pytest.mark.integration

# Frameworks that take fwpkg from two indexes, analysed only when asked (never built).
CONFLICTS = """
framework_layer(name = "cpu", package_indexes = {{"fwpkg": "pytorch_cpu"}}, runtime = ":cpython")

framework_layer(name = "plain", package_indexes = {{"fwpkg": "pypi"}}, runtime = ":cpython")

application_layer(name = "both", frameworks = [":cpu", ":plain"], launch_module = "x", runtime = ":cpython")

application_layer(
    name = "accepted",
    frameworks = [":cpu", ":plain"],
    index_overrides = {{"pypi": "pytorch_cpu"}},
    launch_module = "x",
    runtime = ":cpython",
)

framework_layer(name = "unknown", package_indexes = {{"x": "nope"}}, runtime = ":cpython")
"""


@dataclass
class Indexes:
    """The locked-and-built stack and the two served indexes' file URLs."""

    stack: Stack
    pypi_files: str
    pytorch_files: str


@pytest.fixture(scope="module")
def indexes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Indexes]:
    with serve_stack_sources(tmp_path_factory.mktemp("sources")) as sources:
        pytorch = WheelIndex(tmp_path_factory.mktemp("pytorch"))
        pytorch.add_wheel("fwpkg", "0.9+cpu", ["shared>=1"])
        pytorch.add_wheel("apppkg", "0.9+cpu", ["shared"])
        pytorch.add_wheel("shared", "1.0", files={"shared/__init__.py": b"PYTORCH_COPY = True\n"})
        with pytorch.serve() as pytorch_url:
            extra = ExtraLayers(
                build=CONFLICTS,
                module=(
                    f'venvstacks.index(name = "pytorch_cpu", url = "{pytorch_url}")\n'
                    f'venvstacks.index(name = "pypi", url = "{sources.index_url}")\n'
                ),
                framework_attrs='    package_indexes = {{"FwPkg": "pytorch_cpu"}},\n',
                app_attrs='    priority_indexes = ["pytorch_cpu"],\n',
            )
            stack = make_stack(tmp_path_factory.mktemp("named_indexes_ws"), sources, extra=extra)
            try:
                yield Indexes(stack, _files(sources.index_url), _files(pytorch_url))
            finally:
                stack.workspace.shutdown()


def _files(index_url: str) -> str:
    return index_url.removesuffix("/simple") + "/files/"


def _locked(path: Path) -> dict[str, tuple[str, str]]:
    """{name: (version, unquoted wheel URL)} of a lock's packages."""
    packages = tomllib.loads(path.read_text()).get("packages", [])
    return {p["name"]: (p["version"], urllib.parse.unquote(p["wheels"][0]["url"])) for p in packages}


@pytest.mark.parametrize("resolver", ["pip", "uv"])
def test_packages_lock_from_their_named_index_and_the_stack_builds(indexes: Indexes, resolver: str) -> None:
    workspace = indexes.stack.workspace
    for lock in workspace.root.glob("pylock.*.toml"):
        lock.unlink()
    workspace.bazel("run", f"--@rules_venvstacks//settings:resolver={resolver}", "//:stack.lock")
    # Only the named index is asked for fwpkg: its older +cpu build wins, at its real URL.
    # shared is not routed: PyPI's, never the named index's copy.
    assert _locked(workspace.root / "pylock.framework.toml") == {
        "fwpkg": ("0.9+cpu", indexes.pytorch_files + "fwpkg-0.9+cpu-py3-none-any.whl"),
        "shared": ("1.0", indexes.pypi_files + "shared-1.0-py3-none-any.whl"),
    }
    # The app searches the named index first: it has apppkg, so it alone answers.
    assert _locked(workspace.root / "pylock.app.toml") == {
        "apppkg": ("0.9+cpu", indexes.pytorch_files + "apppkg-0.9+cpu-py3-none-any.whl"),
    }
    workspace.bazel("test", "//:framework.lock_test", "//:app.lock_test")
    # The wheels of the named index are fetched by Bazel's downloader, checked and installed.
    workspace.bazel("build", "//:app")
    assert any("/fwpkg-0.9+cpu.dist-info/" in name for name in archive_listing(workspace.output("framework.tar.zst")))
    assert any("/apppkg-0.9+cpu.dist-info/" in name for name in archive_listing(workspace.output("app.tar.zst")))


def test_conflicting_package_indexes_fail_at_analysis_naming_both_layers(indexes: Indexes) -> None:
    workspace = indexes.stack.workspace
    result = workspace.bazel("build", "--nobuild", "//:both.lock_inputs", check=False)
    assert result.returncode != 0
    expected = "//:both: frameworks //:cpu and //:plain take 'fwpkg' from different indexes, 'pytorch_cpu' and 'pypi'"
    assert expected in result.stderr, result.stderr[-3000:]
    assert 'index_overrides = {"pypi": "pytorch_cpu"}' in result.stderr
    workspace.bazel("build", "--nobuild", "//:accepted.lock_inputs")
    result = workspace.bazel("build", "--nobuild", "//:unknown.lock_inputs", check=False)
    assert "//:unknown: `package_indexes` names index 'nope', which is not declared" in result.stderr
