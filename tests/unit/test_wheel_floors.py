"""venvstacks_maint.wheel_floors: the lowest glibc and macOS of a release's wheels, from file names (no server)."""

from __future__ import annotations

from typing import Any

import pytest

from venvstacks_maint import wheel_floors
from venvstacks_tool.core.errors import VenvstacksError

NUMPY = [
    "numpy-2.3.3-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl",
    "numpy-2.3.3-cp311-cp311-manylinux_2_27_aarch64.manylinux_2_28_aarch64.whl",
    "numpy-2.3.3-cp311-cp311-macosx_14_0_arm64.whl",
    "numpy-2.3.3-cp311-cp311-macosx_11_0_arm64.whl",
    "numpy-2.3.3-cp311-cp311-macosx_10_9_x86_64.whl",
    "numpy-2.3.3-cp312-cp312-manylinux2014_x86_64.whl",  # another Python's: ignored
    "numpy-2.3.3-cp311-cp311-musllinux_1_2_x86_64.whl",  # not glibc: no column
    "numpy-2.3.3.tar.gz",
]


def test_the_lowest_floor_per_column_among_the_pythons_wheels() -> None:
    floors = wheel_floors.wheel_floors("numpy", "2.3.3", NUMPY, "3.11")
    assert dict(floors.floors) == {
        "linux_x86_64": (2, 27),
        "linux_aarch64": (2, 27),
        "macos_x86_64": (10, 9),
        "macos_arm64": (11, 0),
    }
    assert not floors.pure


def test_legacy_names_universal2_and_abi3() -> None:
    files = [
        "cryptography-46.0.0-cp311-abi3-manylinux2014_x86_64.manylinux_2_17_x86_64.whl",
        "cryptography-46.0.0-cp38-abi3-manylinux_2_28_aarch64.whl",
        "cryptography-46.0.0-cp311-abi3-macosx_10_9_universal2.whl",
        "cryptography-46.0.0-cp312-abi3-manylinux1_x86_64.whl",  # abi3 from 3.12: not for 3.11
    ]
    floors = wheel_floors.wheel_floors("cryptography", "46.0.0", files, "3.11").floors
    assert floors["linux_x86_64"] == (2, 17) and floors["linux_aarch64"] == (2, 28)
    assert floors["macos_x86_64"] == floors["macos_arm64"] == (10, 9)


def test_pure_and_missing_wheels_in_the_table() -> None:
    pure = wheel_floors.wheel_floors("polars", "1.0", ["polars-1.0-py3-none-any.whl"], "3.11")
    torch = wheel_floors.wheel_floors("torch", "2.8.0", ["torch-2.8.0-cp311-cp311-manylinux_2_28_x86_64.whl"], "3.11")
    table = wheel_floors.render_table("3.11", [torch, pure])
    assert "| polars | 1.0 | any | any | any | any |" in table
    assert "| torch | 2.8.0 | 2.28 | no wheel | no wheel | no wheel |" in table
    missing = "- (1 without a wheel)"
    assert table.rstrip().endswith(f"| **floor that locks them all** | | 2.28 | {missing} | {missing} | {missing} |")


def test_the_newest_final_release_with_a_wheel_for_the_python() -> None:
    def files(*names: str, yanked: bool = False) -> list[dict[str, Any]]:
        return [{"filename": name, "yanked": yanked} for name in names]

    releases = {
        "2.4.0": files("numpy-2.4.0-cp311-cp311-macosx_11_0_arm64.whl", "numpy-2.4.0.tar.gz"),
        "2.10.0": files("numpy-2.10.0-cp312-cp312-macosx_11_0_arm64.whl"),  # no 3.11 wheel
        "2.9.0rc1": files("numpy-2.9.0rc1-cp311-cp311-macosx_11_0_arm64.whl"),  # a pre-release
        "2.8.0": files("numpy-2.8.0-cp311-cp311-macosx_11_0_arm64.whl", yanked=True),
        "2.5.0": files("numpy-2.5.0-cp311-cp311-macosx_12_0_arm64.whl"),
        "not-a-version": files("numpy-x-cp311-cp311-macosx_11_0_arm64.whl"),
    }
    assert wheel_floors.newest_release(releases, "3.11") == ("2.5.0", ["numpy-2.5.0-cp311-cp311-macosx_12_0_arm64.whl"])
    assert wheel_floors.newest_release(releases, "3.9") == ("", [])
    with pytest.raises(VenvstacksError, match="expected a Python 3 version"):
        wheel_floors.newest_release(releases, "3")
