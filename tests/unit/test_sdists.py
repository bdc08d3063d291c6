"""lock.sdists: the packages a layer builds from their sdists, chosen, built and recorded at lock time.

The parsing and choosing are pure functions; the locks are end to end, against sdists served from
a PEP 503 index on 127.0.0.1 whose build backend is inside them (`venvstacks_testing.sdists`, no
build requirement, nothing compiled), with both resolvers.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import uv

from venvstacks_testing.http_server import auth_handler, serve
from venvstacks_testing.sdists import backend_sdist, sdist_file
from venvstacks_testing.wheel_index import WheelIndex
from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.lock import lock_command, pylock, sdists
from venvstacks_tool.lock.simple_index import IndexFile

PY = f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"
CP = f"cp{sys.version_info.major}{sys.version_info.minor}"
LINUX = "x86_64-unknown-linux-gnu"
WINDOWS = "x86_64-pc-windows-msvc"
MACOS = "aarch64-apple-darwin"
SHA = "ab" * 32
USER, SECRET = "sdists", "s3cret-of-the-sdist-index"


def test_build_requires_are_read_with_pep_518s_defaults() -> None:
    assert sdists.parse_build_requires(None, "x") == ["setuptools>=40.8.0"]
    assert sdists.parse_build_requires("[project]\nname = 'x'\n", "x") == ["setuptools>=40.8.0"]
    text = '[build-system]\nrequires = ["flit_core >=3.2,<4"]\nbuild-backend = "flit_core.buildapi"\n'
    assert sdists.parse_build_requires(text, "x") == ["flit_core >=3.2,<4"]
    assert sdists.parse_build_requires("[build-system]\nrequires = []\n", "x") == []
    with pytest.raises(VenvstacksError, match=r"sdist x-1.tar.gz: pyproject.toml: \[build-system\] requires must"):
        sdists.parse_build_requires('[build-system]\nrequires = "setuptools"\n', "sdist x-1.tar.gz")


def _file(version: str, sha256: str = SHA, **attributes: str) -> IndexFile:
    url = f"https://i/x-{version}.tar.gz" + (f"#sha256={sha256}" if sha256 else "")
    return IndexFile(f"x-{version}.tar.gz", url, tuple(sorted(attributes.items())))


def test_the_sdist_chosen_is_the_preferred_or_the_newest_that_fits() -> None:
    files = [
        _file("1.0"),
        _file("1.5"),
        _file("2.0", **{"data-requires-python": ">=3.99"}),
        _file("1.9", **{"data-yanked": ""}),
        IndexFile("x-1.8-py3-none-any.whl", f"https://i/x-1.8-py3-none-any.whl#sha256={SHA}", ()),
        _file("1.7", sha256=""),
    ]
    assert sdists.choose_sdist("app", "x", [files], "", PY, None) == pylock.LockedWheel(
        "x-1.5.tar.gz", "https://i/x-1.5.tar.gz", SHA
    )
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
    # needsc: built with a compiled build requirement (as Cython or numpy would be), which is refused.
    index.add_wheel("cythonish", "3.0", tag=f"{CP}-{CP}-win_amd64")
    pyproject = b'[build-system]\nrequires = ["cythonish"]\nbuild-backend = "backend"\n'
    index.add_file("needsc", sdist_file(root, [("needsc-1.0/pyproject.toml", "file", pyproject)], "needsc-1.0.tar.gz"))
    with index.serve() as url:
        yield url


def _lock(
    workspace: Path, index_url: str, requirement: str, resolver: str, *platforms: str, more: Sequence[str] = ()
) -> pylock.Lock:
    argv = [*more, "--layer-name", "app", "--layer-kind", "application", "--python-version", PY]
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


def test_an_sdist_with_extension_modules_is_locked_with_each_platforms_own_wheel(
    index_url: str, tmp_path: Path
) -> None:
    """Native: each platform builds its own wheel, named from the host's build; both resolvers write the same lock."""
    texts = {}
    for resolver in ("pip", "uv"):
        workspace = tmp_path / resolver
        workspace.mkdir()
        locked = _lock(workspace, index_url, "fastext", resolver, LINUX, WINDOWS, MACOS)
        [fastext] = [package for package in locked.packages if package.name == "fastext"]
        assert fastext.wheels == []
        assert fastext.built is not None and fastext.built.native
        assert fastext.built.wheel_name == ""
        assert fastext.built.sdist.name == "fastext-2.0.tar.gz"
        assert fastext.platform_wheels == {
            LINUX: f"fastext-2.0-{CP}-{CP}-linux_x86_64.whl",
            MACOS: f"fastext-2.0-{CP}-{CP}-macosx_14_0_arm64.whl",  # the default macOS floor
            WINDOWS: f"fastext-2.0-{CP}-{CP}-win_amd64.whl",
        }
        assert "helper" in {package.name for package in locked.packages}
        texts[resolver] = (workspace / "pylock.app.toml").read_text()
        assert pylock.parse_lock(texts[resolver], "again") == locked
    assert "native = true\n" in texts["pip"]
    assert texts["pip"] == texts["uv"]


def test_a_compiled_build_requirement_is_refused_at_lock_time(index_url: str, tmp_path: Path) -> None:
    expected = (
        f"layer 'app': the build requirement 'cythonish' of the sdist of 'needsc' has no pure-Python wheel on the"
        f" index (cythonish-3.0-{CP}-{CP}-win_amd64.whl)"
    )
    with pytest.raises(VenvstacksError, match=expected.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        _lock(tmp_path, index_url, "needsc", "pip", LINUX, WINDOWS)
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


# --- where sdists are looked up: the index route with its credentials, find-links, named indexes ---


def test_an_sdist_on_a_private_index_is_read_and_downloaded_with_its_credentials(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    index = WheelIndex(tmp_path / "private")
    index.add_wheel("helper", "1.0")
    index.add_file("tiny", backend_sdist(tmp_path, "tiny", "1.0"))
    (tmp_path / "ws").mkdir()
    seen: list[str] = []
    with serve(auth_handler(index.root, USER, SECRET, seen)) as base:
        url = base.replace("http://", f"http://{USER}:{SECRET}@") + "/simple"
        locked = _lock(tmp_path / "ws", url, "tiny", "pip", LINUX)
    [tiny] = [package for package in locked.packages if package.built is not None]
    assert tiny.built is not None and tiny.built.sdist.url == base + "/files/tiny-1.0.tar.gz"
    assert any(header.startswith("Basic ") for header in seen)
    out, err = capfd.readouterr()
    for text in (out, err, *(path.read_text() for path in (tmp_path / "ws").iterdir())):
        assert SECRET not in text and f"{USER}:" not in text


def test_an_sdist_in_a_find_links_directory_is_used_with_its_sha256_computed(index_url: str, tmp_path: Path) -> None:
    links = tmp_path / "third_party"
    links.mkdir()
    local = backend_sdist(links, "lonely", "0.3")  # on no index
    locked = _lock(tmp_path, index_url, "lonely", "pip", LINUX, more=["--find-links", "third_party"])
    [lonely] = [package for package in locked.packages if package.name == "lonely"]
    assert lonely.built is not None
    # Recorded as a local wheel is: by its path beside the lock, which the extension fetches.
    assert lonely.built.sdist == pylock.LockedWheel(
        "lonely-0.3.tar.gz", "", hashlib.sha256(local.read_bytes()).hexdigest(), path="third_party/lonely-0.3.tar.gz"
    )


def test_an_sdist_routed_to_a_named_index_is_looked_up_there_only(tmp_path: Path) -> None:
    public = WheelIndex(tmp_path / "public")
    public.add_wheel("helper", "1.0")
    public.add_file("tiny", backend_sdist(tmp_path, "tiny", "2.0"))  # newer, but not where tiny may come from
    private = WheelIndex(tmp_path / "private")
    private.add_file("tiny", backend_sdist(tmp_path, "tiny", "1.0"))
    (tmp_path / "ws").mkdir()
    with public.serve() as public_url, private.serve() as private_url:
        routing = ["--named-index", f"private={private_url}", "--package-index", "tiny=private"]
        locked = _lock(tmp_path / "ws", public_url, "tiny", "pip", LINUX, more=routing)
    [tiny] = [package for package in locked.packages if package.name == "tiny"]
    assert tiny.built is not None
    assert (tiny.version, tiny.built.sdist.url) == (
        "1.0",
        private_url.removesuffix("/simple") + "/files/tiny-1.0.tar.gz",
    )
