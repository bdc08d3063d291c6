"""The reduced compatibility corpus (tests/corpus, `run_corpus.py --ci`) locks, builds, deploys and runs.

Real Bazel, real wheels from the index (the checked-in locks): numpy in one framework and numexpr
(built against it) in the application, `google.*` split over two frameworks, a `.pth` package and
a legacy `-nspkg.pth` package in the frameworks used from the application, a console script and
`.data/data` files. The full corpus (PyTorch, SciPy, grpcio...) is `run_corpus.py` without `--ci`.
"""

from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from venvstacks_testing.bazel_workspace import CHECKOUT

pytestmark = pytest.mark.integration

CORPUS = CHECKOUT / "tests" / "corpus"


def expected_layers(app: str) -> dict[str, str]:
    """The layer each package of `app`'s corpus must come from (corpus_probe/checks.py)."""
    return dict(runpy.run_path(str(CORPUS / "stacks" / "corpus_probe" / "checks.py"))["CORPORA"][app])


def test_reduced_corpus_imports_and_calls_every_package_from_the_layer_it_belongs_to(tmp_path: Path) -> None:
    dest, rows_file = tmp_path / "deployed", tmp_path / "rows.json"
    result = subprocess.run(
        [sys.executable, CORPUS / "run_corpus.py", "--ci", "--dest", dest, "--rows", rows_file],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    rows = json.loads(rows_file.read_text())
    assert {row["package"]: row["layer"] for row in rows} == expected_layers("ci_app")
    assert all(row["ok"] and row["version"] for row in rows), rows
    # Each package is installed once, in its own layer: nothing of a framework is copied up.
    assert not list(dest.glob("ci_app/lib/python3*/site-packages/numpy"))
    assert not list(dest.glob("ci_services/lib/python3*/site-packages/google/protobuf"))
    assert list(dest.glob("ci_services/lib/python3*/site-packages/google/rpc"))

    # The probe can fail: with setuptools' shim switched off, `import distutils` finds the stdlib's.
    env = {**os.environ, "SETUPTOOLS_USE_DISTUTILS": "stdlib"}
    broken = subprocess.run(
        [dest / "ci_app" / "bin" / "python", "-m", "corpus_probe"], capture_output=True, text=True, env=env, check=False
    )
    assert broken.returncode == 1, broken.stdout + broken.stderr
    failed = [json.loads(line)["corpus_row"] for line in broken.stdout.splitlines() if '"ok": false' in line]
    assert [row["package"] for row in failed] == ["setuptools"], broken.stdout
    assert "FAILED: AssertionError" in failed[0]["result"], failed
