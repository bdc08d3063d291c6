"""Runs every check of this application's corpus; one JSON line per package, exit status 1 if any failed.

The corpus is chosen by the application layer the interpreter belongs to (`ci_app` or
`corpus_app`), so `bazel test //stacks:<app>.test` runs the same checks as run_corpus.py.
"""

import json
import sys
from pathlib import Path

from corpus_probe.checks import CORPORA, run_check

app_layer = Path(sys.prefix)
corpus = CORPORA[app_layer.name]
failed = 0
for distribution, layer in corpus.items():
    row = run_check(distribution, layer, app_layer.parent)
    failed += not row["ok"]
    print(json.dumps({"corpus_row": row}), flush=True)
print(f"corpus_probe: {len(corpus) - failed} of {len(corpus)} packages passed in {app_layer.name}", flush=True)
sys.exit(1 if failed else 0)
