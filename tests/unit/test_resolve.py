"""lock.resolve: one resolution per target platform with pip's resolver, or uv's, against the real PyPI.

Each behaviour is tested with both resolvers (the `resolver` fixture: pip children, or the real
uv of tests/requirements.txt); pip's own plumbing (its report, its environment) only with pip.

Versions are pinned where a test depends on a package's metadata (click 8.1.8 requires colorama
on Windows only; later click releases dropped it).
"""

from __future__ import annotations

import hashlib
import http.server
import json
import re
import subprocess
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import uv

from venvstacks_testing.http_server import auth_handler, serve
from venvstacks_testing.wheel_index import WheelIndex
from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.core.platforms import PLATFORMS, WheelFloors, by_name
from venvstacks_tool.lock import resolve as resolve_module
from venvstacks_tool.lock import uv_resolver
from venvstacks_tool.lock.index_options import IndexOptions
from venvstacks_tool.lock.resolve import MultiResolution, isolated_pip_environ, resolve

PYTHON = "3.11.7"
# What `glibc_minimum = "2.17"` and `macos_minimum = "10.15"` give: PBS' own floors.
PBS = WheelFloors(glibc=(2, 17), macos=(10, 15))
NUMPY_TAGS = {
    "linux_x86_64": r"manylinux\w*_x86_64",
    "linux_aarch64": r"manylinux\w*_aarch64",
    "macos_x86_64": r"macosx_\d+_\d+_(x86_64|universal2)",
    "macos_arm64": r"macosx_\d+_\d+_(arm64|universal2)",
    "windows_x86_64": r"win_amd64",
}


Resolver = dict[str, Any]  # resolve()'s keyword arguments choosing the resolver


def _resolver(name: str) -> Resolver:
    return {"uv": Path(uv.find_uv_bin())} if name == "uv" else {}


@pytest.fixture(params=["pip", "uv"])
def resolver(request: pytest.FixtureRequest) -> Resolver:
    """resolve()'s keyword arguments for pip's resolver ({}), then for uv's."""
    return _resolver(request.param)


@pytest.fixture(scope="module", params=["pip", "uv"])
def five(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[MultiResolution, Path]:
    """click, numpy and a Windows-only requirement resolved for all five platforms (one resolution per resolver)."""
    workdir = tmp_path_factory.mktemp("five")
    requirements = ["click==8.1.8", "numpy>=2,<3", 'pywin32; sys_platform == "win32"']
    return resolve(
        "app", PLATFORMS, PYTHON, requirements, {}, IndexOptions(), {}, workdir, **_resolver(request.param)
    ), workdir


def test_markers_are_evaluated_for_each_target(five: tuple[MultiResolution, Path]) -> None:
    result, workdir = five
    for target in PLATFORMS:
        names = set(result.for_platform(target))
        windows = target.os == "windows"
        # click's `Requires-Dist: colorama; platform_system == "Windows"` (wheel metadata).
        assert ("colorama" in names) is windows, target.name
        # A requirement line's own marker.
        assert ("pywin32" in names) is windows, target.name
        # pip's report states the marker environment it evaluated (the target's, not the host's).
        report_file = workdir / f"fresh-{target.name}.report.json"
        if report_file.exists():  # pip's; uv evaluates markers for its --python-platform
            report = json.loads(report_file.read_text(encoding="utf-8"))
            assert report["environment"] == target.marker_environment(PYTHON)


def test_numpy_wheel_matches_each_platform_at_one_version(five: tuple[MultiResolution, Path]) -> None:
    result, _ = five
    for target in PLATFORMS:
        wheel = result.for_platform(target)["numpy"]
        assert re.search(r"-cp311-cp311-.*" + NUMPY_TAGS[target.name] + r"\.whl$", wheel.file_name), wheel.file_name
    assert len(set(result.versions("numpy").values())) == 1
    assert result.divergent() == {}


def test_wheels_carry_the_indexs_sha256_and_url(five: tuple[MultiResolution, Path]) -> None:
    result, _ = five
    for target in PLATFORMS:
        for name, wheel in result.for_platform(target).items():
            assert wheel.name == name
            assert re.fullmatch(r"[0-9a-f]{64}", wheel.sha256)
            assert wheel.url.startswith("https://") and wheel.url.endswith("/" + wheel.file_name)
            assert "@" not in wheel.url and "#" not in wheel.url
            assert wheel.local_path is None


def test_no_wheel_is_downloaded(five: tuple[MultiResolution, Path]) -> None:
    # pip prints "Downloading <file> (12.6 MB)" for a whole wheel; metadata comes from PEP 658
    # files or range requests ("Obtaining dependency information"), never from a download.
    _, workdir = five
    logs = sorted(workdir.glob("*.log"))
    assert len(logs) >= 5
    for log in logs:
        text = log.read_text(encoding="utf-8")
        assert not re.search(r"Downloading \S+\.whl", text), log.name


def test_a_package_without_a_wheel_for_a_platform_names_it_and_the_platform(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, resolver: Resolver
) -> None:
    # The host's pip configuration must not leak in: were these used, the error would be another.
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    monkeypatch.setenv("PIP_ONLY_BINARY", "")
    monkeypatch.setenv("UV_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("UV_NO_BINARY", "1")
    platforms = [by_name("windows_x86_64"), by_name("linux_x86_64")]
    with pytest.raises(VenvstacksError) as caught:
        resolve("app", platforms, PYTHON, ["pywin32"], {}, IndexOptions(), {}, tmp_path, **resolver)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("layer 'app': no wheel of 'pywin32' for linux_x86_64 (Python 3.11.7)")


def test_every_failing_platform_is_named_at_once(tmp_path: Path, resolver: Resolver) -> None:
    """pywin32 without its marker: the four platforms without a wheel in one message, in the caller's order."""
    with pytest.raises(VenvstacksError) as caught:
        resolve("app", PLATFORMS, PYTHON, ["pywin32"], {}, IndexOptions(), {}, tmp_path, **resolver)
    message = str(caught.value)
    assert message == (
        "layer 'app': no wheel of 'pywin32' for linux_x86_64, linux_aarch64, macos_x86_64, macos_arm64 (Python"
        " 3.11.7); layers are installed from wheels only, so a package with only an sdist, or only wheels for"
        " other platforms or Pythons, cannot be locked for it"
    )


def test_a_floor_that_would_fix_a_platform_is_named(tmp_path: Path, resolver: Resolver) -> None:
    """numpy 2.3 publishes Linux wheels for glibc 2.28 only: PBS' 2.17 floor fails, and the message says so."""
    platforms = [by_name("linux_aarch64"), by_name("windows_x86_64")]
    requirements = ["numpy>=2.3,<2.4"]
    with pytest.raises(VenvstacksError) as caught:
        resolve("app", platforms, PYTHON, requirements, {}, IndexOptions(), {}, tmp_path, floors=PBS, **resolver)
    message = str(caught.value)
    assert message.startswith("layer 'app': no ") and "'numpy'" in message and "linux_aarch64" in message
    assert "windows_x86_64" not in message
    assert message.endswith(
        '; linux_aarch64 resolve(s) with glibc_minimum = "2.28" on venvstacks.runtime (the wheels then need that'
        " glibc or macOS; docs/platforms.md#wheel-floors-the-oldest-glibc-and-macos)"
    )


def test_the_default_floors_lock_numpy_2_3_and_scipy_for_every_platform(tmp_path: Path, resolver: Resolver) -> None:
    """What the defaults are for: numpy 2.3 (glibc 2.28) and scipy's arm64 wheels (macOS 12 and up) lock everywhere."""
    requirements = ["numpy>=2.3,<2.4", "scipy>=1.16,<1.17"]
    result = resolve("app", PLATFORMS, PYTHON, requirements, {}, IndexOptions(), {}, tmp_path, **resolver)
    for target in PLATFORMS:
        wheels = result.for_platform(target)
        assert sorted(wheels) == ["numpy", "scipy"], target.name
        assert re.search(NUMPY_TAGS[target.name] + r"\.whl$", wheels["numpy"].file_name), wheels["numpy"].file_name
    assert result.versions("numpy")[by_name("linux_aarch64").triple].startswith("2.3.")
    arm64_scipy = result.for_platform(by_name("macos_arm64"))["scipy"].file_name
    floor = re.search(r"macosx_(\d+)_(\d+)_arm64", arm64_scipy)
    assert floor is not None and (12, 0) <= (int(floor.group(1)), int(floor.group(2))) <= (14, 0), arm64_scipy


def test_an_unknown_project_is_named(tmp_path: Path, resolver: Resolver) -> None:
    with pytest.raises(VenvstacksError, match=r"layer 'app': no project 'no-such-project-for-venvstacks-tests'"):
        requirement = "no_such.project-for-venvstacks-tests"
        resolve("app", [by_name("linux_x86_64")], PYTHON, [requirement], {}, IndexOptions(), {}, tmp_path, **resolver)


def test_an_unreachable_index_is_a_network_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, resolver: Resolver
) -> None:
    monkeypatch.setenv("PIP_RETRIES", "0")  # a transport variable: kept, so the test is quick
    monkeypatch.setenv("UV_HTTP_RETRIES", "0")  # uv's
    index = IndexOptions(index_url="http://127.0.0.1:9/simple")
    assert "--trusted-host" in index.pip_arguments()
    with pytest.raises(VenvstacksError, match=r"cannot read the package index for 'click' \(macos_arm64\): http://"):
        resolve("app", [by_name("macos_arm64")], PYTHON, ["click"], {}, index, {}, tmp_path, **resolver)


def test_a_conflict_with_a_lower_layer_names_the_platform_and_the_pin(tmp_path: Path, resolver: Resolver) -> None:
    macos = by_name("macos_x86_64")

    def resolve_against_the_pin(**owner: dict[str, str]) -> None:
        lower_pins = {macos.triple: {"click": "8.1.7"}}
        resolve("app", [macos], PYTHON, ["click>=8.1.8"], lower_pins, IndexOptions(), {}, tmp_path, **owner, **resolver)

    with pytest.raises(VenvstacksError) as caught:
        resolve_against_the_pin()
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("layer 'app': the requirements conflict on macos_x86_64 (Python 3.11.7):")
    assert "a lower layer pins click==8.1.7" in message
    # With the pin's owner given, the message names it.
    with pytest.raises(VenvstacksError, match=r"layer 'fw' \(fw\.toml\) pins click==8\.1\.7"):
        resolve_against_the_pin(pinned_by={"Click": "layer 'fw' (fw.toml)"})


def test_lower_layer_constraints_hold_on_every_platform(tmp_path: Path, resolver: Resolver) -> None:
    platforms = [by_name("linux_aarch64"), by_name("windows_x86_64")]
    constraints = {p.triple: {"Click": "8.1.7"} for p in platforms}
    result = resolve("app", platforms, PYTHON, ["click"], constraints, IndexOptions(), {}, tmp_path, **resolver)
    assert result.versions("click") == {p.triple: "8.1.7" for p in platforms}


def test_lower_layer_constraints_apply_per_platform_and_are_not_unified(tmp_path: Path, resolver: Resolver) -> None:
    # A lower layer that installs click on Linux only pins it there; Windows resolves freely, and
    # the cross-platform unification does not move the lower layer's pin nor Windows down to it.
    linux, windows = by_name("linux_aarch64"), by_name("windows_x86_64")
    constraints = {linux.triple: {"click": "8.1.7"}}
    result = resolve(
        "app", [linux, windows], PYTHON, ["click<8.2"], constraints, IndexOptions(), {}, tmp_path, **resolver
    )
    assert result.versions("click") == {linux.triple: "8.1.7", windows.triple: "8.1.8"}


def test_constraints_must_be_per_platform(tmp_path: Path) -> None:
    with pytest.raises(VenvstacksError, match="constraints for platforms not resolved: click"):
        resolve("app", [by_name("linux_x86_64")], PYTHON, ["click"], {"click": {}}, IndexOptions(), {}, tmp_path)


def test_preferred_versions_are_kept_and_dropped_where_impossible(tmp_path: Path, resolver: Resolver) -> None:
    platforms = [by_name("linux_x86_64"), by_name("windows_x86_64")]
    kept = resolve(
        "app", platforms, PYTHON, ["click"], {}, IndexOptions(), {"click": "8.1.7"}, tmp_path / "kept", **resolver
    )
    assert set(kept.versions("click").values()) == {"8.1.7"}
    assert kept.without_preferred == ()
    dropped = resolve(
        "app",
        platforms,
        PYTHON,
        ["click>=8.1.8,<8.2"],
        {},
        IndexOptions(),
        {"click": "8.1.7"},
        tmp_path / "dropped",
        **resolver,
    )
    assert set(dropped.versions("click").values()) == {"8.1.8"}
    assert dropped.without_preferred == tuple(p.triple for p in platforms)


def _demo_wheel(directory: Path) -> Path:
    """A minimal valid wheel of a project that is not on PyPI."""
    path = directory / "venvstacks_demo_local-1.0-py3-none-any.whl"
    dist_info = "venvstacks_demo_local-1.0.dist-info"
    files = {
        "venvstacks_demo_local.py": "VALUE = 1\n",
        f"{dist_info}/METADATA": "Metadata-Version: 2.1\nName: venvstacks-demo-local\nVersion: 1.0\n"
        'Requires-Dist: colorama; sys_platform == "win32"\n',
        f"{dist_info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    records = [f"{name},sha256=,\n" for name in files] + [f"{dist_info}/RECORD,,\n"]
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
        archive.writestr(f"{dist_info}/RECORD", "".join(records))
    return path


def test_local_find_links_wheels_are_hashed_from_disk(tmp_path: Path, resolver: Resolver) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    wheel = _demo_wheel(wheels)
    index = IndexOptions.create(find_links=["wheels"], base_dir=tmp_path)
    assert index.find_links == (str(wheels),)
    platforms = [by_name("linux_x86_64"), by_name("windows_x86_64")]
    result = resolve("app", platforms, PYTHON, ["venvstacks-demo-local"], {}, index, {}, tmp_path / "work", **resolver)
    for target in platforms:
        local = result.for_platform(target)["venvstacks-demo-local"]
        assert local.local_path == wheel.resolve()
        assert local.sha256 == hashlib.sha256(wheel.read_bytes()).hexdigest()
        assert local.file_name == wheel.name
    assert "colorama" in result.for_platform("x86_64-pc-windows-msvc")
    assert "colorama" not in result.for_platform("x86_64-unknown-linux-gnu")


def test_invalid_inputs_fail_before_pip_runs(tmp_path: Path) -> None:
    linux = [by_name("linux_x86_64")]
    with pytest.raises(VenvstacksError, match="not a requirement"):
        resolve("app", linux, PYTHON, ["--index-url=http://x"], {}, IndexOptions(), {}, tmp_path)
    with pytest.raises(VenvstacksError, match="full Python version"):
        resolve("app", linux, "3.11", ["click"], {}, IndexOptions(), {}, tmp_path)
    with pytest.raises(VenvstacksError, match="layer 'app': platform linux_x86_64 is listed twice"):
        resolve("app", linux * 2, PYTHON, ["click"], {}, IndexOptions(), {}, tmp_path)
    empty = resolve("app", linux, PYTHON, [], {}, IndexOptions(), {}, tmp_path)
    assert empty.wheels == {"x86_64-unknown-linux-gnu": {}}


def test_isolated_pip_environ_keeps_transport_variables_only() -> None:
    environ = isolated_pip_environ(
        {"PIP_INDEX_URL": "http://x", "PIP_CERT": "/ca.pem", "PIP_RETRIES": "0", "HOME": "/root"}
    )
    assert environ["PIP_CERT"] == "/ca.pem" and environ["PIP_RETRIES"] == "0" and environ["HOME"] == "/root"
    assert "PIP_INDEX_URL" not in environ
    assert environ["PIP_NO_INPUT"] == "1"


# --- credentials -----------------------------------------------------------------------------

USER, SECRET = "locker", "s3cret-token-for-venvstacks-tests"


def _auth_handler(root: Path, seen: list[str]) -> Callable[..., http.server.BaseHTTPRequestHandler]:
    return auth_handler(root, USER, SECRET, seen)


def test_index_credentials_reach_pip_through_the_environment_not_argv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, resolver: Resolver
) -> None:
    """An index URL with `user:password@` authenticates, yet is on no command line, in no result or log."""
    index = WheelIndex(tmp_path / "index")
    wheel = index.add_wheel("private-pkg", "1.0")
    extra = WheelIndex(tmp_path / "extra")
    extra_wheel = extra.add_wheel("extra-pkg", "2.0")
    commands: list[tuple[list[str], dict[str, str]]] = []
    real_run = resolve_module.run_captured

    def recording_run(command: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        commands.append((list(command), dict(kwargs["env"])))
        return real_run(command, **kwargs)

    monkeypatch.setattr(resolve_module, "run_captured", recording_run)
    monkeypatch.setattr(uv_resolver, "run_captured", recording_run)
    seen: list[str] = []
    with (
        serve(_auth_handler(index.root, seen)) as base,
        serve(_auth_handler(extra.root, seen)) as extra_base,
    ):
        options = IndexOptions(
            index_url=base.replace("http://", f"http://{USER}:{SECRET}@") + "/simple",
            extra_index_urls=(extra_base.replace("http://", f"http://{USER}:{SECRET}@") + "/simple",),
        )
        result = resolve(
            "app",
            [by_name("linux_x86_64")],
            PYTHON,
            ["private-pkg", "extra-pkg"],
            {},
            options,
            {},
            tmp_path / "w",
            **resolver,
        )
    linux = result.for_platform("x86_64-unknown-linux-gnu")
    assert linux["private-pkg"].sha256 == index.sha256(wheel)
    assert linux["extra-pkg"].sha256 == extra.sha256(extra_wheel)
    assert any(header.startswith("Basic ") for header in seen), "pip authenticated with the URL's credentials"
    assert commands
    for argv, environ in commands:
        assert not [argument for argument in argv if SECRET in argument], "credentials on a command line"
        assert "--index-url" not in argv and "--extra-index-url" not in argv
        prefix = "UV_" if resolver else "PIP_"
        assert environ[prefix + "INDEX_URL"] == options.index_url
        assert environ[prefix + "EXTRA_INDEX_URL"] == options.extra_index_urls[0]
    assert all(SECRET not in wheel.url for wheel in linux.values())
    for log in (tmp_path / "w").iterdir():
        if log.is_file():  # not uv's cache, which is removed with the lock's temporary directory
            assert SECRET not in log.read_text(encoding="utf-8"), log.name


def test_index_credentials_from_netrc_authenticate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, resolver: Resolver
) -> None:
    """Where docs/locking.md says credentials go: a netrc file (here the one NETRC names), not the URL."""
    index = WheelIndex(tmp_path / "index")
    wheel = index.add_wheel("private-pkg", "1.0")
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine 127.0.0.1\nlogin {USER}\npassword {SECRET}\n", encoding="utf-8")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    seen: list[str] = []
    with serve(_auth_handler(index.root, seen)) as base:
        options = IndexOptions(index_url=base + "/simple")
        result = resolve(
            "app", [by_name("linux_x86_64")], PYTHON, ["private-pkg"], {}, options, {}, tmp_path / "w", **resolver
        )
    assert result.for_platform("x86_64-unknown-linux-gnu")["private-pkg"].sha256 == index.sha256(wheel)
    assert any(header.startswith("Basic ") for header in seen)


def test_wrong_index_credentials_fail_without_showing_them(tmp_path: Path, resolver: Resolver) -> None:
    index = WheelIndex(tmp_path / "index")
    index.add_wheel("private-pkg", "1.0")
    with serve(_auth_handler(index.root, [])) as base:
        options = IndexOptions(index_url=base.replace("http://", f"http://{USER}:wrong-{SECRET}@") + "/simple")
        with pytest.raises(VenvstacksError) as caught:
            resolve(
                "app", [by_name("linux_x86_64")], PYTHON, ["private-pkg"], {}, options, {}, tmp_path / "w", **resolver
            )
    message = str(caught.value)
    assert "\n" not in message and SECRET not in message
    assert message.startswith("layer 'app': "), message


def test_pip_arguments_and_environ_split_urls_from_local_paths(tmp_path: Path) -> None:
    options = IndexOptions.create(
        index_url="https://u:p@index.example/simple",
        extra_index_urls=["http://u:p@mirror.example:8080/simple"],
        find_links=["wheels", "https://u:p@links.example/wheels/"],
        base_dir=tmp_path,
    )
    assert options.pip_arguments() == [
        "--find-links",
        str(tmp_path / "wheels"),
        "--trusted-host",
        "mirror.example:8080",
    ]
    assert options.pip_environ() == {
        "PIP_INDEX_URL": "https://u:p@index.example/simple",
        "PIP_EXTRA_INDEX_URL": "http://u:p@mirror.example:8080/simple",
        "PIP_FIND_LINKS": "https://u:p@links.example/wheels/",
    }
    with pytest.raises(VenvstacksError, match=r"'https://index.example/a b' is empty or has whitespace"):
        IndexOptions(index_url="https://u:p@index.example/a b").pip_environ()
