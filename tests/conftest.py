"""Makes `tests/support` importable as `support`, and the tool package as `venvstacks_tool`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
