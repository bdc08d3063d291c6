"""The README's main job (examples/run_example.py) works end to end, against real PyPI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from venvstacks_testing.example_run import ExampleRun

pytestmark = pytest.mark.integration


def test_example_stack_locks_builds_deploys_and_runs_both_apps_on_the_shared_framework(example_run: ExampleRun) -> None:
    result, dest, run_cache = example_run.result, example_run.dest, example_run.run_cache
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-4000:]
    # It says what it built and where: every layer archive, which exists.
    archives = re.findall(r"^run_example:   \w+ +[\d,]+ bytes  (\S+)$", result.stdout, re.MULTILINE)
    assert sorted(Path(archive).name for archive in archives) == [
        "app_report.tar.zst",
        "app_stats.tar.zst",
        "cpython3_11.tar.zst",
        "numpy_framework.tar.zst",
    ]
    assert all(Path(archive).is_file() for archive in archives)
    assert f"run_example: Deployed stack: {dest} " in result.stdout
    reports = [json.loads(line) for line in result.stdout.splitlines() if line.startswith('{"app"')]
    # `bazel run //stacks:app_report -- 3 1 4 1 5` ran it from the run cache, with its arguments.
    (run,) = [report for report in reports if Path(report["numpy_file"]).is_relative_to(run_cache)]
    assert run["app"] == "app_report"
    assert re.search(r"^mean +2\.8$", result.stdout, re.MULTILINE), result.stdout[-3000:]
    # Then both ran from the stack that stack.deploy put in DEST: numpy and the shared first-party
    # library from the framework layer, the application's own library from its layer.
    deployed = [report for report in reports if report is not run]
    assert sorted(report["app"] for report in deployed) == ["app_report", "app_stats"]
    for report in deployed:
        numpy_file = Path(report["numpy_file"])
        assert numpy_file.is_relative_to(dest / "numpy_framework"), report
        assert not numpy_file.is_relative_to(dest / report["app"]), report
    (report,) = [report for report in deployed if report["app"] == "app_report"]
    assert Path(report["stats_core_file"]).is_relative_to(dest / "numpy_framework"), report
    assert Path(report["report_format_file"]).is_relative_to(dest / "app_report"), report
    # numpy is installed once, in the framework layer only.
    assert not list(dest.glob("app_*/lib/python3*/site-packages/numpy"))
