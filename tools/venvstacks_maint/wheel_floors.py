"""`python -m venvstacks_maint wheel-floors`: the oldest glibc and macOS the newest wheels of a package list need.

The measurement behind the default `glibc_minimum` and `macos_minimum` of `venvstacks.runtime`
(docs/platforms.md, "Why these defaults"). For each package it reads the newest release from
PyPI's JSON API (`/pypi/NAME/json`: its `urls` are the release's files) and, among the wheels a
CPython of the given X.Y installs, finds per target architecture the lowest floor a wheel is
tagged for: `manylinux_2_28_x86_64` needs glibc 2.28, `macosx_12_0_arm64` macOS 12.0, a
`universal2` wheel counts for both Mac architectures. The table it prints says, per column, the
floor every package of the list can be locked at: the highest of the packages' lowest floors.

`newest_release`, `wheel_floors` and `render_table` are pure, so they are tested without a
server; only `fetch_releases` touches the network.
"""

from __future__ import annotations

import argparse
import json
import re
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from venvstacks_tool.core.cli import subcommand_parser
from venvstacks_tool.core.errors import VenvstacksError

# The top scientific and AI packages with compiled wheels (and two of the most installed
# compiled dependencies of web services): what a stack's framework layer typically holds.
DEFAULT_PACKAGES = (
    "cryptography",
    "grpcio",
    "jaxlib",
    "matplotlib",
    "numpy",
    "onnxruntime",
    "opencv-python",
    "pandas",
    "pillow",
    "polars",
    "pyarrow",
    "pydantic-core",
    "safetensors",
    "scikit-learn",
    "scipy",
    "tokenizers",
    "torch",
    "xgboost",
)
DEFAULT_INDEX = "https://pypi.org/pypi"
# The columns of the table: (name, OS, the architectures in a wheel tag that run there).
COLUMNS: tuple[tuple[str, str, frozenset[str]], ...] = (
    ("linux_x86_64", "linux", frozenset({"x86_64"})),
    ("linux_aarch64", "linux", frozenset({"aarch64"})),
    ("macos_x86_64", "macos", frozenset({"x86_64", "intel", "universal2", "universal", "fat64", "fat3"})),
    ("macos_arm64", "macos", frozenset({"arm64", "universal2"})),
)
# The legacy manylinux names (PEP 513, 571, 599) and the glibc each stands for.
_LEGACY_MANYLINUX = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
_MANYLINUX = re.compile(r"(manylinux_(\d+)_(\d+)|manylinux1|manylinux2010|manylinux2014)_(\w+)")
_MACOS = re.compile(r"macosx_(\d+)_(\d+)_(\w+)")
_PYTHON_VERSION = re.compile(r"3\.(\d+)")
Floor = tuple[int, int]


@dataclass(frozen=True)
class PackageFloors:
    """The lowest floor per column (`COLUMNS`) among a release's wheels; None where no wheel runs there.

    `pure` is True when the release has a pure-Python wheel (`none-any`), which runs everywhere.
    """

    name: str
    version: str
    floors: Mapping[str, Floor | None]
    pure: bool = False


def _python_minor(python_version: str) -> int:
    """11 for "3.11"; anything else is a VenvstacksError."""
    match = _PYTHON_VERSION.fullmatch(python_version)
    if match is None:
        raise VenvstacksError(f"--python {python_version!r}: expected a Python 3 version like 3.11")
    return int(match.group(1))


def _installs_on(python_minor: int, python_tag: str, abi_tag: str) -> bool:
    """Whether CPython 3.`python_minor` installs a wheel tagged `python_tag`-`abi_tag` (one of its tag sets)."""
    own = f"cp3{python_minor}"
    if python_tag == own and abi_tag in (own, "abi3", "none"):
        return True
    stable = re.fullmatch(r"cp3(\d+)", python_tag)
    if abi_tag == "abi3" and stable is not None and int(stable.group(1)) <= python_minor:
        return True
    return python_tag in ("py3", f"py3{python_minor}") and abi_tag == "none"


def _platform_floor(platform_tag: str, os: str, arches: frozenset[str]) -> Floor | None:
    """The glibc or macOS floor `platform_tag` needs in a column of `os` and `arches`; None if it is not for it."""
    if os == "linux":
        match = _MANYLINUX.fullmatch(platform_tag)
        if match is None or match.group(4) not in arches:
            return None
        if match.group(2) is not None:
            return int(match.group(2)), int(match.group(3))
        return _LEGACY_MANYLINUX[match.group(1)]
    match = _MACOS.fullmatch(platform_tag)
    if match is None or match.group(3) not in arches:
        return None
    return int(match.group(1)), int(match.group(2))


def wheel_floors(name: str, version: str, filenames: Iterable[str], python_version: str) -> PackageFloors:
    """The lowest floor per column among the wheels of `filenames` a CPython `python_version` (`3.11`) installs."""
    python_minor = _python_minor(python_version)
    floors: dict[str, Floor | None] = {column: None for column, _, _ in COLUMNS}
    pure = False
    for filename in filenames:
        if not _wheel_installs(filename, python_minor):
            continue
        platform_tags = filename[: -len(".whl")].split("-")[-1]
        if platform_tags == "any":
            pure = True
        for column, os, arches in COLUMNS:
            for platform_tag in platform_tags.split("."):
                floor = _platform_floor(platform_tag, os, arches)
                current = floors[column]
                if floor is not None and (current is None or floor < current):
                    floors[column] = floor
    return PackageFloors(name, version, floors, pure)


def _wheel_installs(filename: str, python_minor: int) -> bool:
    """Whether `filename` is a wheel CPython 3.`python_minor` installs on some platform."""
    if not filename.endswith(".whl"):
        return False
    python_tags, abi_tags = filename[: -len(".whl")].split("-")[-3:-1]
    return any(
        _installs_on(python_minor, python_tag, abi_tag)
        for python_tag in python_tags.split(".")
        for abi_tag in abi_tags.split(".")
    )


def newest_release(releases: Mapping[str, Sequence[Mapping[str, Any]]], python_version: str) -> tuple[str, list[str]]:
    """The newest final release of `releases` (JSON API `releases`) with a wheel for `python_version`, and its files.

    Pre-releases and yanked files are left out; ("", []) when no release has such a wheel.
    """
    from packaging.version import InvalidVersion, Version  # imported here: only this subcommand needs it

    python_minor = _python_minor(python_version)
    candidates = []
    for text, files in releases.items():
        try:
            version = Version(text)
        except InvalidVersion:
            continue
        names = [str(entry["filename"]) for entry in files if not entry.get("yanked")]
        if not version.is_prerelease and any(_wheel_installs(name, python_minor) for name in names):
            candidates.append((version, text, names))
    if not candidates:
        return "", []
    _, text, names = max(candidates)
    return text, sorted(names)


def _cell(floor: Floor | None, pure: bool) -> str:
    if floor is not None:
        return f"{floor[0]}.{floor[1]}"
    return "any" if pure else "no wheel"


def render_table(python_version: str, packages: Sequence[PackageFloors]) -> str:
    """A Markdown table: a row per package, then the floor that locks them all per column."""
    names = [column for column, _, _ in COLUMNS]
    lines = [
        f"Lowest glibc (Linux) and macOS each release's wheels for CPython {python_version} need",
        "",
        "| package | version | " + " | ".join(names) + " |",
        "| --- | --- | " + " | ".join("---" for _ in names) + " |",
    ]
    for package in sorted(packages, key=lambda package: package.name):
        cells = [_cell(package.floors[column], package.pure) for column in names]
        lines.append(f"| {package.name} | {package.version} | " + " | ".join(cells) + " |")
    needed = []
    for column in names:
        floors = [package.floors[column] for package in packages if not package.pure]
        present = [floor for floor in floors if floor is not None]
        missing = len(floors) - len(present)
        cell = _cell(max(present), False) if present else "-"
        needed.append(cell + (f" ({missing} without a wheel)" if missing else ""))
    lines.append("| **floor that locks them all** | | " + " | ".join(needed) + " |")
    return "\n".join(lines) + "\n"


def fetch_releases(index: str, name: str) -> dict[str, list[dict[str, Any]]]:
    """The `releases` of `name` on `index` (PyPI's JSON API): {version -> its files}."""
    url = f"{index.rstrip('/')}/{name}/json"
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            document: dict[str, Any] = json.load(response)
    except OSError as error:
        raise VenvstacksError(f"{url}: {error}") from error
    releases: dict[str, list[dict[str, Any]]] = document["releases"]
    return releases


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `wheel-floors`."""
    parser = subcommand_parser(
        "wheel-floors", "Print the lowest glibc and macOS the newest wheels of the given packages need."
    )
    parser.add_argument(
        "packages", nargs="*", default=list(DEFAULT_PACKAGES), help="project names (default: %(default)s)"
    )
    parser.add_argument("--python", default="3.11", help="the CPython X.Y the wheels are for (default: 3.11)")
    parser.add_argument("--index", default=DEFAULT_INDEX, help="a JSON API base like %(default)s")
    return parser


def main(argv: list[str]) -> int:
    """Fetch each package's releases and print the table of the newest with wheels for the Python."""
    args = build_parser().parse_args(argv)
    with ThreadPoolExecutor(max_workers=8) as pool:
        releases = list(pool.map(lambda name: fetch_releases(args.index, name), args.packages))
    packages = []
    for name, versions in zip(args.packages, releases, strict=True):
        version, filenames = newest_release(versions, args.python)
        if not version:
            raise VenvstacksError(f"{name}: no release has a wheel for CPython {args.python}")
        packages.append(wheel_floors(name, version, filenames, args.python))
    print(render_table(args.python, packages), end="")
    return 0
