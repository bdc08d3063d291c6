"""The corpus probe: imports each package of the corpus and makes one real call (see checks.py)."""

import sys

# The modules that exist before the probe imports anything: what the layers' `.pth` files made.
PRELOADED = frozenset(sys.modules)
