"""The Starlark unit tests (bazel_skylib unittest) of the checkout itself, through real Bazel."""

from __future__ import annotations

import re

import pytest

from venvstacks_testing.bazel_workspace import CHECKOUT, Workspace

pytestmark = pytest.mark.integration


def test_starlark_unit_tests_pass() -> None:
    workspace = Workspace(CHECKOUT)
    try:
        result = workspace.bazel("test", "--nocache_test_results", "//tests/starlark:all", check=False)
        assert result.returncode == 0, result.stderr[-6000:]
        summary = re.search(r"Executed (\d+) out of (\d+) tests?: (\d+) tests? pass", result.stdout + result.stderr)
        assert summary is not None, result.stdout + result.stderr
        executed, total, passed = map(int, summary.groups())
        assert executed == total == passed >= 32, summary.group(0)
    finally:
        workspace.shutdown()
