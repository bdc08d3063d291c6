"""examples/run_example.py needs nothing the test command installs, and leaves the example as it is.

Its end-to-end run is tests/integration/test_example.py.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

CHECKOUT = Path(__file__).resolve().parents[2]
DRIVER = CHECKOUT / "examples" / "run_example.py"
EXAMPLE = CHECKOUT / "examples" / "stack"

# Loads the driver as a fresh interpreter would, then lists every module it brought in.
_LOAD = """\
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("run_example", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print(json.dumps({name: getattr(m, "__file__", None) for name, m in sys.modules.items()}))
"""


@pytest.fixture(scope="module")
def driver() -> ModuleType:
    """examples/run_example.py as a module."""
    spec = importlib.util.spec_from_file_location("run_example", DRIVER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_driver_loads_without_site_packages_and_nothing_from_tests() -> None:
    # -S: no site-packages, so no development install (which is what provides venvstacks_testing).
    result = subprocess.run([sys.executable, "-I", "-S", "-c", _LOAD, DRIVER], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    modules = json.loads(result.stdout)
    assert "venvstacks_maint.local_runtime" in modules
    assert not [name for name in modules if name.startswith("venvstacks_testing")]
    loaded = [Path(file) for file in modules.values() if file]
    assert not [file for file in loaded if file.is_relative_to(CHECKOUT / "tests")]


def test_the_example_is_free_of_test_machinery() -> None:
    for path in sorted(CHECKOUT.joinpath("examples").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            text = path.read_text(encoding="utf-8")
            assert "venvstacks_testing" not in text, path
            assert "RUNTIME-BEGIN" not in text and "RUNTIME-END" not in text, path


def test_the_local_runtime_tag_goes_into_the_copy_only(driver: ModuleType, tmp_path: Path) -> None:
    original = (EXAMPLE / "MODULE.bazel").read_text(encoding="utf-8")
    tag = 'venvstacks.runtime_archive(runtime = "cpython3_11")\n'
    copy = driver.copy_example(tmp_path, tag)
    module = (copy / "MODULE.bazel").read_text(encoding="utf-8")
    assert module.startswith(original) and module.endswith(tag)
    assert (EXAMPLE / "MODULE.bazel").read_text(encoding="utf-8") == original
    # A second run starts from a fresh copy: the tag is not appended twice.
    copy = driver.copy_example(tmp_path, tag)
    assert (copy / "MODULE.bazel").read_text(encoding="utf-8").count(tag) == 1


def test_the_work_directory_is_one_per_checkout(driver: ModuleType) -> None:
    first = driver.default_workdir()
    assert first == driver.default_workdir()
    assert first.name.startswith("rules_venvstacks-example-")
