"""The routing simple index: one index on 127.0.0.1 that answers each project from its assigned index.

Neither `uv pip compile` nor pip can pin a project to one index from the command line, so while
a layer with named indexes is locked (`routed`), the resolvers get one index, this one, which
answers `/simple/<project>/` as `NamedIndexes.route` says: from the project's named index only,
else the first priority index that has it, else the layer's own indexes merged. Its pages are
PEP 503 HTML whatever the upstream spoke (PEP 503 or PEP 691 JSON), with every file URL made
absolute on the real index, so the lock records the real URL of each wheel, and its hash,
`Requires-Python`, yanked and PEP 658 metadata attributes kept.

Credentials: an upstream URL's `user:password@` is sent as a basic-auth header (or a netrc entry
for the host, as pip and uv read one), and kept on the absolute file URLs of that host so the
resolvers can read metadata there; `resolve` strips it from what it records, and every message
of this module names URLs without it.
"""

from __future__ import annotations

import base64
import html
import html.parser
import http.server
import json
import netrc
import os
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.core.project_names import normalize_name
from venvstacks_tool.lock.index_options import IndexOptions
from venvstacks_tool.lock.named_indexes import NamedIndexes
from venvstacks_tool.lock.urls import strip_credentials

_JSON = "application/vnd.pypi.simple.v1+json"
_TIMEOUT = 60


@dataclass(frozen=True)
class IndexFile:
    """One file of a project page: its absolute URL (with `#sha256=`) and the PEP 503 attributes to pass on."""

    name: str
    url: str
    attributes: tuple[tuple[str, str], ...]


class _Anchors(html.parser.HTMLParser):
    """The `<a>` elements of a PEP 503 page: (href, attributes)."""

    def __init__(self) -> None:
        super().__init__()
        self.anchors: list[tuple[str, dict[str, str]]] = []
        self._open: tuple[str, dict[str, str]] | None = None
        self._text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            values = {key: value or "" for key, value in attrs}
            self._open, self._text = (values.pop("href", ""), values), ""

    def handle_data(self, data: str) -> None:
        self._text += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._open is not None:
            self.anchors.append(self._open)
            self._open = None


# The PEP 503/658/714 anchor attributes a resolver reads; anything else is dropped.
_KEPT = ("data-requires-python", "data-yanked", "data-core-metadata", "data-dist-info-metadata", "data-gpg-sig")


def _file_name(url: str) -> str:
    return urllib.parse.unquote(urllib.parse.urlsplit(url).path.rpartition("/")[2])


def _with_credentials(url: str, index_url: str) -> str:
    """`url` with `index_url`'s `user:password@` when both are on one host (the resolver must authenticate there)."""
    index = urllib.parse.urlsplit(index_url)
    target = urllib.parse.urlsplit(url)
    if "@" not in index.netloc or "@" in target.netloc or target.hostname != index.hostname:
        return url
    return urllib.parse.urlunsplit(target._replace(netloc=index.netloc))


def parse_html(page: str, page_url: str, index_url: str) -> list[IndexFile]:
    """The files of a PEP 503 page fetched from `page_url` (credentials stripped), their URLs made absolute."""
    parser = _Anchors()
    parser.feed(page)
    files = []
    for href, attributes in parser.anchors:
        if not href:
            continue
        url = _with_credentials(urllib.parse.urljoin(page_url, html.unescape(href)), index_url)
        kept = tuple(sorted((key, value) for key, value in attributes.items() if key in _KEPT))
        files.append(IndexFile(_file_name(url), url, kept))
    return files


def parse_json(page: Mapping[str, Any], page_url: str, index_url: str) -> list[IndexFile]:
    """The files of a PEP 691 JSON page, as `parse_html` gives them."""
    files = []
    for entry in page.get("files", []):
        url = urllib.parse.urljoin(page_url, str(entry["url"]))
        url = _with_credentials(url.partition("#")[0], index_url)
        sha256 = entry.get("hashes", {}).get("sha256")
        if sha256:
            url += "#sha256=" + sha256
        attributes: dict[str, str] = {}
        if entry.get("requires-python"):
            attributes["data-requires-python"] = str(entry["requires-python"])
        yanked = entry.get("yanked", False)
        if yanked:
            attributes["data-yanked"] = "" if yanked is True else str(yanked)
        metadata = entry.get("core-metadata", entry.get("dist-info-metadata"))
        if metadata:
            value = "true" if metadata is True else ",".join(f"{k}={v}" for k, v in sorted(dict(metadata).items()))
            attributes["data-core-metadata"] = attributes["data-dist-info-metadata"] = value
        files.append(IndexFile(str(entry["filename"]), url, tuple(sorted(attributes.items()))))
    return files


def render_page(project: str, files: Sequence[IndexFile]) -> bytes:
    """A PEP 503 page listing `files`, sorted by name."""
    anchors = []
    for file in sorted(files, key=lambda file: (file.name, file.url)):
        attributes = "".join(f' {key}="{html.escape(value)}"' for key, value in file.attributes)
        anchors.append(f'<a href="{html.escape(file.url)}"{attributes}>{html.escape(file.name)}</a><br>\n')
    title = html.escape(f"Links for {project}")
    head = f"<!DOCTYPE html>\n<html><head><title>{title}</title></head><body>\n"
    return (head + "".join(anchors) + "</body></html>\n").encode()


def _authorization(url: str) -> tuple[str, str | None]:
    """`url` without credentials, and the basic-auth header of its `user:password@` or of a netrc entry for its host."""
    parts = urllib.parse.urlsplit(url)
    user = password = None
    if "@" in parts.netloc:
        user, password = urllib.parse.unquote(parts.username or ""), urllib.parse.unquote(parts.password or "")
    elif parts.hostname:
        try:
            entry = netrc.netrc(os.environ.get("NETRC")).authenticators(parts.hostname)
        except (OSError, netrc.NetrcParseError):
            entry = None
        if entry is not None:
            user, password = entry[0], entry[2] or ""
    if user is None:
        return strip_credentials(url), None
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return strip_credentials(url), "Basic " + token


def fetch_project(index_url: str, project: str) -> list[IndexFile] | None:
    """The files `index_url` lists for `project`; None when the index has no such project (404)."""
    page_url = index_url.rstrip("/") + f"/{project}/"
    bare, header = _authorization(page_url)
    request = urllib.request.Request(bare, headers={"Accept": f"{_JSON}, text/html;q=0.1"})
    if header:
        request.add_header("Authorization", header)
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT) as response:
            body = response.read()
            final = strip_credentials(response.geturl())
            kind = response.headers.get_content_type()
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return None
        raise VenvstacksError(f"cannot read {bare}: HTTP {error.code} {error.reason}") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise VenvstacksError(f"cannot read {bare}: {reason}") from None
    if kind == _JSON:
        return parse_json(json.loads(body), final, index_url)
    return parse_html(body.decode("utf-8", "replace"), final, index_url)


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
