"""The rule reference renderer (docs/gen/render_rule_docs.py), imported by path for its tests."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from venvstacks_testing.bazel_workspace import CHECKOUT

RENDERER = CHECKOUT / "docs" / "gen" / "render_rule_docs.py"


def load_renderer() -> ModuleType:
    """Imports the renderer by path (docs/gen is not a package)."""
    spec = importlib.util.spec_from_file_location("render_rule_docs", RENDERER)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    # dataclasses look the module up in sys.modules while the class bodies run.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
