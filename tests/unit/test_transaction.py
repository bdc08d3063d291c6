"""`deploy/transaction.py` `DeployState`: one record a layer, and a DEST an earlier release deployed.

Releases before the records kept one state file, `DEST/.venvstacks-deployed.json`, rewritten whole
after each layer (`to_legacy_state` writes it as they did). A DEST they deployed must redeploy:
what it records is read (unchanged layers skipped, their links checked), and turned into records
at the first change, the old file removed last. Killed at every step of that: test_deploy_kills.py.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from venvstacks_testing.archives import archive_bytes, write_with_metadata
from venvstacks_testing.deploy_layers import (
    deploy_records,
    dest_entries,
    framework_archive,
    layer,
    make_runtime,
    to_legacy_state,
)
from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.deploy import deploy, transaction, verify

LEGACY = transaction.LEGACY_STATE_NAME


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    return make_runtime(tmp_path / "dest")


def _sha(archive: Path) -> str:
    return verify.read_expected(archive, verify.metadata_beside(archive)).sha256


def _with_link(directory: Path, name: str, data: bytes, link: str) -> Path:
    directory.mkdir(exist_ok=True)
    members = layer(name, data, extra=[(f"{name}/up", "symlink", link)])
    return write_with_metadata(directory / f"{name}.tar.zst", archive_bytes(members, "tar.zst"), name)


def test_a_layer_s_record_is_its_own_file(dest: Path, tmp_path: Path) -> None:
    fw, app = framework_archive(tmp_path), _with_link(tmp_path / "app", "app", b"app", "../fw/lib")
    deploy.deploy([fw, app], dest)
    assert sorted(os.listdir(dest / transaction.STATE_NAME)) == ["app.json", "fw.json"]
    assert deploy_records(dest) == {
        "fw": {"archive": "fw.tar.zst", "archive_sha256": _sha(fw), "dest": str(dest), "symlinks": {}},
        "app": {
            "archive": "app.tar.zst",
            "archive_sha256": _sha(app),
            "dest": str(dest),
            "symlinks": {"app/up": "../fw/lib"},
        },
    }


def test_a_dest_deployed_by_an_earlier_release_redeploys(
    dest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fw, app = framework_archive(tmp_path), _with_link(tmp_path / "app", "app", b"app", "../fw/lib")
    deploy.deploy([fw, app], dest)
    to_legacy_state(dest)
    legacy = (dest / LEGACY).read_text()
    capsys.readouterr()
    # Unchanged: both skipped on what the old file records, and nothing is rewritten.
    deploy.deploy([fw, app], dest)
    out = capsys.readouterr().out
    assert "layer 'fw' is already deployed" in out and "layer 'app' is already deployed" in out
    assert dest_entries(dest) == [LEGACY, "app", "fw"] and (dest / LEGACY).read_text() == legacy
    # The app changed: the framework is still skipped, the app deployed; the old file is gone and
    # a record a layer holds what it held, the framework's sha256 included.
    changed = _with_link(tmp_path / "changed", "app", b"changed", "../fw/lib")
    deploy.deploy([fw, changed], dest)
    out = capsys.readouterr().out
    assert "layer 'fw' is already deployed" in out and "deployed layer 'app'" in out
    assert dest_entries(dest) == [transaction.STATE_NAME, "app", "fw"]
    records = deploy_records(dest)
    assert records["fw"]["archive_sha256"] == _sha(fw) and records["app"]["archive_sha256"] == _sha(changed)
    assert (dest / "app/lib/data.txt").read_bytes() == b"changed"


def test_the_links_an_earlier_release_recorded_are_checked(dest: Path, tmp_path: Path) -> None:
    """The app's link, known from the old file only, still stops a framework that sends it outside."""
    inside = layer(extra=[("fw/lib/sub/file.txt", "file", b"x"), ("fw/d", "symlink", "lib/sub")])
    fw = write_with_metadata(tmp_path / "fw.tar.zst", archive_bytes(inside, "tar.zst"), "fw")
    app = _with_link(tmp_path / "app", "app", b"app", "../fw/d/../..")
    deploy.deploy([fw, app], dest)
    to_legacy_state(dest)
    (tmp_path / "bad").mkdir()
    outside = layer(extra=[("fw/lib/sub/file.txt", "file", b"x"), ("fw/d", "symlink", ".")])
    bad = write_with_metadata(tmp_path / "bad/fw.tar.zst", archive_bytes(outside, "tar.zst"), "fw")
    with pytest.raises(VenvstacksError, match=r"the deployed symlink 'app/up' .* of layer 'app' point outside"):
        deploy.deploy([bad], dest)
    assert os.readlink(dest / "fw/d") == "lib/sub" and dest_entries(dest) == [LEGACY, "app", "fw"]


def test_an_earlier_release_s_file_for_another_dest_or_unreadable_vouches_for_nothing(
    dest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fw = framework_archive(tmp_path)
    for document in ('{"dest": "/elsewhere", "layers": {}}', "{not json"):
        deploy.deploy([fw], dest)
        to_legacy_state(dest)
        text = (dest / LEGACY).read_text()
        (dest / LEGACY).write_text(document if document.startswith("{not") else text.replace(str(dest), "/elsewhere"))
        capsys.readouterr()
        deploy.deploy([fw], dest)
        assert capsys.readouterr().out == f"deployed layer 'fw' to {dest / 'fw'}\n"
        assert dest_entries(dest) == [transaction.STATE_NAME, "fw"]
        assert deploy_records(dest)["fw"]["archive_sha256"] == _sha(fw)


def test_records_left_beside_an_earlier_release_s_file_give_way_to_it(dest: Path, tmp_path: Path) -> None:
    """This release deployed `gw`, then an earlier one deployed `fw` alone (writing its file and
    leaving the records): the file is what counts, and the stale record of `gw` goes with it."""
    fw, gw = framework_archive(tmp_path), framework_archive(tmp_path, name="gw")
    deploy.deploy([gw], dest)
    stale = (dest / transaction.STATE_NAME / "gw.json").read_text()
    deploy.deploy([fw], dest)
    to_legacy_state(dest)
    layers = json.loads((dest / LEGACY).read_text())["layers"]
    del layers["gw"]
    (dest / LEGACY).write_text(json.dumps({"dest": str(dest), "layers": layers}))
    (dest / transaction.STATE_NAME).mkdir()
    (dest / transaction.STATE_NAME / "gw.json").write_text(stale)
    assert set(transaction.DeployState(dest).layers) == {"fw"}
    (tmp_path / "changed").mkdir()
    changed = framework_archive(tmp_path / "changed", b"changed")
    deploy.deploy([changed], dest)
    assert set(deploy_records(dest)) == {"fw"} and not (dest / LEGACY).exists()
