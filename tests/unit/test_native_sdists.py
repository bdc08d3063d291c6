"""lock.native_sdists: the wheel each platform's build of a compiled sdist makes, and the resolvers' stand-ins."""

from __future__ import annotations

from pathlib import Path

import pytest

from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.core.platforms import DEFAULT_FLOORS, PLATFORMS, WheelFloors, by_name
from venvstacks_tool.lock import native_sdists

HOST = "fastext-2.0-cp311-cp311-linux_x86_64.whl"


def test_each_platform_gets_the_tag_setuptools_gives_a_wheel_built_there() -> None:
    names = native_sdists.native_wheel_names(HOST, PLATFORMS, DEFAULT_FLOORS)
    assert names == {
        "aarch64-apple-darwin": "fastext-2.0-cp311-cp311-macosx_14_0_arm64.whl",
        "aarch64-unknown-linux-gnu": "fastext-2.0-cp311-cp311-linux_aarch64.whl",
        "x86_64-apple-darwin": "fastext-2.0-cp311-cp311-macosx_14_0_x86_64.whl",
        "x86_64-pc-windows-msvc": "fastext-2.0-cp311-cp311-win_amd64.whl",
        "x86_64-unknown-linux-gnu": "fastext-2.0-cp311-cp311-linux_x86_64.whl",
    }
    assert list(names) == sorted(names)


def test_the_macos_tag_is_the_stacks_floor_never_below_the_runtimes() -> None:
    mac = by_name("macos_x86_64")
    assert native_sdists.native_platform_tag(mac, WheelFloors(macos=(12, 3))) == "macosx_12_3_x86_64"
    # PBS' own floor (10.15 on x86_64, 11.0 on arm64) when the stack sets none or an older one.
    assert native_sdists.native_platform_tag(mac, WheelFloors()) == "macosx_10_15_x86_64"
    assert native_sdists.native_platform_tag(by_name("macos_arm64"), WheelFloors(macos=(10, 9))) == "macosx_11_0_arm64"


def test_the_python_abi_and_build_tags_are_kept() -> None:
    linux = [by_name("linux_aarch64")]
    assert native_sdists.native_wheel_names("x-1-cp311-abi3-linux_x86_64.whl", linux, DEFAULT_FLOORS) == {
        "aarch64-unknown-linux-gnu": "x-1-cp311-abi3-linux_aarch64.whl"
    }
    windows = [by_name("windows_x86_64")]
    assert native_sdists.native_wheel_names("x-1-7-cp311-cp311-macosx_14_0_arm64.whl", windows, DEFAULT_FLOORS) == {
        "x86_64-pc-windows-msvc": "x-1-7-cp311-cp311-win_amd64.whl"
    }


@pytest.mark.parametrize("name", ["x-1.tar.gz", "x-1-linux_x86_64.whl", "nodashes.whl"])
def test_a_name_that_is_no_wheel_is_refused(name: str) -> None:
    with pytest.raises(VenvstacksError, match="is not a wheel file name"):
        native_sdists.native_wheel_names(name, [by_name("linux_x86_64")], DEFAULT_FLOORS)


def test_the_resolvers_see_a_stand_in_under_a_tag_they_accept_per_platform(tmp_path: Path) -> None:
    host = tmp_path / HOST
    host.write_bytes(b"the host's wheel")
    made = native_sdists.write_stand_ins(host, PLATFORMS, DEFAULT_FLOORS)
    assert sorted(path.name for path in made) == [
        "fastext-2.0-cp311-cp311-macosx_14_0_arm64.whl",
        "fastext-2.0-cp311-cp311-macosx_14_0_x86_64.whl",
        "fastext-2.0-cp311-cp311-manylinux_2_28_aarch64.whl",
        "fastext-2.0-cp311-cp311-manylinux_2_28_x86_64.whl",
        "fastext-2.0-cp311-cp311-win_amd64.whl",
    ]
    assert all(path.read_bytes() == b"the host's wheel" for path in made)
    for platform in PLATFORMS:
        assert any(path.name.endswith(f"-{DEFAULT_FLOORS.platform_tags(platform)[0]}.whl") for path in made)
    assert native_sdists.write_stand_ins(host, PLATFORMS, DEFAULT_FLOORS) == []  # made once
