"""One error for a layer that fails to resolve: every failing platform named, per package, and the floor that fixes it.

`resolve` resolves all platforms before it reports, then raises one VenvstacksError built here:
the platforms where a package has no wheel at all are named together ("no wheel of 'pywin32' for
linux_x86_64, macos_arm64 (Python 3.11.7)"), every other platform's reason follows, and where a
raised floor lets a platform resolve (numpy 2.3's Linux wheels need glibc 2.28; scipy's arm64
wheels macOS 12) the message says which `venvstacks.runtime` attribute to set. Both resolvers
describe a missing wheel with `no_wheel` here, so the message is the same for both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from venvstacks_tool.core.platforms import TargetPlatform, WheelFloors
from venvstacks_tool.lock.results import Failure

# The floors tried when a package has no wheel for a platform at the runtime's floors: glibc 2.28
# (manylinux_2_28, what numpy >= 2.3 and torch publish) and macOS 12.0 (scipy's arm64 wheels).
PROBE_GLIBC = (2, 28)
PROBE_MACOS = (12, 0)
_WHEELS_ONLY = (
    "; layers are installed from wheels only, so a package with only an sdist, or only wheels for other"
    " platforms or Pythons, cannot be locked for it"
)


def no_wheel(layer: str, name: str, where: str) -> Failure:
    """The failure of a platform (`where`: "linux_x86_64 (Python 3.11.7)") for which `name` has no wheel at all."""
    return Failure(f"layer '{layer}': no wheel of '{name}' for {where}{_WHEELS_ONLY}", True, name, True)


def probe_floors(platform: TargetPlatform, floors: WheelFloors) -> WheelFloors | None:
    """`floors` raised to the probe floor of `platform`'s OS, or None when that would raise nothing."""
    if platform.os == "linux" and (floors.glibc or platform.glibc_minimum or (0, 0)) < PROBE_GLIBC:
        return WheelFloors(glibc=PROBE_GLIBC, macos=floors.macos)
    if platform.os == "macos" and (floors.macos or platform.macos_minimum or (0, 0)) < PROBE_MACOS:
        return WheelFloors(glibc=floors.glibc, macos=PROBE_MACOS)
    return None


def floor_hint(platforms: Sequence[TargetPlatform]) -> str:
    """What to set so that `platforms` (which resolved at the probe floors) resolve."""
    settings = []
    if any(platform.os == "linux" for platform in platforms):
        settings.append(f'glibc_minimum = "{PROBE_GLIBC[0]}.{PROBE_GLIBC[1]}"')
    if any(platform.os == "macos" for platform in platforms):
        settings.append(f'macos_minimum = "{PROBE_MACOS[0]}.{PROBE_MACOS[1]}"')
    names = ", ".join(platform.name for platform in platforms)
    return (
        f"{names} resolve(s) with {' and '.join(settings)} on venvstacks.runtime (the wheels then need that"
        " glibc or macOS; docs/platforms.md#wheel-floors-the-oldest-glibc-and-macos)"
    )


def combined_message(
    layer: str,
    python_full_version: str,
    failures: Sequence[tuple[TargetPlatform, Failure]],
    fixed_by_floor: Sequence[TargetPlatform] = (),
) -> str:
    """The one-line error for `failures` (in platform order), with the floor hint when some platforms need it."""
    grouped: dict[str, list[TargetPlatform]] = {}
    others: list[str] = []
    for platform, failure in failures:
        if failure.no_wheel_at_all:
            grouped.setdefault(failure.package, []).append(platform)
        else:
            others.append(failure.message)
    parts = [
        f"layer '{layer}': no wheel of '{name}' for {', '.join(p.name for p in where)} (Python"
        f" {python_full_version}){_WHEELS_ONLY}"
        for name, where in grouped.items()
    ]
    parts += others
    prefix = f"layer '{layer}': "
    message = parts[0] + "".join("; and " + part.removeprefix(prefix) for part in parts[1:])
    if fixed_by_floor:
        message += "; " + floor_hint(fixed_by_floor)
    return message


def failed(outcomes: Mapping[str, object], platforms: Sequence[TargetPlatform]) -> list[tuple[TargetPlatform, Failure]]:
    """The (platform, failure) pairs of `outcomes` ({triple -> result or Failure}), in `platforms` order."""
    return [
        (platform, outcome) for platform in platforms if isinstance(outcome := outcomes.get(platform.triple), Failure)
    ]
