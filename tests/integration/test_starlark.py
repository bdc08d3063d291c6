"""The Starlark unit tests (bazel_skylib unittest) of the checkout itself, through real Bazel."""

from __future__ import annotations

import pytest

from venvstacks_testing.bazel_workspace import CHECKOUT, Workspace

pytestmark = pytest.mark.integration


def test_starlark_unit_tests_pass() -> None:
    workspace = Workspace(CHECKOUT)
    try:
        result = workspace.bazel("test", "--nocache_test_results", "//tests/starlark:all", check=False)
        assert result.returncode == 0, result.stderr[-6000:]
        assert "Executed 5 out of 5 tests: 5 tests pass" in result.stdout + result.stderr
    finally:
        workspace.shutdown()
