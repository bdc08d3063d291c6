"""`run-prepare`: the per-user cache of stacks deployed for `bazel run` of a layer.

The launcher of a layer target (rules_venvstacks/private/deploy/run.bzl) reads the stack's key
(a build output, `run_key.py`) and runs `ROOT/KEY/<layer>/bin/python` at once when the entry is
complete; otherwise it runs this once, then looks again. ROOT holds, per stack:

* `KEY/`: the stack deployed in place. Post-install writes the entry's absolute path into the
  layers' configs, so an entry is never moved: it is deployed where it is used.
* `KEY/.venvstacks-run-complete`: written last, after every layer is deployed and post-installed.
  The launcher runs nothing from an entry without it; this step removes such an entry (what a
  killed deploy left) and deploys it again.
* `KEY/.venvstacks-run-used`: its mtime is the entry's last run (the launcher truncates it on
  every run, without starting a process); where `flock(1)` exists, a running application holds a
  shared lock on it through a descriptor the launcher opened.
* `KEY.lock`: held exclusively while the entry is deployed or removed. A second run of the same
  stack waits for it, then finds the entry complete and reuses it.

Archives are checked by `deploy` as for any deploy (size and sha256 against the metadata)
before one is unpacked; an entry whose deploy fails is removed, so nothing half-deployed is run.

Cleaning: after a deploy, entries whose last run is older than `--max-age-days` are removed,
except one being deployed or removed (its lock is held) or in use (the shared lock on its
`.venvstacks-run-used` is held).
"""

from __future__ import annotations

import argparse
import os
import shutil
import string
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from venvstacks_tool.core.cli import add_repeatable, subcommand_parser
from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.core.fsutil import write_bytes_atomic
from venvstacks_tool.deploy import deploy, transaction

# The launcher's fast path reads these two too: constants.bzl states them for Starlark
# (tests/unit/test_constants.py holds the two the same).
MARKER_NAME = ".venvstacks-run-complete"
USED_NAME = ".venvstacks-run-used"
LOCK_SUFFIX = ".lock"
DEFAULT_MAX_AGE_DAYS = 30.0
_DAY = 86400.0


def build_parser() -> argparse.ArgumentParser:
    """The `run-prepare` command line."""
    parser = subcommand_parser(
        "run-prepare", "Deploy a stack into its run cache entry (once), and remove entries not run for long."
    )
    parser.add_argument("--cache-dir", type=Path, required=True, help="the cache's root directory")
    parser.add_argument("--key", required=True, help="the stack's key (its entry's directory name)")
    parser.add_argument("--archive", action="append", required=True, dest="archives", type=Path, metavar="PATH")
    add_repeatable(parser, "--metadata", "metadata", "PATH", "the metadata JSON of each --archive", type=Path)
    parser.add_argument(
        "--max-age-days",
        type=float,
        default=DEFAULT_MAX_AGE_DAYS,
        help="remove other entries not run for this many days (default: %(default)g; 0 keeps every entry)",
    )
    parser.add_argument("--lock-timeout", type=float, default=transaction.DEFAULT_LOCK_TIMEOUT, metavar="SECONDS")
    return parser


def is_key(name: str) -> bool:
    """Whether `name` is an entry's key: 32 lowercase hex digits (`run_key.py`)."""
    return len(name) == 32 and all(c in string.hexdigits.lower() for c in name)


def _check_key(key: str) -> None:
    if not is_key(key):
        raise VenvstacksError(f"run cache: {key!r} is not a stack key (32 lowercase hex digits)")


def prepare_root(root: Path) -> Path:
    """Create the cache root (private to the user); its absolute path."""
    root = Path(os.path.abspath(root))
    try:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as error:
        raise VenvstacksError(f"cannot create the run cache {str(root)!r}: {error.strerror}") from error
    return root


def _remove_entry(entry: Path) -> None:
    shutil.rmtree(entry, ignore_errors=True)
    if os.path.lexists(entry):
        raise VenvstacksError(f"cannot remove the run cache entry {str(entry)!r}; remove it by hand")


def ensure_deployed(
    root: Path,
    key: str,
    archives: Sequence[Path],
    metadata: Sequence[Path] | None = None,
    *,
    lock_timeout: float = transaction.DEFAULT_LOCK_TIMEOUT,
) -> Path:
    """The complete entry `ROOT/KEY`, deploying `archives` into it first unless it is complete.

    Under the entry's lock: a complete entry is returned as it is (another run deployed it); an
    incomplete one (a killed deploy) is removed; then the stack is deployed and the marker
    written last. A failed deploy removes the entry and raises.
    """
    _check_key(key)
    root = prepare_root(root)
    entry = root / key
    with transaction.hold_lock(root / (key + LOCK_SUFFIX), lock_timeout, f"another run deploying {str(entry)!r}"):
        if (entry / MARKER_NAME).is_file():
            return entry
        if os.path.lexists(entry):
            print(f"venvstacks: removing the incomplete run cache entry {entry}", file=sys.stderr, flush=True)
            _remove_entry(entry)
        try:
            deploy.deploy(archives, entry, metadata, lock_timeout=lock_timeout)
            (entry / USED_NAME).touch()
            write_bytes_atomic(entry / MARKER_NAME, b"")
        except BaseException:
            shutil.rmtree(entry, ignore_errors=True)
            raise
    return entry


def _last_used(entry: Path) -> float:
    """When the entry was last run: its use file's mtime, else the marker's, else the directory's."""
    for path in (entry / USED_NAME, entry / MARKER_NAME, entry):
        try:
            return os.stat(path).st_mtime
        except OSError:
            continue
    return 0.0


def _take_use_lock(entry: Path) -> int | None:
    """The entry's use file, locked exclusively (no application runs from it); None when one does.

    A missing use file is created: the launcher opens it before it looks for the marker.
    """
    fd = transaction.open_lock_file(entry / USED_NAME)
    if transaction.try_lock(fd):
        return fd
    os.close(fd)
    return None


def clean(root: Path, max_age_days: float, keep: str = "", now: float | None = None) -> list[str]:
    """Remove the entries of `root` not run for `max_age_days`, but `keep`, busy and in-use ones.

    Returns the keys removed. An entry whose lock is held (being deployed or removed) or whose
    use file a running application holds is skipped; a removed entry's lock file goes with it
    (a run waiting for that lock then opens the new one: `transaction.hold_lock`).
    """
    if max_age_days <= 0:
        return []
    cutoff = (time.time() if now is None else now) - max_age_days * _DAY
    removed = []
    with os.scandir(root) as scanned:
        keys = sorted(e.name for e in scanned if is_key(e.name) and e.is_dir(follow_symlinks=False))
    for key in keys:
        entry = root / key
        if key == keep or _last_used(entry) >= cutoff:
            continue
        lock = root / (key + LOCK_SUFFIX)
        fd = transaction.open_lock_file(lock)
        used = None
        try:
            if not transaction.try_lock(fd):
                continue
            used = _take_use_lock(entry)
            # A run that started since the first look truncated the use file: it is used again.
            if used is None or _last_used(entry) >= cutoff:
                continue
            _remove_entry(entry)
            os.unlink(lock)
        finally:
            if used is not None:
                os.close(used)
            os.close(fd)
        removed.append(key)
    return removed


def main(argv: list[str]) -> int:
    """Deploy the stack into its entry if needed, then clean old entries."""
    args = build_parser().parse_args(argv)
    ensure_deployed(args.cache_dir, args.key, args.archives, args.metadata, lock_timeout=args.lock_timeout)
    for key in clean(Path(os.path.abspath(args.cache_dir)), args.max_age_days, keep=args.key):
        print(
            f"venvstacks: removed the run cache entry {key} (not run for {args.max_age_days:g} days)", file=sys.stderr
        )
    return 0
