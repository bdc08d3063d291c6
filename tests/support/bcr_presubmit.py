"""What .bcr/presubmit.yml asks the Bazel Central Registry's CI to build, read without a YAML parser.

The file is ours and small: the tests read what they check from its lines (the test module's
path and targets, the module's own targets) rather than add a YAML dependency.
"""

from __future__ import annotations

import re

from venvstacks_testing.bazel_workspace import CHECKOUT

PRESUBMIT = CHECKOUT / ".bcr" / "presubmit.yml"


def _test_module_section(text: str) -> str:
    if "\nbcr_test_module:\n" not in text:
        raise AssertionError("presubmit.yml has no bcr_test_module")
    return text.split("\nbcr_test_module:\n", 1)[1]


def presubmit_test_module(text: str) -> str:
    """`bcr_test_module.module_path`: the test module's folder inside the release archive."""
    found = re.search(r"^  module_path: (\S+)$", _test_module_section(text), re.MULTILINE)
    if found is None:
        raise AssertionError("presubmit.yml has no bcr_test_module.module_path")
    return found.group(1)


def presubmit_test_module_targets(text: str, kind: str) -> list[str]:
    """The test module's `build_targets` or `test_targets` (`kind`), in the order listed."""
    found = re.search(rf"^ +{kind}:\n((?: +- .+\n)+)", _test_module_section(text), re.MULTILINE)
    return [line.split("- ", 1)[1].strip().strip('"') for line in found.group(1).splitlines()] if found else []


def module_targets(text: str) -> list[str]:
    """The `@rules_venvstacks//...` targets the presubmit builds with the module as a dependency."""
    return re.findall(r'^\s+- "(@rules_venvstacks//[^"]+)"$', text, re.MULTILINE)
