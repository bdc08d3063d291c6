"""Tests of `diff-archives` (venvstacks_tool.archive_diff), on archives built here."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
import zstandard

import venvstacks_maint.__main__ as cli
from venvstacks_maint import archive_diff
from venvstacks_tool.core.archive import ArchiveEntry, write_archive

# Odd on purpose: a zip stores even seconds only, which must not count as a difference.
MTIME = 1_700_000_001
TOOLS_DIR = Path(__file__).resolve().parents[2] / "tools"

MOD_PY = "".join(f"value_{i} = {i}\n" for i in range(40)).encode()


def layer_entries() -> list[ArchiveEntry]:
    """A small layer tree: directories, an executable, text and binary files, a symlink."""
    return [
        ArchiveEntry("fw/bin/tool", "file", 0o755, data=b"#!/bin/sh\necho tool\n"),
        ArchiveEntry("fw/bin/python", "symlink", 0o777, link_target="../../rt/bin/python3"),
        ArchiveEntry("fw/lib/mod.py", "file", 0o644, data=MOD_PY),
        ArchiveEntry("fw/lib/blob.bin", "file", 0o644, data=bytes(range(256))),
        ArchiveEntry("fw/empty", "dir", 0o755),
    ]


def write_tar_zst(path: Path, members: list[tuple[str, str, Any, dict[str, Any]]]) -> Path:
    """A .tar.zst of (name, kind, content or link target, TarInfo field overrides), in this order."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, kind, payload, overrides in members:
            info = tarfile.TarInfo(name)
            info.mtime = MTIME
            info.mode = 0o755 if kind == "dir" else 0o644
            data = None
            if kind == "dir":
                info.type = tarfile.DIRTYPE
            elif kind == "symlink":
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, payload, 0o777
            else:
                info.size = len(payload)
                data = io.BytesIO(payload)
            for key, value in overrides.items():
                setattr(info, key, value)
            tf.addfile(info, data)
    path.write_bytes(zstandard.ZstdCompressor(write_checksum=True).compress(buf.getvalue()))
    return path


BASE_MEMBERS: list[tuple[str, str, Any, dict[str, Any]]] = [
    ("fw", "dir", None, {}),
    ("fw/bin", "dir", None, {}),
    ("fw/bin/python", "symlink", "../../rt/bin/python3", {}),
    ("fw/bin/tool", "file", b"#!/bin/sh\necho tool\n", {"mode": 0o755}),
    ("fw/lib", "dir", None, {}),
    ("fw/lib/mod.py", "file", MOD_PY, {}),
]


def changed(name: str, payload: Any = None, **overrides: Any) -> list[tuple[str, str, Any, dict[str, Any]]]:
    """BASE_MEMBERS with member `name` given another payload and/or TarInfo fields."""
    result = []
    for member_name, kind, member_payload, member_overrides in BASE_MEMBERS:
        if member_name == name:
            member_payload = member_payload if payload is None else payload
            member_overrides = {**member_overrides, **overrides}
        result.append((member_name, kind, member_payload, member_overrides))
    return result


def diff(capsys: pytest.CaptureFixture[str], a: Path, b: Path, *more: str) -> tuple[int, list[str]]:
    """Run `diff-archives A B` through the CLI; return the exit status and the printed lines."""
    code = cli.main(["diff-archives", str(a), str(b), *more])
    out, err = capsys.readouterr()
    assert err == ""
    return code, out.splitlines()


@pytest.mark.parametrize("fmt", ["tar.zst", "tar.xz", "zip"])
def test_identical_archives(tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str) -> None:
    a, b = tmp_path / f"a.{fmt}", tmp_path / f"b.{fmt}"
    write_archive(layer_entries(), a, fmt, MTIME)
    write_archive(list(reversed(layer_entries())), b, fmt, MTIME)
    assert diff(capsys, a, b) == (0, [f"identical: {hashlib.sha256(a.read_bytes()).hexdigest()}"])


@pytest.mark.parametrize(
    ("members_b", "expected"),
    [
        (changed("fw/bin/tool", mode=0o644), ["fw/bin/tool: mode 0755 -> 0644"]),
        (changed("fw/lib/mod.py", mtime=MTIME + 1), [f"fw/lib/mod.py: mtime {MTIME} -> {MTIME + 1}"]),
        (changed("fw/lib", uid=1000), ["fw/lib: uid 0 -> 1000"]),
        (changed("fw/lib", gid=1000), ["fw/lib: gid 0 -> 1000"]),
        (changed("fw/lib", uname="builder"), ["fw/lib: uname '' -> 'builder'"]),
        (changed("fw/lib", gname="staff"), ["fw/lib: gname '' -> 'staff'"]),
        (
            changed("fw/bin/python", "../../rt2/bin/python3"),
            ["fw/bin/python: link target ../../rt/bin/python3 -> ../../rt2/bin/python3"],
        ),
        (
            [*BASE_MEMBERS[:2], ("fw/bin/python", "file", b"x", {}), *BASE_MEMBERS[3:]],
            ["fw/bin/python: kind symlink -> file"],
        ),
        (BASE_MEMBERS[:-1], ["only in A: fw/lib/mod.py (file)"]),
        ([*BASE_MEMBERS, ("fw/lib/new.py", "file", b"", {})], ["only in B: fw/lib/new.py (file)"]),
        (
            [*BASE_MEMBERS, BASE_MEMBERS[-1]],
            ["fw/lib/mod.py: stored 1 -> 2 times"],
        ),
    ],
    ids=[
        "mode",
        "mtime",
        "uid",
        "gid",
        "uname",
        "gname",
        "link-target",
        "kind",
        "only-in-a",
        "only-in-b",
        "stored-twice",
    ],
)
def test_each_kind_of_member_difference_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], members_b: list[Any], expected: list[str]
) -> None:
    a = write_tar_zst(tmp_path / "a.tar.zst", BASE_MEMBERS)
    b = write_tar_zst(tmp_path / "b.tar.zst", members_b)
    assert diff(capsys, a, b) == (1, [*expected, "1 members differ"])


def test_content_differences_give_size_sha256_and_a_short_text_diff(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    new_py = MOD_PY.replace(b"value_7 = 7\n", b"value_7 = 'seven'\n")
    blob_a, blob_b = b"\0\1\2", b"\0\1\3"
    a = write_tar_zst(tmp_path / "a.tar.zst", [*BASE_MEMBERS, ("fw/lib/blob.bin", "file", blob_a, {})])
    b = write_tar_zst(
        tmp_path / "b.tar.zst", [*changed("fw/lib/mod.py", new_py), ("fw/lib/blob.bin", "file", blob_b, {})]
    )
    sha = {data: hashlib.sha256(data).hexdigest() for data in (MOD_PY, new_py, blob_a, blob_b)}
    assert diff(capsys, a, b) == (
        1,
        [
            f"fw/lib/blob.bin: content sha256 {sha[blob_a]} -> {sha[blob_b]}",
            f"fw/lib/mod.py: size {len(MOD_PY)} -> {len(new_py)}",
            f"fw/lib/mod.py: content sha256 {sha[MOD_PY]} -> {sha[new_py]}",
            "    @@ -6,5 +6,5 @@",
            "     value_5 = 5",
            "     value_6 = 6",
            "    -value_7 = 7",
            "    +value_7 = 'seven'",
            "     value_8 = 8",
            "     value_9 = 9",
            "2 members differ",
        ],
    )


def test_a_long_text_diff_is_cut(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = write_tar_zst(tmp_path / "a.tar.zst", BASE_MEMBERS)
    b = write_tar_zst(tmp_path / "b.tar.zst", changed("fw/lib/mod.py", MOD_PY.replace(b"value", b"VALUE")))
    code, lines = diff(capsys, a, b)
    diff_lines = [line for line in lines if line.startswith("    ")]
    assert code == 1
    assert len(diff_lines) == archive_diff.TEXT_DIFF_MAX_LINES + 1
    assert diff_lines[-1] == f"    ... ({1 + 2 * 40 - archive_diff.TEXT_DIFF_MAX_LINES} more diff lines)"


def test_zip_and_tar_zst_of_the_same_tree_differ_in_format_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = tmp_path / "layer.tar.zst", tmp_path / "layer.zip"
    write_archive(layer_entries(), a, "tar.zst", MTIME)
    write_archive(layer_entries(), b, "zip", MTIME)
    assert diff(capsys, a, b) == (1, ["archive format: tar.zst -> zip", "0 members differ"])
    assert diff(capsys, b, a) == (1, ["archive format: zip -> tar.zst", "0 members differ"])


def test_mixed_formats_still_compare_members(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = tmp_path / "layer.tar.xz", tmp_path / "layer.zip"
    write_archive(layer_entries(), a, "tar.xz", MTIME)
    entries = [e for e in layer_entries() if e.name != "fw/bin/tool"]
    entries.append(ArchiveEntry("fw/bin/tool", "file", 0o644, data=b"#!/bin/sh\necho tool\n"))
    write_archive(entries, b, "zip", MTIME + 2)
    # Every member's mtime changed the same way: one archive-level line, not one per member.
    assert diff(capsys, a, b) == (
        1,
        [
            "archive format: tar.xz -> zip",
            f"archive member mtimes: all {MTIME} -> {MTIME + 1}",
            "fw/bin/tool: mode 0755 -> 0644",
            "1 members differ",
        ],
    )


def test_archive_level_differences(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = tmp_path / "a.tar.xz", tmp_path / "b.tar.xz"
    write_archive(layer_entries(), a, "tar.xz", MTIME)
    write_archive(layer_entries(), b, "tar.xz", MTIME, compression_level=9)
    assert diff(capsys, a, b) == (1, ["archive xz dictionary size: 8388608 -> 67108864", "0 members differ"])

    reordered = [BASE_MEMBERS[0], BASE_MEMBERS[4], BASE_MEMBERS[5], *BASE_MEMBERS[1:4]]
    c = write_tar_zst(tmp_path / "c.tar.zst", BASE_MEMBERS)
    d = write_tar_zst(tmp_path / "d.tar.zst", reordered)
    assert diff(capsys, c, d) == (1, ["archive member order: shared member 2 is fw/bin -> fw/lib", "0 members differ"])

    # Same members and headers, other bytes (deflate levels): the catch-all line says so.
    e, f = tmp_path / "e.zip", tmp_path / "f.zip"
    write_archive(layer_entries(), e, "zip", MTIME, compression_level=1)
    write_archive(layer_entries(), f, "zip", MTIME, compression_level=9)
    code, lines = diff(capsys, e, f)
    assert code == 1
    assert lines[0].startswith("archive bytes: sha256 ")
    assert lines[1:] == ["0 members differ"]


def test_max_limits_the_members_shown_not_counted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = write_tar_zst(tmp_path / "a.tar.zst", BASE_MEMBERS)
    b = write_tar_zst(tmp_path / "b.tar.zst", [(n, k, p, {**o, "uid": 7}) for n, k, p, o in BASE_MEMBERS])
    assert diff(capsys, a, b, "--max", "2") == (
        1,
        [
            "fw: uid 0 -> 7",
            "fw/bin: uid 0 -> 7",
            "... 4 more differing members not shown (--max 2)",
            "6 members differ",
        ],
    )
    assert len(diff(capsys, a, b, "--max", "0")[1]) == 7


def test_unreadable_input_exits_2_naming_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.tar.zst"
    write_archive(layer_entries(), good, "tar.zst", MTIME)
    truncated = tmp_path / "truncated.tar.zst"
    truncated.write_bytes(good.read_bytes()[:-30])
    text = tmp_path / "notes.txt"
    text.write_text("not an archive\n")
    cases = {
        tmp_path / "missing.tar.zst": "no such file",
        truncated: "corrupt or truncated",
        text: "not a zip archive nor a tar archive",
    }
    for bad, message in cases.items():
        for argv in ([str(good), str(bad)], [str(bad), str(good)]):
            assert cli.main(["diff-archives", *argv]) == 2
            out, err = capsys.readouterr()
            assert out == ""
            assert err.startswith(f"venvstacks: error: archive {str(bad)!r}: {message}")
            assert err.count("\n") == 1


def test_runs_on_the_host_as_a_module(tmp_path: Path) -> None:
    a, b = tmp_path / "a.zip", tmp_path / "b.zip"
    write_archive(layer_entries(), a, "zip", MTIME)
    write_archive(layer_entries()[1:], b, "zip", MTIME)
    env = {**os.environ, "PYTHONPATH": str(TOOLS_DIR)}
    result = subprocess.run(
        [sys.executable, "-m", "venvstacks_maint", "diff-archives", str(a), str(b)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert (result.returncode, result.stdout, result.stderr) == (
        1,
        "only in A: fw/bin/tool (file)\n1 members differ\n",
        "",
    )
