"""Running a child process the one way the tool does: no stdin, text output captured, its tail for errors.

Also how a child pip is started (`build-layer` installs with it, `lock` picks wheels with it).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

# At most this many characters of a child's output go into an error message.
MAX_OUTPUT = 4000
# Prepends the tool's own sys.path (which holds pip) in the isolated child, then runs pip.
_PIP_BOOTSTRAP = (
    'import runpy, sys; sys.path[0:0] = {paths!r}; runpy.run_module("pip", run_name="__main__", alter_sys=True)'
)


def run_captured(
    command: Sequence[str], *, cwd: Path | str | None = None, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `command` to completion and return it; the caller checks `returncode`.

    Standard input is closed (a child that prompts fails instead of hanging the action); stdout
    and stderr are captured as UTF-8 text, undecodable bytes replaced, so any output can go into
    an error message.
    """
    return subprocess.run(
        list(command),
        cwd=cwd,
        env=None if env is None else dict(env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        check=False,
    )


def output_tail(text: str, limit: int = MAX_OUTPUT) -> str:
    """`text` stripped, cut to its last `limit` characters (marked with a leading `...`)."""
    text = text.strip()
    return text if len(text) <= limit else "..." + text[-limit:]


def pip_command(arguments: Sequence[str]) -> list[str]:
    """The command that runs pip's CLI with `arguments` in an isolated child of this interpreter.

    `-I` keeps the host's PYTHON* variables and user site out; the child finds pip on this
    process' `sys.path`, prepended explicitly. `-X utf8` makes its output UTF-8 on every host.
    """
    paths = [os.path.abspath(entry) for entry in sys.path if entry]
    return [sys.executable, "-I", "-X", "utf8", "-c", _PIP_BOOTSTRAP.format(paths=paths), *arguments]
