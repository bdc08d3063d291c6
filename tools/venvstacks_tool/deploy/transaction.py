"""What makes a deploy into DEST safe against a second deploy, a kill, and a stale layer.

* **The lock.** Every deploy holds `fcntl.flock` on `DEST/.venvstacks-deploy.lock` (kept: removing a
  lock file lets a third deploy lock a new file while the second holds the old one) from before
  it looks at DEST until it is done. A second deploy waits up to its timeout, then fails.
* **Recovery.** Under the lock, before anything else, what a killed deploy left is put right:
  `.venvstacks-old-X` (the previous layer X, renamed aside during the swap) is renamed back when
  there is no `X` (the kill came between the two renames), else removed; every `.venvstacks-tmp-*`
  (a staging directory, or a record being written) is removed.
* **The swap** (`swap_in`): where the system can exchange two entries in one call (`exchange`:
  Linux, macOS), the staged layer and `X` trade places, so `X` is the old or the new layer at
  every instant, and the old one, now under the staging name, is removed. Elsewhere (Windows, or
  a file system that refuses the exchange) the old layer is renamed to `.venvstacks-old-X`, the
  staged one to `X`, and the old one removed: a kill between the two renames leaves no `X` until
  the next deploy's recovery renames the old one back.
* **The state** (`DEST/.venvstacks-deployed/<layer>.json`, `DeployState`): a record a layer, of
  the archive sha256 it was deployed and post-installed from, its symlinks, and the DEST it was
  deployed to (post-install writes absolute paths). The layer's record is removed before its swap
  and written after it, atomically, so it never names a layer directory that holds something else;
  each write is one small file, whatever the number of layers. A layer whose recorded sha256
  matches is not unpacked again; the recorded symlinks, indexed by the layers their resolution
  looks into (`link_index`), let a deploy check, without walking the other layers' trees, that a
  new layer leaves every deployed link inside DEST (`links_reaching`). The single state file of
  earlier releases (`.venvstacks-deployed.json`) is still read, and replaced by records.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import time
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.core.fsutil import json_bytes
from venvstacks_tool.core.protocol import is_layer_name, is_sha256
from venvstacks_tool.deploy import dest_errors, exchange, link_index
from venvstacks_tool.deploy.extraction import OLD_PREFIX, TMP_PREFIX

LOCK_NAME = ".venvstacks-deploy.lock"
STATE_NAME = ".venvstacks-deployed"  # a directory: one record a layer
RECORD_SUFFIX = ".json"
LEGACY_STATE_NAME = ".venvstacks-deployed.json"  # one file for every layer, before the records
# How long a deploy waits for another one into the same DEST by default: a large stack deploys
# in well under a minute, so waiting longer means the other deploy is stuck.
DEFAULT_LOCK_TIMEOUT = 300.0
_POLL = 0.1


def at_step(name: str) -> None:
    """A point of a layer's commit (swap, record writes) just before DEST changes; does nothing.

    The kill tests replace it in a deploy subprocess to SIGKILL the deploy at every such point.
    """


def prepare_dest(dest: Path) -> None:
    """Create DEST if needed; a one-line error if it is not a writable directory."""
    if os.path.lexists(dest) and not dest.is_dir():
        raise VenvstacksError(f"deploy destination {str(dest)!r} exists and is not a directory")
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise VenvstacksError(f"cannot create the deploy destination {str(dest)!r}: {error.strerror}") from error
    if not os.access(dest, os.W_OK | os.X_OK):
        why = "its file system is read-only" if dest_errors.is_read_only(dest) else "permission denied"
        raise VenvstacksError(f"deploy destination {str(dest)!r} is not writable: {why}")


def try_lock(fd: int) -> bool:
    """Take the exclusive lock on `fd` without waiting; whether it was taken."""
    try:
        import fcntl
    except ImportError:  # Windows: msvcrt locks a byte range of the file instead
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined,unused-ignore]  # Windows only
        except OSError:
            return False
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def open_lock_file(path: Path) -> int:
    """Open (creating) the lock file `path`; a one-line error naming it when it cannot be."""
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
    try:
        return os.open(path, flags, 0o644)
    except OSError as error:
        raise VenvstacksError(f"cannot open the lock {str(path)!r}: {error.strerror}") from error


def _still_at(fd: int, path: Path) -> bool:
    """Whether `fd` is still the file at `path` (not unlinked or replaced while we waited for it)."""
    try:
        on_disk = os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (on_disk.st_dev, on_disk.st_ino)


@contextlib.contextmanager
def hold_lock(path: Path, timeout: float, holder: str) -> Iterator[None]:
    """Hold the exclusive lock of the file `path`, waiting up to `timeout` seconds for `holder`.

    `holder` says who else takes it, for the messages ("another deploy into '/x'"). A lock file
    removed while we waited for it (the run cache removes an entry's lock file holding its lock)
    is opened again: a lock on a file no longer at `path` excludes no one.
    """
    deadline = time.monotonic() + timeout
    announced = False
    while True:
        fd = open_lock_file(path)
        try:
            while not try_lock(fd):
                if not announced:
                    print(f"waiting for {holder} (lock {path})", file=sys.stderr, flush=True)
                    announced = True
                if time.monotonic() >= deadline:
                    raise VenvstacksError(
                        f"{holder} still holds {path.name!r} after {timeout:g} s; try again when it is done"
                    )
                time.sleep(_POLL)
        except BaseException:
            os.close(fd)
            raise
        if _still_at(fd, path):
            break
        os.close(fd)
    try:
        yield  # closing the descriptor releases the lock
    finally:
        os.close(fd)


def dest_lock(dest: Path, timeout: float) -> contextlib.AbstractContextManager[None]:
    """Hold the deploy lock of `dest` (waiting up to `timeout` seconds for another deploy)."""
    return hold_lock(dest / LOCK_NAME, timeout, f"another deploy into {str(dest)!r}")


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def recover(dest: Path) -> None:
    """Put right what a killed deploy left in `dest` (call with the lock held)."""
    with os.scandir(dest) as entries:
        names = sorted(entry.name for entry in entries)
    for name in names:
        path = os.path.join(dest, name)
        if name.startswith(OLD_PREFIX):
            layer = name[len(OLD_PREFIX) :]
            if is_layer_name(layer) and not os.path.lexists(dest / layer):
                os.rename(path, dest / layer)
                print(f"restored layer {layer!r} that an interrupted deploy had moved aside", file=sys.stderr)
            else:
                _remove_leftover(path)
        elif name.startswith(TMP_PREFIX):
            _remove_leftover(path)


def _remove_leftover(path: str) -> None:
    """Remove what a killed or failed deploy left; one that cannot be removed is only named."""
    try:
        _remove(path)
    except OSError as error:
        # Nothing deployed depends on it: a refused permission must not stop every later deploy.
        print(f"venvstacks: warning: cannot remove {path!r}: {error.strerror}; remove it by hand", file=sys.stderr)


def swap_in(staged: Path, final: Path) -> bool:
    """Put the directory `staged` at `final`; an existing `final` is replaced, then removed.

    Exchanged in one system call where the system can (returns True), else two renames (False):
    an existing `final` is renamed aside to `.venvstacks-old-<layer>` first, which `recover`
    renames back if a kill comes between the two.
    """
    if not os.path.lexists(final):
        at_step("rename-new")
        os.rename(staged, final)
        return True
    at_step("exchange")
    if exchange.exchange(staged, final):
        # `staged` holds the old layer now, under a staging name that `recover` removes.
        at_step("remove-old")
        _remove_old(staged)
        return True
    old = final.parent / (OLD_PREFIX + final.name)
    if os.path.lexists(old):
        _remove(os.fspath(old))  # left by a deploy killed after its swap; `final` is whole
    at_step("rename-old-aside")
    os.rename(final, old)
    at_step("rename-new")
    try:
        os.rename(staged, final)
    except BaseException:
        os.rename(old, final)
        raise
    at_step("remove-old")
    _remove_old(old)
    return False


def _remove_old(path: Path) -> None:
    """Remove a replaced layer; what cannot be removed is left to the next deploy's recovery."""
    shutil.rmtree(path, ignore_errors=True)
    if os.path.lexists(path):
        print(
            f"venvstacks: warning: cannot remove the replaced layer {str(path)!r} now; the next deploy removes it",
            file=sys.stderr,
        )


def _walk_symlinks(dest: Path, layer: str) -> dict[str, str]:
    """The symlinks below DEST/`layer` (DEST-relative path -> target), not following any."""
    links: dict[str, str] = {}
    for root, dirs, files in os.walk(dest / layer):
        relative = os.path.relpath(root, dest).replace(os.sep, "/")
        for name in dirs + files:
            path = os.path.join(root, name)
            if os.path.islink(path):
                links[f"{relative}/{name}"] = os.readlink(path)
    return links


def _read_json(path: Path) -> Any:
    """The JSON document at `path`, or None when it cannot be read."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


class DeployState:
    """What is deployed in DEST: one record a layer, `DEST/.venvstacks-deployed/<layer>.json`.

    A record holds the archive and its sha256, the layer's symlinks, and the DEST it was deployed
    to; each is written atomically on its own, so recording a layer costs the same whatever the
    number of layers deployed (the single state file of earlier releases was rewritten whole after
    every layer). A DEST deployed by an earlier release (`.venvstacks-deployed.json`) is read, and
    turned into records at the first change, before that file is removed: while it exists it is
    what counts, so a kill half-way through leaves nothing stale.
    """

    def __init__(self, dest: Path) -> None:
        self.dest = dest
        self.path = dest / STATE_NAME
        self.layers: dict[str, dict[str, Any]] = {}
        self._links: link_index.LinkIndex | None = None  # built at the first check, kept for the run
        self._legacy = os.path.lexists(dest / LEGACY_STATE_NAME)
        if self._legacy:
            document = _read_json(dest / LEGACY_STATE_NAME)
            # Post-install wrote DEST's absolute path into each layer: a moved DEST is redeployed.
            if isinstance(document, dict) and document.get("dest") == os.fspath(dest):
                layers = document.get("layers")
                if isinstance(layers, dict):
                    self.layers = {k: v for k, v in layers.items() if is_layer_name(k) and isinstance(v, dict)}
            return
        try:
            names = sorted(os.listdir(self.path))
        except OSError:
            return  # no records (or none readable): every layer is deployed
        for name in names:
            layer = name.removesuffix(RECORD_SUFFIX)
            record = _read_json(self.path / name) if name.endswith(RECORD_SUFFIX) and is_layer_name(layer) else None
            if isinstance(record, dict) and record.get("dest") == os.fspath(dest):
                self.layers[layer] = record

    def is_deployed(self, layer: str, sha256: str) -> bool:
        """Whether `layer` was deployed from an archive with `sha256` and its directory exists."""
        recorded = self.layers.get(layer, {}).get("archive_sha256")
        return is_sha256(recorded) and recorded == sha256 and (self.dest / layer).is_dir()

    def forget(self, layer: str) -> None:
        """Drop `layer`'s record (before its directory is replaced)."""
        self._migrate()
        if self.layers.pop(layer, None) is not None:
            at_step("drop-record")
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._record_path(layer))

    def record(self, layer: str, sha256: str, archive: str, symlinks: dict[str, str]) -> None:
        """Record that `layer` is deployed and post-installed from `archive` with `sha256`.

        `symlinks` are the layer's symlinks (DEST-relative path -> target), as unpacked.
        """
        self._migrate()
        entry = {"archive": archive, "archive_sha256": sha256, "symlinks": symlinks}
        self._write_record(layer, entry, "write-record", "replace-record")
        self.layers[layer] = entry
        if self._links is not None:
            self._links.replace(layer, symlinks)

    def links_reaching(self, layer: str, exclude: Collection[str]) -> dict[str, dict[str, str]]:
        """The symlinks of the layer directories in DEST not in `exclude` that `layer` can affect.

        Layer -> path -> target: every link of another layer whose resolution looks into
        DEST/`layer` (`link_index`). The links of each layer come from its record; a layer with
        none (deployed by hand, by an older deploy, or into a DEST since moved) has its tree walked
        once in a run.
        """
        if self._links is None:
            with os.scandir(self.dest) as entries:
                names = sorted(e.name for e in entries if is_layer_name(e.name) and e.is_dir(follow_symlinks=False))
            found: dict[str, dict[str, str]] = {}
            for name in names:
                recorded = self.layers.get(name, {}).get("symlinks")
                if isinstance(recorded, dict) and all(isinstance(v, str) for v in recorded.values()):
                    found[name] = recorded
                else:
                    found[name] = _walk_symlinks(self.dest, name)
            self._links = link_index.LinkIndex(self.dest, found)
        return self._links.reaching(layer, exclude)

    def _record_path(self, layer: str) -> Path:
        return self.path / f"{layer}{RECORD_SUFFIX}"

    def _migrate(self) -> None:
        """Turn an earlier release's state file into records, then remove it (once, before a change)."""
        if not self._legacy:
            return
        with contextlib.suppress(FileNotFoundError):
            stale = sorted(set(os.listdir(self.path)) - {f"{layer}{RECORD_SUFFIX}" for layer in self.layers})
            for name in stale:  # left by this release before an earlier one deployed here again
                _remove(os.fspath(self.path / name))
        for layer in sorted(self.layers):
            self._write_record(layer, self.layers[layer], "migrate-record", "replace-migrated-record")
        at_step("remove-old-state")
        os.unlink(self.dest / LEGACY_STATE_NAME)
        self._legacy = False

    def _write_record(self, layer: str, entry: dict[str, Any], step: str, replace_step: str) -> None:
        # A fixed temp name in the TMP_PREFIX namespace at DEST's top: the lock makes it ours,
        # and recovery removes it if a kill leaves it.
        tmp = self.dest / f"{TMP_PREFIX}record-{layer}{RECORD_SUFFIX}"
        at_step(step)
        try:
            self.path.mkdir(exist_ok=True)
            tmp.write_bytes(json_bytes({**entry, "dest": os.fspath(self.dest)}))
            at_step(replace_step)
            os.replace(tmp, self._record_path(layer))
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)  # a full disk must not leave it for the next deploy
            raise
