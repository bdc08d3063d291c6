"""lock.sdists: the packages a layer builds from their sdists, chosen, built and recorded at lock time.

The parsing and choosing are pure functions; the locks are end to end, against sdists served from
a PEP 503 index on 127.0.0.1 whose build backend is inside them (`venvstacks_testing.sdists`, no
build requirement, nothing compiled), with both resolvers.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import uv

from venvstacks_testing.sdists import backend_sdist
from venvstacks_testing.wheel_index import WheelIndex
from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.lock import lock_command, pylock, sdists

PY = f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"
CP = f"cp{sys.version_info.major}{sys.version_info.minor}"
LINUX = "x86_64-unknown-linux-gnu"
WINDOWS = "x86_64-pc-windows-msvc"
SHA = "ab" * 32


def test_build_requires_are_read_with_pep_518s_defaults() -> None:
    assert sdists.parse_build_requires(None, "x") == ["setuptools>=40.8.0"]
    assert sdists.parse_build_requires("[project]\nname = 'x'\n", "x") == ["setuptools>=40.8.0"]
    text = '[build-system]\nrequires = ["flit_core >=3.2,<4"]\nbuild-backend = "flit_core.buildapi"\n'
    assert sdists.parse_build_requires(text, "x") == ["flit_core >=3.2,<4"]
    assert sdists.parse_build_requires("[build-system]\nrequires = []\n", "x") == []
    with pytest.raises(VenvstacksError, match=r"sdist x-1.tar.gz: pyproject.toml: \[build-system\] requires must"):
        sdists.parse_build_requires('[build-system]\nrequires = "setuptools"\n', "sdist x-1.tar.gz")


def test_index_pages_are_read_as_pep_691_json_or_pep_503_html() -> None:
    json_page = json.dumps({"files": [{"filename": "x-1.tar.gz", "url": "x-1.tar.gz", "hashes": {"sha256": SHA}}]})
    assert sdists.parse_index_page(json_page, "application/vnd.pypi.simple.v1+json") == [
        {"filename": "x-1.tar.gz", "url": "x-1.tar.gz", "hashes": {"sha256": SHA}}
    ]
    html_page = (
        f'<a href="../../f/x-1.tar.gz#sha256={SHA}" data-requires-python="&gt;=3.8">x-1.tar.gz</a>'
        '<a href="x-2.tar.gz" data-yanked="">x-2.tar.gz</a>'
    )
    assert sdists.parse_index_page(html_page, "text/html; charset=utf-8") == [
        {
            "filename": "x-1.tar.gz",
            "url": "../../f/x-1.tar.gz",
            "hashes": {"sha256": SHA},
            "requires-python": ">=3.8",
            "yanked": False,
        },
        {"filename": "x-2.tar.gz", "url": "x-2.tar.gz", "hashes": {}, "requires-python": "", "yanked": True},
    ]
    assert sdists.parse_index_page("x", "text/plain") is None


def _file(version: str, **extra: object) -> dict[str, object]:
    return {
        "filename": f"x-{version}.tar.gz",
        "url": f"https://i/x-{version}.tar.gz",
        "hashes": {"sha256": SHA},
        **extra,
    }


def test_the_sdist_chosen_is_the_preferred_or_the_newest_that_fits() -> None:
    files = [
        _file("1.0"),
        _file("1.5"),
        _file("2.0", **{"requires-python": ">=3.99"}),
        _file("1.9", yanked=True),
        {"filename": "x-1.8-py3-none-any.whl", "url": "w", "hashes": {"sha256": SHA}},
        {**_file("1.7"), "hashes": {}},
    ]
    assert sdists.choose_sdist("app", "x", [files], "", PY, None).name == "x-1.5.tar.gz"
    assert sdists.choose_sdist("app", "x", [files], "", PY, "1.0").name == "x-1.0.tar.gz"
    assert sdists.choose_sdist("app", "x", [files], "<1.5", PY, "1.5").name == "x-1.0.tar.gz"
    with pytest.raises(VenvstacksError, match=r"layer 'app': build_from_sdist names 'x', but the index has no sdist"):
        sdists.choose_sdist("app", "x", [files], ">=3", PY, None)


@pytest.fixture(scope="module")
def index_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An index of `tiny` (pure Python, needs `helper`), `helper` (a wheel) and `fastext` (extension modules)."""
    root = tmp_path_factory.mktemp("sdist_index")
    index = WheelIndex(root / "index")
    index.add_wheel("helper", "1.0")
    index.add_file("tiny", backend_sdist(root, "tiny", "1.0"))
    index.add_file("fastext", backend_sdist(root, "fastext", "2.0", wheel_tag=f"{CP}-{CP}-linux_x86_64"))
    with index.serve() as url:
        yield url


def _lock(workspace: Path, index_url: str, requirement: str, resolver: str, *platforms: str) -> pylock.Lock:
    argv = ["--layer-name", "app", "--layer-kind", "application", "--python-version", PY]
    argv += [argument for triple in platforms for argument in ("--platform", triple)]
    argv += ["--requirement", requirement, "--requirement", "helper", "--build-from-sdist", requirement]
    argv += ["--index-url", index_url, "--workspace-dir", str(workspace), "--output-lock", "pylock.app.toml"]
    if resolver == "uv":
        argv += ["--resolver", "uv", "--uv", uv.find_uv_bin()]
    lock_command.main(argv)
    return pylock.read_lock(workspace / "pylock.app.toml")


@pytest.mark.parametrize("resolver", ["pip", "uv"])
def test_a_pure_sdist_is_locked_with_its_hash_for_every_platform(index_url: str, tmp_path: Path, resolver: str) -> None:
    locked = _lock(tmp_path, index_url, "tiny", resolver, LINUX, WINDOWS)
    [tiny] = [package for package in locked.packages if package.name == "tiny"]
    assert tiny.wheels == []
    assert tiny.built is not None
    assert tiny.built.sdist.name == "tiny-1.0.tar.gz"
    assert tiny.built.sdist.url == index_url.removesuffix("/simple") + "/files/tiny-1.0.tar.gz"
    assert tiny.built.wheel_name == "tiny-1.0-py3-none-any.whl"
    assert tiny.built.build_wheels == []  # its [build-system] requires nothing
    assert tiny.platform_wheels == {LINUX: "tiny-1.0-py3-none-any.whl", WINDOWS: "tiny-1.0-py3-none-any.whl"}
    text = (tmp_path / "pylock.app.toml").read_text()
    assert f'sdist = {{ name = "tiny-1.0.tar.gz", url = "{tiny.built.sdist.url}"' in text
    assert pylock.parse_lock(pylock.render_lock(locked), "again") == locked


@pytest.mark.parametrize("resolver", ["pip", "uv"])
def test_an_sdist_with_extension_modules_is_refused_at_lock_time(index_url: str, tmp_path: Path, resolver: str) -> None:
    expected = (
        f"layer 'app': the sdist of 'fastext' builds the platform-specific wheel fastext-2.0-{CP}-{CP}-linux_x86_64.whl"
        " (it has extension modules), which cannot be built for the layer's platforms windows_x86_64, linux_x86_64"
    )
    with pytest.raises(VenvstacksError, match=expected.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        _lock(tmp_path, index_url, "fastext", resolver, LINUX, WINDOWS)
    assert not (tmp_path / "pylock.app.toml").exists()


def test_a_build_from_sdist_package_must_be_a_top_level_requirement(index_url: str, tmp_path: Path) -> None:
    argv = ["--layer-name", "app", "--layer-kind", "application", "--python-version", PY, "--platform", LINUX]
    argv += ["--requirement", "helper", "--build-from-sdist", "tiny", "--index-url", index_url]
    argv += ["--workspace-dir", str(tmp_path), "--output-lock", "pylock.app.toml"]
    with pytest.raises(VenvstacksError, match="build_from_sdist names 'tiny', which is not a top-level requirement"):
        lock_command.main(argv)


def test_the_lock_reader_refuses_an_sdist_package_that_also_has_wheels() -> None:
    sdist = pylock.LockedWheel("tiny-1.0.tar.gz", "https://i/tiny-1.0.tar.gz", SHA)
    package = pylock.LockedPackage(
        "tiny",
        "1.0",
        [],
        {LINUX: "tiny-1.0-py3-none-any.whl"},
        built=pylock.BuiltFromSdist(sdist, "tiny-1.0-py3-none-any.whl"),
    )
    lock = pylock.Lock("app", "application", "sha256:" + SHA, PY, [LINUX], ["tiny"], [package])
    text = pylock.render_lock(lock)
    assert pylock.parse_lock(text, "pylock.app.toml") == lock
    wheels = "\nwheels = [\n]\n\n[packages.tool.venvstacks]"
    with pytest.raises(VenvstacksError, match="has both an sdist and wheels"):
        pylock.parse_lock(text.replace("\n\n[packages.tool.venvstacks]", wheels, 1), "pylock.app.toml")
