"""Running a child process the one way the tool does: no stdin, text output captured, its tail for errors."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

# At most this many characters of a child's output go into an error message.
MAX_OUTPUT = 4000


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
