"""Reading a simple index and a find-links entry: the one reader the lock phase has.

`fetch_project` reads one project's page of an index (PEP 691 JSON, else PEP 503 HTML) into
`IndexFile`s, every URL made absolute; `find_links_files` reads a find-links entry as pip does (a
local directory's files, or an HTML page of links). The routing index (`index_router`) serves
what it reads to the resolvers; `sdists` chooses a `build_from_sdist` package's sdist from it.

Pages are read over kept-alive connections (`http_pool`, gzip asked for), other URLs and
proxied ones through urllib (`open_url`).

Credentials: an index URL's `user:password@` is sent as a basic-auth header, or a netrc entry for
the host is (`$NETRC`, else `~/.netrc`, as pip and uv read one), never as part of the URL. The
absolute file URLs keep the index's `user:password@` when they are on its host, so that a
resolver given them can authenticate there; whoever records or prints a URL strips it first
(`urls.strip_credentials`), and every message of this module names URLs without it.
"""

from __future__ import annotations

import base64
import html
import html.parser
import http.client
import json
import netrc
import os
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.lock import http_pool
from venvstacks_tool.lock.urls import file_url_path, is_url, strip_credentials

# PEP 691: the JSON form of a simple index page, which carries every file's sha256 and yank.
_JSON = "application/vnd.pypi.simple.v1+json"
_TIMEOUT = 60

# The PEP 503/658/714 anchor attributes a resolver reads; anything else is dropped.
_KEPT = ("data-requires-python", "data-yanked", "data-core-metadata", "data-dist-info-metadata", "data-gpg-sig")


@dataclass(frozen=True)
class IndexFile:
    """One file of a project page: its absolute URL (with `#sha256=` when known) and the PEP 503 attributes kept."""

    name: str
    url: str
    attributes: tuple[tuple[str, str], ...]

    @property
    def bare_url(self) -> str:
        """The URL without its `#sha256=` fragment (credentials, if any, kept)."""
        return self.url.partition("#")[0]

    @property
    def sha256(self) -> str:
        """The sha256 the page gives (lowercase hex), or "" when it gives none."""
        algorithm, _, digest = self.url.partition("#")[2].partition("=")
        return digest.lower() if algorithm == "sha256" else ""

    @property
    def requires_python(self) -> str:
        """The file's `Requires-Python` ("" when the page gives none)."""
        return dict(self.attributes).get("data-requires-python", "")

    @property
    def yanked(self) -> bool:
        """Whether the page marks the file yanked (PEP 592)."""
        return "data-yanked" in dict(self.attributes)


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


def _file_name(url: str) -> str:
    return urllib.parse.unquote(urllib.parse.urlsplit(url).path.rpartition("/")[2])


def _absolute(page_url: str, url: str) -> str:
    """`url` made absolute against `page_url`; one already absolute as it is (PyPI's are: no parsing, which is slow)."""
    return url if url.startswith(("https://", "http://")) else urllib.parse.urljoin(page_url, url)


def _with_credentials(url: str, index_url: str) -> str:
    """`url` with `index_url`'s `user:password@` when both are on one host (the resolver must authenticate there)."""
    if "@" not in index_url:  # the common case, decided without parsing (a page may list thousands of files)
        return url
    index = urllib.parse.urlsplit(index_url)
    target = urllib.parse.urlsplit(url)
    if "@" not in index.netloc or "@" in target.netloc or target.hostname != index.hostname:
        return url
    return urllib.parse.urlunsplit(target._replace(netloc=index.netloc))


def with_credentials_of(url: str, index_urls: Sequence[str]) -> str:
    """`url` with the `user:password@` of the first of `index_urls` on its host (`url` itself when none has any).

    For a file URL that was recorded without credentials (a lock, a `LockedWheel`) and must be
    downloaded from a private index now.
    """
    for index_url in index_urls:
        authenticated = _with_credentials(url, index_url)
        if authenticated != url:
            return authenticated
    return url


def parse_html(page: str, page_url: str, index_url: str) -> list[IndexFile]:
    """The files of a PEP 503 page fetched from `page_url` (credentials stripped), their URLs made absolute."""
    parser = _Anchors()
    parser.feed(page)
    files = []
    for href, attributes in parser.anchors:
        if not href:
            continue
        url = _with_credentials(_absolute(page_url, html.unescape(href)), index_url)
        kept = tuple(sorted((key, value) for key, value in attributes.items() if key in _KEPT))
        files.append(IndexFile(_file_name(url), url, kept))
    return files


def parse_json(page: Mapping[str, Any], page_url: str, index_url: str) -> list[IndexFile]:
    """The files of a PEP 691 JSON page, as `parse_html` gives them."""
    files = []
    for entry in page.get("files", []):
        url = _absolute(page_url, str(entry["url"]))
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


def open_url(url: str, timeout: float = _TIMEOUT, accept: str = "", gzip: bool = False) -> Any:
    """Open `url` for reading, authenticated as `_authorization` says; errors name it without credentials.

    http and https go through the lock's connection pool (`http_pool.shared`: one kept-alive
    connection per host serves every page); `file:` URLs, and any URL when a proxy is configured
    for its scheme (`https_proxy`...), go through urllib as before. `gzip` asks for a compressed
    answer (the pool decodes it; urllib is not asked). An HTTP error status is raised as
    `urllib.error.HTTPError` (the caller decides what a 404 means); anything else that fails is a
    VenvstacksError.
    """
    bare, header = _authorization(url)
    headers = {"Accept": accept} if accept else {}
    if header:
        headers["Authorization"] = header
    try:
        if http_pool.pooled(bare):
            return http_pool.shared.open(bare, {**headers, "Accept-Encoding": "gzip"} if gzip else headers, timeout)
        return urllib.request.urlopen(urllib.request.Request(bare, headers=headers), timeout=timeout)
    except urllib.error.HTTPError:
        raise
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as error:
        reason = getattr(error, "reason", error)
        raise VenvstacksError(f"cannot read {bare}: {reason}") from None


def _read_page(url: str, index_url: str) -> list[IndexFile] | None:
    """The files of the page at `url` (JSON or HTML, by its content type); None on a 404."""
    try:
        with open_url(url, accept=f"{_JSON}, text/html;q=0.1", gzip=True) as response:
            body = response.read()
            final = strip_credentials(response.geturl())
            kind = response.headers.get_content_type()
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return None
        raise VenvstacksError(f"cannot read {strip_credentials(url)}: HTTP {error.code} {error.reason}") from None
    except (OSError, http.client.HTTPException, zlib.error) as error:  # the body cut short, or not gzip
        raise VenvstacksError(f"cannot read {strip_credentials(url)}: {error}") from None
    if kind == _JSON:
        return parse_json(json.loads(body), final, index_url)
    return parse_html(body.decode("utf-8", "replace"), final, index_url)


def fetch_project(index_url: str, project: str) -> list[IndexFile] | None:
    """The files `index_url` lists for `project`; None when the index has no such project (404)."""
    return _read_page(index_url.rstrip("/") + f"/{project}/", index_url)


def find_links_files(link: str) -> list[IndexFile]:
    """The files a find-links entry offers, as pip reads one: a local directory's, or the links of an HTML page.

    `link` is a directory (an absolute path, or a `file:` URL of one), or the URL of an HTML page
    (`https://`, `http://`, or `file:` of a file). A directory's files come sorted by name, with
    `file:` URLs and no hash (the caller hashes the ones it uses); a page's links as
    `parse_html` gives them. An entry that is neither is a VenvstacksError naming it.
    """
    if is_url(link) and not link.startswith("file:"):
        files = _read_page(link, link)
        if files is None:
            raise VenvstacksError(f"the find-links page {strip_credentials(link)} does not exist (HTTP 404)")
        return files
    path = file_url_path(link) if is_url(link) else Path(link)
    if path.is_dir():
        entries = sorted(entry for entry in path.iterdir() if entry.is_file())
        return [IndexFile(entry.name, entry.resolve().as_uri(), ()) for entry in entries]
    if path.is_file():
        return parse_html(path.read_text(encoding="utf-8", errors="replace"), path.resolve().as_uri(), "")
    raise VenvstacksError(f"the find-links entry {link} is neither a directory nor an HTML page of links")
