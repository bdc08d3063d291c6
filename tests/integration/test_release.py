"""A release archive, made by `venvstacks_maint release`, used as the README says until the module is
in a registry (`archive_override` from a URL with the printed integrity, no checkout in sight), and
as the Bazel Central Registry's presubmit uses it (.bcr/presubmit.yml).

The consuming workspace is test_stack.py's stack (a runtime from this machine's CPython, a
framework over wheels served on 127.0.0.1); its MODULE.bazel takes the command's printed lines
verbatim in place of the `local_path_override` every other integration test uses. The registry's
test module (examples/stack) runs inside the unpacked archive, its runtime from this machine's
CPython since GitHub (PBS) is out of reach; its wheels come from PyPI.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from venvstacks_maint.local_runtime import runtime_archive_tag
from venvstacks_maint.release import EXCLUDED, module_identity
from venvstacks_testing.bazel_workspace import CHECKOUT, Workspace
from venvstacks_testing.bcr_presubmit import (
    PRESUBMIT,
    module_targets,
    presubmit_test_module,
    presubmit_test_module_targets,
)
from venvstacks_testing.local_pbs import make_local_runtime
from venvstacks_testing.stack_workspace import Stack, make_stack, serve_stack_sources

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Made:
    """What the release command made: the archive and the MODULE.bazel lines it printed."""

    archive: Path
    module_lines: str


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Made:
    """The release of this checkout's working tree (what is under test, committed or not)."""
    _, version = module_identity((CHECKOUT / "MODULE.bazel").read_text())
    output = tmp_path_factory.mktemp("release")
    command = ["-m", "venvstacks_maint", "release", "--version", version, "--output", str(output), "--worktree"]
    result = subprocess.run(
        [sys.executable, *command],
        env=dict(os.environ, PYTHONPATH=str(CHECKOUT / "tools")),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    (archive,) = output.iterdir()
    return Made(archive, result.stdout)


@pytest.fixture(scope="module")
def stack(made: Made, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The stack workspace on the release archive, its framework locked."""
    with serve_stack_sources(tmp_path_factory.mktemp("sources")) as sources:
        result = make_stack(tmp_path_factory.mktemp("consumer"), sources, rules_dependency=made.module_lines)
        try:
            result.lock("framework")
            yield result
        finally:
            result.workspace.shutdown()


def test_the_printed_lines_point_at_the_archive_by_file_url(made: Made) -> None:
    assert f'urls = ["{made.archive.as_uri()}"]' in made.module_lines
    assert "local_path_override" not in made.module_lines
    assert re.search(r'integrity = "sha256-[A-Za-z0-9+/]{43}=",', made.module_lines)


def test_a_layer_builds_with_the_rules_from_the_release_archive(stack: Stack) -> None:
    workspace = stack.workspace
    workspace.bazel("build", "//:framework")
    for name in ("cpython.tar.zst", "framework.tar.zst", "framework.json"):
        assert workspace.output(name).is_file(), name
    # The rules are the archive's unpacked contents, not a link to a checkout, and what the
    # release leaves out is not there.
    output_base = Path(workspace.bazel("info", "output_base").stdout.strip())
    (rules,) = (output_base / "external").glob("rules_venvstacks[~+]")
    assert not rules.is_symlink()
    assert (rules / "MODULE.bazel").read_text() == (CHECKOUT / "MODULE.bazel").read_text()
    assert (rules / "tools" / "BUILD.bazel").is_file()
    assert [entry for entry in EXCLUDED if (rules / entry).exists()] == []


def test_the_registry_presubmit_targets_build_from_the_archive(stack: Stack) -> None:
    """.bcr/presubmit.yml's verify_targets, built as a dependency, as the registry's CI builds them."""
    targets = module_targets(PRESUBMIT.read_text())
    assert targets
    stack.workspace.bazel("build", *targets)


def test_the_registry_test_module_builds_and_passes_inside_the_unpacked_archive(made: Made, tmp_path: Path) -> None:
    """bcr_test_module: its build and test targets, in the archive, on the module `../..` above it."""
    with tarfile.open(made.archive) as tar:
        tar.extractall(tmp_path / "unpacked", filter="tar")
    (root,) = (tmp_path / "unpacked").iterdir()
    presubmit = PRESUBMIT.read_text()
    workspace = Workspace(root / presubmit_test_module(presubmit))
    # The one edit: the host platform's runtime from this machine's CPython, as docs/runtimes.md
    # tells users without GitHub (appended to the unpacked copy; the checkout is untouched).
    module = workspace.root / "MODULE.bazel"
    runtimes = re.findall(r'venvstacks\.runtime\(\s*name = "(\w+)"', module.read_text())
    assert len(runtimes) == 1, runtimes
    tag = runtime_archive_tag(make_local_runtime(tmp_path / "pbs"), runtimes[0])
    module.write_text(module.read_text() + tag)
    try:
        workspace.bazel("build", *presubmit_test_module_targets(presubmit, "build_targets"))
        result = workspace.bazel("test", *presubmit_test_module_targets(presubmit, "test_targets"))
        assert re.search(r"Executed (\d+) out of \1 tests?: \1 tests? pass", result.stdout + result.stderr)
    finally:
        workspace.shutdown()
