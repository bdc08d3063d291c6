"""TCP ports on 127.0.0.1 for the servers the tests start (nginx, BuildGrid, PostgreSQL), and their start."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def accepts(port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:`port`."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def spawn_logged(command: Sequence[str | Path], log_path: Path, **popen_options: Any) -> subprocess.Popen[bytes]:
    """Start a server `command` in its own session, stdin closed, stdout and stderr appended to `log_path`.

    `popen_options` go to `subprocess.Popen` (cwd, user, group...). The log file is the child's
    alone once it has started: this process closes its copy.
    """
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            **popen_options,
        )


def wait_until_ready(
    process: subprocess.Popen[bytes],
    ready: Callable[[], bool],
    *,
    timeout: float,
    interval: float,
    exited: Callable[[int], Exception],
    timed_out: Callable[[], Exception],
) -> None:
    """Poll `ready()` every `interval` s until it holds.

    Raises `exited(status)` when the server `process` ends first, `timed_out()` after `timeout` s.
    """
    deadline = time.monotonic() + timeout
    while not ready():
        status = process.poll()
        if status is not None:
            raise exited(status)
        if time.monotonic() > deadline:
            raise timed_out()
        time.sleep(interval)
