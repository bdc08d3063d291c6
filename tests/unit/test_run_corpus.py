"""tests/corpus/run_corpus.py declares its runtime as examples/run_example.py does: a tag appended to a copy.

The corpus' MODULE.bazel holds no placeholder (no RUNTIME markers to fill): the driver appends
`local-runtime`'s `venvstacks.runtime_archive` tag for the corpus' runtime to its scratch copy.
Its end-to-end run is tests/integration/test_corpus.py.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from venvstacks_maint.local_runtime import LocalRuntime, runtime_archive_tag

CHECKOUT = Path(__file__).resolve().parents[2]
CORPUS = CHECKOUT / "tests" / "corpus"


@pytest.fixture(scope="module")
def driver() -> ModuleType:
    """tests/corpus/run_corpus.py as a module."""
    spec = importlib.util.spec_from_file_location("run_corpus", CORPUS / "run_corpus.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_runtime_tag_is_appended_to_the_copy_only(driver: ModuleType, tmp_path: Path) -> None:
    original = (CORPUS / "MODULE.bazel").read_text(encoding="utf-8")
    archive = tmp_path / "cpython-3.11.2+local-x86_64-unknown-linux-gnu-install_only.tar.gz"
    runtime = LocalRuntime(path=archive, python_version="3.11.2", sha256="ab" * 32, triple="x86_64-unknown-linux-gnu")
    workspace = driver.copy_corpus(tmp_path / "corpus", runtime, "http://127.0.0.1:8000")
    module = (workspace.root / "MODULE.bazel").read_text(encoding="utf-8")
    tag = runtime_archive_tag(runtime, driver.RUNTIME, url=f"http://127.0.0.1:8000/{archive.name}")
    assert module.endswith(tag) and 'platform = "linux_x86_64"' in tag
    assert module.startswith(original.replace('path = "../.."', f'path = "{CHECKOUT}"'))
    assert (CORPUS / "MODULE.bazel").read_text(encoding="utf-8") == original


def test_the_corpus_declares_the_runtime_it_is_given_and_holds_no_placeholder(driver: ModuleType) -> None:
    module = (CORPUS / "MODULE.bazel").read_text(encoding="utf-8")
    assert f'name = "{driver.RUNTIME}"' in module
    assert "RUNTIME-BEGIN" not in module and "RUNTIME-END" not in module
    assert "RUNTIME-BEGIN" not in (CORPUS / "run_corpus.py").read_text(encoding="utf-8")
