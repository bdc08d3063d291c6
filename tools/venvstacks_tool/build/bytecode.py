"""Deterministic, parallel bytecode compilation that can run while files are still being installed.

Each batch of sources (one wheel's, say) is cut into chunks of `COMPILE_CHUNK` sorted paths, and
each chunk is compiled by a fresh interpreter (`python -S -B`, hash seed 0, at a lower CPU
priority than the process that installs what it compiles) in a worker thread's child process.
A chunk's bytes depend only on its list of files and their contents, never on the CPU count or
on which chunks ran before it, because the partition comes from the batch alone.

A source may change after its chunk was sent (a later wheel replaces a file of an earlier one, as
pip allows). `invalidate` marks such paths; `finish` waits for every chunk, then compiles each
chunk that held one again, so the result is always that of the final files.
"""

from __future__ import annotations

import concurrent.futures
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.core.process import output_tail, run_captured

# Sources per compiling interpreter: large enough that start-up (~15 ms) is noise, small enough
# that one wheel's sources spread over every core and the last chunks end close together.
COMPILE_CHUNK = 200
# Run by `python -S -B -c` with a relative list file, from the base directory: `co_filename` is
# the relative path, so no absolute path reaches a pyc. A file that does not compile (Python 2
# leftovers in some wheels) gets no pyc and is printed, so it can be counted.
_COMPILE_SCRIPT = """\
import sys
del sys.path[0]
import importlib.util, os, py_compile, warnings
if hasattr(os, "nice"):
    os.nice(10)  # the installer feeding us goes first; we take the rest of the CPU
warnings.simplefilter("ignore")
with open(sys.argv[1], encoding="utf-8") as f:
    sources = f.read().splitlines()
for source in sources:
    try:
        py_compile.compile(
            source,
            cfile=importlib.util.cache_from_source(source),
            dfile=source,
            doraise=True,
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        )
    except Exception:
        print(source)
"""


class BytecodeCompiler:
    """Compiles batches of sources under `base` into unchecked-hash pycs, in the background.

    Use as a context manager; `submit` batches as they become ready, then `finish` once.
    """

    def __init__(
        self, base: Path, work_dir: Path, env: Mapping[str, str], layer: str, workers: int | None = None
    ) -> None:
        self._base = base  # cwd of the compilers: sources are given relative to it
        self._work_dir = work_dir  # where the chunk list files go
        self._env = dict(env)
        self._layer = layer
        self._chunks: list[list[str]] = []
        self._futures: list[concurrent.futures.Future[list[str]]] = []
        self._chunk_of: dict[str, int] = {}
        self._stale: set[int] = set()
        # One compiling process per core unless told otherwise; the pycs do not depend on it.
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers or max(1, os.cpu_count() or 1))

    def __enter__(self) -> BytecodeCompiler:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def submitted(self, path: Path) -> bool:
        """Whether `path` is in a batch already."""
        return os.path.relpath(path, self._base) in self._chunk_of

    def submit(self, sources: Iterable[Path]) -> None:
        """Compile `sources` (a batch; absolute paths under the base directory) in the background."""
        relative = sorted({os.path.relpath(path, self._base) for path in sources}, key=os.fsencode)
        for start in range(0, len(relative), COMPILE_CHUNK):
            index = len(self._chunks)
            chunk = relative[start : start + COMPILE_CHUNK]
            self._chunks.append(chunk)
            for source in chunk:
                self._chunk_of[source] = index
            self._futures.append(self._pool.submit(self._compile_chunk, index))

    def invalidate(self, paths: Iterable[Path]) -> None:
        """Note that `paths` were rewritten: their chunks compile again in `finish`."""
        for path in paths:
            index = self._chunk_of.get(os.path.relpath(path, self._base))
            if index is not None:
                self._stale.add(index)

    def finish(self) -> list[str]:
        """Wait for every chunk, compile stale chunks again; return the sources left without a pyc."""
        failures = {index: future.result() for index, future in enumerate(self._futures)}
        for index in sorted(self._stale):
            failures[index] = self._compile_chunk(index)
        self._stale.clear()
        # A source replaced by a later wheel is in two chunks: count it once.
        return sorted({name for names in failures.values() for name in names}, key=os.fsencode)

    def _compile_chunk(self, index: int) -> list[str]:
        list_file = self._work_dir / f"compile-{index}.txt"
        list_file.write_text("".join(source + "\n" for source in self._chunks[index]), encoding="utf-8")
        command = [sys.executable, "-S", "-B", "-X", "utf8", "-c", _COMPILE_SCRIPT, str(list_file)]
        result = run_captured(command, cwd=self._base, env=self._env)
        if result.returncode != 0:
            raise VenvstacksError(
                f"layer {self._layer!r}: compiling bytecode failed:\n{output_tail(result.stdout + result.stderr)}"
            )
        return result.stdout.splitlines()


def compiler_environment(tmp: Path, mtime: int) -> dict[str, str]:
    """A minimal environment for the compiling processes: nothing from the host but PATH (and Windows' SYSTEMROOT)."""
    env = {
        "HOME": str(tmp),
        "TMPDIR": str(tmp),
        "TEMP": str(tmp),
        "TMP": str(tmp),
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "SOURCE_DATE_EPOCH": str(mtime),
    }
    for name in ("PATH", "SYSTEMROOT"):
        if name in os.environ:
            env[name] = os.environ[name]
    return env
