"""A deploy on a real small file system that fills, turns read-only or refuses permission.

DEST is on a tmpfs mounted here with a size limit (root only: skipped with the reason where
`mount` is refused). A filler file leaves exactly k pages free before `deploy` replaces `fw`
(or deploys it for the first time), for k = 0, 1, 2, ... until the deploy goes through: so the
disk fills while unpacking each member, in post-install (which writes three pages, as a real one
writes pyvenv.cfg and the stacking files), in the write of the deploy record before the swap, and
in the record after it. Each failure must be one line naming the full disk, never the archive,
and leave DEST with the old or the new layer, its record vouching for nothing else, and no
staging directory or temp file behind.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from venvstacks_testing.archives import archive_bytes, write_with_metadata
from venvstacks_testing.deploy_layers import (
    READER_IDS,
    READERS,
    deploy_records,
    deployed_trees,
    dest_entries,
    layer,
    make_runtime,
    tree,
    use_reader,
)
from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.deploy import deploy, dest_errors, transaction, verify

PAGE = 4096
FS_SIZE = 1 << 20
# Three pages, as a real post-install writes pyvenv.cfg and rewrites the stacking files.
_POSTINSTALL = b"import pathlib\npathlib.Path('post-installed.bin').write_bytes(bytes(3 * 4096))\n"
_FULL = (
    r"cannot deploy layer 'fw' into '[^']+': no space left on its file system \(needs about \d+ KB more\);"
    r" '[^']+/fw' is left as it was"
)
_UNRECORDED = (
    r"layer 'fw' is deployed to '[^']+/fw' but cannot be recorded in '\.venvstacks-deployed': no space left"
    r" on its file system \(needs about \d+ KB more\); the next deploy unpacks it again"
)


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(command), capture_output=True, text=True, check=False)


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs, unmounted at the end whatever happens."""
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root on Linux")
    mount_point = tmp_path / "fs"
    mount_point.mkdir()
    mounted = _run("mount", "-t", "tmpfs", "-o", f"size={FS_SIZE},mode=0755", "tmpfs", str(mount_point))
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        if _run("umount", str(mount_point)).returncode != 0:
            _run("umount", "-l", str(mount_point))


def _free_pages(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize // PAGE


def _leave_free(fs: Path, pages: int) -> None:
    """Fill `fs` with a filler file until exactly `pages` pages are free."""
    with open(fs / "filler", "ab") as f:
        f.write(bytes((_free_pages(fs) - pages) * PAGE))
    assert _free_pages(fs) == pages


def _archives(root: Path, fmt: str = "tar.zst") -> dict[str, Path]:
    """The old and the new `fw`: a dozen one-page files (the new ones a little larger)."""
    archives = {}
    for version, size in (("old", 3000), ("new", 3500)):
        (root / version).mkdir(parents=True)
        extra = [(f"fw/lib/pkg/m{i}.py", "file", bytes([65 + i]) * size) for i in range(12)]
        members = layer("fw", version.encode(), extra, _POSTINSTALL)
        archives[version] = write_with_metadata(root / version / f"fw.{fmt}", archive_bytes(members, fmt), "fw")
    return archives


class _Steps:
    """The commit steps a deploy reached (`transaction.at_step`), to tell where it failed."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def __call__(self, name: str) -> None:
        self.names.append(name)

    def phase(self) -> str:
        """Where the last deploy failed: unpacking, post-install, the record before or after the swap."""
        if not self.names:
            return "unpack"
        if self.names[-1] == "post-install":
            return "post-install"
        return "record after the swap" if "remove-old" in self.names or "rename-new" in self.names else "record"


def _check_dest(dest: Path, trees: dict[str, dict[str, object]], shas: dict[str, str]) -> str:
    """DEST/fw is the old or the new layer (or absent), the record agrees, nothing is left behind."""
    held = next((v for v, t in trees.items() if (dest / "fw").is_dir() and tree(dest / "fw") == t), "")
    assert held or not (dest / "fw").exists(), "DEST/fw is neither the old nor the new layer"
    recorded = deploy_records(dest).get("fw", {})
    assert recorded.get("archive_sha256") in (None, shas.get(held)), (recorded, held)
    assert set(dest_entries(dest)) <= {transaction.STATE_NAME, "fw"}
    assert (dest / "fw").exists() == bool(held)
    return held or "none"


def _sweep(
    fs: Path, snapshot: Path, archives: dict[str, Path], trees: dict[str, dict[str, object]], steps: _Steps
) -> list[tuple[int, str, str]]:
    """Deploy the new `fw` onto a copy of `snapshot` with k = 0, 1, ... pages free; each outcome."""
    dest = fs / "dest"
    shas = {v: verify.read_expected(a, verify.metadata_beside(a)).sha256 for v, a in archives.items()}
    outcomes = []
    for pages in range(64):
        shutil.rmtree(dest, ignore_errors=True)
        (fs / "filler").unlink(missing_ok=True)
        shutil.copytree(snapshot, dest, symlinks=True)
        _leave_free(fs, pages)
        steps.names.clear()
        try:
            deploy.deploy([archives["new"]], dest)
        except VenvstacksError as error:
            message = str(error)
            assert "\n" not in message and "archive" not in message and "Errno" not in message, message
            phase = steps.phase()
            assert re.fullmatch(_UNRECORDED if phase == "record after the swap" else _FULL, message), message
            outcomes.append((pages, phase, _check_dest(dest, trees, shas)))
            continue
        assert _check_dest(dest, trees, shas) == "new"
        outcomes.append((pages, "deployed", "new"))
        return outcomes
    raise AssertionError("the deploy never went through")


def _snapshot(fs: Path, tmp_path: Path, archives: dict[str, Path], with_old: bool) -> Path:
    """A DEST at `fs/dest` holding the runtime (and the old `fw`), copied out of the file system."""
    dest = make_runtime(fs / "dest")
    if with_old:
        deploy.deploy([archives["old"]], dest)
    snapshot = tmp_path / f"snapshot-{with_old}"
    shutil.copytree(dest, snapshot, symlinks=True)
    shutil.rmtree(dest)
    return snapshot


@pytest.mark.parametrize("replacing", [True, False], ids=["replacing", "first-deploy"])
def test_a_disk_full_at_every_page_is_named_and_leaves_the_old_or_the_new_layer(
    small_fs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, replacing: bool
) -> None:
    archives = _archives(tmp_path)
    trees = deployed_trees(tmp_path, archives)
    snapshot = _snapshot(small_fs, tmp_path, archives, with_old=replacing)
    steps = _Steps()
    monkeypatch.setattr(transaction, "at_step", steps)
    outcomes = _sweep(small_fs, snapshot, archives, trees, steps)
    phases = {phase for _, phase, _ in outcomes}
    # Every point of the commit that writes was hit: the members, post-install, the record. Before
    # the swap the old layer's record is only removed, which needs no space; after it, the old
    # layer's tree is gone when the new record is written, so only a first deploy can fail there.
    expected = {"unpack", "post-install", "deployed"}
    expected |= set() if replacing else {"record after the swap"}
    assert phases == expected, outcomes
    for _, phase, held in outcomes:
        if phase in ("unpack", "post-install", "record"):
            assert held == ("old" if replacing else "none")
    print(f"{len(outcomes)} disk-full points:", outcomes)


@pytest.mark.parametrize(("reader", "fmt"), READERS, ids=READER_IDS)
def test_a_disk_full_while_unpacking_is_not_blamed_on_the_archive(
    small_fs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reader: str, fmt: str
) -> None:
    """Every reader: the full disk is named, with what the layer needs, at three points of the members."""
    use_reader(monkeypatch, reader)
    archives = _archives(tmp_path, fmt)
    snapshot = _snapshot(small_fs, tmp_path, archives, with_old=True)
    dest = small_fs / "dest"
    for pages in (0, 5, 10):
        shutil.rmtree(dest, ignore_errors=True)
        (small_fs / "filler").unlink(missing_ok=True)
        shutil.copytree(snapshot, dest, symlinks=True)
        _leave_free(small_fs, pages)
        with pytest.raises(VenvstacksError) as info:
            deploy.deploy([archives["new"]], dest)
        assert re.fullmatch(_FULL, str(info.value)), info.value
        found = re.search(r"needs about (\d+) KB", str(info.value))
        assert found is not None
        needed = int(found.group(1))
        # The layer's 15 files take 15 pages: what is missing, give or take the directories.
        assert (15 - pages) * PAGE <= needed * 1000 <= (15 - pages + 8) * PAGE, (pages, needed)
        assert dest_entries(dest) == [transaction.STATE_NAME, "fw"]
        assert (dest / "fw/lib/data.txt").read_bytes() == b"old"


def test_a_read_only_dest_is_named_as_such(small_fs: Path, tmp_path: Path) -> None:
    archives = _archives(tmp_path)
    dest = make_runtime(small_fs / "dest")
    deploy.deploy([archives["old"]], dest)
    assert _run("mount", "-o", "remount,ro", str(small_fs)).returncode == 0
    try:
        with pytest.raises(VenvstacksError, match=r"is not writable: its file system is read-only$"):
            deploy.deploy([archives["new"]], dest)
    finally:
        assert _run("mount", "-o", "remount,rw", str(small_fs)).returncode == 0
    assert (dest / "fw/lib/data.txt").read_bytes() == b"old"
    assert dest_entries(dest) == [transaction.STATE_NAME, "fw"]


_NO_DAC = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", "--inh-caps=-all"]


def _deploy_without_dac(archive: Path, dest: Path) -> subprocess.CompletedProcess[str]:
    """`deploy` as root without the capabilities that ignore file modes: modes are obeyed."""
    if shutil.which("setpriv") is None or os.geteuid() != 0:
        pytest.skip("needs root and setpriv to drop the capabilities that ignore file modes")
    command = [*_NO_DAC, sys.executable, "-m", "venvstacks_tool", "deploy", "--archive", str(archive)]
    return subprocess.run([*command, "--dest", str(dest)], capture_output=True, text=True, check=False)


def test_refused_permissions_are_named_without_a_traceback(tmp_path: Path) -> None:
    """EACCES, real: DEST not writable, then an old layer whose files cannot be removed."""
    archives = _archives(tmp_path)
    dest = make_runtime(tmp_path / "dest")
    deploy.deploy([archives["old"]], dest)
    dest.chmod(0o555)
    try:
        result = _deploy_without_dac(archives["new"], dest)
    finally:
        dest.chmod(0o755)
    assert result.returncode == 1
    assert result.stderr == f"venvstacks: error: deploy destination {str(dest)!r} is not writable: permission denied\n"
    assert (dest / "fw/lib/data.txt").read_bytes() == b"old"
    # The old layer goes once the new one is in place: a directory of it that cannot be emptied
    # is named in a warning, the new layer is deployed and recorded, and the next deploy warns
    # again rather than fail.
    (dest / "fw/lib/pkg").chmod(0o555)
    result = _deploy_without_dac(archives["new"], dest)
    assert result.returncode == 0, result.stderr
    assert "cannot remove the replaced layer" in result.stderr and "Traceback" not in result.stderr
    assert (dest / "fw/lib/data.txt").read_bytes() == b"new"
    result = _deploy_without_dac(archives["old"], dest)
    assert result.returncode == 0 and "Permission denied; remove it by hand" in result.stderr, result.stderr
    deploy.deploy([archives["new"]], dest)  # with the capabilities, the leftover goes
    assert dest_entries(dest) == [transaction.STATE_NAME, "fw"]


def test_the_causes_have_their_names() -> None:
    """EDQUOT (a quota needs quota tools to set up) and the parsing of a child's last line."""
    quota = OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))
    assert dest_errors.cause(quota, Path("/"), needed=3_500_000) == (
        "the disk quota on its file system is exceeded (the layer takes about 3.5 MB)"
    )
    child = "Traceback (most recent call last):\n  ...\nPermissionError: [Errno 13] Permission denied: '/d/fw/x'\n"
    error = dest_errors.error_in_output(child)
    assert error is not None and error.errno == errno.EACCES and error.filename == "/d/fw/x"
    assert dest_errors.error_in_output("ValueError: [Errno 5] not a cause we name\n") is None
