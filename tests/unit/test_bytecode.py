"""Tests of venvstacks_tool.bytecode: chunked, background compilation whose bytes never depend on timing."""

from __future__ import annotations

import importlib.util
import marshal
import os
import sys
from pathlib import Path

import pytest

from venvstacks_tool.build import bytecode
from venvstacks_tool.build.bytecode import BytecodeCompiler

ENV = {"PYTHONHASHSEED": "0", "PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def _sources(root: Path, count: int) -> list[Path]:
    paths = []
    for i in range(count):
        path = root / "pkg" / f"mod{i:03}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"VALUE = {i}\nNAMES = ['a', 'b', {i!r}]\n")
        paths.append(path)
    return paths


def _pycs(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.pyc"))}


def test_pycs_do_not_depend_on_the_worker_count(tmp_path: Path) -> None:
    results = []
    for workers in (1, 3):
        root = tmp_path / f"workers{workers}"
        sources = _sources(root, 9)
        (root / "work").mkdir()
        with BytecodeCompiler(root, root / "work", ENV, "fw", workers=workers) as compiler:
            compiler.submit(sources[:4])
            compiler.submit(sources[4:])
            assert compiler.finish() == []
        results.append(_pycs(root))
    assert results[0] == results[1]
    assert len(results[0]) == 9


def test_chunks_are_cut_from_each_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Sorted within the batch, then cut: the list files the compilers read say which file went where."""
    monkeypatch.setattr(bytecode, "COMPILE_CHUNK", 2)
    sources = _sources(tmp_path, 5)
    work = tmp_path / "work"
    work.mkdir()
    with BytecodeCompiler(tmp_path, work, ENV, "fw") as compiler:
        compiler.submit(reversed(sources))
        compiler.finish()
    chunks = [(work / f"compile-{i}.txt").read_text().split() for i in range(3)]
    assert chunks == [["pkg/mod000.py", "pkg/mod001.py"], ["pkg/mod002.py", "pkg/mod003.py"], ["pkg/mod004.py"]]
    assert not (work / "compile-3.txt").exists()


def test_an_invalidated_source_is_compiled_again_from_its_final_bytes(tmp_path: Path) -> None:
    (source,) = _sources(tmp_path, 1)
    (tmp_path / "work").mkdir()
    with BytecodeCompiler(tmp_path, tmp_path / "work", ENV, "fw") as compiler:
        compiler.submit([source])
        source.write_text("VALUE = 'replaced'\n")
        compiler.invalidate([source])
        assert compiler.finish() == []
    pyc = Path(importlib.util.cache_from_source(str(source)))
    namespace: dict[str, object] = {}
    exec(compile_from_pyc(pyc), namespace)
    assert namespace["VALUE"] == "replaced"


def test_a_source_that_does_not_compile_is_reported(tmp_path: Path) -> None:
    good, bad = _sources(tmp_path, 2)
    bad.write_text("print 'python 2'\n")
    (tmp_path / "work").mkdir()
    with BytecodeCompiler(tmp_path, tmp_path / "work", ENV, "fw") as compiler:
        compiler.submit([good, bad])
        assert compiler.finish() == [os.path.relpath(bad, tmp_path)]
    assert Path(importlib.util.cache_from_source(str(good))).exists()
    assert not Path(importlib.util.cache_from_source(str(bad))).exists()


def compile_from_pyc(pyc: Path) -> object:
    data = pyc.read_bytes()
    assert data[:4] == importlib.util.MAGIC_NUMBER, sys.version
    return marshal.loads(data[16:])
