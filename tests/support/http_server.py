"""A real HTTP file server on 127.0.0.1, in a background thread, for tests and the example."""

from __future__ import annotations

import base64
import functools
import gzip
import http.server
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
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


@dataclass
class Visits:
    """What a `keepalive_handler` server saw: connections opened, and each request's path and headers, in order."""

    connections: int = 0
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    guard: threading.Lock = field(default_factory=threading.Lock)

    def paths(self) -> list[str]:
        """The paths asked, in order."""
        return [path for path, _ in self.requests]


def keepalive_handler(
    pages: Mapping[str, bytes],
    visits: Visits,
    *,
    redirects: Mapping[str, str] | None = None,
    basic_auth: tuple[str, str] | None = None,
    idle_timeout: float | None = None,
    delay: float = 0.0,
) -> Callable[..., http.server.BaseHTTPRequestHandler]:
    """An HTTP/1.1 handler that keeps connections open, as PyPI's CDN does, and records them in `visits`.

    `pages`: {path: HTML body}; any other path is a 404. `redirects`: {path: Location} answered
    301. `basic_auth` (user, secret): anything else is a 401. `idle_timeout`: the server closes a
    connection idle that long. `delay`: seconds each answer waits (to overlap requests). Bodies
    are sent gzipped when the request accepts gzip.
    """
    expected = "Basic " + base64.b64encode(":".join(basic_auth).encode()).decode() if basic_auth else ""

    class Handler(_QuietHandler):  # its do_GET replaced: it serves `pages`, no directory
        protocol_version = "HTTP/1.1"
        timeout = idle_timeout

        def setup(self) -> None:
            super().setup()
            with visits.guard:
                visits.connections += 1

        def do_GET(self) -> None:
            with visits.guard:
                visits.requests.append((self.path, dict(self.headers.items())))
            time.sleep(delay)
            if expected and self.headers.get("Authorization") != expected:
                self._answer(401, b"", {"WWW-Authenticate": 'Basic realm="index"'})
            elif redirects and self.path in redirects:
                self._answer(301, b"", {"Location": redirects[self.path]})
            elif self.path in pages:
                self._answer(200, pages[self.path], {"Content-Type": "text/html"})
            else:
                self._answer(404, b"", {})

        def _answer(self, status: int, body: bytes, headers: Mapping[str, str]) -> None:
            if "gzip" in self.headers.get("Accept-Encoding", "") and body:
                body, headers = gzip.compress(body, mtime=0), {**headers, "Content-Encoding": "gzip"}
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler
