"""A real HTTP file server on 127.0.0.1, in a background thread, for tests and the example."""

from __future__ import annotations

import base64
import functools
import http.server
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


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


def auth_handler(
    root: Path, user: str, secret: str, seen: list[str]
) -> Callable[..., http.server.BaseHTTPRequestHandler]:
    """A handler serving `root` only to requests with `user:secret` basic auth; records each Authorization header."""
    expected = "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()

    class Handler(_QuietHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(root), **kwargs)

        def do_GET(self) -> None:
            header = self.headers.get("Authorization", "")
            seen.append(header)
            if header != expected:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="index"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            super().do_GET()

        def do_HEAD(self) -> None:
            self.do_GET()

    return Handler
