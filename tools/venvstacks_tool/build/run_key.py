"""`run-key`: the name of a stack's directory in the `bazel run` cache, from its archive records.

The key is the sha256 of the layers' names and archive sha256s in deployment order (plus a
version of the cache's layout), cut to 32 hex digits: the same archives give the same key on
every machine, and a changed archive a new one. It is written by a build action, so the
launcher's fast path only reads one short file (rules_venvstacks/private/deploy/run.bzl).
"""

from __future__ import annotations

import argparse
import hashlib
from collections.abc import Sequence
from pathlib import Path

from venvstacks_tool.core.cli import add_repeatable, subcommand_parser
from venvstacks_tool.core.fsutil import write_bytes_atomic
from venvstacks_tool.core.protocol import ArchiveRecord, read_archive_record

# Bump when what a deployed cache entry holds changes for the same archives.
KEY_VERSION = "venvstacks-run-1"
KEY_LENGTH = 32


def build_parser() -> argparse.ArgumentParser:
    """The `run-key` command line."""
    parser = subcommand_parser("run-key", "Write the run cache key of a stack from its archive records.")
    add_repeatable(
        parser,
        "--record",
        "records",
        "PATH",
        "a layer's archive record (or a runtime layer's metadata), in deployment order (repeatable)",
        type=Path,
    )
    parser.add_argument("--layer", required=True, help="the layer the key is for (for error messages)")
    parser.add_argument("--output", type=Path, required=True, help="the key file to write")
    return parser


def stack_key(records: Sequence[ArchiveRecord]) -> str:
    """The key of the stack whose archives are `records` (deployment order)."""
    digest = hashlib.sha256(f"{KEY_VERSION}\n".encode())
    for record in records:
        digest.update(f"{record.layer_name} {record.sha256}\n".encode())
    return digest.hexdigest()[:KEY_LENGTH]


def main(argv: list[str]) -> int:
    """Write the key (one line) of the records given."""
    args = build_parser().parse_args(argv)
    records = [read_archive_record(path, args.layer) for path in args.records]
    write_bytes_atomic(args.output, (stack_key(records) + "\n").encode("ascii"))
    return 0
