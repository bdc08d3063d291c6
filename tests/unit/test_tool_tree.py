"""Tests of `lock-tool-tree` (venvstacks_tool.lock.tool_tree): the `.lock` launchers' byte-compiled tool.

Built from the checkout's real lock-phase modules and a wheel made here; imported by a fresh
interpreter started as the launchers start it (`-I`, no bytecode written).
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from venvstacks_tool.core import cli

TOOLS = Path(__file__).resolve().parents[2] / "tools"


def _sources() -> list[str]:
    """`--source` arguments of the entry script, core and the lock phase, as lock_tool_tree gives them."""
    files = [TOOLS / "bin" / "venvstacks_tool.py", *sorted((TOOLS / "venvstacks_tool").glob("*.py"))]
    files += sorted((TOOLS / "venvstacks_tool" / "core").glob("*.py"))
    files += sorted((TOOLS / "venvstacks_tool" / "lock").glob("*.py"))
    return [f"--source={path.relative_to(TOOLS).as_posix()}={path}" for path in files]


def _wheel(directory: Path, members: dict[str, str]) -> Path:
    path = directory / "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    return path


def _tree(tmp_path: Path, name: str, wheel: Path) -> Path:
    output = tmp_path / name
    assert cli.main(["lock-tool-tree", "--output", str(output), *_sources(), "--wheel", str(wheel)]) == 0
    return output


def _files(tree: Path) -> dict[str, bytes]:
    return {path.relative_to(tree).as_posix(): path.read_bytes() for path in sorted(tree.rglob("*")) if path.is_file()}


def test_the_tree_is_deterministic_and_every_module_is_compiled(tmp_path: Path) -> None:
    wheel = _wheel(tmp_path, {"demo/__init__.py": "VALUE = 1\n", "demo-1.0.dist-info/METADATA": "Name: demo\n"})
    first, second = _tree(tmp_path, "one", wheel), _tree(tmp_path, "two", wheel)
    files = _files(first)
    assert files == _files(second), "the same inputs give the same bytes"
    tag = sys.implementation.cache_tag
    modules = [name for name in files if name.endswith(".py")]
    assert "bin/venvstacks_tool.py" in modules and "venvstacks_tool/lock/lock_stack.py" in modules
    assert "demo/__init__.py" in modules and "demo-1.0.dist-info/METADATA" in files
    for name in modules:
        directory, _, module = name.rpartition("/")
        pyc = files[f"{directory}/__pycache__/{module.removesuffix('.py')}.{tag}.pyc"]
        # PEP 552: flags 0b01, hash-based and never checked against the source (no timestamp).
        assert int.from_bytes(pyc[4:8], "little") == 0b01, name
        assert f"{directory}/{module}".encode() in pyc, "the code's file name is relative to the tree"


def test_the_launcher_imports_the_tool_and_the_wheels_compiled(tmp_path: Path) -> None:
    wheel = _wheel(tmp_path, {"demo/__init__.py": "VALUE = 1\n"})
    tree = _tree(tmp_path, "tree", wheel)
    script = (
        f"import sys; sys.path[0:0] = [{str(tree)!r}];"
        " import demo, venvstacks_tool.lock.lock_stack as m; print(demo.__cached__, m.__cached__)"
    )
    environ = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    command = [sys.executable, "-I", "-c", script]
    result = subprocess.run(command, capture_output=True, text=True, check=True, env=environ)
    for cached in result.stdout.split():
        assert Path(cached).is_file() and Path(cached).is_relative_to(tree), result.stdout
    help_text = subprocess.run(
        [sys.executable, "-I", str(tree / "bin" / "venvstacks_tool.py"), "lock-stack", "--help"],
        capture_output=True,
        text=True,
        check=True,
        env=environ,
    ).stdout
    assert "--plan" in help_text


@pytest.mark.parametrize(
    ("member", "message"),
    [("../escape.py", "is not a relative path inside the tree"), ("bin/venvstacks_tool.py", "already holds")],
)
def test_a_wheel_member_outside_the_tree_or_over_a_source_is_refused(
    tmp_path: Path, member: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    wheel = _wheel(tmp_path, {member: "x = 1\n"})
    output = tmp_path / "tree"
    assert cli.main(["lock-tool-tree", "--output", str(output), *_sources(), "--wheel", str(wheel)]) == 1
    assert message in capsys.readouterr().err
