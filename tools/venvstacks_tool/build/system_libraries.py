"""What each target platform gives the dynamic loader without any layer: its system set.

The facts are data, in `system_libraries.json` beside this module (its `comment` says where they
come from): the manylinux policy's libraries with the oldest glibc that allows each, the install
name prefixes of macOS' own libraries and frameworks, and Windows' system and API-set DLLs.

One choice is this project's: the manylinux policy also allows X11, OpenGL and GLib (`desktop`
in the data), since desktop distributions ship them, but servers and slim container images do not
(opencv-python's `libGL.so.1` is the famous case). Those are not counted as provided: a layer
that needs one is told so, and names it in `allowed_libraries` when its targets have it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from venvstacks_tool.core.platforms import TargetPlatform

DATA_FILE = Path(__file__).with_name("system_libraries.json")


@cache
def _data() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DATA_FILE.read_text(encoding="utf-8"))
    return loaded


def _version(text: str) -> tuple[int, int]:
    major, _, minor = text.partition(".")
    return int(major), int(minor)


@dataclass(frozen=True)
class SystemLibraries:
    """One target's system set: library names (casefolded on Windows) and install-name prefixes."""

    os: str
    names: frozenset[str]
    prefixes: tuple[str, ...]  # macOS: absolute install-name prefixes; Windows: API-set name prefixes
    desktop: frozenset[str]  # Linux: allowed by the policy, absent from servers (see the module doc)

    def provides(self, name: str) -> bool:
        """Whether the target's loader finds `name` (a soname, an absolute install name, a DLL name) by itself."""
        if self.os == "windows":
            name = name.casefold()
        return name in self.names or any(name.startswith(prefix) for prefix in self.prefixes)

    def note(self, name: str) -> str:
        """Why a library that is not in the set may still be on some targets ('' when nothing is known)."""
        if name in self.desktop:
            return (
                "the manylinux policy allows it for desktop distributions, but servers and slim container images"
                " do not have it"
            )
        return ""


def system_libraries(platform: TargetPlatform, glibc: tuple[int, int] | None = None) -> SystemLibraries:
    """The system set of `platform`; on Linux, the manylinux policy of `glibc` (default: the runtime's floor)."""
    data = _data()
    if platform.os == "linux":
        linux = data["linux"]
        floor = glibc or platform.glibc_minimum or (2, 17)
        names = {name for name, since in linux["libraries"].items() if _version(since) <= floor}
        names.add(linux["loaders"][platform.machine])
        return SystemLibraries("linux", frozenset(names), (), frozenset(linux["desktop"]))
    if platform.os == "macos":
        return SystemLibraries("macos", frozenset(), tuple(data["macos"]["prefixes"]), frozenset())
    windows = data["windows"]
    return SystemLibraries("windows", frozenset(windows["dlls"]), tuple(windows["api_set_prefixes"]), frozenset())
