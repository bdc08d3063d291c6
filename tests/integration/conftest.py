"""Fixtures several integration files share."""

from __future__ import annotations

import pytest

from venvstacks_testing.example_run import ExampleRun, run_example


@pytest.fixture(scope="session")
def example_run(tmp_path_factory: pytest.TempPathFactory) -> ExampleRun:
    """The README's main job, run once per session: test_example checks it, test_images builds on it."""
    return run_example(tmp_path_factory.mktemp("example"))
