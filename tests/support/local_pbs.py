"""The host's CPython in PBS layout for the tests: `venvstacks_maint local-runtime`'s archive.

The logic is the maintainer tool's (tools/venvstacks_maint/local_runtime.py), which users run to
declare a local runtime where GitHub is unreachable; the tests use the same archive.
"""

from venvstacks_maint.local_runtime import LocalRuntime, make_local_runtime

__all__ = ["LocalRuntime", "make_local_runtime"]
