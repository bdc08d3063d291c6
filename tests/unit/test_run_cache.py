"""Tests of the `bazel run` cache (venvstacks_tool.deploy.run_cache) and its key (build.run_key).

The stacks deployed here are one runtime layer each (a layer config and a data file: a runtime
needs no post-install), so a deploy is quick; the locks are real `fcntl` locks, taken by this
process or by `run-prepare` subprocesses.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from venvstacks_testing.archives import Member, archive_bytes, write_with_metadata
from venvstacks_tool.build.run_key import stack_key
from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.core.protocol import ArchiveRecord
from venvstacks_tool.deploy import run_cache

KEY = "0123456789abcdef0123456789abcdef"
OTHER_KEY = "fedcba9876543210fedcba9876543210"


def runtime_archive(directory: Path, data: bytes = b"v1", name: str = "rt", extra: list[Member] | None = None) -> Path:
    """A runtime layer archive (config, `lib/data.txt` and `extra`) with its metadata beside it."""
    config = {"python": "bin/python3", "base_python": "bin/python3", "kind": "runtime", "layer_name": name}
    members = [
        (name, "dir", None),
        (f"{name}/share/venv/metadata/venvstacks_layer.json", "file", json.dumps(config).encode()),
        (f"{name}/lib/data.txt", "file", data),
        *(extra or []),
    ]
    directory.mkdir(parents=True, exist_ok=True)
    return write_with_metadata(directory / f"{name}.tar.zst", archive_bytes(members, "tar.zst"), name)


def blocking_stack(directory: Path, stall: Path, started: Path) -> list[Path]:
    """A runtime whose `bin/python3` runs the host's Python, and a framework on it whose
    post-install creates `started` and, while `stall` exists, waits."""
    runtime_python = f'#!/bin/sh\nexec "{os.path.realpath(sys.executable)}" "$@"\n'
    runtime = runtime_archive(directory, extra=[("rt/bin/python3", "script", runtime_python.encode())])
    config = {"python": "bin/python", "base_python": "../rt/bin/python3", "kind": "framework"}
    postinstall = (
        "import os, pathlib, time\n"
        f"pathlib.Path({str(started)!r}).touch()\n"
        f"while os.path.exists({str(stall)!r}):\n"
        "    time.sleep(0.05)\n"
        "pathlib.Path('post-installed').touch()\n"
    )
    members = [
        ("fw", "dir", None),
        ("fw/share/venv/metadata/venvstacks_layer.json", "file", json.dumps(config).encode()),
        ("fw/postinstall.py", "file", postinstall.encode()),
    ]
    framework = write_with_metadata(directory / "fw.tar.zst", archive_bytes(members, "tar.zst"), "fw")
    return [runtime, framework]


def prepare_command(root: Path, key: str, *archives: Path) -> list[str]:
    """`run-prepare` of `archives` into `root`/`key`, as the launcher runs it."""
    command = [sys.executable, "-m", "venvstacks_tool", "run-prepare", "--cache-dir", str(root), "--key", key]
    return command + [arg for archive in archives for arg in ("--archive", str(archive))]


def test_the_key_follows_the_archives_and_their_order() -> None:
    runtime = ArchiveRecord("rt", "rt.tar.zst", "tar.zst", "a" * 64, 10)
    app = ArchiveRecord("app", "app.tar.zst", "tar.zst", "b" * 64, 20)
    key = stack_key([runtime, app])
    assert run_cache.is_key(key)
    assert stack_key([runtime, app]) == key
    assert stack_key([runtime, ArchiveRecord("app", "app.tar.zst", "tar.zst", "c" * 64, 20)]) != key
    assert stack_key([app, runtime]) != key


def test_a_stack_is_deployed_once_and_the_marker_is_written_last(tmp_path: Path) -> None:
    archive = runtime_archive(tmp_path / "out")
    root = tmp_path / "cache"
    entry = run_cache.ensure_deployed(root, KEY, [archive])
    assert entry == root / KEY
    assert (entry / run_cache.MARKER_NAME).is_file() and (entry / run_cache.USED_NAME).is_file()
    assert (entry / "rt/lib/data.txt").read_bytes() == b"v1"
    # Complete: reused as it is, the archive not even read again.
    archive.unlink()
    assert run_cache.ensure_deployed(root, KEY, [archive]) == entry
    assert sorted(p.name for p in root.iterdir()) == [KEY, KEY + run_cache.LOCK_SUFFIX]


def test_an_entry_without_its_marker_is_removed_and_deployed_again(tmp_path: Path) -> None:
    """What a killed deploy leaves: a partial entry, no marker; never run, replaced whole."""
    archive = runtime_archive(tmp_path / "out")
    root = tmp_path / "cache"
    partial = root / KEY / "rt" / "lib"
    partial.mkdir(parents=True)
    (partial / "data.txt").write_bytes(b"half")
    (partial / "stale.txt").write_bytes(b"left by the killed deploy")
    entry = run_cache.ensure_deployed(root, KEY, [archive])
    assert (entry / "rt/lib/data.txt").read_bytes() == b"v1"
    assert not (entry / "rt/lib/stale.txt").exists()
    assert (entry / run_cache.MARKER_NAME).is_file()


def test_a_deploy_process_killed_in_post_install_leaves_no_marker_and_is_redeployed(tmp_path: Path) -> None:
    """A real `run-prepare` killed while a layer's post-install runs: the next run starts over."""
    stall = tmp_path / "stall"
    started = tmp_path / "started"
    archives = blocking_stack(tmp_path / "out", stall, started)
    root = tmp_path / "cache"
    stall.touch()
    process = subprocess.Popen(prepare_command(root, KEY, *archives), start_new_session=True)
    deadline = time.monotonic() + 60
    while not started.exists():
        assert process.poll() is None and time.monotonic() < deadline, "the post-install never started"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert (root / KEY).is_dir() and not (root / KEY / run_cache.MARKER_NAME).exists()
    stall.unlink()
    entry = run_cache.ensure_deployed(root, KEY, archives)
    assert (entry / run_cache.MARKER_NAME).is_file()
    assert (entry / "fw/post-installed").is_file()
    assert not [p.name for p in entry.iterdir() if p.name.startswith(".venvstacks-tmp")]


def test_an_archive_that_fails_verification_leaves_no_entry(tmp_path: Path) -> None:
    archive = runtime_archive(tmp_path / "out")
    data = archive.read_bytes()
    archive.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    root = tmp_path / "cache"
    with pytest.raises(VenvstacksError, match="not the archive the build wrote"):
        run_cache.ensure_deployed(root, KEY, [archive])
    assert not (root / KEY).exists()


def test_a_bad_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(VenvstacksError, match="not a stack key"):
        run_cache.ensure_deployed(tmp_path, "../escape", [runtime_archive(tmp_path / "out")])


def test_two_processes_at_once_deploy_once_and_both_get_the_entry(tmp_path: Path) -> None:
    archive = runtime_archive(tmp_path / "out")
    root = tmp_path / "cache"
    root.mkdir()
    # Both start while the entry's lock is held here, so both must wait; then they race for it.
    with open(root / (KEY + run_cache.LOCK_SUFFIX), "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        runs = [
            subprocess.Popen(
                prepare_command(root, KEY, archive), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            for _ in range(2)
        ]
        for run in runs:
            assert run.stderr is not None
            assert "waiting for another run deploying" in run.stderr.readline()
    outputs = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    deployed = sorted(stdout.count("deployed layer 'rt'") for stdout, _ in outputs)
    assert deployed == [0, 1], outputs
    assert (root / KEY / run_cache.MARKER_NAME).is_file()


def _age(entry: Path, days: float) -> None:
    then = time.time() - days * 86400
    for path in (entry / run_cache.USED_NAME, entry / run_cache.MARKER_NAME, entry):
        os.utime(path, (then, then))


def test_a_changed_stack_gets_a_new_entry_and_old_unused_ones_are_cleaned(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    old = run_cache.ensure_deployed(root, OTHER_KEY, [runtime_archive(tmp_path / "v1")])
    new = run_cache.ensure_deployed(root, KEY, [runtime_archive(tmp_path / "v2", b"v2")])
    assert (old / "rt/lib/data.txt").read_bytes() == b"v1" and (new / "rt/lib/data.txt").read_bytes() == b"v2"
    assert run_cache.clean(root, 30) == [], "both were used just now"
    _age(old, 31)
    _age(new, 31)
    assert run_cache.clean(root, 30, keep=KEY) == [OTHER_KEY], "the entry being run is kept"
    assert sorted(p.name for p in root.iterdir()) == [KEY, KEY + run_cache.LOCK_SUFFIX]
    assert run_cache.clean(root, 0) == [], "0 keeps everything"


def test_clean_skips_entries_in_use_or_being_deployed(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    entry = run_cache.ensure_deployed(root, KEY, [runtime_archive(tmp_path / "out")])
    _age(entry, 40)
    # A running application: the launcher's shared lock on the use file, inherited by the app.
    with open(entry / run_cache.USED_NAME) as used:
        fcntl.flock(used, fcntl.LOCK_SH)
        assert run_cache.clean(root, 30) == []
    # A deploy or removal in progress: the entry's lock.
    with open(root / (KEY + run_cache.LOCK_SUFFIX), "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert run_cache.clean(root, 30) == []
    assert entry.is_dir()
    assert run_cache.clean(root, 30) == [KEY]
    assert list(root.iterdir()) == []
