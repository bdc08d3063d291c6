"""lock.simple_index: the lock phase's one reader of index pages and find-links entries.

The pages are parsed as pure functions; the fetches go to a real PEP 503 index on 127.0.0.1
(tests/support/wheel_index.py) behind basic auth (tests/support/http_server.py), with the
credentials in the URL or in a netrc file, and none of them in what the reader returns or says.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from venvstacks_testing.http_server import auth_handler, serve
from venvstacks_testing.wheel_index import WheelIndex
from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.lock.simple_index import (
    IndexFile,
    fetch_project,
    find_links_files,
    parse_html,
    parse_json,
    with_credentials_of,
)

SHA = "ab" * 32
USER, SECRET = "reader", "s3cret-of-the-private-index"


def _json_entry(filename: str, url: str, sha256: str, **more: object) -> dict[str, object]:
    """One file of a PEP 691 page."""
    return {"filename": filename, "url": url, "hashes": {"sha256": sha256} if sha256 else {}, **more}


def test_json_and_html_pages_give_the_same_files() -> None:
    page_url = "https://files.example/simple/x/"
    first_entry = _json_entry("x-1.tar.gz", "../../f/x-1.tar.gz", SHA, **{"requires-python": ">=3.8"})
    json_page = {"files": [first_entry, _json_entry("x-2.tar.gz", "x-2.tar.gz", "", yanked=True)]}
    html_page = (
        f'<a href="../../f/x-1.tar.gz#sha256={SHA}" data-requires-python="&gt;=3.8">x-1.tar.gz</a>'
        '<a href="x-2.tar.gz" data-yanked="">x-2.tar.gz</a>'
    )
    from_json = parse_json(json_page, page_url, page_url)
    assert parse_html(html_page, page_url, page_url) == from_json
    first, second = from_json
    assert (first.name, first.bare_url, first.sha256) == ("x-1.tar.gz", "https://files.example/f/x-1.tar.gz", SHA)
    assert (first.requires_python, first.yanked) == (">=3.8", False)
    assert (second.bare_url, second.sha256, second.yanked) == ("https://files.example/simple/x/x-2.tar.gz", "", True)


def test_credentials_are_lent_only_to_urls_on_the_index_host() -> None:
    indexes = ["https://pypi.example/simple", "https://me:pw@private.example/simple"]
    assert (
        with_credentials_of("https://private.example/f/x.tar.gz", indexes) == "https://me:pw@private.example/f/x.tar.gz"
    )
    assert with_credentials_of("https://cdn.example/f/x.tar.gz", indexes) == "https://cdn.example/f/x.tar.gz"


@pytest.fixture
def private_index(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """An index serving `x` (one sdist) only with USER:SECRET basic auth; yields its base URL and the headers seen."""
    index = WheelIndex(tmp_path / "index")
    index.add_sdist("x", "1.0")
    seen: list[str] = []
    with serve(auth_handler(index.root, USER, SECRET, seen)) as base:
        yield base, seen


def test_an_index_with_credentials_in_its_url_is_read_authenticated(private_index: tuple[str, list[str]]) -> None:
    base, seen = private_index
    url = base.replace("http://", f"http://{USER}:{SECRET}@") + "/simple"
    (sdist,) = fetch_project(url, "x") or []
    assert seen == ["Basic cmVhZGVyOnMzY3JldC1vZi10aGUtcHJpdmF0ZS1pbmRleA=="]
    # The file URL keeps the credentials for whoever downloads it; it is on the index's host.
    assert sdist.bare_url == url.removesuffix("/simple") + "/files/x-1.0.tar.gz"
    assert fetch_project(url, "absent") is None


def test_a_netrc_entry_authenticates_and_a_refusal_names_no_secret(
    private_index: tuple[str, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, seen = private_index
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine 127.0.0.1 login {USER} password {SECRET}\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    (sdist,) = fetch_project(base + "/simple", "x") or []
    assert sdist.bare_url == base + "/files/x-1.0.tar.gz" and seen[-1].startswith("Basic ")

    netrc.write_text(f"machine 127.0.0.1 login {USER} password wrong\n")
    with pytest.raises(VenvstacksError) as refused:
        fetch_project(base + "/simple", "x")
    assert str(refused.value) == f"cannot read {base}/simple/x/: HTTP 401 Unauthorized"
    assert SECRET not in str(refused.value)


def test_find_links_are_read_as_pip_reads_them(tmp_path: Path) -> None:
    links = tmp_path / "links"
    links.mkdir()
    (links / "b-1.0.tar.gz").write_bytes(b"b")
    (links / "a-1.0.tar.gz").write_bytes(b"a")
    (links / "sub").mkdir()
    listed = [
        IndexFile("a-1.0.tar.gz", (links / "a-1.0.tar.gz").as_uri(), ()),
        IndexFile("b-1.0.tar.gz", (links / "b-1.0.tar.gz").as_uri(), ()),
    ]
    assert find_links_files(str(links)) == listed, "a directory: its files, sorted, no hash"
    assert find_links_files(links.as_uri()) == listed, "a file: URL of a directory"
    page = tmp_path / "links.html"
    page.write_text(f'<a href="links/a-1.0.tar.gz#sha256={SHA}">a</a>')
    (from_page,) = find_links_files(page.as_uri())
    assert (from_page.bare_url, from_page.sha256) == ((links / "a-1.0.tar.gz").as_uri(), SHA)
    with pytest.raises(
        VenvstacksError, match=r"the find-links entry .*/absent is neither a directory nor an HTML page"
    ):
        find_links_files(str(tmp_path / "absent"))
