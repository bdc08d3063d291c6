"""A real HTTP file server on 127.0.0.1, in a background thread, for tests and the example."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def serve(handler: Callable[..., http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serves requests with `handler` on 127.0.0.1 (a free port) in a thread; yields the base URL.

    The short poll interval lets `shutdown()` return at once (the default, 0.5 s, is paid by every test).
    """
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@contextmanager
def serve_directory(directory: Path) -> Iterator[str]:
    """Serves `directory` over HTTP on 127.0.0.1 (a free port); yields the base URL."""
    with serve(functools.partial(_QuietHandler, directory=str(directory))) as url:
        yield url
