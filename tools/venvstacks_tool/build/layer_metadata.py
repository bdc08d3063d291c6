"""`layer-metadata`: the metadata JSON of a framework or application layer, from its archive record.

With `--published-metadata` it also writes the layer's metadata in venvstacks' published schema
(build/published_metadata.py), from the same inputs plus the runtime layer's name, the archive
members' timestamp (venvstacks' `locked_at`) and the application's own files (its
`app_launch_module_hash` and `app_support_modules`).

Kept apart from `build-layer` so that the archive action needs no lower layer: in Bazel, a layer's
archive builds in parallel with the layers below it, and only this small step waits for their
archive records. It reads no archive, so a remote cache need not send one. From the same records
it writes the layer's `bazel run` key (`--run-key-output`, build/run_key.py), so that a changed
layer costs Bazel two actions, its archive and this one, not a third for the key.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from venvstacks_tool.build import published_metadata
from venvstacks_tool.build.identity import LayerIdentity, add_identity_arguments, identity_from_args
from venvstacks_tool.build.run_key import stack_key
from venvstacks_tool.core import launch_module
from venvstacks_tool.core.cli import add_repeatable, split_pair, subcommand_parser
from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.core.fsutil import sha256_file, write_bytes_atomic
from venvstacks_tool.core.protocol import (
    ArchiveRecord,
    is_sha256,
    layer_metadata,
    read_archive_record,
    write_metadata,
)


@dataclass(frozen=True)
class MetadataRequest:
    """What `layer-metadata` was asked to write, validated."""

    identity: LayerIdentity
    lock_file: Path
    archive_record: Path
    lower_records: tuple[Path, ...]
    output: Path
    published: PublishedRequest | None = None
    run_key_output: Path | None = None
    built_from_sdists: tuple[tuple[str, str], ...] = ()  # (package, sha256 of its sdist)


@dataclass(frozen=True)
class PublishedRequest:
    """What the venvstacks-schema metadata needs beyond the layer's own metadata."""

    output: Path
    runtime_layer: str
    locked_at_epoch: int
    app_files: dict[str, Path]  # destination below site-packages -> file (for the module hashes)
    lock_version: int | None = None  # a versioned layer's (its name is then NAME@N)


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of `layer-metadata` (reads `@paramfile` arguments)."""
    parser = subcommand_parser("layer-metadata", "Write the metadata JSON of a built framework or application layer.")
    add_identity_arguments(parser)
    parser.add_argument("--lock-file", required=True, type=Path, help="the layer's lock: its sha256 is recorded")
    parser.add_argument("--archive-record", required=True, type=Path, help="the record `build-layer` wrote")
    add_repeatable(
        parser,
        "--lower-record",
        "lower_records",
        "PATH",
        "the archive record (or runtime metadata) of a layer this one needs, in deployment order (repeatable)",
        type=Path,
    )
    parser.add_argument("--output", required=True, type=Path, help="the metadata JSON to write")
    add_repeatable(
        parser,
        "--built-from-sdist",
        "built_from_sdists",
        "NAME=SHA256",
        "a package installed from a wheel built from its sdist, and the sdist's sha256 (repeatable)",
    )
    parser.add_argument(
        "--published-metadata", type=Path, help="also write the metadata in venvstacks' published schema here"
    )
    parser.add_argument("--runtime-layer", default="", help="the runtime layer's name (for --published-metadata)")
    parser.add_argument(
        "--lock-version",
        type=int,
        help="a versioned layer's lock version N, its --layer-name being NAME@N (for --published-metadata)",
    )
    parser.add_argument(
        "--source-date-epoch", type=int, help="the archive members' mtime, venvstacks' `locked_at` (seconds)"
    )
    add_repeatable(
        parser,
        "--app-file",
        "app_files",
        "DEST=PATH",
        "an application file and its destination below site-packages, as build-layer takes it (repeatable)",
    )
    parser.add_argument(
        "--run-key-output", type=Path, help="also write the stack's `bazel run` key here (see `run-key`)"
    )
    return parser


def _published_request(args: argparse.Namespace, layer: str) -> PublishedRequest | None:
    if args.published_metadata is None:
        return None
    if not args.runtime_layer or args.source_date_epoch is None or args.source_date_epoch < 0:
        raise VenvstacksError(
            f"layer {layer!r}: --published-metadata needs --runtime-layer and a non-negative --source-date-epoch"
        )
    app_files: dict[str, Path] = {}
    for value in args.app_files:
        dest, sep, path = value.partition("=")
        if not sep or not dest or not path:
            raise VenvstacksError(f"layer {layer!r}: --app-file {value!r} is not of the form DEST=PATH")
        app_files[dest] = Path(path)
    return PublishedRequest(
        args.published_metadata, args.runtime_layer, args.source_date_epoch, app_files, args.lock_version
    )


def parse_request(argv: list[str]) -> MetadataRequest:
    """Parse and validate `layer-metadata`'s command line."""
    args = build_parser().parse_args(argv)
    identity = identity_from_args(args)
    if args.archive_record.resolve() == args.output.resolve():
        raise VenvstacksError(f"layer {identity.name!r}: --archive-record and --output are one file")
    published = _published_request(args, identity.name)
    if published is not None and published.output.resolve() == args.output.resolve():
        raise VenvstacksError(f"layer {identity.name!r}: --published-metadata and --output are one file")
    return MetadataRequest(
        identity,
        args.lock_file,
        args.archive_record,
        tuple(args.lower_records),
        args.output,
        published,
        args.run_key_output,
        _built_from_sdists(args.built_from_sdists, identity.name),
    )


def _built_from_sdists(values: list[str], layer: str) -> tuple[tuple[str, str], ...]:
    """`--built-from-sdist NAME=SHA256` values, each checked."""
    pairs = tuple(split_pair(value, "--built-from-sdist", f"layer {layer!r}", "NAME=SHA256") for value in values)
    for name, sha256 in pairs:
        if not is_sha256(sha256):
            raise VenvstacksError(f"layer {layer!r}: --built-from-sdist {name}: {sha256!r} is not a hex sha256")
    return pairs


def _lock_hash(path: Path, layer: str) -> str:
    try:
        return "sha256:" + sha256_file(path)
    except OSError as error:
        raise VenvstacksError(f"layer {layer!r}: cannot read the lock file {str(path)!r}") from error


def _own_record(request: MetadataRequest) -> ArchiveRecord:
    identity = request.identity
    record = read_archive_record(request.archive_record, identity.name)
    if record.layer_name != identity.name:
        raise VenvstacksError(
            f"layer {identity.name!r}: the archive record {str(request.archive_record)!r}"
            f" is layer {record.layer_name!r}'s"
        )
    if record.format != identity.archive_format:
        raise VenvstacksError(
            f"layer {identity.name!r}: the archive record {str(request.archive_record)!r} is of a {record.format}"
            f" archive, not {identity.archive_format}"
        )
    return record


def write_layer_metadata(request: MetadataRequest) -> str:
    """Write the metadata JSON; return a one-line summary."""
    identity = request.identity
    required = [read_archive_record(path, identity.name) for path in request.lower_records]
    names = [lower.layer_name for lower in required]
    for name in names:
        if names.count(name) > 1 or name == identity.name:
            raise VenvstacksError(f"layer {identity.name!r}: required layer {name!r} is given twice")
    record = _own_record(request)
    lock_hash = _lock_hash(request.lock_file, identity.name)
    metadata = layer_metadata(
        record=record,
        kind=identity.kind,
        lock_hash=lock_hash,
        platform=identity.platform.triple,
        python_version=identity.python_version,
        launch_module=identity.launch_module,
        required=required,
        built_from_sdists=dict(request.built_from_sdists),
    )
    write_metadata(request.output, metadata)
    if request.published is not None:
        write_metadata(request.published.output, _published(request, record, lock_hash, names))
    if request.run_key_output is not None:
        # The records in deployment order: the lower layers', then this one's (as `run-key` takes them).
        write_bytes_atomic(request.run_key_output, (stack_key([*required, record]) + "\n").encode("ascii"))
    return f"wrote the metadata of {identity.kind} layer {identity.name!r}"


def _published(request: MetadataRequest, record: ArchiveRecord, lock_hash: str, lower: list[str]) -> dict[str, object]:
    """The venvstacks-schema metadata; `lower` are the lower layers' names in deployment order."""
    identity = request.identity
    published = request.published
    assert published is not None
    if published.runtime_layer not in lower:
        raise VenvstacksError(
            f"layer {identity.name!r}: runtime layer {published.runtime_layer!r} is not among the lower records"
        )
    # Deployment order is the runtime, then each framework after those it needs: reversed, the
    # frameworks come in sys.path order, as venvstacks lists them.
    frameworks = [name for name in reversed(lower) if name != published.runtime_layer]
    top_module = identity.launch_module.partition(".")[0]
    return published_metadata.published_metadata(
        record=record,
        kind=identity.kind,
        requirements_hash=lock_hash,
        locked_at_epoch=published.locked_at_epoch,
        runtime_layer=published.runtime_layer,
        python_version=identity.python_version,
        platform=identity.platform,
        required_layers=frameworks,
        launch_module=identity.launch_module,
        launch_module_hash=launch_module.module_hash(top_module, published.app_files) if top_module else None,
        support_modules=launch_module.support_modules(identity.launch_module, published.app_files, layer=identity.name)
        if top_module
        else (),
        lock_version=published.lock_version,
    )


def main(argv: list[str]) -> int:
    """Run `layer-metadata` with `argv`; errors are raised as VenvstacksError."""
    print(write_layer_metadata(parse_request(argv)))
    return 0
