"""docs/compatibility.md's table is the full corpus' output: one row per package of CORPORA, in its layer."""

from __future__ import annotations

import re
import runpy

from venvstacks_testing.bazel_workspace import CHECKOUT

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
