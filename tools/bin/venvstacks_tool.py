"""Entry script that Bazel actions run as `python -I tools/bin/venvstacks_tool.py ...`.

`-I` keeps the host's environment (PYTHONPATH, user site-packages, the script's directory) out of
`sys.path`, so this script puts back exactly the tool package and the wheels named in
VENVSTACKS_TOOL_PATH (os.pathsep-separated, relative to the action's working directory).
"""

import os
import sys

_TOOLS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_EXTRA = [p for p in os.environ.get("VENVSTACKS_TOOL_PATH", "").split(os.pathsep) if p]
sys.path[0:0] = [_TOOLS_DIR, *(os.path.abspath(p) for p in _EXTRA)]

from venvstacks_tool.core.cli import main  # noqa: E402  (needs the sys.path set above)

sys.exit(main(sys.argv[1:]))
