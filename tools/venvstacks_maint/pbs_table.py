"""`python -m venvstacks_maint pbs-table`: regenerate the built-in table of python-build-standalone runtimes.

The table (`rules_venvstacks/private/fetch/pbs_releases.json`) is read by the module extension with
Starlark `json.decode` and by the tool; its field names are shared with that Starlark code, so
keep them in sync: `comment`, `checked`, `download_base`, `latest`, `versions`, and per version `release`,
`assets`, and per platform `file`, `sha256`, `strip_prefix`.

For each `--release TAG` this asks the GitHub REST API for the release's asset list, downloads the
release's `SHA256SUMS` asset, and keeps, per CPython version and per supported platform, the one
`install_only` (or `install_only_stripped`) archive. Parsing and table assembly are pure functions
so they are tested without a server; only `fetch_release` touches the network.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from venvstacks_tool.core.cli import add_repeatable, subcommand_parser
from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.core.fsutil import write_bytes_atomic

PBS_REPOSITORY = "astral-sh/python-build-standalone"
DEFAULT_API_BASE = "https://api.github.com"
DEFAULT_DOWNLOAD_BASE = f"https://github.com/{PBS_REPOSITORY}/releases/download"
SHA256SUMS = "SHA256SUMS"

# The platforms every table entry covers (PBS target triples). Keep in sync with the Starlark
# platform mapping in rules_venvstacks/private/.
PLATFORMS: tuple[str, ...] = (
    "aarch64-apple-darwin",
    "aarch64-unknown-linux-gnu",
    "x86_64-apple-darwin",
    "x86_64-pc-windows-msvc",
    "x86_64-unknown-linux-gnu",
)
FLAVORS: tuple[str, ...] = ("install_only", "install_only_stripped")
# Both install_only flavours unpack to a single top-level `python/` directory.
STRIP_PREFIX = "python"

_ASSET_RE = re.compile(
    r"^cpython-(?P<version>\d+\.\d+\.\d+(?:(?:a|b|rc)\d+)?)"
    r"\+(?P<release>\d+)-(?P<rest>.+)\.(?P<ext>tar\.gz|tar\.zst)$"
)
_FINAL_VERSION_RE = re.compile(r"^\d+\.\d+\.\d+$")
_SHA256_RE = re.compile(r"^[0-9a-fA-F]{64}$")
_MINOR_RE = re.compile(r"^\d+\.\d+$")
_RELEASE_RE = re.compile(r"^\d{8}$")


@dataclass(frozen=True)
class AssetName:
    """The parts of a PBS CPython asset file name.

    `cpython-3.12.7+20241016-x86_64-pc-windows-msvc-shared-install_only.tar.gz` gives
    version `3.12.7`, release `20241016`, platform `x86_64-pc-windows-msvc`,
    build `shared-install_only` and ext `tar.gz`.
    """

    name: str
    version: str
    release: str
    platform: str
    build: str
    ext: str


@dataclass(frozen=True)
class ReleaseData:
    """What the table needs from one PBS release: its tag, asset names and SHA256SUMS."""

    tag: str
    asset_names: tuple[str, ...]
    sha256s: Mapping[str, str]
    sums_url: str = SHA256SUMS


def parse_asset_name(name: str) -> AssetName | None:
    """Split a PBS asset file name into its parts; `None` if it is not a CPython archive.

    The platform is the target triple: three parts for Apple (`aarch64-apple-darwin`), four for
    the others (`x86_64-unknown-linux-gnu`, `x86_64-pc-windows-msvc`); the build is the rest
    (`install_only`, `shared-install_only`, `freethreaded+pgo+lto-full`, `debug-full`, ...).
    """
    match = _ASSET_RE.match(name)
    if match is None:
        return None
    parts = match.group("rest").split("-")
    width = 3 if len(parts) > 1 and parts[1] == "apple" else 4
    if len(parts) <= width:
        return None
    return AssetName(
        name=name,
        version=match.group("version"),
        release=match.group("release"),
        platform="-".join(parts[:width]),
        build="-".join(parts[width:]),
        ext=match.group("ext"),
    )


def parse_sha256sums(text: str, source: str = SHA256SUMS) -> dict[str, str]:
    """Parse a `sha256sum`-style file (`<sha256>  <file name>` per line) into name -> sha256.

    Hashes are lower-cased; a leading `*` (binary-mode marker) on the name is dropped. A malformed
    line raises `VenvstacksError` naming `source` and the line number.
    """
    sums: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        fields = line.split(None, 1)
        if len(fields) != 2 or not _SHA256_RE.match(fields[0]):
            raise VenvstacksError(f"{source}: line {number} is not '<sha256>  <file>': {line!r}")
        sums[fields[1].strip().lstrip("*")] = fields[0].lower()
    return sums


def version_key(version: str) -> tuple[int, ...]:
    """Sort key of a final `X.Y.Z` version string."""
    return tuple(int(part) for part in version.split("."))


def minor_of(version: str) -> str:
    """The `X.Y` of an `X.Y.Z` version string."""
    return ".".join(version.split(".")[:2])


def _build_rank(asset: AssetName, flavor: str) -> int | None:
    """How well `asset` matches `flavor`: 0 exact, 1 the legacy Windows `shared-` name, else None.

    Windows archives were once named `...-windows-msvc-shared-install_only`; releases since mid
    2024 carry both names for the same bytes, older ones only the `shared-` one.
    """
    if asset.build == flavor:
        return 0
    if asset.build == f"shared-{flavor}" and "windows" in asset.platform:
        return 1
    return None


def select_assets(
    asset_names: Iterable[str],
    flavor: str = "install_only",
    pythons: Sequence[str] = (),
) -> dict[str, dict[str, AssetName]]:
    """Pick, per final CPython version and supported platform, the one archive of `flavor`.

    Skips pre-releases, free-threaded and debug builds, other flavours, and platforms outside
    `PLATFORMS` (including micro-architecture variants such as `x86_64_v3-unknown-linux-gnu`).
    `pythons`, when given, keeps only those minor versions (`3.12`). Returns
    version -> platform -> asset; a version may lack some platforms.
    """
    if flavor not in FLAVORS:
        raise VenvstacksError(f"unknown flavor {flavor!r}; expected one of {', '.join(FLAVORS)}")
    ranked: dict[str, dict[str, tuple[int, AssetName]]] = {}
    for name in asset_names:
        asset = parse_asset_name(name)
        if asset is None or asset.ext != "tar.gz" or asset.platform not in PLATFORMS:
            continue
        if not _FINAL_VERSION_RE.match(asset.version):
            continue
        if pythons and minor_of(asset.version) not in pythons:
            continue
        rank = _build_rank(asset, flavor)
        if rank is None:
            continue
        per_platform = ranked.setdefault(asset.version, {})
        current = per_platform.get(asset.platform)
        if current is None or (rank, asset.name) < (current[0], current[1].name):
            per_platform[asset.platform] = (rank, asset)
    return {
        version: {platform: pair[1] for platform, pair in per_platform.items()}
        for version, per_platform in ranked.items()
    }


def release_entries(
    release: ReleaseData,
    flavor: str = "install_only",
    pythons: Sequence[str] = (),
    warn: Callable[[str], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """The table's `versions` entries contributed by one release.

    A version that lacks one of `PLATFORMS` is left out (and reported through `warn`, a callable
    taking a message, if given). Raises `VenvstacksError` if nothing matches, or if a chosen
    archive is not listed in the release's SHA256SUMS.
    """
    selected = select_assets(release.asset_names, flavor, pythons)
    entries: dict[str, dict[str, Any]] = {}
    for version in sorted(selected, key=version_key):
        per_platform = selected[version]
        missing = [platform for platform in PLATFORMS if platform not in per_platform]
        if missing:
            if warn is not None:
                warn(
                    f"release {release.tag}: skipping CPython {version}: no {flavor} archive for " + ", ".join(missing)
                )
            continue
        assets: dict[str, dict[str, str]] = {}
        for platform in PLATFORMS:
            asset = per_platform[platform]
            sha256 = release.sha256s.get(asset.name)
            if sha256 is None:
                raise VenvstacksError(f"release {release.tag}: asset {asset.name} is not listed in {release.sums_url}")
            assets[platform] = {
                "file": asset.name,
                "sha256": sha256,
                "strip_prefix": STRIP_PREFIX,
            }
        entries[version] = {"release": release.tag, "assets": assets}
    if not entries:
        wanted = f" for Python {', '.join(pythons)}" if pythons else ""
        raise VenvstacksError(
            f"release {release.tag}: no {flavor} CPython archives{wanted} covering all of " + ", ".join(PLATFORMS)
        )
    return entries


def default_comment(
    releases: Sequence[str],
    flavor: str = "install_only",
    pythons: Sequence[str] = (),
    sha256_source: str = "each release's SHA256SUMS asset",
) -> str:
    """The table's `comment`: what it is, where its hashes came from, the command to rebuild it."""
    args = [f"--release {tag}" for tag in releases]
    args += [f"--python {minor}" for minor in pythons]
    if flavor != "install_only":
        args.append(f"--flavor {flavor}")
    command = " ".join(
        [
            "PYTHONPATH=tools python -m venvstacks_maint pbs-table",
            *args,
            "--output rules_venvstacks/private/fetch/pbs_releases.json",
        ]
    )
    return (
        f"python-build-standalone CPython {flavor} archives, read by the rules_venvstacks module "
        "extension (json.decode) and tool; an archive's URL is "
        "{download_base}/{release}/{file with '+' as %2B}. "
        f"sha256s from {sha256_source}. "
        f"Generated, do not edit; refresh from the repository root with `{command}`."
    )


def build_table(
    releases: Sequence[ReleaseData],
    download_base: str = DEFAULT_DOWNLOAD_BASE,
    flavor: str = "install_only",
    pythons: Sequence[str] = (),
    comment: str | None = None,
    warn: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Assemble the whole table from several releases.

    When two releases carry the same CPython version the newest release tag wins; `latest` maps
    each minor version to its highest patch version in the table.
    """
    versions: dict[str, dict[str, Any]] = {}
    for release in sorted(releases, key=lambda r: (len(r.tag), r.tag)):
        versions.update(release_entries(release, flavor, pythons, warn))
    latest: dict[str, str] = {}
    for version in versions:
        minor = minor_of(version)
        if minor not in latest or version_key(version) > version_key(latest[minor]):
            latest[minor] = version
    if comment is None:
        comment = default_comment([r.tag for r in releases], flavor, pythons)
    # Where each sha256 was checked: a refresh reads them from the release's own SHA256SUMS.
    checked = {
        asset["file"]: [f"{SHA256SUMS} of PBS release {entry['release']}"]
        for entry in versions.values()
        for asset in entry["assets"].values()
    }
    return {
        "checked": dict(sorted(checked.items())),
        "comment": comment,
        "download_base": download_base.rstrip("/"),
        "latest": latest,
        "versions": versions,
    }


def render_table(table: Mapping[str, Any]) -> str:
    """The table as written to disk: sorted keys, 2-space indent, trailing newline."""
    return json.dumps(table, indent=2, sort_keys=True) + "\n"


def _get(session: Any, url: str, what: str, headers: Mapping[str, str] | None = None) -> Any:
    """GET `url`, raising `VenvstacksError` naming `what` and the URL on any failure."""
    import requests  # imported here: only this subcommand needs it

    try:
        response = session.get(url, headers=dict(headers or {}), timeout=60)
    except requests.RequestException as error:
        raise VenvstacksError(f"{what}: GET {url} failed: {error}") from error
    if response.status_code != 200:
        raise VenvstacksError(f"{what}: GET {url} returned HTTP {response.status_code}")
    return response


def fetch_release(
    session: Any,
    tag: str,
    api_base: str = DEFAULT_API_BASE,
    token: str | None = None,
) -> ReleaseData:
    """Fetch one release's asset names (GitHub REST API) and its SHA256SUMS asset."""
    api_url = f"{api_base.rstrip('/')}/repos/{PBS_REPOSITORY}/releases/tags/{tag}"
    headers = {
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": "2022-11-28",
    }
    if token:
        headers["Authorization"] = f"Bearer {token}"
    response = _get(session, api_url, f"release {tag}", headers)
    try:
        assets = response.json()["assets"]
        urls = {asset["name"]: asset["browser_download_url"] for asset in assets}
    except (ValueError, KeyError, TypeError) as error:
        raise VenvstacksError(f"release {tag}: {api_url} is not a GitHub release (no assets list): {error}") from error
    sums_url = urls.get(SHA256SUMS)
    if sums_url is None:
        raise VenvstacksError(f"release {tag} has no {SHA256SUMS} asset ({api_url})")
    sums_text = _get(session, sums_url, f"release {tag} {SHA256SUMS}").text
    return ReleaseData(
        tag=tag,
        asset_names=tuple(sorted(urls)),
        sha256s=parse_sha256sums(sums_text, sums_url),
        sums_url=sums_url,
    )


def build_parser() -> argparse.ArgumentParser:
    """The `pbs-table` command line."""
    parser = subcommand_parser(
        "pbs-table", "Regenerate the table of python-build-standalone runtimes from release data."
    )
    parser.add_argument(
        "--release",
        action="append",
        required=True,
        metavar="TAG",
        help="PBS release tag (e.g. 20241016); repeatable, the newest wins for a shared version",
    )
    add_repeatable(
        parser,
        "--python",
        "python",
        "X.Y",
        "keep only this minor version; repeatable (default: every version in the releases)",
    )
    parser.add_argument("--flavor", choices=FLAVORS, default="install_only")
    parser.add_argument("--output", required=True, help="the JSON file to write")
    parser.add_argument("--api-base", default=DEFAULT_API_BASE, help="GitHub REST API root")
    parser.add_argument(
        "--download-base",
        default=DEFAULT_DOWNLOAD_BASE,
        help="base of the archive URLs recorded in the table",
    )
    return parser


def main(argv: list[str]) -> int:
    """Fetch the releases, assemble the table and write it to `--output`."""
    args = build_parser().parse_args(argv)
    for tag in args.release:
        if not _RELEASE_RE.match(tag):
            raise VenvstacksError(f"--release {tag!r}: expected a PBS tag like 20241016")
    for minor in args.python:
        if not _MINOR_RE.match(minor):
            raise VenvstacksError(f"--python {minor!r}: expected a minor version like 3.12")
    output = args.output
    # Under `bazel run` the working directory is the runfiles tree; resolve relative to the
    # workspace the user ran it from.
    workspace = os.environ.get("BUILD_WORKSPACE_DIRECTORY")
    if workspace and not os.path.isabs(output):
        output = os.path.join(workspace, output)

    import requests  # imported here: only this subcommand needs it

    token = os.environ.get("GITHUB_TOKEN") or None
    with requests.Session() as session:
        releases = [fetch_release(session, tag, args.api_base, token) for tag in args.release]

    def warn(message: str) -> None:
        print(f"venvstacks: warning: {message}", file=sys.stderr)

    table = build_table(
        releases,
        download_base=args.download_base,
        flavor=args.flavor,
        pythons=args.python,
        # The comment names the checked-in path, never `--output`, which may be absolute.
        comment=default_comment(args.release, args.flavor, args.python),
        warn=warn,
    )
    write_bytes_atomic(Path(output), render_table(table).encode("utf-8"))
    count = len(table["versions"])
    print(f"wrote {count} CPython versions to {output}", file=sys.stderr)
    return 0
