"""Entry script of `bazel run @rules_venvstacks//tools:import_venvstacks`, run as `python -I`.

As tools/bin/venvstacks_tool.py: `-I` keeps the host's PYTHONPATH and user site out, and this
puts back the tools folder of the runfiles (the importer's modules only) and the wheels named in
VENVSTACKS_TOOL_PATH (tomli, on Python 3.10).
"""

import os
import sys

_TOOLS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_EXTRA = [p for p in os.environ.get("VENVSTACKS_TOOL_PATH", "").split(os.pathsep) if p]
sys.path[0:0] = [_TOOLS_DIR, *(os.path.abspath(p) for p in _EXTRA)]

from venvstacks_maint.bazel_run import main  # noqa: E402  (needs the sys.path set above)

sys.exit(main(sys.argv[1:]))
