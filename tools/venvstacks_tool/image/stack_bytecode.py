"""The bytecode of a post-installed stacking module, so that a container writes no `__pycache__` at start.

A layer archive holds no bytecode of `_venvstacks_stack.py` (post-install may rewrite it, see
build/layer.py); in a deploy the interpreter writes it on its first start. An image layer is
final, so `image-layer` compiles it: in a fresh interpreter (`python -I -S -B`, hash seed 0 from
the tool's environment), as the build compiles every other module, so the bytes depend only on
the source; as a checked-hash pyc, valid whatever the file's mtime; with the module's path in
the image as its `co_filename`, as the interpreter itself would have compiled it.

The tool runs on the execution platform's CPython of the layer's X.Y (docs/platforms.md), whose
bytecode is the target's; a layer of another X.Y gets no pyc (it is still correct, only not
precompiled).
"""

from __future__ import annotations

import sys
from pathlib import Path

from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.core.process import output_tail, run_captured

_COMPILE_SCRIPT = """\
import py_compile, sys
py_compile.compile(
    sys.argv[1], cfile=sys.argv[2], dfile=sys.argv[3], doraise=True,
    invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH,
)
"""


def cache_name(module: str, py_version: str) -> str | None:
    """`module`'s pyc name in `__pycache__` (`NAME.cpython-311.pyc`).

    None when the tool's CPython is not of `py_version`'s X.Y.
    """
    if py_version.split(".")[:2] != [str(part) for part in sys.version_info[:2]]:
        return None
    return f"{module}.{sys.implementation.cache_tag}.pyc"


def compile_module(source: bytes, image_path: str, scratch: Path) -> bytes:
    """The checked-hash pyc of `source`, compiled as the file `image_path` of the image."""
    source_file, pyc_file = scratch / "stack_module.py", scratch / "stack_module.pyc"
    source_file.write_bytes(source)
    result = run_captured(
        [sys.executable, "-I", "-S", "-B", "-c", _COMPILE_SCRIPT, str(source_file), str(pyc_file), image_path]
    )
    if result.returncode != 0:
        raise VenvstacksError(
            f"cannot compile the stacking module {image_path!r}: {output_tail(result.stdout + result.stderr)}"
        )
    return pyc_file.read_bytes()
