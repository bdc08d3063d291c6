"""Compiled sdists: the wheel each platform's build of an sdist with extension modules makes.

A `build_from_sdist` package whose wheel is platform-specific (a C extension) is built by a
build action in the target configuration, with the C toolchain Bazel resolves for the target,
only where the target is the execution platform (docs/locking.md, "Packages with no wheel").
At lock time the host's pip build of the sdist (`sdists.prepare`) has made one such wheel, for
the host; this module derives from its name the wheel every other platform's build will make:
the same name, version, build, Python and ABI tags, with that platform's native platform tag,
the one setuptools gives a wheel it builds there (`native_platform_tag`). The lock records
those names (its platform-wheels table) and `native = true`; each build action checks that it
made the name recorded for its platform.

The resolvers never see these names: pip's and uv's tags for a Linux target are manylinux ones,
which `linux_x86_64` is not. They see a stand-in for each platform instead (`write_stand_ins`):
the host's wheel copied under the first platform tag the resolver accepts there, so that both
resolve the package and its dependencies (its METADATA, the host's) for every platform, and
write the same lock.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.core.platforms import TargetPlatform, WheelFloors


def native_platform_tag(platform: TargetPlatform, floors: WheelFloors) -> str:
    """The platform tag setuptools gives a wheel it compiles on `platform` (`linux_x86_64`, `win_amd64`, ...).

    Linux: `linux_<arch>` (a wheel for one machine, not a manylinux one: no auditwheel runs).
    macOS: `macosx_<major>_<minor>_<arch>` at the stack's macOS floor, which the build action
    passes to the backend as `MACOSX_DEPLOYMENT_TARGET`. Windows: `win_amd64`.
    """
    if platform.os == "macos":
        floor = floors.floor_of(platform)
        assert floor is not None
        return f"macosx_{floor[0]}_{floor[1]}_{platform.wheel_arch}"
    return f"{'win' if platform.os == 'windows' else 'linux'}_{platform.wheel_arch}"


def _with_platform_tag(wheel_name: str, tag: str) -> str:
    """`wheel_name` (a wheel file name) with its platform tag replaced by `tag`."""
    stem, dash, _ = wheel_name.removesuffix(".whl").rpartition("-")
    if not dash or not wheel_name.endswith(".whl") or stem.count("-") < 3:
        raise VenvstacksError(f"{wheel_name!r} is not a wheel file name (name-version-python-abi-platform.whl)")
    return f"{stem}-{tag}.whl"


def native_wheel_names(host_wheel: str, platforms: Sequence[TargetPlatform], floors: WheelFloors) -> dict[str, str]:
    """{triple -> the file name of the wheel that platform's build makes} of the host-built `host_wheel`."""
    return {
        platform.triple: _with_platform_tag(host_wheel, native_platform_tag(platform, floors))
        for platform in sorted(platforms, key=lambda p: p.triple)
    }


def write_stand_ins(host_wheel: Path, platforms: Sequence[TargetPlatform], floors: WheelFloors) -> list[Path]:
    """Copies of `host_wheel` beside it, one per platform, named with the first tag the resolvers accept there.

    Returns the copies made (a platform whose name is the host wheel's needs none).
    """
    made = []
    for platform in sorted(platforms, key=lambda p: p.triple):
        stand_in = host_wheel.with_name(_with_platform_tag(host_wheel.name, floors.platform_tags(platform)[0]))
        if stand_in != host_wheel and not stand_in.exists():
            shutil.copyfile(host_wheel, stand_in)
            made.append(stand_in)
    return made
