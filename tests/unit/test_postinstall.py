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


def lower_site_dirs(module: Path) -> list[str]:
    """The relative paths a stacking module holds in LOWER_SITE_DIRS."""
    for node in ast.parse(module.read_bytes()).body:
        if isinstance(node, ast.Assign) and [ast.unparse(t) for t in node.targets] == ["LOWER_SITE_DIRS"]:
            return list(ast.literal_eval(node.value))
    raise AssertionError(f"{module}: no LOWER_SITE_DIRS")


def test_writes_pyvenv_cfg_and_the_stacking_files(tmp_path: Path) -> None:
    layer = make_stack(tmp_path)
    written = postinstall_template.run(str(layer))
    assert written == [
        str(layer / "pyvenv.cfg"),
        str(layer / SITE / "_venvstacks_stack.py"),
        str(layer / SITE / "_venvstacks_stack.pth"),
    ]
    assert (layer / "pyvenv.cfg").read_text() == (
        f"home = {tmp_path / 'rt/bin'}\n"
        "include-system-site-packages = false\n"
        "version = 3.12.7\n"
        f"executable = {tmp_path / 'rt/bin/python3'}\n"
    )
    lines = (layer / SITE / "_venvstacks_stack.pth").read_text().splitlines()
    assert lines[0].startswith("#")
    assert lines[1:] == ["import _venvstacks_stack"]
    dirs = lower_site_dirs(layer / SITE / "_venvstacks_stack.py")
    assert dirs == [f"../../../../fw_a/{SITE}", f"../../../../fw_b/{SITE}", f"../../../../rt/{SITE}"]
    # Each, resolved against the module's directory, is the lower layer's site-packages.
    for relative, lower in zip(dirs, ["fw_a", "fw_b", "rt"], strict=True):
        assert os.path.normpath(layer / SITE / relative) == str(tmp_path / lower / SITE)
    # Nothing of the deploy directory is written into the stacking files.
    for name in ("_venvstacks_stack.py", "_venvstacks_stack.pth"):
        assert str(tmp_path) not in (layer / SITE / name).read_text()


def test_rewrites_old_stacking_files_and_drops_their_bytecode(tmp_path: Path) -> None:
    """A layer finished by an older post-install (path lines in the .pth) is brought up to date."""
    layer = make_stack(tmp_path)
    (layer / SITE).mkdir(parents=True)
    (layer / SITE / "_venvstacks_stack.pth").write_text(f"# old\n../../../../fw_a/{SITE}\n")
    (layer / SITE / "_venvstacks_stack.py").write_text("LOWER_SITE_DIRS = ()\n")
    (layer / SITE / "__pycache__").mkdir()
    stale = layer / SITE / "__pycache__" / f"_venvstacks_stack.{sys.implementation.cache_tag}.pyc"
    stale.write_bytes(b"stale")
    other = layer / SITE / "__pycache__" / f"other.{sys.implementation.cache_tag}.pyc"
    other.write_bytes(b"kept")
    postinstall_template.run(str(layer))
    assert (layer / SITE / "_venvstacks_stack.pth").read_text().splitlines()[1:] == ["import _venvstacks_stack"]
    assert len(lower_site_dirs(layer / SITE / "_venvstacks_stack.py")) == 3
    assert not stale.exists() and other.read_bytes() == b"kept"


def test_is_idempotent(tmp_path: Path) -> None:
    layer = make_stack(tmp_path)
    postinstall_template.run(str(layer))
    before = tree(tmp_path)
    stacking = (layer / SITE / "_venvstacks_stack.pth", layer / SITE / "_venvstacks_stack.py")
    stamps = {p: p.stat().st_mtime_ns for p in (layer / "pyvenv.cfg", *stacking)}
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
    """A runtime's postinstall.py (pack-runtime adds one, as venvstacks does) has nothing to finish."""
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
