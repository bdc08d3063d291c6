"""Small layers for deploy's tests: a DEST holding a runtime that runs the host's Python, and
framework archives on it, written in memory with their metadata beside them."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from venvstacks_testing.archives import Member, archive_bytes, write_with_metadata
from venvstacks_tool.deploy import deploy

RUNTIME = "cpython_rt"
# Every reader of deploy and the formats it reads: tarfile forced (`use_reader`) reads tars the
# lean reader would.
READERS = [("lean", "tar.zst"), ("lean", "tar.xz"), ("tarfile", "tar.zst"), ("tarfile", "tar.xz"), ("zipfile", "zip")]
READER_IDS = [f"{reader}-{fmt}" for reader, fmt in READERS]

# What deploy keeps in DEST besides the layers.
LOCK_NAME = ".venvstacks-deploy.lock"


def make_runtime(dest: Path) -> Path:
    """Put a runtime layer into `dest` whose `bin/python3` is a wrapper running the host Python."""
    python = dest / RUNTIME / "bin" / "python3"
    python.parent.mkdir(parents=True)
    python.write_text(f'#!/bin/sh\nexec "{os.path.realpath(sys.executable)}" "$@"\n')
    python.chmod(0o755)
    config = {"python": "bin/python3", "base_python": "bin/python3", "kind": "runtime", "layer_name": RUNTIME}
    (dest / RUNTIME / "share/venv/metadata").mkdir(parents=True)
    (dest / RUNTIME / "share/venv/metadata/venvstacks_layer.json").write_text(json.dumps(config))
    return dest


def layer(
    name: str = "fw",
    data: bytes = b"new",
    extra: list[Member] | None = None,
    postinstall: bytes = b"print('post-installed')\n",
) -> list[Member]:
    """A framework layer's members (config, a data file, a postinstall.py), `extra` after the config."""
    config = {"python": "bin/python", "base_python": f"../{RUNTIME}/bin/python3", "kind": "framework"}
    return [
        (name, "dir", None),
        (f"{name}/share/venv/metadata/venvstacks_layer.json", "file", json.dumps(config).encode()),
        *(extra or []),
        (f"{name}/lib/data.txt", "file", data),
        (f"{name}/postinstall.py", "file", postinstall),
    ]


def framework_archive(
    directory: Path, data: bytes = b"new", name: str = "fw", extra: list[Member] | None = None, postinstall: bytes = b""
) -> Path:
    """`layer(name, data, extra, postinstall)` as `directory/NAME.tar.zst`, its metadata beside it."""
    members = layer(name, data, extra, postinstall) if postinstall else layer(name, data, extra)
    return write_with_metadata(directory / f"{name}.tar.zst", archive_bytes(members, "tar.zst"), name)


def dest_entries(dest: Path) -> list[str]:
    """DEST's entries but the runtime and the lock file."""
    return sorted(set(os.listdir(dest)) - {RUNTIME, LOCK_NAME})


def tree(root: Path) -> dict[str, tuple[str, bytes | str | None]]:
    """Every path below `root` with its type and content (a file's bytes, a symlink's target)."""
    found: dict[str, tuple[str, bytes | str | None]] = {}
    for path in sorted(root.rglob("*")):
        mode = os.lstat(path).st_mode
        rel = str(path.relative_to(root))
        if stat.S_ISLNK(mode):
            found[rel] = ("symlink", os.readlink(path))
        elif stat.S_ISDIR(mode):
            found[rel] = ("dir", None)
        else:
            found[rel] = ("file", path.read_bytes())
    return found


def deployed_trees(root: Path, archives: dict[str, Path]) -> dict[str, dict[str, bytes | str | None]]:
    """What DEST/fw holds once each archive is deployed (into `root/reference-KEY`), by key."""
    trees = {}
    for key, archive in archives.items():
        dest = make_runtime(root / f"reference-{key}")
        deploy.deploy([archive], dest)
        trees[key] = tree(dest / "fw")
    return trees


def use_reader(monkeypatch: pytest.MonkeyPatch, reader: str) -> None:
    """Make `deploy.extract_layer` use only `reader` for a tar: the lean one, or tarfile from the start."""
    if reader == "lean":

        def refuse(*_: object) -> None:
            raise AssertionError("the lean reader handed over to tarfile")

        monkeypatch.setattr(deploy, "_extract_with_tarfile", refuse)
    elif reader == "tarfile":

        def not_lean(*_: object) -> None:
            raise deploy.NotLean

        monkeypatch.setattr(deploy, "_extract_lean", not_lean)


def deploy_records(dest: Path) -> dict[str, dict[str, object]]:
    """What DEST's state records, read from the files themselves: layer -> its record.

    One JSON file a layer in `DEST/.venvstacks-deployed/` (`transaction.DeployState`); none when
    nothing is recorded.
    """
    records = dest / ".venvstacks-deployed"
    if not records.is_dir():
        return {}
    return {path.stem: json.loads(path.read_text()) for path in sorted(records.glob("*.json"))}


def to_legacy_state(dest: Path) -> None:
    """Turn DEST's records into the single state file that releases before the records wrote.

    `DEST/.venvstacks-deployed.json`, as they wrote it (sorted keys, 2-space indent, final
    newline): `{"dest": DEST, "layers": {layer: {"archive", "archive_sha256", "symlinks"}}}`.
    """
    layers = {name: {k: v for k, v in record.items() if k != "dest"} for name, record in deploy_records(dest).items()}
    document = {"dest": os.fspath(dest), "layers": layers}
    (dest / ".venvstacks-deployed.json").write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    for path in (dest / ".venvstacks-deployed").iterdir():
        path.unlink()
    (dest / ".venvstacks-deployed").rmdir()
