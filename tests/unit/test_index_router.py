"""lock.index_router: a layer locked through the routing index, with both resolvers, against real local indexes.

Two indexes on 127.0.0.1: "pypi" and a "pytorch-like" one that serves `torchlike` with a local
tag (`2.0+cpu`, older than PyPI's 2.1) and a decoy `helper` newer than PyPI's.
"""

from __future__ import annotations

import hashlib
import http.client
import http.server
import sys
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uv

from venvstacks_testing.http_server import Visits, auth_handler, keepalive_handler, serve
from venvstacks_testing.wheel_index import WheelIndex
from venvstacks_tool.core import cli
from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.lock import lock_command, pylock
from venvstacks_tool.lock.index_options import IndexOptions
from venvstacks_tool.lock.index_router import _PRECONNECT, render_page, routed
from venvstacks_tool.lock.named_indexes import NamedIndexes
from venvstacks_tool.lock.simple_index import parse_html, parse_json

LINUX = "x86_64-unknown-linux-gnu"
PY = f"{sys.version_info[0]}.{sys.version_info[1]}.{sys.version_info[2]}"
USER, SECRET = "router", "s3cret-of-the-named-index"


@pytest.fixture(params=["pip", "uv"])
def resolver(request: pytest.FixtureRequest) -> list[str]:
    """`lock`'s arguments choosing pip's resolver, then uv's."""
    return ["--resolver", "uv", "--uv", uv.find_uv_bin()] if request.param == "uv" else []


@pytest.fixture
def indexes(tmp_path: Path) -> tuple[WheelIndex, WheelIndex]:
    """(pypi, pytorch): `app-dep` needs torchlike; both serve torchlike and helper, at other versions."""
    pypi = WheelIndex(tmp_path / "pypi")
    pypi.add_wheel("torchlike", "2.1")
    pypi.add_wheel("helper", "1.0")
    pypi.add_wheel("app-dep", "1.0", ["torchlike>=2", "helper"])
    pytorch = WheelIndex(tmp_path / "pytorch")
    pytorch.add_wheel("torchlike", "2.0+cpu")
    pytorch.add_wheel("helper", "9.9")
    return pypi, pytorch


@pytest.fixture
def served(indexes: tuple[WheelIndex, WheelIndex]) -> Iterator[tuple[str, str]]:
    pypi, pytorch = indexes
    with pypi.serve() as pypi_url, pytorch.serve() as pytorch_url:
        yield pypi_url, pytorch_url


def layer_argv(index_url: str, named: list[str], *more: str) -> list[str]:
    """The arguments `lock` and `check-lock` share, for layer `app` requiring `app-dep`."""
    argv = [
        *("--layer-name", "app", "--layer-kind", "application", "--python-version", PY, "--platform", LINUX),
        *("--index-url", index_url, "--requirement", "app-dep"),
    ]
    for text in named:
        argv += ["--named-index", text]
    return argv + list(more)


def lock_argv(workspace: Path, index_url: str, named: list[str], *more: str) -> list[str]:
    """`lock`'s arguments, writing `pylock.app.toml` into `workspace`."""
    output = ("--workspace-dir", str(workspace), "--output-lock", "pylock.app.toml")
    return ["lock", *layer_argv(index_url, named, *more), *output]


def locked(workspace: Path) -> dict[str, tuple[str, str, str]]:
    """{name: (version, url, sha256)} of the lock's packages (URLs unquoted: pip writes `+` as `%2B`)."""
    lock = pylock.read_lock(workspace / "pylock.app.toml")
    return {p.name: (p.version, urllib.parse.unquote(p.wheels[0].url), p.wheels[0].sha256) for p in lock.packages}


def sha256(index: WheelIndex, name: str) -> str:
    return hashlib.sha256((index.files_dir / name).read_bytes()).hexdigest()


def test_a_package_index_pins_the_project_to_its_index_and_nothing_else(
    tmp_path: Path, resolver: list[str], indexes: tuple[WheelIndex, WheelIndex], served: tuple[str, str]
) -> None:
    pypi_url, pytorch_url = served
    _, pytorch = indexes
    argv = lock_argv(tmp_path, pypi_url, [f"pytorch_cpu={pytorch_url}"], "--package-index", "torchlike=pytorch_cpu")
    assert cli.main([*argv, *resolver]) == 0
    packages = locked(tmp_path)
    torch_file = "torchlike-2.0+cpu-py3-none-any.whl"
    # The older +cpu build, from the named index only, at its real URL (not the router's).
    assert packages["torchlike"] == (
        "2.0+cpu",
        pytorch_url.removesuffix("/simple") + "/files/" + torch_file,
        sha256(pytorch, torch_file),
    )
    # helper is not routed: the layer's index, not the named index's newer decoy.
    assert packages["helper"][:2] == ("1.0", pypi_url.removesuffix("/simple") + "/files/helper-1.0-py3-none-any.whl")
    assert packages["app-dep"][0] == "1.0"


def test_a_priority_index_answers_every_project_it_has(
    tmp_path: Path, resolver: list[str], served: tuple[str, str]
) -> None:
    pypi_url, pytorch_url = served
    argv = lock_argv(tmp_path, pypi_url, [f"pytorch_cpu={pytorch_url}"], "--priority-index", "pytorch_cpu")
    assert cli.main([*argv, *resolver]) == 0
    packages = locked(tmp_path)
    assert packages["torchlike"][0] == "2.0+cpu"
    assert packages["helper"][0] == "9.9"  # the priority index has it: it alone answers
    assert packages["app-dep"][1].startswith(pypi_url.removesuffix("/simple"))  # only on the layer's index


def test_the_inputs_hash_covers_the_routing(tmp_path: Path, served: tuple[str, str]) -> None:
    pypi_url, pytorch_url = served
    routing = ("--package-index", "torchlike=pytorch_cpu")
    assert cli.main(lock_argv(tmp_path, pypi_url, [f"pytorch_cpu={pytorch_url}"], *routing)) == 0
    lock = ("--lock", str(tmp_path / "pylock.app.toml"))
    assert cli.main(["check-lock", *layer_argv(pypi_url, [f"pytorch_cpu={pytorch_url}"], *routing), *lock]) == 0
    assert cli.main(["check-lock", *layer_argv(pypi_url, [f"pytorch_cpu={pytorch_url}"]), *lock]) != 0


def test_credentials_of_a_named_index_authenticate_and_are_written_nowhere(
    tmp_path: Path,
    resolver: list[str],
    indexes: tuple[WheelIndex, WheelIndex],
    served: tuple[str, str],
    capfd: pytest.CaptureFixture[str],
) -> None:
    pypi_url, _ = served
    _, pytorch = indexes
    seen: list[str] = []
    with serve(auth_handler(pytorch.root, USER, SECRET, seen)) as base:
        private = base.replace("http://", f"http://{USER}:{SECRET}@") + "/simple"
        argv = lock_argv(tmp_path, pypi_url, [f"pytorch_cpu={private}"], "--package-index", "torchlike=pytorch_cpu")
        assert cli.main([*argv, *resolver]) == 0
    assert any(header.startswith("Basic ") for header in seen)
    version, url, _ = locked(tmp_path)["torchlike"]
    assert version == "2.0+cpu" and url.startswith(base + "/files/")
    out, err = capfd.readouterr()
    for text in (out, err, *(path.read_text() for path in tmp_path.glob("*.t*"))):
        assert SECRET not in text and USER + ":" not in text


def test_an_unreachable_named_index_fails_naming_the_layer_and_project(
    tmp_path: Path, resolver: list[str], served: tuple[str, str]
) -> None:
    pypi_url, _ = served
    dead = f"http://{USER}:{SECRET}@127.0.0.1:9/simple"
    argv = lock_argv(tmp_path, pypi_url, [f"pytorch_cpu={dead}"], "--package-index", "torchlike=pytorch_cpu")
    with pytest.raises(VenvstacksError) as caught:
        lock_command.main([*argv[1:], *resolver])
    message = str(caught.value)
    assert message.startswith("layer 'app': ") and "'torchlike'" in message, message
    assert "127.0.0.1:9/simple/torchlike/" in message and SECRET not in message


def test_a_project_missing_from_its_named_index_fails_naming_the_real_indexes(
    tmp_path: Path, resolver: list[str], served: tuple[str, str]
) -> None:
    pypi_url, pytorch_url = served
    argv = lock_argv(tmp_path, pypi_url, [f"pytorch_cpu={pytorch_url}"], "--package-index", "app-dep=pytorch_cpu")
    with pytest.raises(VenvstacksError) as caught:
        lock_command.main([*argv[1:], *resolver])
    message = str(caught.value)
    assert "'app-dep'" in message and "'app-dep' from 'pytorch_cpu' only" in message, message
    assert f"pytorch_cpu = {pytorch_url}" in message and pypi_url in message, message


def test_each_upstream_page_is_fetched_once_per_lock_run(
    tmp_path: Path, resolver: list[str], indexes: tuple[WheelIndex, WheelIndex]
) -> None:
    pypi, pytorch = indexes
    asked: list[str] = []

    class Counting(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(pytorch.root), **kwargs)

        def do_GET(self) -> None:
            asked.append(self.path)
            super().do_GET()

        def log_message(self, format: str, *args: object) -> None:
            pass

    with pypi.serve() as pypi_url, serve(Counting) as pytorch_base:
        named = [f"pytorch_cpu={pytorch_base}/simple"]
        argv = lock_argv(tmp_path, pypi_url, named, "--package-index", "torchlike=pytorch_cpu")
        argv += ["--platform", "x86_64-pc-windows-msvc"]  # a second resolution, the same pages
        assert cli.main([*argv, *resolver]) == 0
    assert [path for path in asked if path.startswith("/simple/")] == ["/simple/torchlike/"]


def test_unknown_index_names_fail_before_any_resolution(tmp_path: Path) -> None:
    argv = lock_argv(tmp_path, "http://127.0.0.1:9/simple", ["pytorch_cpu=http://127.0.0.1:9/simple"])
    with pytest.raises(VenvstacksError, match=r"layer 'app': package_indexes\['torch'\] names index 'cu128'"):
        lock_command.main([*argv[1:], "--package-index", "torch=cu128"])


# --- the pages -----------------------------------------------------------------------------------


def test_json_and_html_pages_become_one_html_page_with_absolute_urls() -> None:
    index = "https://user:pw@files.example/simple"
    json_page = {
        "files": [
            {
                "filename": "torch-2.0+cpu-cp311-none-any.whl",
                "url": "../../packages/torch-2.0%2Bcpu-cp311-none-any.whl",
                "hashes": {"sha256": "ab" * 32},
                "requires-python": ">=3.9",
                "core-metadata": {"sha256": "cd" * 32},
                "yanked": "broken",
            }
        ]
    }
    (from_json,) = parse_json(json_page, "https://files.example/simple/torch/", index)
    assert (
        from_json.url == "https://user:pw@files.example/packages/torch-2.0%2Bcpu-cp311-none-any.whl#sha256=" + "ab" * 32
    )
    html_page = render_page("torch", [from_json])
    (back,) = parse_html(html_page.decode(), "https://files.example/simple/torch/", index)
    assert back == from_json
    assert 'data-requires-python="&gt;=3.9"' in html_page.decode()
    # A file on another host never gets the index's credentials.
    (elsewhere,) = parse_html('<a href="https://cdn.example/x-1.0-py3-none-any.whl#sha256=00">x</a>', index, index)
    assert elsewhere.url == "https://cdn.example/x-1.0-py3-none-any.whl#sha256=00"


def test_the_router_keeps_one_connection_each_way() -> None:
    visits = Visits()
    projects = [f"project-{number}" for number in range(12)]
    pages = {f"/simple/{p}/": f'<a href="/files/{p}-1.0.tar.gz">{p}-1.0.tar.gz</a>'.encode() for p in projects}
    with serve(keepalive_handler(pages, visits)) as upstream:
        named = NamedIndexes.parse("app", [f"cpu={upstream}/simple"], ["project-0=cpu"], [])
        with routed("app", named, IndexOptions.create(upstream + "/simple")) as index:
            router = urllib.parse.urlsplit(index.index_url)
            client = http.client.HTTPConnection(router.hostname or "", router.port, timeout=10)
            answers, sockets = [], set()
            for project in projects:
                client.request("GET", f"/simple/{project}/")
                response = client.getresponse()
                listed = project + "-1.0.tar.gz" in response.read().decode()
                answers.append((response.status, response.version, response.will_close, listed))
                sockets.add(id(client.sock))
            client.close()
    # HTTP/1.1, kept open: the resolver's twelve pages over one connection to the router...
    assert answers == [(200, 11, False, True)] * len(projects) and len(sockets) == 1
    # ...and the router's twelve upstream reads over the few connections it opened as it started
    # (`_PRECONNECT`, and one more if a page was asked before they were up), none a page.
    assert visits.connections <= _PRECONNECT + 1 and sorted(visits.paths()) == sorted(pages)
