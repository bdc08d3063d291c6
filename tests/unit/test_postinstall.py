"""Tests of the layer post-installation script (venvstacks_tool/core/postinstall_template.py)."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from venvstacks_tool.core import postinstall_template
from venvstacks_tool.core.postinstall_template import PostInstallError

TEMPLATE = Path(postinstall_template.__file__)
SITE = "lib/python3.12/site-packages"


def make_stack(dest: Path, *, lowers: tuple[str, ...] = ("fw_a", "fw_b"), layer: str = "app") -> Path:
    """A deploy directory with a runtime, lower framework layers and `layer`, unfinished."""
    runtime = dest / "rt"
    (runtime / "bin").mkdir(parents=True)
    (runtime / "bin/python3").write_text("not run by these tests")
    (runtime / SITE).mkdir(parents=True)
    for lower in lowers:
        (dest / lower / SITE).mkdir(parents=True)
    config = {
        "base_python": "../rt/bin/python3",
        "dynlib_dirs": [],
        "kind": "application",
        "launch_module": "myapp",
        "layer_name": layer,
        "lower_layers": list(lowers),
        "py_version": "3.12.7",
        "pylib_dirs": [*(f"../{lower}/{SITE}" for lower in lowers), f"../rt/{SITE}"],
        "python": "bin/python",
        "runtime_name": "rt",
        "site_dir": SITE,
    }
    return make_layer(dest / layer, config)


def make_layer(layer_dir: Path, config: dict[str, Any]) -> Path:
    (layer_dir / "share/venv/metadata").mkdir(parents=True)
    (layer_dir / postinstall_template.LAYER_CONFIG_PATH).write_text(json.dumps(config))
    shutil.copyfile(TEMPLATE, layer_dir / "postinstall.py")
    return layer_dir


def tree(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): None if p.is_dir() else p.read_bytes() for p in sorted(root.rglob("*"))}


def test_writes_pyvenv_cfg_and_stack_pth(tmp_path: Path) -> None:
    layer = make_stack(tmp_path)
    written = postinstall_template.run(str(layer))
    assert written == [str(layer / "pyvenv.cfg"), str(layer / SITE / "_venvstacks_stack.pth")]
    assert (layer / "pyvenv.cfg").read_text() == (
        f"home = {tmp_path / 'rt/bin'}\n"
        "include-system-site-packages = false\n"
        "version = 3.12.7\n"
        f"executable = {tmp_path / 'rt/bin/python3'}\n"
    )
    lines = (layer / SITE / "_venvstacks_stack.pth").read_text().splitlines()
    assert lines[0].startswith("#")
    assert lines[1:] == [f"../../../../fw_a/{SITE}", f"../../../../fw_b/{SITE}", f"../../../../rt/{SITE}"]
    # Each line, resolved the way `site` resolves .pth lines, is the lower layer's site-packages.
    for line, lower in zip(lines[1:], ["fw_a", "fw_b", "rt"], strict=True):
        assert os.path.normpath(layer / SITE / line) == str(tmp_path / lower / SITE)


def test_is_idempotent(tmp_path: Path) -> None:
    layer = make_stack(tmp_path)
    postinstall_template.run(str(layer))
    before = tree(tmp_path)
    stamps = {p: p.stat().st_mtime_ns for p in (layer / "pyvenv.cfg", layer / SITE / "_venvstacks_stack.pth")}
    assert postinstall_template.run(str(layer)) == []
    assert tree(tmp_path) == before
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


def test_rewrites_a_stale_pyvenv_cfg_after_a_move(tmp_path: Path) -> None:
    layer = make_stack(tmp_path / "old")
    postinstall_template.run(str(layer))
    shutil.move(tmp_path / "old", tmp_path / "new")
    moved = tmp_path / "new" / "app"
    assert postinstall_template.run(str(moved)) == [str(moved / "pyvenv.cfg")]
    assert f"home = {tmp_path / 'new/rt/bin'}\n" in (moved / "pyvenv.cfg").read_text()


def test_runtime_layer_is_left_alone(tmp_path: Path) -> None:
    config = {"base_python": "bin/python3", "python": "bin/python3", "kind": "runtime", "layer_name": "rt"}
    layer = make_layer(tmp_path / "rt", config)
    before = tree(tmp_path)
    assert postinstall_template.run(str(layer)) == []
    assert tree(tmp_path) == before


def test_missing_runtime(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    layer = make_stack(tmp_path)
    (tmp_path / "rt/bin/python3").unlink()
    with pytest.raises(PostInstallError, match="deploy the runtime layer 'rt'"):
        postinstall_template.run(str(layer))
    assert postinstall_template.main([str(layer)]) == 1
    assert capsys.readouterr().err.startswith("postinstall: error: the runtime interpreter")
    assert not (layer / "pyvenv.cfg").exists()


def test_missing_lower_layer(tmp_path: Path) -> None:
    layer = make_stack(tmp_path)
    shutil.rmtree(tmp_path / "fw_b")
    with pytest.raises(PostInstallError, match=r"the lower layer '.*fw_b' does not exist: deploy that layer first"):
        postinstall_template.run(str(layer))


def test_runtime_without_site_packages(tmp_path: Path) -> None:
    """A runtime may have no site-packages directory: the stack still finishes (site skips it)."""
    layer = make_stack(tmp_path)
    shutil.rmtree(tmp_path / "rt/lib")
    postinstall_template.run(str(layer))
    assert (layer / "pyvenv.cfg").is_file()


@pytest.mark.parametrize("content", ["{not json", "[]", json.dumps({"python": "bin/python"})])
def test_bad_config(tmp_path: Path, content: str) -> None:
    layer = make_stack(tmp_path)
    (layer / postinstall_template.LAYER_CONFIG_PATH).write_text(content)
    with pytest.raises(PostInstallError, match="the layer config"):
        postinstall_template.run(str(layer))


def test_runs_as_a_script_from_anywhere(tmp_path: Path) -> None:
    """As deploy runs it: `<runtime python> <layer>/postinstall.py`, here with a relative path."""
    layer = make_stack(tmp_path / "dest")
    result = subprocess.run(
        [sys.executable, "-I", os.path.relpath(layer / "postinstall.py", tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert (layer / "pyvenv.cfg").read_text().startswith(f"home = {tmp_path / 'dest/rt/bin'}\n")
    assert (layer / SITE / "_venvstacks_stack.pth").is_file()


def test_template_uses_the_standard_library_only() -> None:
    imported = set()
    for node in ast.walk(ast.parse(TEMPLATE.read_text())):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert imported
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}


def test_template_compiles_on_python_3_10_syntax() -> None:
    ast.parse(TEMPLATE.read_text(), feature_version=(3, 10))
