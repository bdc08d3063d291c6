"""lock.http_pool: kept-alive connections to real HTTP/1.1 servers on 127.0.0.1, counted at the server.

The servers are `keepalive_handler`s (tests/support/http_server.py): they keep connections open
as PyPI's CDN does and record every connection and request, so each test checks what reached the
wire, not what the pool believes.
"""

from __future__ import annotations

import gzip
import threading
import urllib.error
from concurrent.futures import ThreadPoolExecutor

import pytest

from venvstacks_testing.http_server import Visits, keepalive_handler, serve
from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.lock.http_pool import ConnectionPool, pooled
from venvstacks_tool.lock.simple_index import fetch_project, open_url

PAGES = {f"/page/{number}": f"page {number}".encode() for number in range(10)}
USER, SECRET = "pooled", "s3cret-of-the-pooled-index"


def _read(pool: ConnectionPool, url: str, headers: dict[str, str] | None = None) -> bytes:
    with pool.open(url, headers or {}, timeout=10) as response:
        return response.read()


def test_pages_share_one_connection() -> None:
    visits = Visits()
    pool = ConnectionPool()
    with serve(keepalive_handler(PAGES, visits)) as base:
        bodies = [_read(pool, base + path) for path in PAGES]
    assert bodies == list(PAGES.values())
    assert (visits.connections, len(visits.requests)) == (1, len(PAGES))


def test_concurrent_fetches_are_bounded_and_their_connections_reused() -> None:
    visits = Visits()
    pool = ConnectionPool(per_host=3)
    paths = [f"/page/{number % 10}" for number in range(24)]
    with serve(keepalive_handler(PAGES, visits, delay=0.05)) as base, ThreadPoolExecutor(8) as threads:
        bodies = list(threads.map(lambda path: _read(pool, base + path), paths))
    assert bodies == [PAGES[path] for path in paths]
    # Eight threads asked at once; the pool opened no more than three connections, and kept them.
    assert visits.connections == 3 and len(visits.requests) == len(paths)


def test_preconnected_connections_serve_the_first_pages() -> None:
    visits = Visits()
    pool = ConnectionPool()
    first = list(PAGES)[:3]
    with serve(keepalive_handler(PAGES, visits, delay=0.05)) as base, ThreadPoolExecutor(3) as threads:
        pool.preconnect(base + "/", 3, timeout=10)
        pool.preconnect(base + "/", 3, timeout=10)  # three are idle already: none more
        bodies = list(threads.map(lambda path: _read(pool, base + path), first))
    assert bodies == [PAGES[path] for path in first]
    assert visits.connections == 3 and len(visits.requests) == 3


def test_a_connection_the_server_closed_while_idle_is_replaced_once() -> None:
    visits = Visits()
    pool = ConnectionPool()
    with serve(keepalive_handler(PAGES, visits, idle_timeout=0.1)) as base:
        assert _read(pool, base + "/page/1") == b"page 1"
        closed = threading.Event()
        closed.wait(0.5)  # the server closes the idle connection meanwhile
        assert _read(pool, base + "/page/2") == b"page 2"
        assert _read(pool, base + "/page/3") == b"page 3"
    # The second page was asked on the dead connection, then once more on a new one, kept for the third.
    assert visits.connections == 2 and visits.paths() == ["/page/1", "/page/2", "/page/3"]


def test_a_redirect_is_followed_and_credentials_stay_on_their_host() -> None:
    visits, elsewhere = Visits(), Visits()
    with serve(keepalive_handler(PAGES, elsewhere)) as other:
        # `localhost` is another host than 127.0.0.1 for the pool, as a CDN's would be.
        redirects = {"/simple/My_Project": "/page/1", "/moved": other.replace("127.0.0.1", "localhost") + "/page/2"}
        handler = keepalive_handler(PAGES, visits, redirects=redirects, basic_auth=(USER, SECRET))
        with serve(handler) as base:
            private = base.replace("http://", f"http://{USER}:{SECRET}@")
            with open_url(private + "/simple/My_Project") as response:
                assert (response.read(), response.geturl()) == (b"page 1", base + "/page/1")
            with open_url(private + "/moved") as response:
                assert response.read() == b"page 2"
    assert [headers.get("Authorization", "") for _, headers in visits.requests] == [
        "Basic cG9vbGVkOnMzY3JldC1vZi10aGUtcG9vbGVkLWluZGV4"
    ] * 3
    assert visits.connections == 1, "the redirect was followed on the same connection"
    assert "Authorization" not in elsewhere.requests[0][1], "never sent to another host"


def test_basic_auth_goes_through_the_pool_and_a_refusal_names_no_secret() -> None:
    visits = Visits()
    page = b'<a href="/files/x-1.0.tar.gz#sha256=' + b"ab" * 32 + b'">x-1.0.tar.gz</a>'
    handler = keepalive_handler({"/simple/x/": page}, visits, basic_auth=(USER, SECRET))
    with serve(handler) as base:
        private = base.replace("http://", f"http://{USER}:{SECRET}@") + "/simple"
        (sdist,) = fetch_project(private, "x") or []
        assert fetch_project(private, "x") is not None
        with pytest.raises(VenvstacksError) as refused:
            fetch_project(base.replace("http://", f"http://{USER}:wrong@") + "/simple", "x")
    assert sdist.bare_url == private.removesuffix("/simple") + "/files/x-1.0.tar.gz"
    assert str(refused.value) == f"cannot read {base}/simple/x/: HTTP 401 Unauthorized"
    assert visits.connections == 1 and len(visits.requests) == 3


def test_a_404_is_no_such_project_and_keeps_the_connection() -> None:
    visits = Visits()
    pool = ConnectionPool()
    with serve(keepalive_handler(PAGES, visits)) as base:
        with pytest.raises(urllib.error.HTTPError) as missing:
            _read(pool, base + "/simple/absent/")
        assert missing.value.code == 404
        assert _read(pool, base + "/page/0") == b"page 0"
        assert fetch_project(base + "/simple", "absent") is None
    assert visits.connections == 2, "this pool's connection, and the shared pool's"


def test_a_page_asked_in_gzip_is_read_decoded() -> None:
    visits = Visits()
    body = b"".join(b'<a href="/files/p-%d.0.tar.gz">p-%d.0.tar.gz</a>\n' % (n, n) for n in range(500))
    with serve(keepalive_handler({"/simple/p/": body}, visits)) as base:
        files = fetch_project(base + "/simple", "p") or []
        with ConnectionPool().open(base + "/simple/p/", {"Accept-Encoding": "gzip"}, timeout=10) as response:
            assert response.headers["Content-Encoding"] == "gzip"
            chunks = iter(lambda: response.read(64), b"")
            assert b"".join(chunks) == body
    assert len(files) == 500 and files[0].name == "p-0.0.tar.gz"
    assert visits.requests[0][1]["Accept-Encoding"] == "gzip"
    assert len(gzip.compress(body)) < len(body) // 4


def test_an_unreachable_host_fails_naming_the_url_without_credentials() -> None:
    with serve(keepalive_handler(PAGES, Visits())) as base:
        dead = base  # the port is closed once the server is gone
    with pytest.raises(VenvstacksError, match=rf"^cannot read {dead}/simple/x/: .*[Rr]efused") as caught:
        fetch_project(dead.replace("http://", f"http://{USER}:{SECRET}@") + "/simple", "x")
    assert SECRET not in str(caught.value)


def test_proxied_and_non_http_urls_keep_urllibs_path(monkeypatch: pytest.MonkeyPatch) -> None:
    assert pooled("https://pypi.org/simple/x/") and pooled("http://127.0.0.1:8080/simple/")
    assert not pooled("file:///srv/simple/x/")
    monkeypatch.setenv("https_proxy", "http://proxy.example:3128")
    monkeypatch.setenv("no_proxy", "internal.example")
    assert not pooled("https://pypi.org/simple/x/")
    assert pooled("https://internal.example/simple/x/") and pooled("http://127.0.0.1:8080/simple/")


def test_a_proxy_in_the_environment_is_used_through_urllib(monkeypatch: pytest.MonkeyPatch) -> None:
    visits = Visits()
    page = b'<a href="/files/x-1.0.tar.gz">x-1.0.tar.gz</a>'
    # A forward proxy is asked for the absolute URL: this one answers it itself.
    with serve(keepalive_handler({"http://index.example/simple/x/": page}, visits)) as proxy:
        for name in ("no_proxy", "NO_PROXY", "HTTP_PROXY"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("http_proxy", proxy)
        (sdist,) = fetch_project("http://index.example/simple", "x") or []
    assert sdist.bare_url == "http://index.example/files/x-1.0.tar.gz"
    assert visits.paths() == ["http://index.example/simple/x/"]


def test_a_timeout_names_the_url() -> None:
    with serve(keepalive_handler(PAGES, Visits(), delay=1.0)) as base, pytest.raises(VenvstacksError) as caught:
        open_url(base + "/page/1", timeout=0.2)
    assert str(caught.value) == f"cannot read {base}/page/1: timed out"
