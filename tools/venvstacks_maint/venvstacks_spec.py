"""A venvstacks stack specification (`venvstacks.toml`), read and checked as venvstacks 0.8 checks it.

What venvstacks itself refuses (its docs/file-formats.rst and its `stack_specs/error_*.toml`
tests) is refused here too, every problem listed, each naming the file and the layer: a layer
without a name, an unknown or forward-referenced runtime or framework (so no cycle), `runtime`
and `frameworks` both or neither, frameworks on different runtimes, an import order with no C3
linearization, a missing or clashing launch or support module, an unknown platform or a
platform the layers below do not build for, a bad `linux_target`, a requirement that is not a
PEP 508 specifier, an index name no `[[tool.uv.index]]` declares, and package index choices
that contradict the layers below without an `index_overrides` entry. What is valid there but
cannot be said in Bazel is import_venvstacks.py's business.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.lock.pylock import load_toml

# venvstacks' platform names (its docs/file-formats.rst, `platforms`).
VENVSTACKS_PLATFORMS = ("win_amd64", "win_arm64", "linux_x86_64", "linux_aarch64", "macosx_arm64", "macosx_x86_64")
KINDS = {"runtimes": "runtime", "frameworks": "framework", "applications": "application"}
_PYTHON_IMPLEMENTATION = re.compile(r"cpython@[0-9]+\.[0-9]+\.[0-9]+(?:(?:a|b|rc)[0-9]+)?")
_LINUX_TARGET = re.compile(r"glibc(?:@([0-9]+)\.([0-9]+))?")
_OP = r"(?:~=|===|==|!=|<=|>=|<|>)"
_VERSION = r"[A-Za-z0-9.*+!_-]+"
_CLAUSE = rf"\s*{_OP}\s*{_VERSION}\s*"
_REQUIREMENT = re.compile(
    rf"\s*[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?\s*(?:\[[A-Za-z0-9._,\s-]*\])?\s*"
    rf"(?:\(?(?:{_CLAUSE})(?:,{_CLAUSE})*\)?|@\s*\S+)?\s*(?:;.*)?"
)


@dataclass(frozen=True)
class LayerSpec:
    """One `[[runtimes]]`, `[[frameworks]]` or `[[applications]]` table, as written."""

    kind: str
    name: str
    table: Mapping[str, Any]
    runtime: str  # the runtime it is on (inferred through `frameworks`); its own name for a runtime
    frameworks: tuple[str, ...] = ()  # as declared
    linearized: tuple[str, ...] = ()  # every framework below, in sys.path order (C3)
    platforms: tuple[str, ...] = VENVSTACKS_PLATFORMS
    package_indexes: Mapping[str, str] = field(default_factory=dict)  # with those inherited from below

    @property
    def python_implementation(self) -> str:
        """A runtime's `cpython@X.Y.Z` (`fully_versioned_name`, its name before venvstacks 0.2, too)."""
        return str(self.get("python_implementation") or self.get("fully_versioned_name") or "")

    def get(self, key: str, default: Any = None) -> Any:
        """The table's `key`."""
        return self.table.get(key, default)


@dataclass(frozen=True)
class StackSpec:
    """A checked stack: its layers in declaration order (runtimes, frameworks, applications)."""

    path: Path
    layers: tuple[LayerSpec, ...]
    indexes: Mapping[str, Mapping[str, Any]]  # `[[tool.uv.index]]` by name
    uv: Mapping[str, Any]  # the `[tool.uv]` table

    @property
    def directory(self) -> Path:
        """The folder relative paths (launch and support modules) start from."""
        return self.path.parent


def c3_linearize(declared: Sequence[str], below: Mapping[str, Sequence[str]]) -> list[str] | None:
    """The C3 linearization of the frameworks `declared`; None on a conflict.

    `below[name]` is framework `name`'s own linearization (the frameworks under it, in order),
    so each framework comes before those it sits on and the declared order is kept (venvstacks'
    order, Python's method resolution order).
    """
    sequences = [[name, *below[name]] for name in declared] + [list(declared)]
    result: list[str] = []
    while any(sequences):
        sequences = [seq for seq in sequences if seq]
        for seq in sequences:
            head = seq[0]
            if not any(head in other[1:] for other in sequences):
                break
        else:
            return None
        result.append(head)
        sequences = [seq[1:] if seq[0] == head else seq for seq in sequences]
    return result


def module_name(relative: str) -> str:
    """The module a launch or support module path provides: `launch_modules/app.py` -> `app`."""
    last = relative.rstrip("/").rpartition("/")[2]
    return last[:-3] if last.endswith(".py") else last


class _Checker:
    """Collects every problem of a spec, each naming the file and the layer."""

    def __init__(self, path: Path, data: Mapping[str, Any]) -> None:
        self.path = path
        self.data = data
        self.problems: list[str] = []
        tool_uv = data.get("tool", {}).get("uv", {})
        self.uv: Mapping[str, Any] = tool_uv if isinstance(tool_uv, dict) else {}
        self.indexes: dict[str, Mapping[str, Any]] = {
            str(index.get("name")): index for index in self.uv.get("index", []) if isinstance(index, dict)
        }
        self.layers: dict[str, LayerSpec] = {}

    def fail(self, where: str, message: str) -> None:
        self.problems.append(f"{self.path}: {where}: {message}")

    def check_common(self, where: str, table: Mapping[str, Any]) -> None:
        for requirement in table.get("requirements", []):
            if not isinstance(requirement, str) or not _REQUIREMENT.fullmatch(requirement):
                self.fail(where, f"requirement {requirement!r} is not a PEP 508 dependency specifier")
        for platform in table.get("platforms", []):
            if platform not in VENVSTACKS_PLATFORMS:
                self.fail(where, f"unknown platform {platform!r}; known: {', '.join(VENVSTACKS_PLATFORMS)}")
        target = table.get("linux_target")
        if target is not None and not (isinstance(target, str) and _LINUX_TARGET.fullmatch(target)):
            self.fail(where, f"linux_target {target!r} is not 'glibc' or 'glibc@X.Y'")
        for index in [*table.get("package_indexes", {}).values(), *table.get("priority_indexes", [])]:
            if index not in self.indexes:
                self.fail(where, f"index {index!r} is not declared in [[tool.uv.index]]")

    def lower_of(self, where: str, table: Mapping[str, Any]) -> tuple[str, tuple[str, ...]] | None:
        """(runtime, declared frameworks) of a framework or application, or None after a problem."""
        has_runtime, frameworks = "runtime" in table, tuple(table.get("frameworks", ()))
        if has_runtime == bool(frameworks):
            self.fail(where, "give exactly one of `runtime` and `frameworks`")
            return None
        if has_runtime:
            runtime = self.layers.get(table["runtime"])
            if runtime is None or runtime.kind != "runtime":
                self.fail(where, f"unknown runtime {table['runtime']!r} (a layer must come after those it uses)")
                return None
            return runtime.name, ()
        runtimes = set()
        for name in frameworks:
            framework = self.layers.get(name)
            if framework is None or framework.kind != "framework":
                self.fail(where, f"unknown framework {name!r} (a layer must come after those it uses)")
                return None
            runtimes.add(framework.runtime)
        if len(runtimes) > 1:
            self.fail(where, f"its frameworks are on different runtimes ({', '.join(sorted(runtimes))})")
            return None
        return runtimes.pop(), frameworks

    def inherited_indexes(self, where: str, table: Mapping[str, Any], lower: Sequence[LayerSpec]) -> dict[str, str]:
        """The layer's package -> index choices with its lower layers', refusing contradictions."""
        overrides: Mapping[str, str] = table.get("index_overrides", {})
        merged: dict[str, tuple[str, str]] = {}
        for layer in [*lower, None]:
            choices = layer.package_indexes if layer else table.get("package_indexes", {})
            source = layer.name if layer else "the layer itself"
            for package, index in choices.items():
                key = re.sub(r"[-_.]+", "-", package).lower()
                seen = merged.get(key)
                if seen and overrides.get(seen[0], seen[0]) != overrides.get(index, index):
                    self.fail(
                        where,
                        f"package {package!r} comes from index {index!r} ({source}) and"
                        f" {seen[0]!r} ({seen[1]}); add an index_overrides entry if that is intended",
                    )
                merged.setdefault(key, (index, source))
        return {package: index for package, (index, _) in merged.items()}

    def check_modules(self, where: str, table: Mapping[str, Any]) -> None:
        if "launch_module" not in table:
            self.fail(where, "an application needs a `launch_module`")
            return
        names: dict[str, str] = {}
        for relative in [table["launch_module"], *table.get("support_modules", [])]:
            if not (self.path.parent / relative).exists():
                self.fail(where, f"module {relative!r} does not exist (relative to {self.path.parent})")
            name = module_name(relative)
            if name in names:
                self.fail(where, f"modules {names[name]!r} and {relative!r} are both named {name!r}")
            names[name] = relative

    def add(self, kind: str, index: int, table: Any) -> None:
        where = f"{kind} #{index + 1}"
        if not isinstance(table, dict) or not isinstance(table.get("name"), str) or not table["name"]:
            self.fail(where, "a layer needs a `name`")
            return
        name = table["name"]
        where = f"{KINDS[kind]} layer {name!r}"
        if name in self.layers:
            self.fail(where, "declared twice")
            return
        self.check_common(where, table)
        if kind == "applications":
            self.check_modules(where, table)
        if kind == "runtimes":
            platforms = tuple(table.get("platforms", VENVSTACKS_PLATFORMS))
            indexes = self.inherited_indexes(where, table, [])
            runtime_spec = LayerSpec("runtime", name, table, name, platforms=platforms, package_indexes=indexes)
            if not _PYTHON_IMPLEMENTATION.fullmatch(runtime_spec.python_implementation):
                self.fail(where, "`python_implementation` must be cpython@X.Y.Z (a CPython of python-build-standalone)")
            self.layers[name] = runtime_spec
            return
        lower = self.lower_of(where, table)
        if lower is None:
            return
        runtime, frameworks = lower
        below = {f: self.layers[f].linearized for f in frameworks}
        linearized = c3_linearize(frameworks, below)
        if linearized is None:
            self.fail(where, f"frameworks {list(frameworks)} have no consistent import order (C3 linearization)")
            return
        stack = [self.layers[runtime], *(self.layers[f] for f in linearized)]
        allowed = set.intersection(*(set(layer.platforms) for layer in stack))
        platforms = tuple(table.get("platforms", [p for p in VENVSTACKS_PLATFORMS if p in allowed]))
        for platform in platforms:
            if platform not in allowed:
                self.fail(where, f"platform {platform!r} is not built by the layers below it")
        indexes = self.inherited_indexes(where, table, stack)
        spec = LayerSpec(KINDS[kind], name, table, runtime, frameworks, tuple(linearized), platforms, indexes)
        self.layers[name] = spec


def read_stack_spec(path: Path) -> StackSpec:
    """Read and check `path`; a VenvstacksError lists every problem venvstacks would refuse."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise VenvstacksError(f"{path}: cannot read the stack specification: {error}") from error
    checker = _Checker(path, load_toml(text, str(path)))
    for kind in KINDS:
        for index, table in enumerate(checker.data.get(kind, [])):
            checker.add(kind, index, table)
    if checker.problems:
        raise VenvstacksError("invalid venvstacks stack specification:\n  " + "\n  ".join(checker.problems))
    return StackSpec(path, tuple(checker.layers.values()), checker.indexes, checker.uv)
