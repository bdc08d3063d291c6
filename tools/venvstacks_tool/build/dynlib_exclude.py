"""`dynlib_exclude`: glob patterns that keep shared libraries out of a layer's `share/venv/dynlib`.

venvstacks' semantics (its docs/file-formats.rst, `dynlib_exclude`): each pattern is a path glob
matched against the *end* of a library's full path, at a `/` boundary; `*` and `?` match within
one path component, `**` as a whole component matches any number of components, `[...]` a set of
characters, and wildcards match names starting with a dot too. So `libfoo.so` excludes every
`libfoo.so`, `torch/lib/*.so` the ones in `torch/lib`, and `**/libcuda*.so` any `libcuda*.so`.

The path matched here is the library's path below the layer root with a leading `/`
(`/lib/python3.12/site-packages/pkg.libs/libfoo.so`): the part of venvstacks' build-time path
that does not depend on where a build ran. The tool runs on Python 3.11 and newer, before
`glob.translate` (3.13), so the translation is written here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from venvstacks_tool.core.errors import VenvstacksError

_ANY_COMPONENTS = "(?:[^/]*/)*"  # `**/`: zero or more whole components


def pattern_problem(pattern: str) -> str:
    """Why `pattern` is not a usable `dynlib_exclude` pattern, or "" when it is one.

    Stated once per language: rules_venvstacks/private/build/dynlib_exclude.bzl checks the same at
    analysis, with the same words.
    """
    if not pattern:
        return "is empty"
    if pattern.startswith("/"):
        return "starts with '/' (patterns match the end of a path: drop the leading '/')"
    if "\\" in pattern:
        return "holds a '\\' (use '/' between path components)"
    return ""


def _component(text: str) -> str:
    """The regex of one path component's glob (no `/` in `text`)."""
    out = []
    i = 0
    while i < len(text):
        char = text[i]
        i += 1
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            # As fnmatch: a leading `!` negates, and a `]` first in the set is a member.
            start = i + 1 if text[i : i + 1] == "!" else i
            end = text.find("]", start + 1 if text[start : start + 1] == "]" else start)
            if end < 0:
                out.append(re.escape(char))  # an unclosed `[` is itself
                continue
            body = text[i:end]
            i = end + 1
            negate = body.startswith("!")
            members = (body[1:] if negate else body).replace("\\", "\\\\").replace("^", "\\^").replace("[", "\\[")
            out.append(f"[^/{members}]" if negate else f"[{members}]")
        else:
            out.append(re.escape(char))
    return "".join(out)


def translate(pattern: str) -> re.Pattern[str]:
    """The compiled regex of `pattern`, to be searched in `/`-prefixed paths (anchored at their end)."""
    components = pattern.split("/")
    parts = []
    for index, component in enumerate(components):
        last = index == len(components) - 1
        if component == "**":
            parts.append(".*" if last else _ANY_COMPONENTS)
        else:
            parts.append(_component(component) + ("" if last else "/"))
    return re.compile("/" + "".join(parts) + r"\Z", re.DOTALL)


@dataclass(frozen=True)
class DynlibExclusions:
    """A layer's `dynlib_exclude` patterns, compiled; `excludes(path)` says whether one matches."""

    patterns: tuple[str, ...] = ()
    compiled: tuple[re.Pattern[str], ...] = ()

    def excludes(self, relative_path: str) -> bool:
        """Whether a library at `relative_path` (below the layer root, `/`-separated) is excluded."""
        target = "/" + relative_path
        return any(regex.search(target) for regex in self.compiled)


def compile_exclusions(patterns: Sequence[str], layer: str) -> DynlibExclusions:
    """Check and compile `patterns`; a bad one is a VenvstacksError naming the layer and the pattern."""
    for pattern in patterns:
        problem = pattern_problem(pattern)
        if problem:
            raise VenvstacksError(f"layer {layer!r}: dynlib_exclude pattern {pattern!r} {problem}")
    return DynlibExclusions(tuple(patterns), tuple(translate(pattern) for pattern in patterns))
