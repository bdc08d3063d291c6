"""Python project names as PEP 503 compares them: one rule for the lock, the resolver and the build."""

from __future__ import annotations

import re

_SEPARATORS = re.compile(r"[-_.]+")


def normalize_name(name: str) -> str:
    """The PEP 503 normalized form of a project name (`Foo_Bar.baz` -> `foo-bar-baz`)."""
    return _SEPARATORS.sub("-", name).lower()
