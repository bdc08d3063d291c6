"""Tests of venvstacks_tool.archive: determinism, layout, validation and atomicity."""

from __future__ import annotations

import hashlib
import io
import lzma
import os
import random
import re
import stat
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import zstandard

from venvstacks_tool.core import archive
from venvstacks_tool.core.archive import (
    ArchiveEntry,
    read_tar_entries,
    write_archive,
)
from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.core.fsutil import sha256_file

FORMATS = ("tar.zst", "tar.xz", "zip")
MTIME = 1_700_000_000


def _tar_bytes(path: Path) -> bytes:
    """The uncompressed tar stream of a .tar.zst or .tar.xz archive."""
    data = path.read_bytes()
    if path.name.endswith(".tar.zst"):
        return zstandard.ZstdDecompressor().decompress(data)
    return lzma.decompress(data)


def _tar_members(path: Path) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(_tar_bytes(path))) as tf:
        return tf.getmembers()


def _listing(path: Path) -> list[tuple[str, str, int, str | None, bytes | None]]:
    """(name, kind, mode, link target, content) for every member, in archive order."""
    result: list[tuple[str, str, int, str | None, bytes | None]] = []
    if path.name.endswith(".zip"):
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                mode = info.external_attr >> 16
                content = zf.read(info)
                if stat.S_ISDIR(mode):
                    result.append((info.filename.rstrip("/"), "dir", stat.S_IMODE(mode), None, None))
                elif stat.S_ISLNK(mode):
                    result.append((info.filename, "symlink", stat.S_IMODE(mode), content.decode(), None))
                else:
                    result.append((info.filename, "file", stat.S_IMODE(mode), None, content))
        return result
    with tarfile.open(fileobj=io.BytesIO(_tar_bytes(path))) as tf:
        for m in tf.getmembers():
            if m.isdir():
                result.append((m.name, "dir", m.mode, None, None))
            elif m.issym():
                result.append((m.name, "symlink", m.mode, m.linkname, None))
            else:
                f = tf.extractfile(m)
                assert f is not None
                result.append((m.name, "file", m.mode, None, f.read()))
    return result


def _sample_entries() -> list[ArchiveEntry]:
    return [
        ArchiveEntry("pkg/bin/tool", "file", 0o700, data=b"#!/bin/sh\necho hi\n"),
        ArchiveEntry("pkg/lib/mod.py", "file", 0o600, data=b"x = 1\n" * 100),
        ArchiveEntry("pkg/bin/tool-link", "symlink", 0o755, link_target="tool"),
        ArchiveEntry("pkg/lib/up", "symlink", 0o644, link_target="../bin/tool"),
        ArchiveEntry("pkg/empty", "dir", 0o700),
        ArchiveEntry("pkg/lib/empty.txt", "file", 0o644, data=b""),
    ]


@pytest.mark.parametrize("fmt", FORMATS)
def test_same_bytes_twice(tmp_path: Path, fmt: str) -> None:
    first = tmp_path / "one" / f"out.{fmt}"
    second = tmp_path / "two" / f"out.{fmt}"
    write_archive(_sample_entries(), first, fmt, MTIME)
    write_archive(_sample_entries(), second, fmt, MTIME)
    assert first.read_bytes() == second.read_bytes()


def _make_tree(root: Path, *, umask: int, mtime: int, exec_mode: int, plain_mode: int) -> None:
    old = os.umask(umask)
    try:
        (root / "bin").mkdir(parents=True)
        (root / "lib" / "deep").mkdir(parents=True)
        (root / "bin" / "run").write_bytes(b"#!/bin/sh\nexit 0\n")
        (root / "lib" / "a.py").write_bytes(b"print('a')\n")
        (root / "lib" / "deep" / "big.bin").write_bytes(bytes(range(256)) * 5000)
    finally:
        os.umask(old)
    os.chmod(root / "bin" / "run", exec_mode)
    os.chmod(root / "lib" / "a.py", plain_mode)
    os.chmod(root / "lib" / "deep" / "big.bin", plain_mode)
    for path in root.rglob("*"):
        os.utime(path, (mtime, mtime))


def _tree_entries(root: Path, order_seed: int) -> list[ArchiveEntry]:
    entries = []
    for path in root.rglob("*"):
        name = "layer/" + path.relative_to(root).as_posix()
        if path.is_dir():
            entries.append(ArchiveEntry(name, "dir", path.stat().st_mode))
        else:
            entries.append(ArchiveEntry(name, "file", path.stat().st_mode, source_path=str(path)))
    random.Random(order_seed).shuffle(entries)
    return entries


@pytest.mark.parametrize("fmt", FORMATS)
def test_independent_of_source_metadata_and_input_order(tmp_path: Path, fmt: str) -> None:
    one, two = tmp_path / "src1", tmp_path / "src2"
    _make_tree(one, umask=0o022, mtime=1_000_000_000, exec_mode=0o755, plain_mode=0o644)
    _make_tree(two, umask=0o077, mtime=1_600_000_000, exec_mode=0o700, plain_mode=0o600)
    out1, out2 = tmp_path / "a" / f"x.{fmt}", tmp_path / "b" / f"x.{fmt}"
    write_archive(_tree_entries(one, 1), out1, fmt, MTIME)
    old = os.umask(0o077)
    try:
        write_archive(_tree_entries(two, 2), out2, fmt, MTIME)
    finally:
        os.umask(old)
    assert out1.read_bytes() == out2.read_bytes()
    # The output file's own mode does not depend on the umask either.
    assert stat.S_IMODE(out1.stat().st_mode) == stat.S_IMODE(out2.stat().st_mode) == 0o644


@pytest.mark.parametrize("fmt", FORMATS)
def test_independent_of_tmpdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str) -> None:
    outputs = []
    for name in ("t1", "t2"):
        tmpdir = tmp_path / name
        tmpdir.mkdir()
        monkeypatch.setenv("TMPDIR", str(tmpdir))
        monkeypatch.setattr(tempfile, "tempdir", None)
        out = tmp_path / f"out-{name}" / f"x.{fmt}"
        write_archive(_sample_entries(), out, fmt, MTIME)
        outputs.append(out.read_bytes())
        assert list(tmpdir.iterdir()) == []
    assert outputs[0] == outputs[1]


@pytest.mark.parametrize("fmt", FORMATS)
def test_sorted_order_and_synthesized_parents(tmp_path: Path, fmt: str) -> None:
    entries = [
        ArchiveEntry("a/z", "file", 0o644, data=b"z"),
        ArchiveEntry("a-b", "file", 0o644, data=b"ab"),
        ArchiveEntry("a/b/c", "file", 0o644, data=b"c"),
        ArchiveEntry("B", "file", 0o644, data=b"B"),
        ArchiveEntry("é/x", "file", 0o644, data=b"e"),
    ]
    out = tmp_path / f"x.{fmt}"
    write_archive(entries, out, fmt, MTIME)
    names = [row[0] for row in _listing(out)]
    assert names == ["B", "a", "a-b", "a/b", "a/b/c", "a/z", "é", "é/x"]
    assert names == sorted(names, key=lambda n: n.encode("utf-8"))
    kinds = {row[0]: row[1] for row in _listing(out)}
    assert kinds["a"] == kinds["a/b"] == kinds["é"] == "dir"


@pytest.mark.parametrize("fmt", ["tar.zst", "tar.xz"])
def test_tar_metadata_is_normalized(tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"x.{fmt}"
    write_archive(_sample_entries(), out, fmt, MTIME)
    members = _tar_members(out)
    modes = {m.name: m.mode for m in members}
    for m in members:
        assert (m.uid, m.gid, m.uname, m.gname) == (0, 0, "", "")
        assert m.mtime == MTIME
        assert m.pax_headers == {}  # short ASCII names: plain ustar headers only
    assert modes["pkg/bin/tool"] == 0o755
    assert modes["pkg/lib/mod.py"] == 0o644
    assert modes["pkg/empty"] == 0o755
    assert modes["pkg/lib/up"] == 0o777
    assert modes["pkg"] == 0o755  # synthesized
    # A whole number of 10240-byte records, like tarfile and GNU tar.
    assert len(_tar_bytes(out)) % tarfile.RECORDSIZE == 0


def test_tar_matches_tarfile_layout(tmp_path: Path) -> None:
    """Our hand-written tar stream is what tarfile itself writes for the same members."""
    out = tmp_path / "x.tar.xz"
    write_archive(_sample_entries(), out, "tar.xz", MTIME)
    ours = _tar_bytes(out)
    buf = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(ours)) as src,
        tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as dst,
    ):
        for m in src.getmembers():
            dst.addfile(m, src.extractfile(m) if m.isfile() else None)
    assert buf.getvalue() == ours


def test_zip_metadata_is_normalized(tmp_path: Path) -> None:
    out = tmp_path / "x.zip"
    write_archive(_sample_entries(), out, "zip", 0)  # 1970: clamped to 1980-01-01
    with zipfile.ZipFile(out) as zf:
        infos = {i.filename: i for i in zf.infolist()}
    for info in infos.values():
        assert info.date_time == (1980, 1, 1, 0, 0, 0)
        assert info.create_system == 3
        assert info.extra == b""
    assert infos["pkg/bin/tool"].external_attr >> 16 == stat.S_IFREG | 0o755
    assert infos["pkg/lib/mod.py"].external_attr >> 16 == stat.S_IFREG | 0o644
    assert infos["pkg/lib/mod.py"].compress_type == zipfile.ZIP_DEFLATED
    assert infos["pkg/empty/"].external_attr == (stat.S_IFDIR | 0o755) << 16 | 0x10
    assert infos["pkg/lib/up"].external_attr >> 16 == stat.S_IFLNK | 0o777
    assert infos["pkg/lib/up"].compress_type == zipfile.ZIP_STORED


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_with_symlinks(tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"x.{fmt}"
    write_archive(_sample_entries(), out, fmt, MTIME)
    rows = {row[0]: row for row in _listing(out)}
    assert rows["pkg/bin/tool-link"][1:4] == ("symlink", 0o777, "tool")
    assert rows["pkg/lib/up"][1:4] == ("symlink", 0o777, "../bin/tool")
    assert rows["pkg/bin/tool"][4] == b"#!/bin/sh\necho hi\n"
    assert rows["pkg/lib/mod.py"][4] == b"x = 1\n" * 100
    assert rows["pkg/lib/empty.txt"][4] == b""
    assert rows["pkg/empty"][1] == "dir"


@pytest.mark.parametrize("fmt", ["tar.zst", "tar.xz"])
def test_symlinks_extract_with_tarfile_data_filter(tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"x.{fmt}"
    write_archive(_sample_entries(), out, fmt, MTIME)
    dest = tmp_path / "dest"
    with tarfile.open(fileobj=io.BytesIO(_tar_bytes(out))) as tf:
        if hasattr(tarfile, "data_filter"):
            tf.extractall(dest, filter="data")
        else:  # pragma: no cover - Python without extraction filters
            tf.extractall(dest)
    assert os.readlink(dest / "pkg/lib/up") == "../bin/tool"
    assert (dest / "pkg/lib/up").read_bytes() == b"#!/bin/sh\necho hi\n"


@pytest.mark.parametrize("fmt", FORMATS)
def test_long_names_are_deterministic(tmp_path: Path, fmt: str) -> None:
    long_dir = "d" * 90 + "/" + "e" * 60
    entries = [
        ArchiveEntry(f"{long_dir}/file.txt", "file", 0o644, data=b"long"),
        ArchiveEntry("link", "symlink", 0o777, link_target=f"{long_dir}/file.txt"),
    ]
    first, second = tmp_path / f"1.{fmt}", tmp_path / f"2.{fmt}"
    write_archive(entries, first, fmt, MTIME)
    write_archive(list(reversed(entries)), second, fmt, MTIME)
    assert first.read_bytes() == second.read_bytes()
    rows = {row[0]: row for row in _listing(first)}
    assert rows[f"{long_dir}/file.txt"][4] == b"long"
    assert rows["link"][3] == f"{long_dir}/file.txt"
    if fmt != "zip":
        pax = {m.name: m.pax_headers for m in _tar_members(first)}
        assert "path" in pax[f"{long_dir}/file.txt"]
        assert "linkpath" in pax["link"]


def test_source_files_are_streamed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(3 * archive._CHUNK + 123))
    reads: list[int] = []
    real_open = open

    class Recorder(io.FileIO):
        def read(self, size: int = -1) -> bytes:  # type: ignore[override]
            reads.append(size)
            return super().read(size)

    def fake_open(path, mode="r", *args, **kwargs):  # type: ignore[no-untyped-def]
        if str(path) == str(src):
            return Recorder(str(path), "rb")
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", fake_open)
    out = tmp_path / "x.tar.zst"
    write_archive([ArchiveEntry("big.bin", "file", 0o644, source_path=str(src))], out, "tar.zst", 0)
    monkeypatch.undo()
    assert reads and all(0 < size <= archive._CHUNK for size in reads)
    assert _listing(out)[0][4] == src.read_bytes()


def test_zstd_frame_has_content_size_and_checksum(tmp_path: Path) -> None:
    out = tmp_path / "x.tar.zst"
    write_archive(_sample_entries(), out, "tar.zst", MTIME)
    data = out.read_bytes()
    params = zstandard.get_frame_parameters(data)
    assert params.has_checksum
    assert params.content_size == len(zstandard.ZstdDecompressor().decompress(data))


def _compressible(size: int) -> bytes:
    rng = random.Random(7)
    words = [bytes(rng.randrange(97, 123) for _ in range(rng.randrange(2, 9))) for _ in range(500)]
    out = bytearray()
    while len(out) < size:
        out += b" ".join(rng.choice(words) for _ in range(64)) + b"\n"
    return bytes(out[:size])


@pytest.mark.parametrize(
    ("level", "size"),
    [(1, 12 << 20), (None, 3 << 20), (None, 1000)],
    ids=["level1-multi-job", "default-level", "tiny"],
)
def test_zstd_bytes_do_not_depend_on_thread_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, level: int | None, size: int
) -> None:
    payload = _compressible(size)
    entries = [
        ArchiveEntry("data/a.txt", "file", 0o644, data=payload),
        ArchiveEntry("data/b.txt", "file", 0o644, data=payload[::-1]),
    ]
    digests = set()
    for threads in (1, 2, 3, 8):
        monkeypatch.setattr(archive, "_zstd_threads", lambda threads=threads: threads)
        out = tmp_path / f"t{threads}.tar.zst"
        write_archive(entries, out, "tar.zst", MTIME, compression_level=level)
        digests.add(sha256_file(out))
    assert len(digests) == 1


def test_compression_level_is_validated(tmp_path: Path) -> None:
    with pytest.raises(VenvstacksError, match=re.escape("out of range for tar.xz")):
        write_archive(_sample_entries(), tmp_path / "x.tar.xz", "tar.xz", MTIME, 12)
    with pytest.raises(VenvstacksError, match=re.escape("unknown archive format 'tar.gz'")):
        write_archive(_sample_entries(), tmp_path / "x.tar.gz", "tar.gz", MTIME)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", ["tar.zst", "tar.xz", "zip"])
def test_size_first_compression_is_smaller_and_deterministic(tmp_path: Path, fmt: str) -> None:
    # Varied text, so that the levels differ (a repeated string compresses alike at any level).
    payload = _compressible(1 << 20)
    entries = [ArchiveEntry("data/a.txt", "file", 0o644, data=payload)]
    sizes = {}
    for setting in ("default", "size"):
        first, second = tmp_path / f"{setting}-1.{fmt}", tmp_path / f"{setting}-2.{fmt}"
        write_archive(entries, first, fmt, MTIME, compression=setting)
        write_archive(entries, second, fmt, MTIME, compression=setting)
        assert first.read_bytes() == second.read_bytes()
        sizes[setting] = first.stat().st_size
    if fmt == "tar.zst":
        assert sizes["size"] < sizes["default"]
    else:  # xz 9 and deflate 9 gain only on inputs larger than this (xz: its dictionary, 8 MiB at 6)
        assert sizes["size"] <= sizes["default"] + 16
    # The setting names a level; an explicit level still wins.
    explicit = tmp_path / f"explicit.{fmt}"
    write_archive(entries, explicit, fmt, MTIME, compression_level=1, compression="size")
    assert explicit.stat().st_size > sizes["default"]


def test_compression_setting_is_validated(tmp_path: Path) -> None:
    with pytest.raises(
        VenvstacksError, match=re.escape("unknown compression setting 'smallest' (known: default, size)")
    ):
        write_archive(_sample_entries(), tmp_path / "x.tar.zst", "tar.zst", MTIME, compression="smallest")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("/etc/passwd", "'/etc/passwd': absolute"),
        ("a/../b", "'a/../b': '..' components"),
        ("..", "'..': '..' components"),
        ("a//b", "'a//b': empty or '.'"),
        ("./a", "'./a': empty or '.'"),
    ],
)
@pytest.mark.parametrize("fmt", FORMATS)
def test_rejects_bad_names(tmp_path: Path, fmt: str, name: str, message: str) -> None:
    entries = [*_sample_entries(), ArchiveEntry(name, "file", 0o644, data=b"")]
    with pytest.raises(VenvstacksError, match=message):
        write_archive(entries, tmp_path / f"x.{fmt}", fmt, MTIME)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("links", "culprit"),
    [
        ({"a/l": "../../x"}, "a/l"),
        ({"l": "/etc/passwd"}, "l"),
        ({"up": ".."}, "up"),
        # Lexically "d/up/.." is "d", but d/up is itself a link to "..": d/esc -> ../.. escapes.
        ({"d/up": "..", "d/esc": "up/../.."}, "d/esc"),
    ],
)
def test_rejects_escaping_symlinks(tmp_path: Path, links: dict[str, str], culprit: str) -> None:
    entries = [ArchiveEntry(n, "symlink", 0o777, link_target=t) for n, t in links.items()]
    with pytest.raises(VenvstacksError, match=f"'{culprit}': symlink target .* outside"):
        write_archive(entries, tmp_path / "x.tar.zst", "tar.zst", MTIME)
    assert list(tmp_path.iterdir()) == []


def test_accepts_symlinks_inside_root(tmp_path: Path) -> None:
    entries = [
        ArchiveEntry("d/up", "symlink", 0o777, link_target=".."),
        ArchiveEntry("d/self", "symlink", 0o777, link_target="up/d/./self-target"),
        ArchiveEntry("d/dangling", "symlink", 0o777, link_target="not/there/yet"),
    ]
    write_archive(entries, tmp_path / "x.tar.zst", "tar.zst", MTIME)


def test_rejects_duplicates_and_entries_below_files(tmp_path: Path) -> None:
    dup = [
        ArchiveEntry("a/b", "file", 0o644, data=b"1"),
        ArchiveEntry("a/b", "file", 0o644, data=b"2"),
    ]
    with pytest.raises(VenvstacksError, match="'a/b': duplicate name"):
        write_archive(dup, tmp_path / "x.zip", "zip", MTIME)
    below = [
        ArchiveEntry("a", "symlink", 0o777, link_target="b"),
        ArchiveEntry("a/c", "file", 0o644, data=b"1"),
    ]
    with pytest.raises(VenvstacksError, match="'a/c': its parent 'a' is a symlink"):
        write_archive(below, tmp_path / "x.zip", "zip", MTIME)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", FORMATS)
def test_failure_mid_write_leaves_no_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str) -> None:
    real_iter_content = archive._iter_content
    calls = 0

    def failing(member: archive._Member, consumed: archive.Consumed) -> Iterator[bytes]:
        nonlocal calls
        calls += 1
        if calls == 2:
            yield b"partial data"
            raise RuntimeError("disk on fire")
        yield from real_iter_content(member, consumed)

    monkeypatch.setattr(archive, "_iter_content", failing)
    out_dir = tmp_path / "out"
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_archive(_sample_entries(), out_dir / f"x.{fmt}", fmt, MTIME)
    assert calls == 2
    assert list(out_dir.iterdir()) == []

    # An earlier output is left as it was.
    previous = out_dir / f"x.{fmt}"
    previous.write_bytes(b"previous")
    calls = 0
    with pytest.raises(RuntimeError):
        write_archive(_sample_entries(), previous, fmt, MTIME)
    assert list(out_dir.iterdir()) == [previous]
    assert previous.read_bytes() == b"previous"


def test_source_file_changing_size_is_an_error(tmp_path: Path) -> None:
    src = tmp_path / "grows.txt"
    src.write_bytes(b"12345")
    entries = [ArchiveEntry("grows.txt", "file", 0o644, source_path=str(src))]
    real_plan = archive._plan

    def plan_then_grow(items):  # type: ignore[no-untyped-def]
        members = real_plan(items)
        src.write_bytes(b"1234567890")
        return members

    out_dir = tmp_path / "out"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(archive, "_plan", plan_then_grow)
        with pytest.raises(VenvstacksError, match=r"'grows\.txt': .* changed size"):
            write_archive(entries, out_dir / "x.tar.xz", "tar.xz", MTIME)
    assert list(out_dir.iterdir()) == []


def test_missing_source_file_is_an_error(tmp_path: Path) -> None:
    entries = [ArchiveEntry("gone", "file", 0o644, source_path=str(tmp_path / "nope"))]
    with pytest.raises(VenvstacksError, match="'gone': cannot read"):
        write_archive(entries, tmp_path / "x.zip", "zip", MTIME)
    assert [p.name for p in tmp_path.iterdir()] == []


def test_sha256_file(tmp_path: Path) -> None:
    path = tmp_path / "f"
    data = os.urandom(archive._CHUNK * 2 + 5)
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()


# --- read_tar_entries --------------------------------------------------------------------------


def _source_tar(members: list[tuple[str, str, bytes | str | None]], mode: int = 0o644) -> bytes:
    """A tar with (name, type, content-or-link-target) members: type file/dir/sym/hard/fifo."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for name, kind, payload in members:
            info = tarfile.TarInfo(name)
            info.mtime = 1234
            info.mode = mode
            if kind == "file":
                assert isinstance(payload, bytes)
                info.size = len(payload)
                tf.addfile(info, io.BytesIO(payload))
                continue
            info.type = {
                "dir": tarfile.DIRTYPE,
                "sym": tarfile.SYMTYPE,
                "hard": tarfile.LNKTYPE,
                "fifo": tarfile.FIFOTYPE,
                "chr": tarfile.CHRTYPE,
            }[kind]
            if kind in ("sym", "hard"):
                assert isinstance(payload, str)
                info.linkname = payload
            tf.addfile(info)
    return buf.getvalue()


_SOURCE = [
    ("python/", "dir", None),
    ("python/bin/", "dir", None),
    ("python/bin/python3.12", "file", b"ELF..."),
    ("python/bin/python3", "sym", "python3.12"),
    ("python/bin/python-hard", "hard", "python/bin/python3.12"),
]


def _compress(data: bytes, kind: str) -> bytes:
    if kind == "gz":
        import gzip

        return gzip.compress(data, mtime=0)
    if kind == "xz":
        return lzma.compress(data)
    if kind == "zst":
        return zstandard.ZstdCompressor().compress(data)
    return data


@pytest.mark.parametrize(
    ("kind", "filename"),
    [
        ("gz", "src.tar.gz"),
        ("gz", "src.tgz"),
        ("xz", "src.tar.xz"),
        ("zst", "src.tar.zst"),
        ("zst", "download"),  # no suffix: detected by magic bytes
        ("tar", "plain.tar"),
    ],
)
def test_read_tar_entries(tmp_path: Path, kind: str, filename: str) -> None:
    path = tmp_path / filename
    path.write_bytes(_compress(_source_tar(_SOURCE), kind))
    entries = read_tar_entries(path, "python", "cpython3_12")
    by_name = {e.name: e for e in entries}
    assert sorted(by_name) == [
        "cpython3_12",
        "cpython3_12/bin",
        "cpython3_12/bin/python-hard",
        "cpython3_12/bin/python3",
        "cpython3_12/bin/python3.12",
    ]
    assert by_name["cpython3_12/bin/python3"].kind == "symlink"
    assert by_name["cpython3_12/bin/python3"].link_target == "python3.12"
    hard = by_name["cpython3_12/bin/python-hard"]
    assert (hard.kind, hard.data) == ("file", b"ELF...")
    assert by_name["cpython3_12/bin/python3.12"].data == b"ELF..."


def test_read_tar_entries_without_prefixes(tmp_path: Path) -> None:
    path = tmp_path / "src.tar.gz"
    path.write_bytes(_compress(_source_tar([("./python/x", "file", b"x")]), "gz"))
    assert [e.name for e in read_tar_entries(path, "", "")] == ["python/x"]
    assert [e.name for e in read_tar_entries(path, "python", "")] == ["x"]


def test_read_tar_entries_rejects_member_outside_prefix(tmp_path: Path) -> None:
    path = tmp_path / "src.tar.gz"
    path.write_bytes(_compress(_source_tar([*_SOURCE, ("README", "file", b"hi")]), "gz"))
    with pytest.raises(VenvstacksError, match=re.escape("'src.tar.gz': member 'README' is not under")):
        read_tar_entries(path, "python", "cpython3_12")


@pytest.mark.parametrize("kind", ["fifo", "chr"])
def test_read_tar_entries_rejects_special_files(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "src.tar.xz"
    path.write_bytes(_compress(_source_tar([*_SOURCE, ("python/dev", kind, None)]), "xz"))
    with pytest.raises(VenvstacksError, match=re.escape("'src.tar.xz': member 'python/dev' is a device")):
        read_tar_entries(path, "python", "x")


def test_read_tar_entries_rejects_bad_hard_link_and_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "src.tar.gz"
    path.write_bytes(_compress(_source_tar([("python/h", "hard", "python/missing")]), "gz"))
    with pytest.raises(VenvstacksError, match=re.escape("'src.tar.gz': hard link 'python/h'")):
        read_tar_entries(path, "python", "x")
    path.write_bytes(_compress(_source_tar([("python/a", "file", b"1"), ("python/a", "file", b"2")]), "gz"))
    with pytest.raises(VenvstacksError, match="member 'python/a' appears twice"):
        read_tar_entries(path, "python", "x")


def test_read_tar_entries_reports_corrupt_archives(tmp_path: Path) -> None:
    for kind in ("gz", "xz", "zst"):
        path = tmp_path / f"bad.tar.{kind}"
        path.write_bytes(_compress(_source_tar(_SOURCE), kind)[:40])
        with pytest.raises(VenvstacksError, match=f"'bad.tar.{kind}'"):
            read_tar_entries(path, "python", "x")
    unknown = tmp_path / "notes.txt"
    unknown.write_bytes(b"hello")
    with pytest.raises(VenvstacksError, match=re.escape("'notes.txt': not a tar archive")):
        read_tar_entries(unknown, "", "")


def test_read_then_write_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "src.tar.gz"
    path.write_bytes(_compress(_source_tar(_SOURCE, mode=0o775), "gz"))
    out = tmp_path / "x.tar.zst"
    write_archive(read_tar_entries(path, "python", "rt"), out, "tar.zst", MTIME)
    rows = {row[0]: row for row in _listing(out)}
    assert rows["rt/bin/python3"][1:4] == ("symlink", 0o777, "python3.12")
    assert rows["rt/bin/python-hard"][1:5] == ("file", 0o755, None, b"ELF...")
