"""docs/migrating-from-venvstacks.md names every venvstacks stack field and command, once, with a status."""

from __future__ import annotations

import re
from pathlib import Path

from venvstacks_testing.bazel_workspace import CHECKOUT

DOC = CHECKOUT / "docs" / "migrating-from-venvstacks.md"
FIELDS = CHECKOUT / "tests" / "golden" / "venvstacks_stack_fields.txt"
PUBLISHED = CHECKOUT / "tests" / "golden" / "venvstacks_published_outputs.txt"


def golden_lines(path: Path = FIELDS) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line and not line.startswith("#")]


def venvstacks_names() -> list[str]:
    return golden_lines(FIELDS)


def table_first_cells() -> list[str]:
    """The first cell of each body row of the doc's tables, without its backquotes."""
    cells = []
    for line in DOC.read_text(encoding="utf-8").splitlines():
        match = re.match(r"\| `([^`]+)` \|", line)
        if match:
            cells.append(match.group(1))
    return cells


def test_every_venvstacks_field_and_command_has_one_row_with_a_status() -> None:
    cells = table_first_cells()
    for name in venvstacks_names():
        assert cells.count(name) == 1, f"{DOC.name}: venvstacks' {name!r} needs exactly one table row"
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("| `") and line.split("|")[1].strip("` ") in venvstacks_names():
            assert line.rstrip().endswith("|") and line.split("|")[-2].strip(), f"no status: {line}"


def test_everything_venvstacks_publishes_has_one_row_with_a_status() -> None:
    """The published files and the stack summary's keys: each has one row saying what writes it here."""
    cells = table_first_cells()
    for line in DOC.read_text(encoding="utf-8").splitlines():
        match = re.match(r"\| `([^`]+)` \| (.*) \|$", line)
        if match and match.group(1) in golden_lines(PUBLISHED):
            assert match.group(2).strip(), f"no status: {line}"
    for name in golden_lines(PUBLISHED):
        assert cells.count(name) == 1, f"{DOC.name}: venvstacks' published {name!r} needs exactly one table row"
