"""The five python-build-standalone (PBS) target platforms a stack can be built for, as data.

Each `TargetPlatform` holds what the other phases need to know about a target without running on
it: the PEP 508 marker environment a lock evaluates requirements against, the wheel platform tags
a resolver may accept, the extension-module suffixes the target's interpreter imports, and where
things live in a PBS runtime and in a venv. Pure data and pure functions, stdlib only, so every
phase (lock, build, deploy) can import it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.core.protocol import PYTHON_VERSION_RE

# PBS' Linux gnu builds need glibc 2.17 at least ("The minimum glibc version required for most
# targets is 2.17", astral-sh/python-build-standalone docs/running.rst), so wheels for any
# manylinux up to glibc 2.17 run on every machine the runtime runs on, and newer ones may not.
PBS_GLIBC_MINIMUM = (2, 17)
# PBS' macOS deployment targets, from astral-sh/python-build-standalone cpython-unix/targets.yml:
# x86_64-apple-darwin builds with `-mmacosx-version-min=10.15` (older releases used 10.9, so
# 10.15 is a floor that holds for both) and aarch64-apple-darwin with `-mmacosx-version-min=11.0`
# ("Apple silicon only supports 11.0+").
PBS_MACOS_MINIMUM_X86_64 = (10, 15)
PBS_MACOS_MINIMUM_ARM64 = (11, 0)

# How venvstacks spells each OS in its platform names (`TargetPlatform.venvstacks_name`).
_VENVSTACKS_OS = {"linux": "linux", "macos": "macosx", "windows": "win"}

_SHORT_VERSION = re.compile(r"(\d+)\.(\d+)")
# The legacy manylinux names of a glibc version (PEP 513, 571, 599), for the architectures the
# legacy policies covered; aarch64 only ever had manylinux2014.
_LEGACY_MANYLINUX = {
    (2, 17): ("manylinux2014", frozenset({"x86_64", "i686", "aarch64", "armv7l", "ppc64", "ppc64le", "s390x"})),
    (2, 12): ("manylinux2010", frozenset({"x86_64", "i686"})),
    (2, 5): ("manylinux1", frozenset({"x86_64", "i686"})),
}


def _version_tuple(python_version: str) -> tuple[int, int]:
    """(major, minor) of `3.11` or `3.11.7`; anything else is a VenvstacksError naming the value."""
    match = PYTHON_VERSION_RE.fullmatch(python_version) or _SHORT_VERSION.fullmatch(python_version)
    if match is None:
        raise VenvstacksError(f"{python_version!r} is not a Python version such as 3.11 or 3.11.7")
    return int(match.group(1)), int(match.group(2))


def _manylinux_tags(arch: str, glibc: tuple[int, int]) -> Iterator[str]:
    """manylinux tags for glibc `glibc` down to the oldest one of `arch`, newest first, as pip orders them.

    Like `packaging.tags`: x86_64 and i686 go back to glibc 2.5 (manylinux1), every other
    architecture starts at 2.17, the first policy that covered it. `linux_<arch>` is left out:
    it is a wheel built for one machine, not a portable one.
    """
    oldest = 5 if arch in ("x86_64", "i686") else 17
    for minor in range(glibc[1], oldest - 1, -1):
        yield f"manylinux_{glibc[0]}_{minor}_{arch}"
        legacy = _LEGACY_MANYLINUX.get((glibc[0], minor))
        if legacy is not None and arch in legacy[1]:
            yield f"{legacy[0]}_{arch}"


def _mac_binary_formats(version: tuple[int, int], arch: str) -> list[str]:
    """The binary formats a macOS `version` on `arch` runs, as `packaging.tags._mac_binary_formats`."""
    formats = [arch]
    if arch == "x86_64":
        if version < (10, 4):
            return []
        formats += ["intel", "fat64", "fat3"]
    formats.append("universal2")  # arm64 and x86_64 both run universal2 (fat) binaries
    if arch == "x86_64":
        formats.append("universal")
    return formats


def _macos_tags(arch: str, version: tuple[int, int]) -> Iterator[str]:
    """The macOS tags a Mac at `version` accepts, as pip generates them (`packaging.tags.mac_platforms`).

    Newest first: `version` itself, then every older release down to 10.4 (arm64 only runs
    universal2 binaries from before 11.0, whose x86_64 half set the old version).
    """
    if (10, 0) <= version < (11, 0):
        for minor in range(version[1], -1, -1):
            for binary_format in _mac_binary_formats((10, minor), arch):
                yield f"macosx_10_{minor}_{binary_format}"
    if version >= (11, 0):
        for major in range(version[0], 10, -1):
            for binary_format in _mac_binary_formats((major, 0), arch):
                yield f"macosx_{major}_0_{binary_format}"
        for minor in range(16, 3, -1):
            formats = _mac_binary_formats((10, minor), arch) if arch == "x86_64" else ["universal2"]
            for binary_format in formats:
                yield f"macosx_10_{minor}_{binary_format}"


@dataclass(frozen=True)
class TargetPlatform:
    """One PBS target platform: a machine a stack's runtime and wheels run on.

    `triple` is PBS' target triple (the key everywhere), `name` the short name users see and
    type, `os` one of `linux`, `macos`, `windows`; `machine` is what `platform.machine()` says
    on the target, `wheel_arch` the architecture part of its wheel tags. `macos_minimum` and
    `glibc_minimum` are the oldest OS the PBS build runs on (None where they do not apply).
    """

    triple: str
    name: str
    os: str
    machine: str
    wheel_arch: str
    macos_minimum: tuple[int, int] | None = None
    glibc_minimum: tuple[int, int] | None = None

    # --- markers ------------------------------------------------------------------------------

    def marker_environment(self, python_full_version: str) -> dict[str, str]:
        """The PEP 508 marker environment of this platform's CPython `python_full_version` (e.g. `3.11.7`).

        What `packaging.markers.default_environment()` returns on the target, except
        `platform_release` and `platform_version`, which name the kernel or OS build of one
        machine and are unknown (`""`) for a lock that covers all of them.
        """
        match = PYTHON_VERSION_RE.fullmatch(python_full_version)
        if match is None:
            raise VenvstacksError(
                f"{python_full_version!r} is not a full Python version such as 3.11.7 (markers need all three parts)"
            )
        return {
            "implementation_name": "cpython",
            # CPython's implementation version is its Python version (`sys.implementation.version`).
            "implementation_version": python_full_version,
            "os_name": "nt" if self.os == "windows" else "posix",
            "platform_machine": self.machine,
            "platform_python_implementation": "CPython",
            "platform_release": "",
            "platform_system": {"linux": "Linux", "macos": "Darwin", "windows": "Windows"}[self.os],
            "platform_version": "",
            "python_full_version": python_full_version,
            "python_version": f"{match.group(1)}.{match.group(2)}",
            "sys_platform": {"linux": "linux", "macos": "darwin", "windows": "win32"}[self.os],
        }

    # --- wheels -------------------------------------------------------------------------------

    def platform_tags(
        self, macos_minimum: tuple[int, int] | None = None, glibc_minimum: tuple[int, int] | None = None
    ) -> tuple[str, ...]:
        """The wheel platform tags that run on every machine this PBS build runs on, most specific first.

        These are what pip's `--platform` should accept. Linux: manylinux from PBS' glibc floor
        (2.17) down, with the legacy manylinux2014/2010/1 aliases. macOS: what pip generates on a
        Mac at the oldest release PBS supports (10.15 on x86_64, 11.0 on arm64) - that release
        and every older one, with the universal2/intel/fat variants - because a wheel tagged for
        a newer macOS than the runtime's minimum would not load on the oldest supported Macs.
        `macos_minimum` raises that floor for stacks that only target newer Macs, and
        `glibc_minimum` the Linux one for stacks deployed on newer distributions (PyTorch, for
        one, ships only manylinux_2_28 wheels); neither goes below PBS' own, which is kept when
        the asked floor is older. Windows: win_amd64.
        """
        if self.os == "linux":
            assert self.glibc_minimum is not None
            glibc = max(self.glibc_minimum, glibc_minimum or self.glibc_minimum)
            return tuple(_manylinux_tags(self.wheel_arch, glibc))
        if self.os == "macos":
            assert self.macos_minimum is not None
            floor = max(self.macos_minimum, macos_minimum or self.macos_minimum)
            return tuple(_macos_tags(self.wheel_arch, floor))
        return (f"win_{self.wheel_arch}",)

    def extension_suffixes(self, python_version: str) -> tuple[str, ...]:
        """The file suffixes of extension modules the target's CPython `python_version` (`3.11`) imports.

        What `importlib.machinery.EXTENSION_SUFFIXES` is on the target, in its order.
        """
        major, minor = _version_tuple(python_version)
        if self.os == "windows":
            return (f".cp{major}{minor}-win_{self.wheel_arch}.pyd", ".pyd")
        if self.os == "macos":
            return (f".cpython-{major}{minor}-darwin.so", ".abi3.so", ".so")
        return (f".cpython-{major}{minor}-{self.machine}-linux-gnu.so", ".abi3.so", ".so")

    # --- venvstacks ---------------------------------------------------------------------------

    @property
    def venvstacks_name(self) -> str:
        """The name venvstacks gives this platform (`linux_x86_64`, `macosx_arm64`, `win_amd64`).

        venvstacks' `platforms` field and its metadata's `target_platform` use wheel-tag style
        names: the OS as wheel tags spell it, then the wheel architecture.
        """
        return f"{_VENVSTACKS_OS[self.os]}_{self.wheel_arch}"

    # --- layout -------------------------------------------------------------------------------

    @property
    def runtime_interpreter(self) -> str:
        """The interpreter of an extracted PBS runtime, relative to its root (`python/` in the archive)."""
        return "python.exe" if self.os == "windows" else "bin/python3"

    @property
    def scripts_dir(self) -> str:
        """Where console scripts go, relative to a prefix (runtime or venv)."""
        return "Scripts" if self.os == "windows" else "bin"

    @property
    def venv_interpreter(self) -> str:
        """A venv's interpreter, relative to the venv."""
        return "Scripts/python.exe" if self.os == "windows" else "bin/python"

    def site_packages(self, python_version: str) -> str:
        """site-packages relative to a prefix (runtime or venv) for Python `python_version` (`3.11`)."""
        major, minor = _version_tuple(python_version)
        return "Lib/site-packages" if self.os == "windows" else f"lib/python{major}.{minor}/site-packages"

    def include_dir(self, python_version: str) -> str:
        """The C headers of Python `python_version` (`3.11`), relative to the runtime's root."""
        major, minor = _version_tuple(python_version)
        return "Include" if self.os == "windows" else f"include/python{major}.{minor}"


@dataclass(frozen=True)
class WheelFloors:
    """The oldest glibc and macOS a stack's wheels must run on, when raised above PBS' own floors.

    None keeps the runtime's floor (glibc 2.17; macOS 10.15 on x86_64, 11.0 on arm64).
    """

    glibc: tuple[int, int] | None = None
    macos: tuple[int, int] | None = None

    def platform_tags(self, platform: TargetPlatform) -> tuple[str, ...]:
        """The wheel platform tags `platform` accepts under these floors."""
        return platform.platform_tags(macos_minimum=self.macos, glibc_minimum=self.glibc)

    def as_dict(self) -> dict[str, str]:
        """The floors that are set, as "X.Y" strings (for the lock's inputs hash)."""
        floors = {"glibc": self.glibc, "macos": self.macos}
        return {key: f"{value[0]}.{value[1]}" for key, value in floors.items() if value is not None}


# PBS' own floors: what a lock resolves for unless the runtime raises them.
PBS_FLOORS = WheelFloors()


def parse_floor(text: str, what: str) -> tuple[int, int] | None:
    """ "2.28" -> (2, 28); "" -> None; anything else is a VenvstacksError naming `what`."""
    if not text:
        return None
    match = _SHORT_VERSION.fullmatch(text)
    if match is None:
        raise VenvstacksError(f"{what}: {text!r} is not a version like 2.28 or 12.0")
    return int(match.group(1)), int(match.group(2))


PLATFORMS: tuple[TargetPlatform, ...] = (
    TargetPlatform(
        "x86_64-unknown-linux-gnu", "linux_x86_64", "linux", "x86_64", "x86_64", glibc_minimum=PBS_GLIBC_MINIMUM
    ),
    TargetPlatform(
        "aarch64-unknown-linux-gnu", "linux_aarch64", "linux", "aarch64", "aarch64", glibc_minimum=PBS_GLIBC_MINIMUM
    ),
    TargetPlatform(
        "x86_64-apple-darwin", "macos_x86_64", "macos", "x86_64", "x86_64", macos_minimum=PBS_MACOS_MINIMUM_X86_64
    ),
    TargetPlatform(
        "aarch64-apple-darwin", "macos_arm64", "macos", "arm64", "arm64", macos_minimum=PBS_MACOS_MINIMUM_ARM64
    ),
    # Windows' platform.machine() says AMD64 (upper case), its wheel tags amd64.
    TargetPlatform("x86_64-pc-windows-msvc", "windows_x86_64", "windows", "AMD64", "amd64"),
)
_BY_NAME = {platform.name: platform for platform in PLATFORMS}
_BY_TRIPLE = {platform.triple: platform for platform in PLATFORMS}


def triple_problem(triple: str) -> str:
    """Why `triple` is not the PBS triple of a platform rules_venvstacks builds for, or "" when it is one.

    The phrase names the known platforms by their short names, each with its triple. Stated once
    per language: rules_venvstacks/private/common/platforms.bzl `triple_problem`.
    """
    if triple in _BY_TRIPLE:
        return ""
    known = ", ".join(f"{name} ({_BY_NAME[name].triple})" for name in sorted(_BY_NAME))
    return f"'{triple}' is not the triple of a platform rules_venvstacks builds for; known: {known}"


@dataclass(frozen=True)
class PlatformsProblem:
    """What is wrong with a list of platforms: the offending value's index and a phrase saying why."""

    index: int
    message: str


def platforms_problem(values: Sequence[str], *, short_names: bool = False) -> PlatformsProblem | None:
    """The first value of a platform list that is unknown or repeated, and why; None when all are fine.

    The one check of a list of platforms in the tool (`--platform` of `lock`, a lock's platforms,
    the platforms a resolution covers); the caller prefixes the message with where the list is.
    `values` are PBS triples, or short names (`linux_x86_64`) with `short_names`. Messages name
    platforms by their short names. Stated once per language, with the same messages:
    rules_venvstacks/private/common/platforms.bzl `platforms_problem`; both judge the cases of
    tests/golden/platform_lists.txt alike.
    """
    seen: set[str] = set()
    for index, value in enumerate(values):
        if short_names:
            message = (
                ""
                if value in _BY_NAME
                else f"unknown platform '{value}'; known platforms: {', '.join(sorted(_BY_NAME))}"
            )
            name = value
        else:
            message = triple_problem(value)
            name = _BY_TRIPLE[value].name if not message else value
        if not message and name in seen:
            message = f"platform {name} is listed twice"
        if message:
            return PlatformsProblem(index, message)
        seen.add(name)
    return None


def by_name(name: str) -> TargetPlatform:
    """The platform whose short name is `name` (e.g. `macos_arm64`); a VenvstacksError lists the known ones."""
    problem = platforms_problem([name], short_names=True)
    if problem is not None:
        raise VenvstacksError(problem.message)
    return _BY_NAME[name]


def by_venvstacks_name(name: str) -> TargetPlatform | None:
    """The platform venvstacks calls `name` (`win_amd64`), or None when rules_venvstacks has none such."""
    for platform in PLATFORMS:
        if platform.venvstacks_name == name:
            return platform
    return None


def by_triple(triple: str) -> TargetPlatform:
    """The platform whose PBS triple is `triple`; a VenvstacksError names the known ones by their short names."""
    problem = triple_problem(triple)
    if problem:
        raise VenvstacksError(problem)
    return _BY_TRIPLE[triple]
