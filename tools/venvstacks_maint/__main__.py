"""`python -m venvstacks_maint SUBCOMMAND`: the maintainer tools (see the package docstring)."""

import sys

from venvstacks_tool.core.cli import dispatch

SUBCOMMANDS = {
    "diff-archives": "venvstacks_maint.archive_diff",
    "import-venvstacks": "venvstacks_maint.import_venvstacks",
    "local-runtime": "venvstacks_maint.local_runtime",
    "pbs-table": "venvstacks_maint.pbs_table",
    "release": "venvstacks_maint.release",
    "uv-wheels": "venvstacks_maint.uv_wheels",
}


def main(argv: list[str]) -> int:
    """Run the maintainer subcommand named by `argv[0]`."""
    return dispatch(argv, SUBCOMMANDS, "python -m venvstacks_maint")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
