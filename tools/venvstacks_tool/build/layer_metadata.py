"""`layer-metadata`: the metadata JSON of a framework or application layer, from its archive record.

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

from venvstacks_tool.build.identity import LayerIdentity, add_identity_arguments, identity_from_args
from venvstacks_tool.build.run_key import stack_key
from venvstacks_tool.core.cli import add_repeatable, subcommand_parser
from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.core.fsutil import sha256_file, write_bytes_atomic
from venvstacks_tool.core.protocol import ArchiveRecord, layer_metadata, read_archive_record, write_metadata


@dataclass(frozen=True)
class MetadataRequest:
    """What `layer-metadata` was asked to write, validated."""

    identity: LayerIdentity
    lock_file: Path
    archive_record: Path
    lower_records: tuple[Path, ...]
    output: Path
    run_key_output: Path | None = None


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
    parser.add_argument(
        "--run-key-output", type=Path, help="also write the stack's `bazel run` key here (see `run-key`)"
    )
    return parser


def parse_request(argv: list[str]) -> MetadataRequest:
    """Parse and validate `layer-metadata`'s command line."""
    args = build_parser().parse_args(argv)
    identity = identity_from_args(args)
    if args.archive_record.resolve() == args.output.resolve():
        raise VenvstacksError(f"layer {identity.name!r}: --archive-record and --output are one file")
    return MetadataRequest(
        identity, args.lock_file, args.archive_record, tuple(args.lower_records), args.output, args.run_key_output
    )


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
    own = _own_record(request)
    metadata = layer_metadata(
        record=own,
        kind=identity.kind,
        lock_hash=_lock_hash(request.lock_file, identity.name),
        platform=identity.platform.triple,
        python_version=identity.python_version,
        launch_module=identity.launch_module,
        required=required,
    )
    write_metadata(request.output, metadata)
    if request.run_key_output is not None:
        # The records in deployment order: the lower layers', then this one's (as `run-key` takes them).
        write_bytes_atomic(request.run_key_output, (stack_key([*required, own]) + "\n").encode("ascii"))
    return f"wrote the metadata of {identity.kind} layer {identity.name!r}"


def main(argv: list[str]) -> int:
    """Run `layer-metadata` with `argv`; errors are raised as VenvstacksError."""
    print(write_layer_metadata(parse_request(argv)))
    return 0
