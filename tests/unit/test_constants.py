"""rules_venvstacks/private/common/constants.bzl against the tool: each value stated once per language, the same.

The .bzl file's assignments are read as Python literals (Starlark's list, string and int
literals are Python's); the version rule, code on the Starlark side, is held to the shared
cases of tests/golden/python_versions.txt, which tests/starlark/versions_test.bzl reads too.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from venvstacks_tool.build import layer
from venvstacks_tool.core import archive, platforms, protocol
from venvstacks_tool.deploy import run_cache
from venvstacks_tool.lock import index_options

CHECKOUT = Path(__file__).resolve().parents[2]
CONSTANTS_BZL = CHECKOUT / "rules_venvstacks" / "private" / "common" / "constants.bzl"
PYTHON_VERSIONS = CHECKOUT / "tests" / "golden" / "python_versions.txt"


def bzl_constants(path: Path) -> dict[str, object]:
    """{NAME: value} of the top-level `NAME = <literal>` assignments of a .bzl file."""
    constants: dict[str, object] = {}
    for node in ast.parse(path.read_text(encoding="utf-8"), str(path)).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                constants[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                continue  # an expression of other constants, e.g. LAYER_NAME_FIRST + ".-"
    return constants


@pytest.mark.parametrize(
    ("name", "python"),
    [
        ("LAYER_KINDS", list(protocol.LAYER_KINDS)),
        ("PYTHON_PRE_RELEASES", list(protocol.PYTHON_PRE_RELEASES)),
        ("ARCHIVE_FORMATS", list(archive.ARCHIVE_FORMATS)),
        ("BYTECODE_MODES", list(layer.BYTECODE_MODES)),
        ("DEFAULT_INDEX_URL", index_options.DEFAULT_INDEX_URL),
        ("DEFAULT_GLIBC_MINIMUM", ".".join(map(str, platforms.DEFAULT_GLIBC_MINIMUM))),
        ("DEFAULT_MACOS_MINIMUM", ".".join(map(str, platforms.DEFAULT_MACOS_MINIMUM))),
        ("LAYER_NAME_MAX_LENGTH", protocol.LAYER_NAME_MAX_LENGTH),
        ("RUN_CACHE_MARKER_NAME", run_cache.MARKER_NAME),
        ("RUN_CACHE_USED_NAME", run_cache.USED_NAME),
    ],
)
def test_starlark_and_python_hold_the_same_value(name: str, python: object) -> None:
    assert bzl_constants(CONSTANTS_BZL)[name] == python, f"constants.bzl {name} differs from the tool's"


def test_the_layer_name_characters_are_the_tools() -> None:
    """LAYER_NAME_FIRST and LAYER_NAME_REST (an expression of the first) admit what LAYER_NAME_RE admits."""
    constants = bzl_constants(CONSTANTS_BZL)
    first = str(constants["LAYER_NAME_FIRST"])
    rest_text = re.search(
        r"^LAYER_NAME_REST = LAYER_NAME_FIRST \+ (\"[^\"]*\")$", CONSTANTS_BZL.read_text(), re.MULTILINE
    )
    assert rest_text is not None, "LAYER_NAME_REST is LAYER_NAME_FIRST + a string literal"
    rest = first + str(ast.literal_eval(rest_text.group(1)))
    for code in range(32, 127):
        char = chr(code)
        assert protocol.is_layer_name(char) == (char in first), f"{char!r} as a first character"
        assert protocol.is_layer_name("a" + char) == (char in rest), f"{char!r} after the first character"
    assert protocol.is_layer_name("layerF@1") and protocol.is_layer_name("framework@12")


def test_one_definition_per_language() -> None:
    """LAYER_KINDS and the pre-release tags are defined in constants.bzl and protocol.py only."""
    for name in ("LAYER_KINDS", "PYTHON_PRE_RELEASES"):
        definition = re.compile(rf"^{name}\b[^=\n]*=", re.MULTILINE)
        places = sorted(
            str(path.relative_to(CHECKOUT))
            for folder in ("rules_venvstacks", "tools")
            for path in (CHECKOUT / folder).rglob("*")
            if path.suffix in (".bzl", ".py") and definition.search(path.read_text(encoding="utf-8"))
        )
        assert places == [
            "rules_venvstacks/private/common/constants.bzl",
            "tools/venvstacks_tool/core/protocol.py",
        ], name


def _version_cases() -> list[tuple[bool, str]]:
    cases = []
    for line in PYTHON_VERSIONS.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            verdict, _, text = line.partition(" ")
            cases.append(({"valid": True, "invalid": False}[verdict], text))
    return cases


@pytest.mark.parametrize(("valid", "text"), _version_cases())
def test_the_version_pattern_judges_the_shared_cases(valid: bool, text: str) -> None:
    assert (protocol.PYTHON_VERSION_RE.fullmatch(text) is not None) is valid
