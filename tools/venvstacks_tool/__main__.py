"""`python -m venvstacks_tool`: same as the `tools/bin/venvstacks_tool.py` entry script."""

import sys

from venvstacks_tool.core.cli import main

sys.exit(main(sys.argv[1:]))
