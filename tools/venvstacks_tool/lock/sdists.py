"""Packages a layer builds from their sdist (`build_from_sdist`): chosen, built once and described at lock time.

A package named in the layer's `build_from_sdist` is installed from a wheel that a build action
makes from its sdist (docs/locking.md, "Packages with no wheel"). At lock time, where the network
is allowed but only to the layer's indexes, `prepare` does for each such package:

1. picks the sdist: the newest version on the indexes (PEP 691 JSON or PEP 503 HTML pages) that satisfies the
   layer's top-level requirement on the package, its `Requires-Python` and no yank, the current
   lock's version first when it still does; the sdist is downloaded and checked against the
   index's sha256;
2. reads its build requirements (`[build-system] requires` of its `pyproject.toml`, or
   setuptools' legacy default `setuptools>=40.8.0` without one) and resolves them, once, as
   pure-Python wheels (`*-none-any.whl`): the build action runs on whatever execution platform
   builds (a remote executor too), so only wheels that install on every one of them are locked;
3. builds the wheel with pip (build isolation, from the same indexes), which tells the package's
   dependencies (its METADATA, for the resolvers) and whether the wheel is pure Python. A
   platform-specific wheel (extension modules) makes the package native: each platform builds
   its own wheel, where the target is the execution platform, whose names `native_sdists`
   derives from the host's (`built_wheel_names`).

The built wheels are put in a find-links directory the resolvers see for the rest of the lock, so
pip and uv resolve the package (and its dependencies) as if the index had that wheel, and both
write the same lock; `lock_command` then records the sdist, the built wheel's name and the build
wheels instead of the find-links file (`pylock.BuiltFromSdist`).
"""

from __future__ import annotations

import sys
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.core.fsutil import sha256_file
from venvstacks_tool.core.platforms import TargetPlatform, WheelFloors
from venvstacks_tool.core.process import output_tail, run_captured
from venvstacks_tool.core.project_names import normalize_name
from venvstacks_tool.lock import native_sdists, resolve
from venvstacks_tool.lock.index_options import IndexOptions
from venvstacks_tool.lock.named_indexes import NO_NAMED_INDEXES, NamedIndexes
from venvstacks_tool.lock.pylock import BuiltFromSdist, LockedWheel, load_toml
from venvstacks_tool.lock.urls import file_url_path, strip_credentials

if TYPE_CHECKING:
    from venvstacks_tool.lock.simple_index import IndexFile

# What pip and `build` assume for an sdist without `[build-system]` (PEP 517's legacy fallback).
LEGACY_BUILD_REQUIRES = ("setuptools>=40.8.0",)
# pip's own CLI, started on the tool's pinned pip (the lock targets' sys.path).
_PIP_BOOTSTRAP = "import sys; sys.path[0:0] = {paths!r}; from pip._internal.cli.main import main; sys.exit(main())"


@dataclass(frozen=True)
class PreparedSdist:
    """One package of `build_from_sdist`, ready for the resolvers and the lock."""

    name: str  # normalized
    version: str
    built: BuiltFromSdist
    wheel_names: dict[str, str]  # {triple -> the wheel that platform's build makes}


def parse_build_requires(pyproject: str | None, origin: str) -> list[str]:
    """The `[build-system] requires` of a `pyproject.toml` text (None: no such file), PEP 518's rules.

    No file, or a file without `[build-system]`, gives the legacy default; a `requires` that is
    not a list of strings is a VenvstacksError naming `origin`.
    """
    if pyproject is None:
        return list(LEGACY_BUILD_REQUIRES)
    build_system = load_toml(pyproject, f"{origin}: pyproject.toml").get("build-system")
    if build_system is None:
        return list(LEGACY_BUILD_REQUIRES)
    requires = build_system.get("requires") if isinstance(build_system, dict) else None
    if not isinstance(requires, list) or not all(isinstance(item, str) for item in requires):
        raise VenvstacksError(f"{origin}: pyproject.toml: [build-system] requires must be a list of strings")
    return list(requires)


def read_pyproject(sdist: Path) -> str | None:
    """The text of `<top>/pyproject.toml` in the sdist (a .tar.gz), or None when it has none."""
    top = sdist_stem(sdist.name)
    try:
        with tarfile.open(sdist, "r:gz") as archive:
            try:
                member = archive.getmember(f"{top}/pyproject.toml")
            except KeyError:
                return None
            stream = archive.extractfile(member)
            return None if stream is None else stream.read().decode("utf-8")
    except (OSError, tarfile.TarError, UnicodeDecodeError) as error:
        raise VenvstacksError(f"sdist {sdist.name}: cannot read its pyproject.toml: {error}") from error


def sdist_stem(file_name: str) -> str:
    """`docopt-0.6.2` of `docopt-0.6.2.tar.gz`: the directory a PEP 625 sdist holds everything in."""
    if not file_name.endswith(".tar.gz"):
        raise VenvstacksError(f"sdist {file_name}: not a .tar.gz (PEP 625); only .tar.gz sdists are built")
    return file_name.removesuffix(".tar.gz")


def is_pure_wheel(file_name: str) -> bool:
    """Whether the wheel file name is tagged for every platform and ABI (`...-none-any.whl`)."""
    return file_name.endswith("-none-any.whl")


def sdist_files(name: str, index: IndexOptions, named: NamedIndexes) -> list[list[IndexFile]]:
    """The files each place offers for project `name`, in order: its index route, then each find-links entry.

    The indexes are read as the routing index routes them for the resolvers (`index_router`):
    a project of `package_indexes` from its index only, else the first priority index that has
    it, else the layer's `index_url` and `extra_index_urls` merged. The find-links entries are
    read as pip reads them (`simple_index.find_links_files`), and a local sdist of the project
    gets its sha256 computed here, as no page gives one.
    """
    # Imported here: every lock run imports this module, and most build nothing from an sdist
    # (the reader pulls in urllib.request and http.server).
    from venvstacks_tool.lock.index_router import Router
    from venvstacks_tool.lock.simple_index import find_links_files

    places = [Router(named, (index.index_url, *index.extra_index_urls)).files(name) or []]
    for link in index.find_links:
        places.append([_with_local_hash(file, name) for file in find_links_files(link)])
    return places


def _with_local_hash(file: IndexFile, name: str) -> IndexFile:
    """`file` with the sha256 of its bytes when it is a local sdist of project `name` that has none."""
    stem = file.name.removesuffix(".tar.gz")
    if file.sha256 or stem == file.name or not file.url.startswith("file:"):
        return file
    if normalize_name(stem.rpartition("-")[0]) != name:
        return file
    return replace(file, url=f"{file.bare_url}#sha256={sha256_file(file_url_path(file.bare_url))}")


def choose_sdist(
    layer: str,
    name: str,
    files_by_index: Sequence[Sequence[IndexFile]],
    specifier: str,
    python_version: str,
    preferred: str | None,
) -> LockedWheel:
    """The sdist of `name` to build: the preferred version if it fits, else the newest that does.

    Fits: satisfies `specifier` (the layer's requirement), `Requires-Python` holds for
    `python_version`, not yanked, and the page gives a sha256 (or it is a local file, hashed by
    `sdist_files`). Of one version on several places (`files_by_index`, in `sdist_files`' order),
    the first place's file is taken.
    """
    from packaging.specifiers import InvalidSpecifier, SpecifierSet
    from packaging.utils import InvalidSdistFilename, parse_sdist_filename
    from packaging.version import Version

    wanted = SpecifierSet(specifier)
    candidates: dict[Version, LockedWheel] = {}
    for files in files_by_index:
        for item in files:
            file_name = item.name
            if not file_name.endswith(".tar.gz") or item.yanked or not item.sha256:
                continue
            try:
                project, version = parse_sdist_filename(file_name)
                requires_python = SpecifierSet(item.requires_python)
            except (InvalidSdistFilename, InvalidSpecifier):
                continue
            if normalize_name(project) != name or not requires_python.contains(python_version, prereleases=True):
                continue
            if version in wanted and version not in candidates:
                candidates[version] = LockedWheel(file_name, strip_credentials(item.bare_url), item.sha256)
    if not candidates:
        raise VenvstacksError(
            f"layer '{layer}': build_from_sdist names '{name}', but the index has no sdist (.tar.gz) of it that"
            f" satisfies '{name}{specifier}' on Python {python_version}"
        )
    if preferred is not None and Version(preferred) in candidates:
        return candidates[Version(preferred)]
    return candidates[max(candidates)]


def _download(url: str, sha256: str, output: Path, layer: str, index_urls: Sequence[str] = ()) -> None:
    """Download `url` to `output` and check its sha256 against the index's.

    `url` has no credentials (it is what the lock records): those of the index on its host, if
    any of `index_urls`, authenticate the download, else a netrc entry does (`simple_index`).
    """
    from venvstacks_tool.lock.simple_index import open_url, with_credentials_of

    try:
        with open_url(with_credentials_of(url, index_urls), timeout=300) as response, open(output, "wb") as out:
            while chunk := response.read(1 << 20):
                out.write(chunk)
    except OSError as error:
        raise VenvstacksError(f"layer '{layer}': cannot download {strip_credentials(url)}: {error}") from error
    except VenvstacksError as error:  # unreachable: the message names the URL, without credentials
        raise VenvstacksError(f"layer '{layer}': {error}") from None
    found = sha256_file(output)
    if found != sha256:
        raise VenvstacksError(
            f"layer '{layer}': {output.name} from {strip_credentials(url)} has sha256 {found}, the index says {sha256}"
        )


def _build_wheel(layer: str, name: str, sdist: Path, index: IndexOptions, wheel_dir: Path) -> str:
    """Build the wheel of `sdist` into `wheel_dir` with pip (isolated, from the layer's indexes); its file name."""
    paths = [str(Path(entry).resolve()) for entry in sys.path if entry]
    command = [
        sys.executable,
        "-I",
        "-c",
        _PIP_BOOTSTRAP.format(paths=paths),
        "wheel",
        "--no-deps",
        "--no-cache-dir",
        "--disable-pip-version-check",
        "--no-input",
        "--only-binary=:all:",  # the build requirements as wheels, as they are locked
        "--wheel-dir",
        str(wheel_dir),
        str(sdist),
        *index.pip_arguments(),
    ]
    process = run_captured(command, env={**resolve.isolated_pip_environ(), **index.pip_environ()})
    built = sorted(path.name for path in wheel_dir.glob("*.whl"))
    if process.returncode != 0 or len(built) != 1:
        detail = output_tail(process.stdout + "\n" + process.stderr, 1500).replace("\n", " | ")
        raise VenvstacksError(f"layer '{layer}': the sdist {sdist.name} of '{name}' does not build a wheel: {detail}")
    return built[0]


def built_wheel_names(
    wheel_dir: Path, wheel_name: str, platforms: Sequence[TargetPlatform], floors: WheelFloors
) -> dict[str, str]:
    """{triple -> the wheel each platform's build makes}, from the host's build `wheel_name` (in `wheel_dir`).

    A pure-Python wheel is the one every platform installs. A platform-specific one (extension
    modules) is built by each platform for itself, in the target configuration where the target
    is the execution platform: each platform gets its own name (`native_sdists`), and the
    resolvers get a stand-in per platform in `wheel_dir`.
    """
    if is_pure_wheel(wheel_name):
        return {platform.triple: wheel_name for platform in platforms}
    native_sdists.write_stand_ins(wheel_dir / wheel_name, platforms, floors)
    return native_sdists.native_wheel_names(wheel_name, platforms, floors)


def prepare(
    layer: str,
    names: Sequence[str],
    specifiers: Mapping[str, str],
    platforms: Sequence[TargetPlatform],
    python_version: str,
    index: IndexOptions,
    preferred: Mapping[str, str],
    workdir: Path,
    floors: WheelFloors,
    uv: Path | None,
    uv_cache_dir: Path | None,
    named: NamedIndexes = NO_NAMED_INDEXES,
) -> tuple[dict[str, PreparedSdist], Path]:
    """Choose, download and build each package of `names`; returns them and the find-links directory of their wheels.

    `specifiers`: {normalized name -> the specifier of the layer's top-level requirement on it};
    a name without one is refused (a `build_from_sdist` package must be a top-level requirement,
    so its version is chosen by the layer, not by the order of a resolution). Each sdist is looked
    up where `sdist_files` says, `named` routing it as it routes the resolvers.
    """
    wheel_dir = workdir / "sdist-wheels"
    wheel_dir.mkdir(parents=True, exist_ok=True)
    prepared: dict[str, PreparedSdist] = {}
    for name in sorted({normalize_name(name) for name in names}):
        if name not in specifiers:
            raise VenvstacksError(
                f"layer '{layer}': build_from_sdist names '{name}', which is not a top-level requirement of the"
                " layer; add it to the requirements (with the version you want)"
            )
        places = sdist_files(name, index, named)
        sdist = choose_sdist(layer, name, places, specifiers[name], python_version, preferred.get(name))
        scratch = workdir / f"sdist-{name}"
        scratch.mkdir()
        local = scratch / sdist.name
        _download(sdist.url, sdist.sha256, local, layer, [index.index_url, *index.extra_index_urls, *named.all_urls()])
        requires = parse_build_requires(read_pyproject(local), f"sdist {sdist.name}")
        build_wheels = _lock_build_requirements(
            layer, name, requires, platforms, python_version, index, scratch, floors, uv, uv_cache_dir
        )
        wheel_name = _build_wheel(layer, name, local, index, wheel_dir)
        wheel_names = built_wheel_names(wheel_dir, wheel_name, platforms, floors)
        version = sdist_stem(sdist.name).rpartition("-")[2]
        native = not is_pure_wheel(wheel_name)
        built = BuiltFromSdist(sdist, "" if native else wheel_name, build_wheels, native=native)
        prepared[name] = PreparedSdist(name, version, built, wheel_names)
    return prepared, wheel_dir


def _lock_build_requirements(
    layer: str,
    name: str,
    requires: Sequence[str],
    platforms: Sequence[TargetPlatform],
    python_version: str,
    index: IndexOptions,
    scratch: Path,
    floors: WheelFloors,
    uv: Path | None,
    uv_cache_dir: Path | None,
) -> list[LockedWheel]:
    """The pure-Python wheels of `requires`, resolved once (for the lock's first platform, sorted)."""
    if not requires:
        return []
    platform = sorted(platforms, key=lambda p: p.triple)[0]
    result = resolve.resolve(
        f"{layer}' (build requirements of '{name}",
        [platform],
        python_version,
        requires,
        {},
        index,
        {},
        scratch / "build-requirements",
        floors=floors,
        uv=uv,
        uv_cache_dir=uv_cache_dir,
    )
    wheels = []
    for wheel in result.for_platform(platform).values():
        if not is_pure_wheel(wheel.file_name) or wheel.local_path is not None:
            raise VenvstacksError(
                f"layer '{layer}': the build requirement '{wheel.name}' of the sdist of '{name}' has no pure-Python"
                f" wheel on the index ({wheel.file_name}); build requirements must be pure-Python wheels"
                " (`*-none-any.whl`), which every execution platform can run"
            )
        wheels.append(LockedWheel(wheel.file_name, wheel.url, wheel.sha256))
    return sorted(wheels, key=lambda wheel: wheel.name)
