"""docs/compatibility.md's tables: the full corpus' output (one row per package of CORPORA, in its layer), and the
loader check's (the same packages on all five platforms)."""

from __future__ import annotations

import re
import runpy

from venvstacks_testing.bazel_workspace import CHECKOUT
from venvstacks_tool.core.platforms import PLATFORMS

DOC = CHECKOUT / "docs" / "compatibility.md"
CHECKS = CHECKOUT / "tests" / "corpus" / "stacks" / "corpus_probe" / "checks.py"


def table_rows() -> list[list[str]]:
    """The cells of the generated table's body rows."""
    block = re.search(r"<!-- corpus-table-begin -->(.*?)<!-- corpus-table-end -->", DOC.read_text(), re.DOTALL)
    assert block, f"{DOC} has no generated table block"
    lines = [line for line in block.group(1).splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines[2:]]


def test_the_table_has_one_row_per_corpus_package_in_the_layer_the_corpus_puts_it() -> None:
    checks = runpy.run_path(str(CHECKS))
    rows = table_rows()
    assert [(row[0], row[2]) for row in rows] == list(checks["CORPORA"]["corpus_app"].items())
    assert [row[3] for row in rows] == [checks["CHECKS"][row[0]].call for row in rows]
    assert all(re.fullmatch(r"[0-9][0-9A-Za-z.+]*", row[1]) for row in rows), rows


def test_the_loader_table_has_every_corpus_package_on_all_five_platforms() -> None:
    block = re.search(r"<!-- loader-table-begin -->(.*?)<!-- loader-table-end -->", DOC.read_text(), re.DOTALL)
    assert block, f"{DOC} has no loader table block (tests/corpus/loader_table.py --write-docs)"
    lines = [line for line in block.group(1).splitlines() if line.startswith("| ")]
    header = [cell.strip() for cell in lines[0].split("|")[1:-1]]
    assert header == ["package", *(platform.name for platform in PLATFORMS)]
    rows = [[cell.strip() for cell in line.split("|")[1:-1]] for line in lines[2:]]
    checks = runpy.run_path(str(CHECKS))
    assert [row[0] for row in rows] == list(checks["CORPORA"]["corpus_app"])
    cell = re.compile(r"resolved \(\d+ binar(y|ies)\)|pure Python|no wheel of this version|missing: .+")
    assert all(cell.fullmatch(value) for row in rows for value in row[1:]), rows
