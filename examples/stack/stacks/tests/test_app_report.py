"""The team's tests of app_report, run by `bazel test //stacks:app_report_test` inside the shipped
stack: report_format and stats_core are imported from the deployed layers, pytest from the
test-only `test_tools` layer."""

from pathlib import Path

import numpy
import report_format
import stats_core


def test_summary_follows_the_published_schema() -> None:
    summary = stats_core.summarize(numpy.array([1.0, 2.0, 3.0]))
    assert summary == {"schema": "stats-v1", "count": 3, "mean": 2.0, "std": summary["std"]}
    assert abs(summary["std"] - 0.816496580927726) < 1e-12


def test_report_matches_the_expected_table() -> None:
    expected = Path("stacks/tests/expected_report.txt").read_text()
    assert report_format.render(numpy.arange(1, 6)) + "\n" == expected


def test_first_party_code_comes_from_the_deployed_layers() -> None:
    # Never the source tree: the application's library from its layer, the shared one from the framework.
    assert "/app_report/" in report_format.__file__
    assert "/numpy_framework/" in stats_core.__file__
