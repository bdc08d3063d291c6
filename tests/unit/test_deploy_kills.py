"""A deploy SIGKILLed at every step of a layer's commit leaves the old or the new layer.

Each case is a real `deploy` subprocess replacing layer `fw` (deployed from one archive) with
another archive, killed by SIGKILL at the Nth step of `transaction.at_step` (post-install, the
record's removal and writes, the exchange or the two renames, the removal of the old tree), N = 1, 2, ... until
the deploy completes; and once more in the middle of removing the old tree. Both swaps are
stepped: the exchange (`renameat2`/`renamex_np`) and the two renames it falls back to, forced.
After each kill, DEST and its record must hold the old or the new layer, never anything else,
and the next deploy must finish with the new one and nothing left behind.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from venvstacks_testing.deploy_layers import (
    deploy_records,
    deployed_trees,
    dest_entries,
    framework_archive,
    make_runtime,
    to_legacy_state,
    tree,
)
from venvstacks_tool.deploy import deploy, exchange, transaction, verify

# Run in the subprocess: argv = archive, dest, steps log, N (0: no kill), mode.
# Modes: "exchange", "fallback" (the exchange refused, as a file system without it does), and
# "-mid" after either: the kill comes at the first file removed after step N.
_HARNESS = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from venvstacks_tool.deploy import deploy, exchange, transaction

    archive, dest, log, kill_at, mode = sys.argv[1:]
    kill_at = int(kill_at)
    if mode.startswith("fallback"):
        exchange.exchange = lambda a, b: False
    steps = 0
    unlink = os.unlink

    def killing_unlink(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    def at_step(name):
        global steps
        steps += 1
        with open(log, "a") as f:
            f.write(name + "\\n")
        if steps == kill_at:
            if mode.endswith("-mid"):
                os.unlink = killing_unlink
            else:
                os.kill(os.getpid(), signal.SIGKILL)

    transaction.at_step = at_step
    deploy.deploy([Path(archive)], Path(dest))
    """
)
# Writes a file, as a real post-install writes pyvenv.cfg: the old and new trees differ there too.
_POSTINSTALL = b"import pathlib\npathlib.Path('post-installed.txt').write_text(open('lib/data.txt').read())\n"


def _archives(root: Path) -> dict[str, Path]:
    """The old and the new archive of `fw`, each with a directory of files to remove or replace."""
    archives = {}
    for version in ("old", "new"):
        extra = [(f"fw/lib/pkg/m{i}.py", "file", f"{version} {i}".encode()) for i in range(5)]
        (root / version).mkdir()
        archives[version] = framework_archive(root / version, version.encode(), extra=extra, postinstall=_POSTINSTALL)
    return archives


def _sha(archive: Path) -> str:
    return verify.read_expected(archive, verify.metadata_beside(archive)).sha256


def _kill(archive: Path, dest: Path, log: Path, kill_at: int, mode: str) -> int:
    command = [sys.executable, "-c", _HARNESS, str(archive), str(dest), str(log), str(kill_at), mode]
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode in (0, -signal.SIGKILL), result.stderr
    return result.returncode


def _check_after_kill(dest: Path, trees: dict[str, dict[str, object]], shas: dict[str, str], fallback: bool) -> str:
    """DEST/fw is the old or the new layer, and the record vouches for nothing else; which one.

    The two renames of the fallback leave, between them, no `fw` but `.venvstacks-old-fw`.
    """
    held = next((v for v, t in trees.items() if (dest / "fw").is_dir() and tree(dest / "fw") == t), "")
    if not held:
        assert fallback and not (dest / "fw").exists(), f"DEST/fw is neither layer: {dest_entries(dest)}"
        assert tree(dest / ".venvstacks-old-fw") == trees["old"]
        held = "aside"
    # While the state file of an earlier release is there, it is what counts (the records are
    # being made from it); after, the records.
    legacy = dest / transaction.LEGACY_STATE_NAME
    recorded = (
        (json.loads(legacy.read_text())["layers"] if legacy.exists() else deploy_records(dest))
        .get("fw", {})
        .get("archive_sha256")
    )
    assert recorded in (None, shas.get(held)), f"the record names {recorded}, DEST/fw is the {held} layer"
    others = [
        n
        for n in dest_entries(dest)
        if not n.startswith((".venvstacks-tmp-", ".venvstacks-old-")) and n != transaction.LEGACY_STATE_NAME
    ]
    assert others in ([transaction.STATE_NAME, "fw"], ["fw"]) or (
        held == "aside" and others == [transaction.STATE_NAME]
    )
    return held


@dataclass(frozen=True)
class Versions:
    """The old and the new archive of `fw`, the trees they deploy to, their sha256s."""

    archives: dict[str, Path]
    trees: dict[str, dict[str, object]]
    shas: dict[str, str]


def _kill_and_recover(
    tmp_path: Path, versions: Versions, kill_at: int, mode: str, legacy: bool = False
) -> tuple[str, str] | None:
    """Deploy the old layer, then the new one killed at step `kill_at`; check DEST, deploy again.

    `legacy`: the old layer's record is turned into an earlier release's state file first.
    Returns (the step killed at, what DEST/fw held then), or None when the deploy completed.
    """
    dest = make_runtime(tmp_path / f"dest-{mode}-{kill_at}{'-legacy' if legacy else ''}")
    deploy.deploy([versions.archives["old"]], dest)
    if legacy:
        to_legacy_state(dest)
    log = dest.parent / f"{dest.name}.steps"
    returncode = _kill(versions.archives["new"], dest, log, kill_at, mode)
    steps = log.read_text().split()
    if returncode == 0:
        assert len(steps) < kill_at, "the deploy went through a step it was to be killed at"
        return None
    step = steps[-1] + (" (mid-way)" if mode.endswith("-mid") else "")
    held = _check_after_kill(dest, versions.trees, versions.shas, fallback=mode.startswith("fallback"))
    deploy.deploy([versions.archives["new"]], dest)
    assert tree(dest / "fw") == versions.trees["new"]
    assert dest_entries(dest) == [transaction.STATE_NAME, "fw"]
    assert deploy_records(dest)["fw"]["archive_sha256"] == versions.shas["new"]
    return step, held


def _commit_steps(swap: list[str], migration: list[str] | None = None) -> list[str]:
    """The steps of a layer's commit, in order: `swap` its steps, `migration` those before the records."""
    return ["post-install", *(migration or []), "drop-record", *swap, "remove-old", "write-record", "replace-record"]


def _kill_at_every_step(tmp_path: Path, mode: str, legacy: bool = False) -> tuple[Versions, list[tuple[str, str]]]:
    """`_kill_and_recover` at step 1, 2, ... until the deploy completes: (the step, what DEST/fw held) each."""
    archives = _archives(tmp_path)
    shas = {version: _sha(archive) for version, archive in archives.items()}
    versions = Versions(archives, deployed_trees(tmp_path, archives), shas)
    seen: list[tuple[str, str]] = []
    for kill_at in range(1, 20):
        case = _kill_and_recover(tmp_path, versions, kill_at, mode, legacy)
        if case is None:
            break
        seen.append(case)
    return versions, seen


@pytest.mark.parametrize("mode", ["exchange", "fallback"])
def test_a_kill_at_every_step_leaves_the_old_or_the_new_layer(tmp_path: Path, mode: str) -> None:
    if mode == "exchange" and not exchange.available():
        pytest.skip("this system has no exchanging rename")
    versions, seen = _kill_at_every_step(tmp_path, mode)
    fallback = mode == "fallback"
    names = [step for step, _ in seen]
    mid = _kill_and_recover(tmp_path, versions, names.index("remove-old") + 1, mode + "-mid")
    assert mid is not None
    seen.append(mid)
    swap = ["exchange", "rename-old-aside", "rename-new"] if fallback else ["exchange"]
    assert [step for step, _ in seen] == [*_commit_steps(swap), "remove-old (mid-way)"], seen
    held = dict(seen)
    assert held["post-install"] == held["exchange"] == "old"
    assert held["remove-old"] == held["remove-old (mid-way)"] == held["replace-record"] == "new"
    if fallback:
        assert held["rename-new"] == "aside"  # the one window that two renames cannot close
    else:
        assert "aside" not in held.values()


def test_a_kill_while_an_earlier_release_s_state_becomes_records_leaves_dest_whole(tmp_path: Path) -> None:
    """DEST deployed by an earlier release (one state file): its first deploy by this one makes a
    record a layer from that file, then removes it. Killed at every step, DEST holds the old or the
    new layer, the state that counts vouches for nothing else, and the next deploy finishes."""
    _, seen = _kill_at_every_step(tmp_path, "exchange", legacy=True)
    swap = ["exchange"] if exchange.available() else ["exchange", "rename-old-aside", "rename-new"]
    migration = ["migrate-record", "replace-migrated-record", "remove-old-state"]
    assert [step for step, _ in seen] == _commit_steps(swap, migration), seen
    held = dict(seen)
    assert all(held[step] == "old" for step in migration)
