"""docs/rules.md is what docs/gen/render_rule_docs.py makes of the current starlark_doc_extract output."""

from __future__ import annotations

import difflib
import sys
from pathlib import Path

import pytest

from venvstacks_testing.bazel_workspace import CHECKOUT, Workspace
from venvstacks_testing.rule_docs import load_renderer

pytestmark = pytest.mark.integration

CHECKED_IN = CHECKOUT / "docs" / "rules.md"


def test_rule_docs_are_up_to_date(tmp_path: Path) -> None:
    renderer = load_renderer()
    workspace = Workspace(CHECKOUT)
    try:
        workspace.bazel("build", "//rules_venvstacks:all_docs")
        # Exactly the files the target has (bazel-bin may hold stale ones), sorted by name as the
        # shell sorts the regenerate command's `bazel-bin/rules_venvstacks/*.textproto`.
        files = workspace.bazel("cquery", "--output=files", "//rules_venvstacks:all_docs").stdout.split()
        inputs = sorted((CHECKOUT / file for file in files), key=lambda path: path.name)
        assert inputs, "//rules_venvstacks:all_docs has no files"
        rendered = tmp_path / "rules.md"
        assert renderer.main([str(rendered), *map(str, inputs)]) == 0
    finally:
        workspace.shutdown()
    expected = rendered.read_text(encoding="utf-8")
    actual = CHECKED_IN.read_text(encoding="utf-8") if CHECKED_IN.exists() else ""
    if actual != expected:
        # The diff goes to the captured output; the failure itself is the one-line hint.
        sys.stdout.writelines(
            difflib.unified_diff(
                actual.splitlines(keepends=True), expected.splitlines(keepends=True), "docs/rules.md", "rendered"
            )
        )
        pytest.fail(f"docs/rules.md is stale; regenerate it: {renderer.REGENERATE_COMMAND}", pytrace=False)
