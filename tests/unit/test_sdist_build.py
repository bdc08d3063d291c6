"""build.sdist_build (`build-sdist`): unpacking an sdist safely, and building a deterministic wheel offline.

The sdists are built here (`venvstacks_testing.sdists`): their backend is a module inside them,
so no build requirement and no network is needed; it writes its wheel with the clock's
timestamps and in a shuffled member order, which `build-sdist` must turn into the same bytes
every time.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from venvstacks_testing.archives import ESCAPES
from venvstacks_testing.sdists import backend_sdist, sdist_file
from venvstacks_tool.build import sdist_build
from venvstacks_tool.core.errors import VenvstacksError


def _build(sdist: Path, output: Path, wheel_name: str = "tiny-1.0-py3-none-any.whl") -> None:
    digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
    argv = ["--sdist", str(sdist), "--sdist-sha256", digest, "--wheel-name", wheel_name]
    argv += ["--package", "tiny 1.0", "--lock", "//:pylock.app.toml", "--output", str(output)]
    assert sdist_build.main(argv) == 0


@pytest.mark.parametrize("case", sorted(ESCAPES))
def test_escapes_are_refused_and_nothing_is_written_outside(tmp_path: Path, case: str) -> None:
    members = [(name.replace("fw/", "tiny-1.0/", 1), kind, payload) for name, kind, payload in ESCAPES[case][0]]
    sdist = sdist_file(tmp_path, members, "tiny-1.0.tar.gz")
    root = tmp_path / "root"
    with pytest.raises(VenvstacksError):
        sdist_build.unpack_sdist(sdist, root)
    outside = sorted(path.relative_to(tmp_path).as_posix() for path in tmp_path.rglob("*") if root not in path.parents)
    assert outside == ["root", "tiny-1.0.tar.gz"]


def test_a_well_formed_sdist_is_unpacked_with_its_modes(tmp_path: Path) -> None:
    members = [("tiny-1.0/setup.py", "file", b"x"), ("tiny-1.0/bin/run", "script", b"#!/bin/sh\n")]
    source = sdist_build.unpack_sdist(sdist_file(tmp_path, members, "tiny-1.0.tar.gz"), tmp_path / "root")
    assert (source / "setup.py").read_bytes() == b"x"
    assert (source / "bin" / "run").stat().st_mode & 0o777 == 0o755
    assert sdist_build.build_backend(source) == (sdist_build.LEGACY_BACKEND, [])


def test_the_wheel_is_the_same_bytes_on_every_build(tmp_path: Path) -> None:
    sdist = backend_sdist(tmp_path)
    _build(sdist, tmp_path / "one.whl")
    _build(sdist, tmp_path / "two.whl")
    assert (tmp_path / "one.whl").read_bytes() == (tmp_path / "two.whl").read_bytes()
    with zipfile.ZipFile(tmp_path / "one.whl") as wheel:
        infos = wheel.infolist()
        files = [info.filename for info in infos if not info.is_dir()]
        assert files == sorted(files)
        assert {info.date_time for info in infos} == {(1980, 1, 1, 0, 0, 0)}
        assert wheel.read("tiny/__init__.py") == b"VALUE = 1\n"


def test_a_backend_asking_for_an_unlocked_requirement_is_refused(tmp_path: Path) -> None:
    sdist = backend_sdist(tmp_path, extra_requires=("cython>=3",))
    with pytest.raises(VenvstacksError, match=r"package tiny 1.0 .*asks for cython>=3, which the lock's build"):
        _build(sdist, tmp_path / "out.whl")
    assert not (tmp_path / "out.whl").exists()


def test_a_wheel_other_than_the_locked_one_is_refused_naming_both(tmp_path: Path) -> None:
    with pytest.raises(VenvstacksError, match=r"built tiny-1.0-py3-none-any.whl, but the lock expects tiny-1.0-cp311"):
        _build(backend_sdist(tmp_path), tmp_path / "out.whl", wheel_name="tiny-1.0-cp311-cp311-linux_x86_64.whl")


def test_an_sdist_whose_hash_differs_from_the_lock_is_refused(tmp_path: Path) -> None:
    sdist = backend_sdist(tmp_path)
    argv = ["--sdist", str(sdist), "--sdist-sha256", "0" * 64, "--wheel-name", "tiny-1.0-py3-none-any.whl"]
    argv += ["--package", "tiny 1.0", "--lock", "//:l", "--output", str(tmp_path / "out.whl")]
    with pytest.raises(VenvstacksError, match=r"tiny-1.0.tar.gz has sha256 .*, but the lock says 0000"):
        sdist_build.main(argv)


def test_build_requirement_wheels_are_the_backends_only_imports(tmp_path: Path) -> None:
    wheel = tmp_path / "helper-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as out:
        out.writestr("helper.py", "NAME = 'from the build wheel'\n")
    sdist = backend_sdist(tmp_path, backend_imports="helper")
    digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
    wheel_digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    argv = ["--sdist", str(sdist), "--sdist-sha256", digest, "--wheel-name", "tiny-1.0-py3-none-any.whl"]
    argv += ["--package", "tiny 1.0", "--lock", "//:l", "--output", str(tmp_path / "out.whl")]
    with pytest.raises(VenvstacksError, match="No module named 'helper'"):
        sdist_build.main(argv)
    assert sdist_build.main([*argv, "--build-wheel", f"{wheel}={wheel_digest}"]) == 0
    assert zipfile.is_zipfile(tmp_path / "out.whl")


RUNTIME = sdist_build.RuntimeForC(Path("/r"), Path("/r/include/python3.11"), "")


def _native_request(tmp_path: Path, triple: str, wheel_name: str, cc: str = "/usr/bin/gcc") -> sdist_build.SdistBuild:
    argv = ["--sdist", str(tmp_path / "x-1.0.tar.gz"), "--sdist-sha256", "a" * 64, "--wheel-name", wheel_name]
    argv += ["--package", "x 1.0", "--lock", "//:l", "--output", str(tmp_path / "out.whl")]
    return sdist_build.parse_request([*argv, "--cc", cc, "--platform-triple", triple])


def test_a_native_sdist_compiles_with_the_toolchains_cc_and_fixed_prefixes(tmp_path: Path) -> None:
    request = _native_request(tmp_path, "x86_64-unknown-linux-gnu", "x-1.0-cp311-cp311-linux_x86_64.whl")
    runtime = sdist_build.RuntimeForC(Path("/out/python"), Path("/out/python/include/python3.11"), "-O2 -g")
    environ = sdist_build.compiler_environ(request, Path("/s"), Path("/sandbox/execroot/_main"), runtime)
    assert environ == {
        "CC": "/usr/bin/gcc",
        "CFLAGS": "-O2 -g -I/out/python/include/python3.11 -ffile-prefix-map=/s=/venvstacks/build"
        " -ffile-prefix-map=/out/python=/venvstacks/python"
        " -ffile-prefix-map=/sandbox/execroot/_main=/venvstacks/execroot",
        "LDSHARED": "/usr/bin/gcc -shared",
    }
    # A hermetic toolchain's compiler is execroot-relative; the backend runs elsewhere.
    relative = _native_request(tmp_path, "x86_64-unknown-linux-gnu", "x.whl", cc="external/gcc/bin/gcc")
    assert sdist_build.compiler_environ(relative, Path("/s"), Path("/e"), RUNTIME)["CC"] == "/e/external/gcc/bin/gcc"
    # A scratch tree inside the execroot keeps its own name: the longer path's map comes later.
    nested = sdist_build.compiler_environ(request, Path("/e/tmp/s"), Path("/e"), RUNTIME)["CFLAGS"]
    assert nested.index("/e=/venvstacks/execroot") < nested.index("/e/tmp/s=/venvstacks/build")


def test_a_native_macos_build_gets_a_bundle_and_the_floor_of_the_locked_name(tmp_path: Path) -> None:
    request = _native_request(tmp_path, "aarch64-apple-darwin", "x-1.0-cp311-cp311-macosx_14_0_arm64.whl", "cc")
    environ = sdist_build.compiler_environ(request, Path("/s"), Path("/e"), RUNTIME)
    assert environ["LDSHARED"] == "cc -bundle -undefined dynamic_lookup"
    assert environ["MACOSX_DEPLOYMENT_TARGET"] == "14.0"


def test_a_native_windows_build_leaves_the_compiler_to_setuptools(tmp_path: Path) -> None:
    request = _native_request(tmp_path, "x86_64-pc-windows-msvc", "x-1.0-cp311-cp311-win_amd64.whl", "cl.exe")
    assert sdist_build.compiler_environ(request, Path("/s"), Path("/e"), RUNTIME) == {}


def test_a_pure_sdist_gets_no_compiler(tmp_path: Path) -> None:
    argv = ["--sdist", "x-1.0.tar.gz", "--sdist-sha256", "a" * 64, "--wheel-name", "x-1.0-py3-none-any.whl"]
    request = sdist_build.parse_request([*argv, "--package", "x 1.0", "--lock", "//:l", "--output", "o.whl"])
    assert sdist_build.compiler_environ(request, Path("/s"), Path("/e"), RUNTIME) == {}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--cc", "gcc"], "--cc and --platform-triple go together"),
        (["--cc", "gcc", "--platform-triple", "x86_64-unknown-freebsd"], "'x86_64-unknown-freebsd' is not the triple"),
    ],
)
def test_native_arguments_are_checked(extra: list[str], message: str) -> None:
    argv = ["--sdist", "x-1.0.tar.gz", "--sdist-sha256", "a" * 64, "--wheel-name", "x.whl", "--package", "x 1.0"]
    with pytest.raises(VenvstacksError, match=message):
        sdist_build.parse_request([*argv, "--lock", "//:l", "--output", "o.whl", *extra])
