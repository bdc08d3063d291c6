"""venvstacks' own source distribution (0.8.0b2, from PyPI), whose tests carry its example stacks.

Its `tests/sample_project`, `minimal_project`, `local_wheels_project` and `stack_specs` are the
specifications the importer is tested on, and `sample_project/expected_manifests` holds the
published metadata venvstacks itself wrote. Downloaded once by URL and sha256, then unpacked from
a cache shared by the test runs of one machine.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import tempfile
import urllib.request
from pathlib import Path

SDIST_URL = (
    "https://files.pythonhosted.org/packages/c2/68/1adc140fdeaa7c27011c6e908f0b730cad5a0927941fbdd92330843bee24/"
    "venvstacks-0.8.0b2.tar.gz"
)
SDIST_SHA256 = "806545fd743df18d0defc2a085d5376a3eef1b13bee3503089cce633dcf2cc77"
_TOP = "venvstacks-0.8.0b2"


def _cache_dir() -> Path:
    return Path(os.environ.get("VENVSTACKS_TEST_CACHE", "/tmp/venvstacks-test-cache"))


def sdist_tests_dir() -> Path:
    """The sdist's `tests/` folder, unpacked (downloaded and checked on first use)."""
    root = _cache_dir() / SDIST_SHA256
    tests = root / _TOP / "tests"
    if tests.is_dir():
        return tests
    root.mkdir(parents=True, exist_ok=True)
    with urllib.request.urlopen(SDIST_URL, timeout=60) as response:
        data = response.read()
    digest = hashlib.sha256(data).hexdigest()
    if digest != SDIST_SHA256:
        raise AssertionError(f"{SDIST_URL}: sha256 {digest}, expected {SDIST_SHA256}")
    archive = root / f"{_TOP}.tar.gz"
    archive.write_bytes(data)
    staging = Path(tempfile.mkdtemp(dir=root))
    with tarfile.open(archive) as tar:
        tar.extractall(staging, filter="data")
    try:
        os.replace(staging / _TOP, root / _TOP)
    except OSError:
        if not tests.is_dir():  # else another run unpacked it first
            raise
    return tests
