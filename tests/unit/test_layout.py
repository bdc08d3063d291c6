"""The tool's floor plan holds: each phase imports only the ground floor (`core`) and itself.

A Bazel action's inputs are `core` and its phase's package (globs in tools/BUILD.bazel), so an
import outside them would pass every unit test and fail only inside a sandboxed action. This test
fails first. See docs/architecture.md.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

from venvstacks_tool.core import cli

TOOLS = Path(__file__).resolve().parents[2] / "tools"
PACKAGE = TOOLS / "venvstacks_tool"
MAINT = TOOLS / "venvstacks_maint"
ARCHITECTURE = TOOLS.parent / "docs" / "architecture.md"
PHASES = ("build", "lock", "deploy", "image")
# What may be imported from outside the standard library, per floor: the wheels the phase's
# targets put on sys.path (rules_venvstacks/private/fetch/tool_wheels.json: zstandard and
# installer for every target, pip and its friends for the lock targets only).
THIRD_PARTY = {
    "core": {"zstandard"},
    "build": {"zstandard", "installer"},
    "deploy": {"zstandard"},
    "image": {"zstandard"},
    "lock": {"zstandard", "installer", "pip", "packaging", "tomli"},
}
# The binary parsers (tool_wheels.json's role "loader") are on the loader check's path alone, and
# only this module imports them.
LOADER_MODULE = "venvstacks_tool.build.binaries"
LOADER_THIRD_PARTY = {"elftools", "macholib", "pefile"}
# pyproject-hooks (tool_wheels.json's role "sdist") is on the path of the sdist build action alone.
SDIST_MODULE = "venvstacks_tool.build.sdist_build"
SDIST_THIRD_PARTY = {"pyproject_hooks"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(TOOLS).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module `path` imports, at any depth (imports inside functions count: they run in actions)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def _floor(module: str) -> str:
    """'core', a phase name, or 'top' for the package's own `__init__`/`__main__`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in (*PHASES, "core")) else "top"


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _own_imports(module: str) -> set[str]:
    """The package's own modules that `module` imports (a `from pkg import name` counts as the module)."""
    result = set()
    for name in _imports(MODULES[module]):
        if name.startswith("venvstacks_tool") and name in MODULES:
            result.add(name)
        elif name.startswith("venvstacks_tool") and name.rpartition(".")[0] in MODULES:
            result.add(name.rpartition(".")[0])
    return result - {module}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_each_floor_imports_only_core_and_itself(module: str) -> None:
    floor = _floor(module)
    allowed = {"core", floor} if floor != "top" else {"core", "top"}
    for imported in _own_imports(module):
        assert _floor(imported) in allowed, f"{module} ({floor}) imports {imported} ({_floor(imported)})"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_third_party_imports_are_on_the_phase_path(module: str) -> None:
    floor = _floor(module)
    allowed = set().union(*THIRD_PARTY.values()) if floor == "top" else THIRD_PARTY[floor]
    if module == LOADER_MODULE:
        allowed = allowed | LOADER_THIRD_PARTY
    if module == SDIST_MODULE:
        allowed = allowed | SDIST_THIRD_PARTY
    stdlib = set(sys.stdlib_module_names) | {"tomllib", "__future__"}
    for imported in _imports(MODULES[module]):
        top = imported.partition(".")[0]
        if top in ("venvstacks_tool",) or top in stdlib:
            continue
        assert top in allowed, f"{module} imports {imported}, which the {floor} targets do not carry"


def test_no_import_cycles() -> None:
    graph = {module: _own_imports(module) for module in MODULES}
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            cycle = [*path[path.index(module) :], module]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if module in done:
            return
        for imported in sorted(graph.get(module, ())):
            visit(imported, [*path, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])


def test_subcommands_live_in_their_phase() -> None:
    for subcommand, target in cli.SUBCOMMANDS.items():
        module, _, function = target.partition(":")
        assert module in MODULES, f"{subcommand}: {module} does not exist"
        assert _floor(module) in PHASES, f"{subcommand}: {module} is not in a phase package"
        source = MODULES[module].read_text(encoding="utf-8")
        assert f"def {function or 'main'}(" in source, f"{subcommand}: no {function or 'main'} in {module}"


def _filegroup_sources(build_file: str, name: str) -> list[str]:
    """The quoted source files of filegroup `name` in tools/BUILD.bazel (its glob-free list)."""
    block = build_file.split(f'name = "{name}"', 1)[1].split("\n)", 1)[0]
    return re.findall(r'^\s+"([\w/]+\.py)",$', block, flags=re.MULTILINE)


def test_maintainer_tools_are_outside_the_action_package() -> None:
    """No action's inputs hold the maintainer tools: only the importer's `bazel run` target names them."""
    assert not list(PACKAGE.rglob("pbs_table.py")) and not list(PACKAGE.rglob("archive_diff.py"))
    build_file = (TOOLS / "BUILD.bazel").read_text(encoding="utf-8")
    importer = _filegroup_sources(build_file, "import_venvstacks_sources")
    outside = build_file.split('name = "import_venvstacks_sources"', 1)[0]
    assert "venvstacks_maint/" not in outside, "a maintainer tool in a phase's inputs"
    assert importer and all(not path.startswith("venvstacks_maint/") or path in importer for path in importer)


def test_the_importers_runfiles_hold_every_module_it_imports() -> None:
    """What `bazel run //tools:import_venvstacks` imports, from its entry down, is in its filegroup (or `core`)."""
    listed = set(_filegroup_sources((TOOLS / "BUILD.bazel").read_text(encoding="utf-8"), "import_venvstacks_sources"))
    # `_CORE` of tools/BUILD.bazel: the package's own files and `core/`.
    core = {path.relative_to(TOOLS).as_posix() for path in [*PACKAGE.glob("*.py"), *(PACKAGE / "core").glob("*.py")]}
    modules = {_module_name(path): path for path in TOOLS.rglob("*.py") if "bin" not in path.parts}
    todo, seen = ["venvstacks_maint.bazel_run"], set()
    while todo:
        module = todo.pop()
        if module in seen or module not in modules:
            continue
        seen.add(module)
        package = module.rpartition(".")[0]
        for name in (module, package) if package in modules else (module,):
            path = modules[name].relative_to(TOOLS).as_posix()
            assert path in listed | core, f"{path} is not in the importer's runfiles"
        todo += sorted(_imports(modules[module]))
    assert "venvstacks_maint.import_venvstacks" in seen and "venvstacks_tool.lock.pylock" in seen


def _documented_modules() -> dict[str, set[str]]:
    """{folder: the words of its entry} from docs/architecture.md's map of the tool's floors.

    The map is the fenced block under "## The tool's floors": a line's first word names a folder
    (`core/`, `tools/venvstacks_maint/`) and opens its entry; lines indented under the entry's
    text continue it. Words in parentheses describe a module; they do not name one.
    """
    text = ARCHITECTURE.read_text(encoding="utf-8")
    block = text.split("## The tool's floors", 1)[1].split("```", 2)[1]
    entries: dict[str, set[str]] = {}
    folder = ""
    for line in block.strip("\n").splitlines():
        if not line.startswith(" " * 8):
            folder = line.split()[0].removeprefix("tools/").rstrip("/")
        entries.setdefault(folder, set()).update(re.findall(r"\w+", re.sub(r"\([^)]*\)", "", line)))
    return entries


def _module_folders() -> list[tuple[str, str]]:
    """(folder as the map names it, module) for every module of the tool's phases and the maintainer tools."""
    found = [(path.parent.name, path.stem) for path in sorted(PACKAGE.glob("*/*.py"))]
    found += [("venvstacks_maint", path.stem) for path in sorted(MAINT.glob("*.py"))]
    return [(folder, module) for folder, module in found if not module.startswith("__")]


@pytest.mark.parametrize(("folder", "module"), _module_folders())
def test_architecture_map_names_every_module(folder: str, module: str) -> None:
    entries = _documented_modules()
    assert folder in entries, f"docs/architecture.md's map of the tool's floors has no entry for {folder}/"
    assert module in entries[folder], f"docs/architecture.md's map does not name {folder}/{module}.py"
