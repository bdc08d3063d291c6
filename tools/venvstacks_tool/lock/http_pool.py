"""Persistent HTTP and HTTPS connections for the lock phase's reads: one handshake per host, not per page.

`urllib.request.urlopen` opens (and for HTTPS, negotiates TLS on) a new connection for every
request. The routing index reads one upstream page per project, many at once when uv asks in
parallel, so `ConnectionPool` keeps the connections open instead: per (scheme, host, port), at
most `per_host` at a time (a thread wanting one more waits for a free one), each returned to the
pool once its response is read to the end and the server did not ask to close it.

What urllib did is kept: redirects are followed (PyPI may redirect a simple page to its
normalized name), a timeout applies to connecting and to each read, an HTTP error status is raised
as `urllib.error.HTTPError`. A kept connection the server closed while it was idle fails on its
next request; that request is sent once more on a fresh connection (GET only, so it is safe).
Responses in gzip (asked for with `Accept-Encoding: gzip`) are decoded. The `Authorization`
header is sent to the redirect target only when it is on the same host, as pip (requests) does.

What this module never sees: credentials in a URL (the caller turns them into the header first),
proxies and other schemes (`pooled` says no, and the caller keeps urllib's path, which honours
`https_proxy` and the like).
"""

from __future__ import annotations

import http.client
import io
import ssl
import threading
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable, Mapping

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_MAX_REDIRECTS = 10
_PER_HOST = 8
_USER_AGENT = "rules_venvstacks-lock"

# (scheme, host, port): connections are shared only between requests to the same one.
_Key = tuple[str, str, int]


def pooled(url: str) -> bool:
    """Whether `url` is read through the pool: http or https, with no proxy configured for it."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return False
    return parts.scheme not in urllib.request.getproxies() or bool(urllib.request.proxy_bypass(parts.hostname or ""))


def _key(url: str) -> _Key:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme, parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)


class Response:
    """A response being read, as urllib's: `read`, `geturl`, `headers`, `status`; a context manager.

    Closing it gives its connection back to the pool when the body was read to the end (else the
    connection is closed). With `Content-Encoding: gzip`, `read` returns the decoded bytes (with an
    `amount`, as many as the next `amount` bytes of the wire give).
    """

    def __init__(self, response: http.client.HTTPResponse, url: str, release: Callable[[bool], None]) -> None:
        self.status = response.status
        self.reason = response.reason
        self.headers = response.headers
        self._response = response
        self._url = url
        self._release: Callable[[bool], None] | None = release
        encoding = (response.getheader("Content-Encoding") or "").strip().lower()
        self._decoder = zlib.decompressobj(wbits=31) if encoding == "gzip" else None

    def geturl(self) -> str:
        """The URL answered, after redirects."""
        return self._url

    def read(self, amount: int = -1) -> bytes:
        """The next `amount` bytes of the body (all of the rest by default); b"" at its end."""
        raw = self._response.read() if amount < 0 else self._response.read(amount)
        if self._decoder is None:
            return raw
        if amount < 0:
            return self._decoder.decompress(raw) + self._decoder.flush()
        while raw:
            decoded = self._decoder.decompress(raw)
            if decoded:
                return decoded
            raw = self._response.read(amount)  # that chunk was gzip header or checksum only
        return self._decoder.flush()

    def close(self) -> None:
        """Give the connection back (or close it, when the body is not read through or the server closes it)."""
        if self._release is None:
            return
        release, self._release = self._release, None
        reusable = self._response.isclosed() and not self._response.will_close
        if not reusable:
            self._response.close()
        release(reusable)

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class ConnectionPool:
    """Kept-alive connections per (scheme, host, port), at most `per_host` in use or idle at once; thread-safe."""

    def __init__(self, per_host: int = _PER_HOST) -> None:
        self._per_host = per_host
        self._idle: dict[_Key, list[http.client.HTTPConnection]] = {}
        self._slots: dict[_Key, threading.BoundedSemaphore] = {}
        self._guard = threading.Lock()
        self._tls: ssl.SSLContext | None = None

    def open(self, url: str, headers: Mapping[str, str], timeout: float) -> Response:
        """GET `url` (no credentials in it) with `headers`, following redirects; an error status raises HTTPError."""
        headers = {"User-Agent": _USER_AGENT, **headers}
        for _ in range(_MAX_REDIRECTS + 1):
            response = self._get(url, headers, timeout)
            location = response.headers.get("Location")
            if response.status in _REDIRECTS and location:
                response.read()
                response.close()
                target = urllib.parse.urljoin(url, location)
                if urllib.parse.urlsplit(target).scheme not in ("http", "https"):
                    raise ValueError(f"redirected to {target}, which is not an http or https URL")
                if urllib.parse.urlsplit(target).hostname != urllib.parse.urlsplit(url).hostname:
                    headers = {key: value for key, value in headers.items() if key.lower() != "authorization"}
                url = target
                continue
            if response.status >= 400:
                body = response.read()
                response.close()
                raise urllib.error.HTTPError(url, response.status, response.reason, response.headers, io.BytesIO(body))
            return response
        raise ValueError(f"more than {_MAX_REDIRECTS} redirects")

    def preconnect(self, url: str, count: int, timeout: float) -> None:
        """Open up to `count` connections to `url`'s host now, in parallel, and keep them idle for its first requests.

        For a caller that knows where it will read before its first request (the routing index,
        while the resolver starts): the TCP and TLS handshakes are then done by the time the first
        pages are asked. Does nothing for a URL `pooled` refuses; a failure is left for a request
        to report.
        """
        if not pooled(url):
            return
        key = _key(url)
        slot = self._slot(key)
        with self._guard:
            wanted = count - len(self._idle.get(key, ()))
        threads = [threading.Thread(target=self._open_idle, args=(key, slot, timeout)) for _ in range(wanted)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def _slot(self, key: _Key) -> threading.BoundedSemaphore:
        """The semaphore that bounds the connections to `key` in use at once."""
        with self._guard:
            return self._slots.setdefault(key, threading.BoundedSemaphore(self._per_host))

    def _open_idle(self, key: _Key, slot: threading.BoundedSemaphore, timeout: float) -> None:
        if not slot.acquire(blocking=False):
            return  # the connections are all in use already: no need to open one more
        connection = self._connect(key, timeout)
        try:
            connection.connect()
        except OSError:
            connection.close()
            slot.release()
            return
        self._give_back(key, connection, True, slot)

    def _get(self, url: str, headers: Mapping[str, str], timeout: float) -> Response:
        key = _key(url)
        parts = urllib.parse.urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        slot = self._slot(key)
        if not slot.acquire(timeout=timeout):
            raise TimeoutError(f"no free connection to {key[1]} within {timeout} s")
        try:
            connection, reused = self._take(key, timeout)
            try:
                response = self._send(connection, target, headers, timeout)
            except ConnectionError:
                connection.close()
                if not reused:
                    raise
                # The server closed the kept connection while it was idle: once more on a new one.
                connection = self._connect(key, timeout)
                response = self._send(connection, target, headers, timeout)
        except BaseException:
            slot.release()
            raise
        return Response(response, url, lambda reusable: self._give_back(key, connection, reusable, slot))

    def _send(
        self, connection: http.client.HTTPConnection, target: str, headers: Mapping[str, str], timeout: float
    ) -> http.client.HTTPResponse:
        try:
            connection.timeout = timeout
            if connection.sock is not None:
                connection.sock.settimeout(timeout)
            connection.request("GET", target, headers=dict(headers))
            return connection.getresponse()
        except BaseException:
            connection.close()
            raise

    def _take(self, key: _Key, timeout: float) -> tuple[http.client.HTTPConnection, bool]:
        """An idle connection to `key` (reused: True), else a new one."""
        with self._guard:
            idle = self._idle.get(key)
            if idle:
                return idle.pop(), True
        return self._connect(key, timeout), False

    def _connect(self, key: _Key, timeout: float) -> http.client.HTTPConnection:
        scheme, host, port = key
        if scheme == "http":
            return http.client.HTTPConnection(host, port, timeout=timeout)
        with self._guard:
            if self._tls is None:  # loading the CA store takes a while: once, when first needed
                self._tls = ssl.create_default_context()
            tls = self._tls
        return http.client.HTTPSConnection(host, port, timeout=timeout, context=tls)

    def _give_back(
        self, key: _Key, connection: http.client.HTTPConnection, reusable: bool, slot: threading.BoundedSemaphore
    ) -> None:
        if reusable:
            with self._guard:
                self._idle.setdefault(key, []).append(connection)
        else:
            connection.close()
        slot.release()


# The lock tool's one pool: a lock run's reads share its connections.
shared = ConnectionPool()
