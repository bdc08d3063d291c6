"""`python -m venvstacks_maint uv-wheels`: pin a uv release in tool_wheels.json (its `uv` entry).

The `.lock` targets run uv (`--@rules_venvstacks//settings:resolver=uv`) from its PyPI wheel for
the execution platform, fetched by Bazel's downloader with the sha256 written here
(`rules_venvstacks/private/fetch/uv_repository.bzl`). Keep the field names in sync with
`fetch/extension.bzl`: `uv` -> `version`, `wheels` -> per PBS triple `file`, `sha256`, `url`.

This reads the project page of PyPI's simple API in its JSON form (PEP 691: file names, URLs
and sha256, what the lock itself trusts) and keeps one wheel per platform. `select_wheels` is
pure, so it is tested without a server; only `fetch_files` touches the network.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from venvstacks_tool.core.cli import subcommand_parser
from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.core.fsutil import write_bytes_atomic

DEFAULT_TABLE = "rules_venvstacks/private/fetch/tool_wheels.json"
DEFAULT_INDEX = "https://pypi.org/simple"
# The wheel each execution platform runs, by the end of its file name: glibc 2.17 and macOS
# 10.12/11.0 builds, so uv runs wherever the platform's PBS runtime does.
PLATFORM_SUFFIXES: Mapping[str, str] = {
    "aarch64-apple-darwin": "-py3-none-macosx_11_0_arm64.whl",
    "aarch64-unknown-linux-gnu": "-py3-none-manylinux_2_17_aarch64.manylinux2014_aarch64.musllinux_1_1_aarch64.whl",
    "x86_64-apple-darwin": "-py3-none-macosx_10_12_x86_64.whl",
    "x86_64-pc-windows-msvc": "-py3-none-win_amd64.whl",
    "x86_64-unknown-linux-gnu": "-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
}
_VERSION_RE = re.compile(r"\d+\.\d+\.\d+")


def newest_version(files: Sequence[Mapping[str, Any]]) -> str:
    """The highest final release (X.Y.Z) among the project's file names."""
    versions = set()
    for entry in files:
        match = re.match(r"uv-(\d+\.\d+\.\d+)-", str(entry.get("filename", "")))
        if match:
            versions.add(match.group(1))
    if not versions:
        raise VenvstacksError("the index lists no uv release")
    return max(versions, key=lambda version: tuple(int(part) for part in version.split(".")))


def select_wheels(files: Sequence[Mapping[str, Any]], version: str) -> dict[str, dict[str, str]]:
    """{triple -> {file, sha256, url}} of uv `version` for every platform, from a PEP 691 `files` list.

    A platform without its wheel, or a wheel without a sha256, is a VenvstacksError.
    """
    by_name = {str(entry["filename"]): entry for entry in files}
    wheels = {}
    for triple, suffix in sorted(PLATFORM_SUFFIXES.items()):
        name = f"uv-{version}{suffix}"
        entry = by_name.get(name)
        if entry is None:
            raise VenvstacksError(f"uv {version} has no wheel {name} for {triple} on the index")
        sha256 = str((entry.get("hashes") or {}).get("sha256", ""))
        if not re.fullmatch(r"[0-9a-f]{64}", sha256):
            raise VenvstacksError(f"{name}: the index gives no sha256")
        wheels[triple] = {"file": name, "sha256": sha256, "url": str(entry["url"]).partition("#")[0]}
    return wheels


def updated_table(table: Mapping[str, Any], version: str, wheels: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
    """`table` with its `uv` entry set to `version` and `wheels` (every other key kept, in order)."""
    result = dict(table)
    result["uv"] = {"version": version, "wheels": {triple: dict(wheel) for triple, wheel in sorted(wheels.items())}}
    return result


def fetch_files(index: str) -> list[dict[str, Any]]:
    """The `files` of uv's project page on `index` (PEP 691 JSON)."""
    import requests  # imported here: only this subcommand needs it

    response = requests.get(
        index.rstrip("/") + "/uv/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}, timeout=60
    )
    response.raise_for_status()
    files: list[dict[str, Any]] = response.json()["files"]
    return files


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `uv-wheels`."""
    parser = subcommand_parser("uv-wheels", "Pin a uv release (one wheel per platform, sha256) in tool_wheels.json.")
    parser.add_argument("--version", default="", help="the uv release, e.g. 0.13.9 (default: the newest)")
    parser.add_argument("--index", default=DEFAULT_INDEX, help="the package index (PEP 691 JSON)")
    parser.add_argument("--table", default=DEFAULT_TABLE, help="the table to update, relative to the workspace")
    return parser


def main(argv: list[str]) -> int:
    """Read uv's files from the index and write the `uv` entry of the table."""
    args = build_parser().parse_args(argv)
    if args.version and not _VERSION_RE.fullmatch(args.version):
        raise VenvstacksError(f"--version {args.version!r}: expected a release like 0.13.9")
    path = Path(os.environ.get("BUILD_WORKSPACE_DIRECTORY", "."), args.table)
    files = fetch_files(args.index)
    version = args.version or newest_version(files)
    table = updated_table(json.loads(path.read_text(encoding="utf-8")), version, select_wheels(files, version))
    write_bytes_atomic(path, (json.dumps(table, indent=2) + "\n").encode("utf-8"))
    print(f"venvstacks: {args.table}: uv {version}, {len(PLATFORM_SUFFIXES)} wheels")
    return 0
