"""Deploy against malicious and damaged archives, untrusted metadata, and a shared or crashed DEST.

Every archive is built here, in memory. The escape and damage suites run on every reader: the
lean reader and the tarfile fallback on .tar.zst and .tar.xz, zipfile on .zip. Each archive has
metadata matching its (damaged) bytes, so the reader itself is what must refuse it.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import re
import tarfile
from pathlib import Path
from typing import Any

import pytest

from venvstacks_testing.archives import ESCAPES, Member, archive_bytes, compress, tar_bytes, write_with_metadata
from venvstacks_testing.deploy_layers import (
    READER_IDS,
    READERS,
    RUNTIME,
    deploy_records,
    dest_entries,
    framework_archive,
    layer,
    make_runtime,
    use_reader,
)
from venvstacks_tool.core import cli
from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.deploy import deploy, transaction, verify


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    """A DEST holding a runtime layer whose `bin/python3` is a wrapper running the host Python."""
    return make_runtime(tmp_path / "dest")


# --- escapes -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("reader", "fmt"), READERS, ids=READER_IDS)
@pytest.mark.parametrize("case", sorted(ESCAPES))
def test_escapes_are_refused(
    dest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str, reader: str, fmt: str
) -> None:
    if fmt == "zip" and case in ("hardlink-out", "hardlink-dangling", "fifo"):
        pytest.skip("zip has no hard links or FIFOs")
    use_reader(monkeypatch, reader)
    extra, message = ESCAPES[case]
    (dest / "fw").mkdir()
    (dest / "fw/keep.txt").write_text("previous layer")
    data = archive_bytes(layer(extra=extra), fmt)
    if fmt == "zip" and case == "nul-name":
        # zipfile cuts a name at a NUL when writing: put it into the written names afterwards.
        data = archive_bytes(layer(extra=[("fw/a@b.txt", "file", b"x")]), fmt).replace(b"fw/a@b", b"fw/a\0b")
    archive = write_with_metadata(tmp_path / f"bad.{fmt}", data, "fw")
    with pytest.raises(VenvstacksError, match=message) as info:
        deploy.deploy([archive], dest)
    assert f"archive 'bad.{fmt}'" in str(info.value)
    assert os.listdir(dest / "fw") == ["keep.txt"]
    assert dest_entries(dest) == ["fw"]
    assert not (tmp_path / "escaped.txt").exists()


_LONG = "n" * 300 + ".txt"

# Members that are no escape but that no file system can hold as given: refused by the member
# checks, before anything is written, in one line naming the member (not an OS error on the
# staging path). name -> (extra members, the whole message after "archive 'bad.FMT': ").
UNWRITABLE: dict[str, tuple[list[Member], str]] = {
    "empty-symlink-target": ([("fw/empty", "symlink", "")], "symlink 'fw/empty' has an empty target"),
    "file-where-a-directory-is-needed": (
        [("fw/x/y.txt", "file", b"y"), ("fw/x", "file", b"x")],
        "member 'fw/x' is a file where an earlier member needs a directory",
    ),
    "symlink-where-a-directory-is-needed": (
        [("fw/x/y.txt", "file", b"y"), ("fw/x", "symlink", "lib")],
        "member 'fw/x' is a symlink where an earlier member needs a directory",
    ),
    "over-long-name-component": (
        [(f"fw/{_LONG}", "file", b"x")],
        f"member 'fw/{_LONG}' has a name component of 304 bytes, over the limit of 255 bytes of the file system"
        " of {dest}",
    ),
}


@pytest.mark.parametrize(("reader", "fmt"), READERS, ids=READER_IDS)
@pytest.mark.parametrize("case", sorted(UNWRITABLE))
def test_members_no_file_system_holds_are_refused_naming_the_member(
    dest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str, reader: str, fmt: str
) -> None:
    use_reader(monkeypatch, reader)
    extra, message = UNWRITABLE[case]
    (dest / "fw").mkdir()
    (dest / "fw/keep.txt").write_text("previous layer")
    archive = write_with_metadata(tmp_path / f"bad.{fmt}", archive_bytes(layer(extra=extra), fmt), "fw")
    with pytest.raises(VenvstacksError) as info:
        deploy.deploy([archive], dest)
    assert str(info.value) == f"archive 'bad.{fmt}': " + message.format(dest=dest)
    assert os.listdir(dest / "fw") == ["keep.txt"]  # the old layer, and nothing beside it
    assert dest_entries(dest) == ["fw"]


@pytest.mark.parametrize(("reader", "fmt"), READERS, ids=READER_IDS)
def test_symlink_through_a_deployed_layer_is_refused(
    dest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reader: str, fmt: str
) -> None:
    """A link resolving through another layer's symlink on disk: relative out of DEST, or absolute."""
    use_reader(monkeypatch, reader)
    os.symlink("../..", dest / RUNTIME / "up")  # DEST's parent
    os.symlink("/etc", dest / RUNTIME / "abs")
    os.symlink("bin", dest / RUNTIME / "tools")
    fine = layer(extra=[("fw/python", "symlink", f"../{RUNTIME}/tools/python3")])
    archive = write_with_metadata(tmp_path / f"fw.{fmt}", archive_bytes(fine, fmt), "fw")
    deploy.deploy([archive], dest)
    assert os.readlink(dest / "fw/python") == f"../{RUNTIME}/tools/python3"
    for link, via in ((f"../{RUNTIME}/up/etc", f"{RUNTIME}/up"), (f"../{RUNTIME}/abs/passwd", f"{RUNTIME}/abs")):
        bad = write_with_metadata(
            tmp_path / f"bad.{fmt}", archive_bytes(layer("gw", extra=[("gw/x", "symlink", link)]), fmt), "gw"
        )
        with pytest.raises(VenvstacksError, match=rf"symlink 'gw/x' -> .* points outside .* symlink '{via}'"):
            deploy.deploy([bad], dest)
        assert not (dest / "gw").exists()


def _fw_with_d(tmp_path: Path, fmt: str, d_target: str) -> Path:
    """A framework whose `fw/d` is a symlink to `d_target` (beside a directory `fw/lib/sub`)."""
    members = layer(extra=[("fw/lib/sub/file.txt", "file", b"x"), ("fw/d", "symlink", d_target)])
    return write_with_metadata(tmp_path / f"fw-{d_target.replace('/', '_')}.{fmt}", archive_bytes(members, fmt), "fw")


def _app_with_link(tmp_path: Path, fmt: str, link: str, name: str = "app") -> Path:
    members = layer("app", extra=[("app/up", "symlink", link)] if link else [])
    return write_with_metadata(tmp_path / f"{name}.{fmt}", archive_bytes(members, fmt), "app")


@pytest.mark.parametrize(("reader", "fmt"), READERS, ids=READER_IDS)
def test_a_lower_layer_that_sends_a_deployed_link_outside_is_refused(
    dest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reader: str, fmt: str
) -> None:
    """Redeploying `fw` with `d -> .` (inside DEST on its own) would make the deployed
    `app/up -> ../fw/d/../..` (DEST/fw while `d -> lib/sub`) resolve to DEST's parent: refused
    before the swap, naming the archive, its link and the app's; `fw` and `app` stay as they were.
    """
    use_reader(monkeypatch, reader)
    deploy.deploy([_fw_with_d(tmp_path, fmt, "lib/sub"), _app_with_link(tmp_path, fmt, "../fw/d/../..")], dest)
    assert os.path.realpath(dest / "app/up") == os.path.realpath(dest / "fw")
    bad = _fw_with_d(tmp_path, fmt, ".")
    message = (
        rf"archive '{bad.name}': symlink 'fw/d' -> '\.' would make the deployed symlink 'app/up' ->"
        r" '\.\./fw/d/\.\./\.\.' of layer 'app' point outside"
    )
    with pytest.raises(VenvstacksError, match=message):
        deploy.deploy([bad], dest)
    assert os.readlink(dest / "fw/d") == "lib/sub"
    assert dest_entries(dest) == [transaction.STATE_NAME, "app", "fw"]
    # The same when DEST's state has no record of the app's links (a layer deployed by hand, or
    # by an older deploy): its tree is walked.
    (dest / transaction.STATE_NAME / "app.json").unlink()
    with pytest.raises(VenvstacksError, match=message):
        deploy.deploy([bad], dest)
    assert os.readlink(dest / "fw/d") == "lib/sub"
    # Replaced in the same deploy by an app without that link, the new framework is fine.
    deploy.deploy([bad, _app_with_link(tmp_path, fmt, "", name="app2")], dest)
    assert os.readlink(dest / "fw/d") == "."
    assert not os.path.lexists(dest / "app/up")


def test_a_deployed_link_that_reaches_the_new_layer_through_a_third_layer_is_checked(
    dest: Path, tmp_path: Path
) -> None:
    """`app/up -> ../mid/to_fw/../..` reaches `fw` only through `mid/to_fw -> ../fw/d`: replacing
    `fw` with `d -> .` sends it outside DEST, and is refused, with the app's records or without
    (the index of the links by the layers they look into must not lose it); `mid`'s own link
    stays inside, so only the app's is named."""
    mid = write_with_metadata(
        tmp_path / "mid.tar.zst",
        archive_bytes(layer("mid", extra=[("mid/to_fw", "symlink", "../fw/d")]), "tar.zst"),
        "mid",
    )
    deploy.deploy(
        [_fw_with_d(tmp_path, "tar.zst", "lib/sub"), mid, _app_with_link(tmp_path, "tar.zst", "../mid/to_fw/../..")],
        dest,
    )
    assert os.path.realpath(dest / "app/up") == os.path.realpath(dest / "fw")
    bad = _fw_with_d(tmp_path, "tar.zst", ".")
    message = r"would make the deployed symlink 'app/up' -> '\.\./mid/to_fw/\.\./\.\.' of layer 'app' point outside"
    with pytest.raises(VenvstacksError, match=message):
        deploy.deploy([bad], dest)
    (dest / transaction.STATE_NAME / "app.json").unlink()
    (dest / transaction.STATE_NAME / "mid.json").unlink()
    with pytest.raises(VenvstacksError, match=message):
        deploy.deploy([bad], dest)
    assert os.readlink(dest / "fw/d") == "lib/sub"


# --- damage --------------------------------------------------------------------------------------


def _ustar_header(name: str, typeflag: bytes, size: int, size_field: bytes | None = None) -> bytes:
    """A ustar header with a valid checksum; `size_field` replaces the size field's bytes."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.type = typeflag
    header = bytearray(info.tobuf(tarfile.USTAR_FORMAT))
    if size_field is not None:
        header[124:136] = size_field
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header)


def _members_tar() -> bytes:
    return tar_bytes(layer(extra=[("fw/a.txt", "file", b"a" * 1000), ("fw/b.txt", "file", b"b" * 1000)]))


def _offset_of(tar: bytes, name: str) -> int:
    with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
        return next(m.offset for m in tf.getmembers() if m.name == name)


def _end_of_data(tar: bytes) -> int:
    """Where the end-of-archive marker starts."""
    with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
        last = tf.getmembers()[-1]
        return last.offset_data + -(-last.size // 512) * 512


def _flip_header_bit(tar: bytes) -> bytes:
    at = _offset_of(tar, "fw/b.txt")
    return tar[: at + 3] + bytes([tar[at + 3] ^ 0x04]) + tar[at + 4 :]


def _negative_size(tar: bytes) -> bytes:
    at = _offset_of(tar, "fw/b.txt")
    header = _ustar_header("fw/b.txt", tarfile.REGTYPE, 0, b"\xff" * 12)
    return tar[:at] + header + tar[at + 512 :]


def _negative_octal_size(tar: bytes) -> bytes:
    at = _offset_of(tar, "fw/b.txt")
    return tar[:at] + _ustar_header("fw/b.txt", tarfile.REGTYPE, 0, b"-0000000001\0") + tar[at + 512 :]


def _pax_too_large(tar: bytes) -> bytes:
    at = _offset_of(tar, "fw/b.txt")
    return tar[:at] + _ustar_header("pax", tarfile.XHDTYPE, 300 << 20) + tar[at:]


def _gnu_long_name_too_large(tar: bytes) -> bytes:
    at = _offset_of(tar, "fw/b.txt")
    return tar[:at] + _ustar_header("././@LongLink", tarfile.GNUTYPE_LONGNAME, 300 << 20) + tar[at:]


# name -> (damage the tar, damage the compressed bytes, expected message)
DAMAGE: dict[str, tuple[Any, Any, str]] = {
    "flipped-header-bit": (
        _flip_header_bit,
        None,
        "corrupt or truncated: .*(bad checksum|no end-of-archive marker)",
    ),
    "negative-size": (_negative_size, None, "corrupt or truncated: .*negative size"),
    # "-1" in octal: a negative number, not a bad checksum (the lean reader read it as -1 and went on).
    "negative-size-in-octal": (
        _negative_octal_size,
        None,
        r"corrupt or truncated: the header at offset \d+ has a negative size$",
    ),
    "no-end-marker": (lambda t: t[: _end_of_data(t)], None, "corrupt or truncated"),
    "lone-zero-block": (lambda t: t[: _end_of_data(t) + 512], None, "corrupt or truncated"),
    "cut-inside-a-member": (lambda t: t[: _end_of_data(t) - 700], None, "corrupt or truncated"),
    "garbage-after-end": (lambda t: t + b"\x01" * 512, None, "corrupt or truncated"),
    "compressed-cut-after-members": (None, lambda c: c[:-12], "corrupt or truncated"),
    # zstandard's own reader reads a frame cut inside its 4-byte checksum as complete.
    "compressed-cut-in-last-4-bytes": (
        None,
        lambda c: c[:-2],
        r"corrupt or truncated: .*(zstd stream ends inside a frame|ended before|ends at offset)",
    ),
    "pax-header-too-large": (_pax_too_large, None, r"is 314572800 bytes, over the limit of 1048576"),
    "gnu-long-name-too-large": (_gnu_long_name_too_large, None, r"is 314572800 bytes, over the limit of 1048576"),
}


@pytest.mark.parametrize(("reader", "fmt"), READERS[:4], ids=READER_IDS[:4])
@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_damaged_tar_never_deploys(
    dest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str, reader: str, fmt: str
) -> None:
    damage_tar, damage_compressed, message = DAMAGE[case]
    use_reader(monkeypatch, reader)
    tar = _members_tar()
    if damage_tar:
        tar = damage_tar(tar)
    data = compress(tar, fmt)
    if damage_compressed:
        data = damage_compressed(data)
    archive = write_with_metadata(tmp_path / f"bad.{fmt}", data, "fw")
    with pytest.raises(VenvstacksError, match=rf"archive 'bad\.{fmt}'.*({message})"):
        deploy.deploy([archive], dest)
    assert dest_entries(dest) == []


@pytest.mark.parametrize("case", ["flipped-bit", "cut"])
def test_damaged_zip_never_deploys(dest: Path, tmp_path: Path, case: str) -> None:
    data = archive_bytes(layer(data=b"z" * 5000), "zip")
    at = data.index(b"z" * 100) if case == "flipped-bit" else len(data) // 2
    data = data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :] if case == "flipped-bit" else data[:at]
    archive = write_with_metadata(tmp_path / "bad.zip", data, "fw")
    with pytest.raises(VenvstacksError, match=r"archive 'bad\.zip': corrupt or truncated"):
        deploy.deploy([archive], dest)
    assert dest_entries(dest) == []


# --- metadata ------------------------------------------------------------------------------------


def test_archive_must_match_its_metadata(dest: Path, tmp_path: Path) -> None:
    good = archive_bytes(layer(), "tar.zst")
    archive = write_with_metadata(tmp_path / "fw.tar.zst", good, "fw")
    metadata = tmp_path / "fw.json"
    document = json.loads(metadata.read_text())

    archive.write_bytes(good[:-4] + bytes(4))  # same size, other bytes (e.g. only the zstd checksum cut)
    with pytest.raises(VenvstacksError, match=r"archive 'fw\.tar\.zst' has sha256 \w+, but its metadata .* says"):
        deploy.deploy([archive], dest)
    archive.write_bytes(good + b"\0")
    with pytest.raises(VenvstacksError, match=r"is \d+ bytes, but its metadata .* says \d+"):
        deploy.deploy([archive], dest)
    archive.write_bytes(good)
    metadata.write_text(json.dumps({**document, "layer_name": "gw"}))
    with pytest.raises(VenvstacksError, match=r"holds layer 'fw', but its metadata .* is for layer 'gw'"):
        deploy.deploy([archive], dest)
    metadata.write_text(json.dumps({**document, "archive": {"size": 1}}))
    with pytest.raises(VenvstacksError, match=r"has no valid layer_name, archive\.sha256 and archive\.size"):
        deploy.deploy([archive], dest)
    metadata.unlink()
    with pytest.raises(VenvstacksError, match=r"archive 'fw\.tar\.zst': no metadata .*fw\.json"):
        deploy.deploy([archive], dest)
    assert dest_entries(dest) == []


def test_metadata_flags_pair_with_archives(dest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    archive = write_with_metadata(tmp_path / "fw.tar.xz", archive_bytes(layer(), "tar.xz"), "fw")
    elsewhere = tmp_path / "meta" / "for-fw.json"
    elsewhere.parent.mkdir()
    (tmp_path / "fw.json").rename(elsewhere)
    argv = ["deploy", "--archive", str(archive), "--dest", str(dest)]
    assert cli.main([*argv, "--metadata", str(elsewhere), "--metadata", str(elsewhere)]) == 1
    assert "1 --archive but 2 --metadata" in capsys.readouterr().err
    assert cli.main(argv) == 1
    assert "no metadata" in capsys.readouterr().err
    assert cli.main([*argv, "--metadata", str(elsewhere)]) == 0
    assert (dest / "fw/lib/data.txt").read_bytes() == b"new"


# --- DEST: lock, recovery, errors ----------------------------------------------------------------


def test_second_deploy_waits_for_the_lock_then_fails(dest: Path, tmp_path: Path) -> None:
    archive = framework_archive(tmp_path)
    with open(dest / transaction.LOCK_NAME, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(VenvstacksError, match=r"another deploy into .* still holds '.venvstacks-deploy.lock'"):
            deploy.deploy([archive], dest, lock_timeout=0.3)
    assert dest_entries(dest) == []
    deploy.deploy([archive], dest, lock_timeout=0.3)  # released: it goes through
    assert (dest / "fw/lib/data.txt").read_bytes() == b"new"


def test_leftovers_of_a_killed_deploy_are_cleared_and_an_aside_layer_restored(dest: Path, tmp_path: Path) -> None:
    (dest / ".venvstacks-tmp-abc123/fw/lib").mkdir(parents=True)
    (dest / ".venvstacks-tmp-deployed.json").write_text("{")
    (dest / ".venvstacks-old-fw").mkdir()  # the kill came between the two renames: no `fw`
    (dest / ".venvstacks-old-fw/keep.txt").write_text("previous layer")
    (dest / "gw").mkdir()
    (dest / ".venvstacks-old-gw").mkdir()  # the kill came after the swap: `gw` is whole
    deploy.deploy([framework_archive(tmp_path, name="hw")], dest)
    assert dest_entries(dest) == [transaction.STATE_NAME, "fw", "gw", "hw"]
    assert (dest / "fw/keep.txt").read_text() == "previous layer"


def test_a_versioned_layer_deploys_beside_its_other_version_under_the_same_recovery(dest: Path, tmp_path: Path) -> None:
    """`fw@2` beside `fw@1` (versioned layers): the layer deploy does not name stays, record and all."""
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    deploy.deploy([framework_archive(tmp_path / "one", b"one", name="fw@1")], dest)
    two = framework_archive(tmp_path / "two", b"two", name="fw@2")
    deploy.deploy([two], dest)
    assert dest_entries(dest) == [transaction.STATE_NAME, "fw@1", "fw@2"]
    assert sorted(deploy_records(dest)) == ["fw@1", "fw@2"]
    assert [(dest / f"fw@{n}/lib/data.txt").read_bytes() for n in (1, 2)] == [b"one", b"two"]
    (dest / "fw@1").rename(dest / ".venvstacks-old-fw@1")  # a kill between the two renames of a swap
    deploy.deploy([two], dest)  # fw@2 is skipped; recovery still puts fw@1 back first
    assert (dest / "fw@1/lib/data.txt").read_bytes() == b"one"


def test_dest_that_is_a_file_or_not_writable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = framework_archive(tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(VenvstacksError, match=r"deploy destination '.*file' exists and is not a directory"):
        deploy.deploy([archive], tmp_path / "file")
    with pytest.raises(VenvstacksError, match=r"cannot create the deploy destination '.*file/sub'"):
        deploy.deploy([archive], tmp_path / "file" / "sub")
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: access(path, mode) and Path(path) != readonly)
    with pytest.raises(VenvstacksError, match=r"deploy destination '.*readonly' is not writable: permission denied"):
        deploy.deploy([archive], readonly)


# --- skipping layers already deployed ------------------------------------------------------------


def test_unchanged_layers_are_not_unpacked_again(
    dest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fw, app = framework_archive(tmp_path), framework_archive(tmp_path, name="app")
    deploy.deploy([fw, app], dest)
    capsys.readouterr()
    (dest / "fw/marker").write_text("kept")
    unpacked: list[str] = []
    extract_layer = deploy.extract_layer
    monkeypatch.setattr(
        deploy, "extract_layer", lambda *a, **k: unpacked.append(k["expected_layer"]) or extract_layer(*a, **k)
    )
    (tmp_path / "other").mkdir()
    other_app = framework_archive(tmp_path / "other", b"other app", name="app")
    deploy.deploy([fw, other_app], dest)
    sha = verify.read_expected(fw, tmp_path / "fw.json").sha256
    assert capsys.readouterr().out.startswith(f"layer 'fw' is already deployed (archive sha256 {sha}); skipped\n")
    assert unpacked == ["app"]  # the unchanged framework's archive was checked, not unpacked
    assert (dest / "fw/marker").exists()
    changed = framework_archive(tmp_path, b"changed")
    deploy.deploy([changed], dest)
    assert unpacked == ["app", "fw"] and not (dest / "fw/marker").exists()
    (dest / "fw/marker").write_text("kept")
    deploy.deploy([changed], dest, force=True)
    assert not (dest / "fw/marker").exists()
    records = deploy_records(dest)
    assert set(records) == {"fw", "app"} and all(record["dest"] == str(dest) for record in records.values())


def test_a_moved_dest_is_deployed_again(dest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Post-install wrote DEST's absolute path into each layer: a moved DEST is no longer deployed."""
    fw = framework_archive(tmp_path)
    deploy.deploy([fw], dest)
    moved = tmp_path / "moved"
    dest.rename(moved)
    capsys.readouterr()
    deploy.deploy([fw], moved)
    assert capsys.readouterr().out == f"deployed layer 'fw' to {moved / 'fw'}\n"
    (moved / "fw").rename(moved / "elsewhere")
    deploy.deploy([fw], moved)  # the recorded layer's directory is gone
    assert capsys.readouterr().out == f"deployed layer 'fw' to {moved / 'fw'}\n"


FORMATS = ["tar.zst", "tar.xz", "zip"]


def _fw_archive(directory: Path, fmt: str, data: bytes = b"new", name: str = "fw") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    return write_with_metadata(directory / f"{name}.{fmt}", archive_bytes(layer(name, data), fmt), name)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_skip_checks_the_archive_bytes(
    dest: Path, tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bytes replaced after a deploy, the metadata unchanged: refused, never "already deployed"."""
    archive = _fw_archive(tmp_path, fmt)
    good = archive.read_bytes()
    argv = ["deploy", "--archive", str(archive), "--dest", str(dest)]
    assert cli.main(argv) == 0
    assert cli.main(argv) == 0
    assert "layer 'fw' is already deployed" in capsys.readouterr().out
    other = archive_bytes(layer(data=b"replaced"), fmt)
    for replaced in (other, good[:-1] + bytes([good[-1] ^ 1])):  # another layer's size, the same size
        archive.write_bytes(replaced)
        assert cli.main(argv) == 1
        out, err = capsys.readouterr()
        assert "already deployed" not in out
        assert re.fullmatch(
            rf"venvstacks: error: archive '{re.escape(archive.name)}' (is \d+ bytes|has sha256 \w+), but its metadata"
            r" '[^']+' says \w+: not the archive the build wrote\n",
            err,
        ), err
    assert (dest / "fw/lib/data.txt").read_bytes() == b"new"


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_metadata_of_another_layer_is_refused_naming_both(
    dest: Path, tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The runtime's JSON given for the framework's archive; and the framework's own JSON with
    another layer_name (its sha256 still the archive's): neither skips, both name both layers."""
    archive = _fw_archive(tmp_path, fmt)
    runtime_metadata = verify.metadata_beside(_fw_archive(tmp_path / "rt", fmt, name=RUNTIME))
    assert cli.main(["deploy", "--archive", str(archive), "--dest", str(dest)]) == 0
    own = verify.metadata_beside(archive)
    renamed = tmp_path / "renamed.json"
    renamed.write_text(json.dumps({**json.loads(own.read_text()), "layer_name": RUNTIME}))
    for metadata in (runtime_metadata, renamed):
        capsys.readouterr()
        argv = ["deploy", "--archive", str(archive), "--metadata", str(metadata), "--dest", str(dest)]
        assert cli.main(argv) == 1
        assert capsys.readouterr().err == (
            f"venvstacks: error: archive {archive.name!r} holds layer 'fw', but its metadata {str(metadata)!r}"
            f" is for layer {RUNTIME!r}\n"
        )
    assert (dest / "fw/lib/data.txt").read_bytes() == b"new"
    assert (dest / RUNTIME / "bin/python3").is_file()


def test_a_post_install_traceback_is_reduced_to_its_last_line(dest: Path, tmp_path: Path) -> None:
    script = b"def finish():\n    raise ValueError('cannot finish the layer')\n\nfinish()\n"
    archive = write_with_metadata(tmp_path / "fw.tar.zst", archive_bytes(layer(postinstall=script), "tar.zst"), "fw")
    with pytest.raises(VenvstacksError) as info:
        deploy.deploy([archive], dest)
    assert str(info.value) == (
        "archive 'fw.tar.zst': postinstall.py of layer 'fw' failed (exit 1): ValueError: cannot finish the layer"
    )
    assert dest_entries(dest) == []
