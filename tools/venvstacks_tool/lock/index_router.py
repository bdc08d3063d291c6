"""The routing simple index: one index on 127.0.0.1 that answers each project from its assigned index.

Neither `uv pip compile` nor pip can pin a project to one index from the command line, so while
a layer with named indexes is locked (`routed`), the resolvers get one index, this one, which
answers `/simple/<project>/` as `NamedIndexes.route` says: from the project's named index only,
else the first priority index that has it, else the layer's own indexes merged. Its pages are
PEP 503 HTML whatever the upstream spoke (PEP 503 or PEP 691 JSON), with every file URL made
absolute on the real index, so the lock records the real URL of each wheel, and its hash,
`Requires-Python`, yanked and PEP 658 metadata attributes kept.

The router speaks HTTP/1.1 with keep-alive to the resolver, and reads upstream through
`simple_index`'s kept-alive connections (`http_pool`, the first few opened as the router starts),
so routing costs a page no new connection on either side.

The pages are read by `simple_index`, the lock phase's one reader (credentials: an upstream
URL's `user:password@`, or a netrc entry for its host, authenticates the reading and stays on the
absolute file URLs of that host so the resolvers can read metadata there); `resolve` strips it
from what it records, and every message of this module names URLs without it.
"""

from __future__ import annotations

import html
import http.server
import threading
import urllib.parse
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.core.project_names import normalize_name
from venvstacks_tool.lock.http_pool import shared as shared_pool
from venvstacks_tool.lock.index_options import IndexOptions
from venvstacks_tool.lock.named_indexes import NamedIndexes
from venvstacks_tool.lock.simple_index import IndexFile, fetch_project
from venvstacks_tool.lock.urls import strip_credentials

# Connections opened to each upstream index as the router starts: uv's first wave of pages asks
# for every direct requirement at once.
_PRECONNECT = 4


def render_page(project: str, files: Sequence[IndexFile]) -> bytes:
    """A PEP 503 page listing `files`, sorted by name."""
    anchors = []
    for file in sorted(files, key=lambda file: (file.name, file.url)):
        attributes = "".join(f' {key}="{html.escape(value)}"' for key, value in file.attributes)
        anchors.append(f'<a href="{html.escape(file.url)}"{attributes}>{html.escape(file.name)}</a><br>\n')
    title = html.escape(f"Links for {project}")
    head = f"<!DOCTYPE html>\n<html><head><title>{title}</title></head><body>\n"
    return (head + "".join(anchors) + "</body></html>\n").encode()


@dataclass(frozen=True)
class Router:
    """What the routing index answers: the named indexes and the layer's own index URLs, in order.

    Each upstream page is fetched once per lock run (`pages`): the resolver asks again for every
    target platform, and the upstream answers the same within one run.
    """

    named: NamedIndexes
    layer_urls: tuple[str, ...]
    pages: dict[tuple[str, str], list[IndexFile] | None] = field(default_factory=dict, compare=False)
    # One lock per page: uv asks for a page once per platform, in parallel, and the first asker
    # fetches it while the others wait for its answer.
    page_locks: dict[tuple[str, str], threading.Lock] = field(default_factory=dict, compare=False)
    locks_guard: threading.Lock = field(default_factory=threading.Lock, compare=False)

    def _fetch(self, url: str, project: str) -> list[IndexFile] | None:
        key = (url, project)
        with self.locks_guard:
            page_lock = self.page_locks.setdefault(key, threading.Lock())
        with page_lock:
            if key not in self.pages:
                self.pages[key] = fetch_project(url, project)
        return self.pages[key]

    def files(self, project: str) -> list[IndexFile] | None:
        """The files served for `project`, from the first route that has it; None when none has it."""
        for route in self.named.route(project, self.layer_urls):
            found = [self._fetch(url, project) for url in route.urls]
            listed = [files for files in found if files is not None]
            if not listed:
                continue
            if route.first_only:
                return listed[0]
            return [file for files in listed for file in files]
        return None

    def describe(self) -> str:
        """Where the routing index looks, for messages (no credentials)."""
        parts = [f"'{project}' from '{name}' only" for project, name in self.named.packages]
        parts += [f"priority index '{name}'" for name in self.named.priority]
        used = sorted({name for _, name in self.named.packages} | set(self.named.priority))
        places = [f"{name} = {strip_credentials(self.named.url_of(name))}" for name in used]
        layer = ", ".join(strip_credentials(url) for url in self.layer_urls)
        return f"the routing index: {'; '.join(parts)} ({', '.join(places)}); else {layer}"


def _handler(router: Router, errors: list[str]) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        # HTTP/1.1: uv and pip keep their connection to the router for every page (each answer
        # carries its Content-Length), rather than a new one per request as with HTTP/1.0.
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes: without this, on a kept connection the body
        # waits for the client's delayed ACK of the headers (Nagle), some 40 ms a page.
        disable_nagle_algorithm = True

        def do_GET(self) -> None:
            parts = [part for part in urllib.parse.urlsplit(self.path).path.split("/") if part]
            if len(parts) == 1 and parts[0] == "simple":
                self._send(200, render_page("the routing index", []))
                return
            if len(parts) != 2 or parts[0] != "simple":
                self._send(404, b"")
                return
            project = normalize_name(urllib.parse.unquote(parts[1]))
            try:
                files = router.files(project)
            except VenvstacksError as error:
                errors.append(f"'{project}': {error}")
                self._send(502, str(error).encode())
                return
            if files is None:
                self._send(404, b"")
            else:
                self._send(200, render_page(project, files))

        def _send(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            # Never cached: a later layer's router may get this port with other routes.
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@contextmanager
def routed(layer: str, named: NamedIndexes, index: IndexOptions) -> Iterator[IndexOptions]:
    """`index` as the resolvers should see it while locking: the routing index when `named` routes anything.

    Without package or priority indexes, `index` is yielded as is. Otherwise a routing index runs
    on 127.0.0.1 until the block ends, and the options yielded name it as the only index (the
    find-links stay). An upstream that fails is reported after the block, naming the layer and
    the project, with no credentials.
    """
    if not named:
        yield index
        return
    router = Router(named, (index.index_url, *index.extra_index_urls))
    # The upstream handshakes happen while the resolver starts, not on its first pages.
    hosts = {urllib.parse.urlsplit(strip_credentials(url)) for url in (*router.layer_urls, *named.all_urls())}
    upstream = sorted({f"{parts.scheme}://{parts.netloc}/" for parts in hosts})
    warm = [
        threading.Thread(target=shared_pool.preconnect, args=(url, _PRECONNECT, 10), daemon=True) for url in upstream
    ]
    for thread in warm:
        thread.start()
    errors: list[str] = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(router, errors))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/simple"
        # pip wants plain-http hosts trusted: the router's, and those of the files it lists.
        trusted = replace(index, extra_index_urls=(*index.extra_index_urls, *named.all_urls())).all_trusted_hosts()
        try:
            yield replace(index, index_url=url, extra_index_urls=(), trusted_hosts=tuple(trusted))
        except VenvstacksError as error:
            if errors:
                raise VenvstacksError(f"layer '{layer}': the routing index could not read {errors[0]}") from error
            # The resolvers name the index they were given: name the real ones instead.
            raise VenvstacksError(str(error).replace(url, router.describe())) from error
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
