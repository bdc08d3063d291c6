"""A release archive, made by `venvstacks_maint release`, used as the README says until the module is
in a registry: `archive_override` from a URL with the printed integrity, no checkout in sight.

The consuming workspace is test_stack.py's stack (a runtime from this machine's CPython, a
framework over wheels served on 127.0.0.1); its MODULE.bazel takes the command's printed lines
verbatim in place of the `local_path_override` every other integration test uses.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from venvstacks_maint.release import EXCLUDED, module_identity
from venvstacks_testing.bazel_workspace import CHECKOUT
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
    presubmit = (CHECKOUT / ".bcr" / "presubmit.yml").read_text()
    targets = re.findall(r'^\s+- "(@rules_venvstacks//[^"]+)"$', presubmit, re.MULTILINE)
    assert targets, presubmit
    stack.workspace.bazel("build", *targets)
