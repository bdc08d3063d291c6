"""Bytecode for a runtime layer's standard library, built deterministically when the archive lacks it.

Without `.pyc` files next to the stdlib (a PBS archive may ship few; a deployment may be
read-only, or run with PYTHONDONTWRITEBYTECODE), every start of every layer's interpreter
compiles the modules it imports again: measured, that made deployed applications start 1.1x to
1.4x slower than venvstacks' (whose post-install compiles the runtime). The runtime layer ships
them instead, compiled like a layer's own (`bytecode.BytecodeCompiler`: unchecked-hash pycs,
relative `co_filename`, fixed partition of sorted files), so the archive stays byte-reproducible.
Bytecode depends only on the Python X.Y, so the execution platform's interpreter compiles the
target's stdlib.
"""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path, PurePosixPath

from venvstacks_tool.build.bytecode import BytecodeCompiler, compiler_environment
from venvstacks_tool.core.archive import ArchiveEntry

# Left without bytecode: never imported by applications, and a third of the stdlib's sources.
_SKIPPED_DIRS = frozenset({"site-packages", "test", "tests", "idle_test", "__pycache__"})


def _cached(name: str) -> str:
    """The pyc an import of `name` (a relative `.py` path) looks for, for this interpreter's X.Y."""
    return PurePosixPath(importlib.util.cache_from_source(name)).as_posix()


def _wanted(entry: ArchiveEntry, lib_dir: str) -> bool:
    parts = PurePosixPath(entry.name).parts
    prefix = PurePosixPath(lib_dir).parts
    return (
        entry.kind == "file"
        and entry.name.endswith(".py")
        and parts[: len(prefix)] == prefix
        and not _SKIPPED_DIRS.intersection(parts[len(prefix) : -1])
    )


def stdlib_bytecode(entries: list[ArchiveEntry], lib_dir: str, layer: str, mtime: int) -> list[ArchiveEntry]:
    """The pyc entries missing for the stdlib sources under `lib_dir` (e.g. `cpython/lib/python3.12`).

    Sources that do not compile (test data with deliberate syntax errors) get none, as with
    compileall. A source with a pyc already in `entries` is left as it is.
    """
    names = {entry.name for entry in entries}
    sources = [e for e in entries if _wanted(e, lib_dir) and _cached(e.name) not in names]
    if not sources:
        return []
    with tempfile.TemporaryDirectory(prefix=f".{layer}.stdlib-") as scratch_name:
        scratch = Path(scratch_name)
        tmp = scratch / "tmp"
        tmp.mkdir()
        tree = scratch / "tree"
        for entry in sources:
            path = tree.joinpath(*PurePosixPath(entry.name).parts)
            path.parent.mkdir(parents=True, exist_ok=True)
            assert entry.data is not None  # read_tar_entries holds file contents in memory
            path.write_bytes(entry.data)
        with BytecodeCompiler(tree, tmp, compiler_environment(tmp, mtime), layer) as compiler:
            compiler.submit(tree.joinpath(*PurePosixPath(e.name).parts) for e in sources)
            compiler.finish()
        result = []
        for entry in sources:
            pyc = tree.joinpath(*PurePosixPath(_cached(entry.name)).parts)
            if pyc.is_file():
                result.append(ArchiveEntry(_cached(entry.name), "file", 0o644, data=pyc.read_bytes()))
    return result
