"""Deterministic archive writing, and archive reading.

`write_archive` turns a list of `ArchiveEntry` into a `.tar.zst`, `.tar.xz` or `.zip` whose bytes
depend only on the entries' names, kinds, executable bits, contents and link targets, and on the
`mtime` the caller passes in. It does not depend on the order of the input, the source files' own
timestamps, owners or permission bits beyond the x bit, the umask, TMPDIR, the thread count, or
the host. Members are sorted by the bytes of their UTF-8 name, missing parent directories are
synthesized, and every owner is 0 with empty user and group names.

`read_tar_entries` reads a downloaded tar (gzip, zstd, xz or plain) into entries, so a fetched
python-build-standalone runtime can be re-packed under a new top-level name. `iter_archive_members`
streams the members of any archive the tool reads or writes (tar of every compression, or zip),
with their metadata, for `deploy` and `diff-archives`.

Compression modules (`zstandard`, `lzma`, `gzip`, `zipfile`) are imported inside the functions
that use them: every action imports this module, and most need one format only.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import posixpath
import stat
import tarfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, BinaryIO, Literal, cast

from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.core.fsutil import CHUNK_SIZE, atomic_output
from venvstacks_tool.core.zstd_frames import open_zstd

if TYPE_CHECKING:
    import zipfile

EntryKind = Literal["file", "dir", "symlink"]

ARCHIVE_FORMATS: tuple[str, ...] = ("tar.zst", "tar.xz", "zip")

# zstd level 9: measured on a PAX tar of /usr/lib/python3.11 (54.8 MB, mostly .py/.pyc) and of
# 231.6 MB of /usr/lib/x86_64-linux-gnu (shared libraries), zstandard 0.25, 2 threads:
#   level  3: 3.76x  414 MB/s  |  3.54x  523 MB/s
#   level  6: 4.13x  174 MB/s  |  3.85x  197 MB/s
#   level  9: 4.30x   96 MB/s  |  4.01x  109 MB/s
#   level 12: 4.35x   46 MB/s  |  4.07x   57 MB/s
#   level 15: 4.39x   12 MB/s  |  4.10x   11 MB/s
#   level 19: 4.92x    4 MB/s  (python only; 19 s for 55 MB)
# Level 9 is the knee: past it each step buys under 1% of size for 25-100% more time, and a
# multi-GB framework layer (torch) still packs in well under a minute. Decompression speed is the
# same at every level. Layers are built once and then served from the remote cache, so a little
# more time than zstd's default (3) for ~13% smaller downloads is worth it.
ZSTD_DEFAULT_LEVEL = 9
# xz preset 6 is xz's own default: an 8 MiB dictionary, so unpacking needs ~9 MiB of memory.
XZ_DEFAULT_PRESET = 6
# zip: deflate level 6 (zlib's default).
ZIP_DEFAULT_LEVEL = 6

# The `compression` setting (`--@rules_venvstacks//settings:compression`): "default" is the
# levels above, chosen for build time; "size" is for archives downloaded far more often than
# built (releases), chosen by measurement (docs/performance.md, "Size"): per format, the level
# past which the archive stops shrinking by more than 1% per step.
COMPRESSION_SETTINGS: tuple[str, ...] = ("default", "size")
_SIZE_FIRST_LEVELS = {"tar.zst": 19, "tar.xz": 9, "zip": 9}

# At most this many zstd worker threads. zstd's multi-threaded mode (workers >= 1) cuts the input
# into jobs whose size depends only on the compression parameters, so the bytes are the same for
# any worker count >= 1 (tests/unit/test_archive.py checks 1, 2, 3 and 8); they differ from the
# single-threaded mode (workers = 0), which is therefore never used. Capped because Bazel runs
# many actions side by side.
_ZSTD_MAX_THREADS = 4

_CHUNK = CHUNK_SIZE
# 1980-01-01T00:00:00Z and 2107-12-31T23:59:58Z: the range a zip (MS-DOS) timestamp can hold.
_ZIP_MIN_MTIME = 315532800
_ZIP_MAX_MTIME = 4354819198
_TAR_BLOCK = tarfile.BLOCKSIZE
_TAR_RECORD = tarfile.RECORDSIZE


@dataclass(frozen=True)
class ArchiveEntry:
    """One member of an archive.

    `name` is a relative POSIX path without a trailing slash. A "file" has its content in `data`
    or in the file at `source_path` (read while the archive is written); a "symlink" has
    `link_target`. Only the executable bits of `mode` matter: `write_archive` normalizes the rest.
    """

    name: str
    kind: EntryKind
    mode: int
    data: bytes | None = None
    source_path: str | None = None
    link_target: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("file", "dir", "symlink"):
            raise ValueError(f"archive entry {self.name!r}: unknown kind {self.kind!r}")
        if self.kind == "file" and (self.data is None) == (self.source_path is None):
            raise ValueError(f"archive entry {self.name!r}: a file needs exactly one of data and source_path")
        if self.kind == "symlink" and self.link_target is None:
            raise ValueError(f"archive entry {self.name!r}: a symlink needs link_target")


@dataclass(frozen=True)
class _Member:
    """An entry after validation: normalized mode and, for files, the size to be written."""

    name: str
    kind: EntryKind
    mode: int
    size: int
    entry: ArchiveEntry | None  # None for a synthesized parent directory


def _sort_key(name: str) -> bytes:
    return name.encode("utf-8", "surrogateescape")


def _check_name(name: str) -> None:
    if not name:
        raise VenvstacksError("archive entry with an empty name")
    if name.startswith("/"):
        raise VenvstacksError(f"archive entry {name!r}: absolute names are not allowed")
    if "\x00" in name:
        raise VenvstacksError(f"archive entry {name!r}: the name contains a NUL character")
    for part in name.split("/"):
        if part == "..":
            raise VenvstacksError(f"archive entry {name!r}: '..' components are not allowed")
        if part in ("", "."):
            raise VenvstacksError(f"archive entry {name!r}: empty or '.' components are not allowed")


# How many symlinks of the tree one resolution may follow before it counts as a loop.
MAX_SYMLINK_HOPS = 64
SymlinkResolution = Literal["inside", "outside", "loop"]


def is_absolute_target(target: str) -> bool:
    """Whether a symlink target is absolute on any system (`/x`, `\\x` or a drive letter `C:`)."""
    return target.startswith(("/", "\\")) or (len(target) > 1 and target[1] == ":")


def target_parts(target: str) -> list[str]:
    """A symlink target's components; `\\` counts as a separator, as on Windows."""
    return target.replace("\\", "/").split("/")


def follow_symlinks(
    parent: Sequence[str], target: str, lookup: Callable[[tuple[str, ...]], str | None]
) -> SymlinkResolution:
    """Whether a symlink in directory `parent` pointing to `target` stays inside the tree's root.

    `parent` holds the path components of the link's directory below the root (empty for a link
    at the top); `lookup(components)` gives the target of the symlink at those components, or
    None where there is none. Symlinks met on the way are followed, so `a -> up/..` with
    `up -> ..` is caught; a target that does not exist is judged by its path alone. `\\` counts as
    a separator and a drive letter as absolute, as on Windows, so the writer and `deploy` accept
    the same links on every system. Returns "inside", "outside", or "loop" after following too
    many links.
    """
    if is_absolute_target(target) or "\x00" in target:
        return "outside"
    resolved = list(parent)
    pending = list(reversed(target_parts(target)))
    hops = 0
    while pending:
        part = pending.pop()
        if part in ("", "."):
            continue
        if part == "..":
            if not resolved:
                return "outside"
            resolved.pop()
            continue
        resolved.append(part)
        link = lookup(tuple(resolved))
        if link is not None:
            hops += 1
            if hops > MAX_SYMLINK_HOPS:
                return "loop"
            if is_absolute_target(link) or "\x00" in link:
                return "outside"
            resolved.pop()
            pending.extend(reversed(target_parts(link)))
    return "inside"


def resolve_symlink(parent: Sequence[str], target: str, links: Mapping[tuple[str, ...], str]) -> SymlinkResolution:
    """`follow_symlinks` within one tree whose symlinks are `links` (components -> target)."""
    return follow_symlinks(parent, target, links.get)


def _normalized_mode(kind: EntryKind, mode: int) -> int:
    if kind == "dir":
        return 0o755
    if kind == "symlink":
        return 0o777
    return 0o755 if mode & 0o111 else 0o644


def _file_size(entry: ArchiveEntry) -> int:
    if entry.data is not None:
        return len(entry.data)
    assert entry.source_path is not None
    try:
        st = os.stat(entry.source_path)
    except OSError as error:
        raise VenvstacksError(
            f"archive entry {entry.name!r}: cannot read {entry.source_path!r}: {error.strerror}"
        ) from error
    if not stat.S_ISREG(st.st_mode):
        raise VenvstacksError(f"archive entry {entry.name!r}: {entry.source_path!r} is not a regular file")
    return st.st_size


def _plan(entries: Iterable[ArchiveEntry]) -> list[_Member]:
    """Validate `entries` and return them sorted, with every missing parent directory added."""
    by_name: dict[str, ArchiveEntry] = {}
    for entry in entries:
        name = entry.name
        if entry.kind == "dir" and name.endswith("/") and name != "/":
            name = name.rstrip("/")
        _check_name(name)
        if name in by_name:
            raise VenvstacksError(f"archive entry {name!r}: duplicate name")
        by_name[name] = entry

    links = {tuple(n.split("/")): e.link_target for n, e in by_name.items() if e.link_target is not None}
    members: dict[str, _Member] = {}
    for name, entry in by_name.items():
        parts = name.split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            parent_entry = by_name.get(parent)
            if parent_entry is not None and parent_entry.kind != "dir":
                raise VenvstacksError(
                    f"archive entry {name!r}: its parent {parent!r} is a {parent_entry.kind}, not a directory"
                )
            if parent_entry is None and parent not in members:
                members[parent] = _Member(parent, "dir", 0o755, 0, None)
        if entry.kind == "symlink":
            target = entry.link_target
            assert target is not None
            if not target or "\x00" in target:
                raise VenvstacksError(f"archive entry {name!r}: invalid symlink target {target!r}")
            resolution = resolve_symlink(parts[:-1], target, links)
            if resolution == "loop":
                raise VenvstacksError(f"archive entry {name!r}: symlink loop through {target!r}")
            if resolution == "outside":
                raise VenvstacksError(f"archive entry {name!r}: symlink target {target!r} points outside the archive")
        size = _file_size(entry) if entry.kind == "file" else 0
        members[name] = _Member(name, entry.kind, _normalized_mode(entry.kind, entry.mode), size, entry)
    return [members[name] for name in sorted(members, key=_sort_key)]


# Called with each source file's path once the archive has all of its content (see write_archive).
Consumed = Callable[[str], None] | None


def _iter_content(member: _Member, consumed: Consumed) -> Iterator[bytes]:
    """Yield a file member's content; checks that a source file still has the planned size."""
    entry = member.entry
    assert entry is not None
    if entry.data is not None:
        yield entry.data
        return
    assert entry.source_path is not None
    remaining = member.size
    try:
        with open(entry.source_path, "rb") as f:
            while remaining > 0:
                chunk = f.read(min(_CHUNK, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                yield chunk
            grew = bool(f.read(1))
    except OSError as error:
        raise VenvstacksError(
            f"archive entry {member.name!r}: cannot read {entry.source_path!r}: {error.strerror}"
        ) from error
    if remaining or grew:
        raise VenvstacksError(
            f"archive entry {member.name!r}: {entry.source_path!r} changed size while it was being archived"
        )
    if consumed is not None:
        consumed(str(entry.source_path))


def _tar_header(member: _Member, mtime: int) -> bytes:
    info = tarfile.TarInfo(member.name)
    info.mode = member.mode
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if member.kind == "dir":
        info.type = tarfile.DIRTYPE
    elif member.kind == "symlink":
        assert member.entry is not None and member.entry.link_target is not None
        info.type = tarfile.SYMTYPE
        info.linkname = member.entry.link_target
    else:
        info.type = tarfile.REGTYPE
        info.size = member.size
    # PAX format: plain ustar headers, plus a pax header (with fixed fields) only for a name or
    # link target that ustar cannot hold (over 100 bytes, or not ASCII).
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _write_tar(members: list[_Member], headers: list[bytes], out: IO[bytes], consumed: Consumed) -> None:
    for member, header in zip(members, headers, strict=True):
        out.write(header)
        if member.kind == "file":
            for chunk in _iter_content(member, consumed):
                out.write(chunk)
            if member.size % _TAR_BLOCK:
                out.write(b"\0" * (_TAR_BLOCK - member.size % _TAR_BLOCK))
    # The end-of-archive marker (two zero blocks), then zeros up to a whole record, as tarfile
    # and GNU tar write.
    out.write(b"\0" * (_tar_size(members, headers) - _tar_size(members, headers, padded=False)))


def _tar_size(members: list[_Member], headers: list[bytes], *, padded: bool = True) -> int:
    """The byte size `_write_tar` produces; without `padded`, up to the last member's data."""
    size = 0
    for member, header in zip(members, headers, strict=True):
        size += len(header) + -(-member.size // _TAR_BLOCK) * _TAR_BLOCK
    if padded:
        size += 2 * _TAR_BLOCK
        size += -size % _TAR_RECORD
    return size


def _zstd_threads() -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, _ZSTD_MAX_THREADS))


def _write_tar_zst(members: list[_Member], mtime: int, out: BinaryIO, level: int, consumed: Consumed) -> None:
    import zstandard

    headers = [_tar_header(m, mtime) for m in members]
    compressor = zstandard.ZstdCompressor(
        level=level,
        threads=_zstd_threads(),
        write_checksum=True,
        write_content_size=True,
    )
    # The uncompressed size is known in advance, so it goes in the frame header (and zstd checks
    # that exactly that many bytes were written). Not a `with` block: on an error, its exit would
    # end the frame and replace the error with zstd's "Src size is incorrect".
    writer = compressor.stream_writer(out, size=_tar_size(members, headers), closefd=False)
    _write_tar(members, headers, writer, consumed)
    # zstandard's type stubs leave close() untyped.
    writer.close()  # type: ignore[no-untyped-call]


def _write_tar_xz(members: list[_Member], mtime: int, out: BinaryIO, preset: int, consumed: Consumed) -> None:
    import lzma

    with lzma.LZMAFile(out, "wb", format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64, preset=preset) as writer:
        _write_tar(members, [_tar_header(m, mtime) for m in members], writer, consumed)


def _set_zip_level(info: zipfile.ZipInfo, level: int) -> None:
    # Python 3.13 renamed ZipInfo._compresslevel to compress_level (keeping an alias).
    if hasattr(info, "compress_level"):
        info.compress_level = level
    else:
        info._compresslevel = level  # type: ignore[attr-defined]


def _write_zip(members: list[_Member], mtime: int, out: BinaryIO, level: int, consumed: Consumed) -> None:
    import time
    import zipfile

    # Zip timestamps are MS-DOS local times without a zone: store the UTC fields of the clamped
    # mtime, so the bytes do not depend on the machine's time zone.
    date_time = time.gmtime(min(max(mtime, _ZIP_MIN_MTIME), _ZIP_MAX_MTIME))[:6]
    with zipfile.ZipFile(out, "w", allowZip64=True) as zf:
        for member in members:
            is_dir = member.kind == "dir"
            info = zipfile.ZipInfo(member.name + "/" if is_dir else member.name, date_time)
            info.create_system = 3  # Unix, so that external_attr holds st_mode
            if is_dir:
                info.external_attr = (stat.S_IFDIR | member.mode) << 16 | 0x10  # MS-DOS dir bit
                info.compress_type = zipfile.ZIP_STORED
                zf.writestr(info, b"")
            elif member.kind == "symlink":
                # A unix symlink entry: S_IFLNK mode, the target as stored content.
                assert member.entry is not None and member.entry.link_target is not None
                info.external_attr = (stat.S_IFLNK | member.mode) << 16
                info.compress_type = zipfile.ZIP_STORED
                zf.writestr(info, member.entry.link_target.encode("utf-8", "surrogateescape"))
            else:
                info.external_attr = (stat.S_IFREG | member.mode) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                _set_zip_level(info, level)
                # Known in advance, so zipfile's zip64 choice depends only on the size.
                info.file_size = member.size
                with zf.open(info, "w") as dest:
                    for chunk in _iter_content(member, consumed):
                        dest.write(chunk)


def _check_level(archive_format: str, level: int | None, compression: str = "default") -> int:
    defaults = {
        "tar.zst": ZSTD_DEFAULT_LEVEL,
        "tar.xz": XZ_DEFAULT_PRESET,
        "zip": ZIP_DEFAULT_LEVEL,
    }
    limits = {"tar.zst": (1, 22), "tar.xz": (0, 9), "zip": (0, 9)}
    if archive_format not in defaults:
        known = ", ".join(ARCHIVE_FORMATS)
        raise VenvstacksError(f"unknown archive format {archive_format!r} (known: {known})")
    if compression not in COMPRESSION_SETTINGS:
        known = ", ".join(COMPRESSION_SETTINGS)
        raise VenvstacksError(f"unknown compression setting {compression!r} (known: {known})")
    if level is None:
        return _SIZE_FIRST_LEVELS[archive_format] if compression == "size" else defaults[archive_format]
    low, high = limits[archive_format]
    if isinstance(level, bool) or not isinstance(level, int) or not low <= level <= high:
        raise VenvstacksError(f"compression level {level!r} is out of range for {archive_format} ({low}..{high})")
    return level


def _check_mtime(mtime: int) -> None:
    if isinstance(mtime, bool) or not isinstance(mtime, int) or mtime < 0:
        raise VenvstacksError(f"archive mtime must be a non-negative integer, not {mtime!r}")


def add_compression_argument(parser: argparse.ArgumentParser) -> None:
    """Add `--compression SETTING`: the archive's compression, by name (core.archive.COMPRESSION_SETTINGS)."""
    parser.add_argument(
        "--compression",
        default="default",
        choices=COMPRESSION_SETTINGS,
        help="default: levels chosen for build time; size: smaller archives, slower to build",
    )


def write_archive(
    entries: Iterable[ArchiveEntry],
    output: Path,
    archive_format: str,
    mtime: int,
    compression_level: int | None = None,
    compression: str = "default",
    consumed: Consumed = None,
) -> None:
    """Write `entries` to `output` as a deterministic `archive_format` archive.

    `archive_format` is "tar.zst", "tar.xz" or "zip"; `mtime` (seconds since the epoch) is every
    member's timestamp; `compression` picks the format's level from a named setting (one of
    `COMPRESSION_SETTINGS`), and `compression_level`, if given, overrides it. `consumed`, if
    given, is called with each source file's path as soon as the archive holds all of its bytes
    (a builder removes its scratch tree that way while the rest is still compressing). Everything is
    validated before anything is written; the archive is written to a temp file next to `output`
    and moved into place only when complete, so on error nothing appears at `output`.

    Raises VenvstacksError, naming the entry, for an absolute name, a `..` component, a duplicate
    name, an entry below a file or symlink, or a symlink that resolves outside the archive root.
    """
    level = _check_level(archive_format, compression_level, compression)
    _check_mtime(mtime)
    members = _plan(entries)
    with atomic_output(output) as out:
        if archive_format == "tar.zst":
            _write_tar_zst(members, mtime, out, level, consumed)
        elif archive_format == "tar.xz":
            _write_tar_xz(members, mtime, out, level, consumed)
        else:
            _write_zip(members, mtime, out, level, consumed)


def write_tar_stream(entries: Iterable[ArchiveEntry], out: IO[bytes], mtime: int, consumed: Consumed = None) -> None:
    """Write `entries` to the stream `out` as the same deterministic plain tar that `write_archive` compresses.

    For a caller that compresses or hashes the tar itself (an OCI image layer: its diff_id is the
    sha256 of the plain tar). Everything is validated before the first byte is written.
    """
    _check_mtime(mtime)
    members = _plan(entries)
    _write_tar(members, [_tar_header(m, mtime) for m in members], out, consumed)


def write_tree(entries: Iterable[ArchiveEntry], root: Path) -> None:
    """Create `entries` below the existing directory `root`: the inverse of `tree_entries`.

    The entries are validated first, as `write_archive` validates them (no absolute name, no `..`,
    no duplicate, nothing below a file, no symlink leaving `root`), so an untrusted archive read
    into entries (`read_tar_entries`) cannot write outside `root`. Files get mode 0o755 or 0o644
    by their x bit; parent directories are created.
    """
    for member in _plan(entries):
        path = root.joinpath(*member.name.split("/"))
        if member.kind == "dir":
            path.mkdir(exist_ok=True)
        elif member.kind == "symlink":
            assert member.entry is not None and member.entry.link_target is not None
            path.symlink_to(member.entry.link_target)
        else:
            assert member.entry is not None
            with open(path, "wb") as out:
                for chunk in _iter_content(member, None):
                    out.write(chunk)
            path.chmod(member.mode)


def tree_entries(root: Path, top: str) -> Iterator[ArchiveEntry]:
    """Archive entries for the directory tree at `root`, named under the top directory `top`.

    Symlinks are kept as symlinks (never followed); files are read when the archive is written.
    The walk is sorted, so entries come in a fixed order. A device, FIFO or socket is a
    VenvstacksError naming it.
    """
    yield ArchiveEntry(top, "dir", 0o755)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        relative_dir = Path(dirpath).relative_to(root)
        for name in sorted(dirnames + filenames):
            path = Path(dirpath, name)
            member = posixpath.join(top, *relative_dir.parts, name)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                yield ArchiveEntry(member, "symlink", 0o777, link_target=os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                yield ArchiveEntry(member, "dir", 0o755)
            elif stat.S_ISREG(st.st_mode):
                yield ArchiveEntry(member, "file", st.st_mode, source_path=str(path))
            else:
                raise VenvstacksError(f"layer {top!r}: {member!r} is not a file, directory or symlink")


# --- reading archives --------------------------------------------------------------------------

MemberKind = Literal["file", "dir", "symlink", "hardlink", "special"]


@dataclass(frozen=True)
class ArchiveMember:
    """One member of an archive being read, in the same terms for tar and zip.

    `name` is as stored (a zip directory keeps its trailing `/`; see `normalized_member_name`).
    `mode` holds the permission bits, or None for a zip member without Unix attributes. `mtime`
    is in seconds since the epoch; a zip's MS-DOS fields are read as UTC (as `write_archive`
    stores them), at two-second resolution. A zip has no owners: `uid`, `gid`, `uname` and
    `gname` are None there. `link_target` is a symlink's target or the member a hard link names.
    `open_content` returns a "file" member's content as a binary stream; tar archives are
    streamed, so it is only valid until the next member is read.
    """

    name: str
    kind: MemberKind
    mode: int | None
    mtime: float
    size: int
    link_target: str = ""
    uid: int | None = None
    gid: int | None = None
    uname: str | None = None
    gname: str | None = None
    open_content: Callable[[], IO[bytes]] | None = None


_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x1f\x8b", "tar.gz"),
    (b"\x28\xb5\x2f\xfd", "tar.zst"),
    (b"\xfd7zXZ\x00", "tar.xz"),
    (b"PK\x03\x04", "zip"),
    (b"PK\x05\x06", "zip"),  # an empty zip: only the end of the central directory
)
_SUFFIXES: tuple[tuple[str, str], ...] = (
    (".tar.gz", "tar.gz"),
    (".tgz", "tar.gz"),
    (".tar.zst", "tar.zst"),
    (".tar.zstd", "tar.zst"),
    (".tar.xz", "tar.xz"),
    (".txz", "tar.xz"),
    (".tar", "tar"),
    (".zip", "zip"),
)
# Enough of the start of a file for every magic number above and the ustar one.
ARCHIVE_HEAD_SIZE = 512


def detect_archive_format(path: Path, head: bytes) -> str | None:
    """ "tar.gz", "tar.zst", "tar.xz", "tar" or "zip" for the file at `path` starting with `head`.

    Decided by the magic bytes (`ARCHIVE_HEAD_SIZE` bytes of `head` are enough), else by the
    file name's suffix; None when neither tells.
    """
    for magic, archive_format in _MAGIC:
        if head.startswith(magic):
            return archive_format
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    name = path.name.lower()
    for suffix, archive_format in _SUFFIXES:
        if name.endswith(suffix):
            return archive_format
    return None


def read_archive_format(path: Path) -> str | None:
    """`detect_archive_format` of the file at `path` (OSError if it cannot be read)."""
    with open(path, "rb") as f:
        return detect_archive_format(path, f.read(ARCHIVE_HEAD_SIZE))


@contextlib.contextmanager
def _open_tar_stream(path: Path, archive_format: str) -> Iterator[IO[bytes]]:
    """The decompressed byte stream of the tar archive at `path`.

    What the reader leaves after the tar's end marker is read when it is done, so that the
    decompressor checks the end of the file (gzip's CRC, xz's index, a zstd stream cut inside a frame).
    """
    with _decompressed(path, archive_format) as stream:
        yield stream
        while stream.read(CHUNK_SIZE):
            pass


def decompressing_stream(fileobj: BinaryIO, archive_format: str | None) -> IO[bytes]:
    """The decompressed bytes of the tar read from `fileobj`, as `detect_archive_format` names its format.

    "tar.gz", "tar.xz" and "tar.zst" are decompressed (a zstd stream cut inside a frame is an
    error, as a gzip or xz stream that ends early is); anything else is read as it is.
    """
    if archive_format == "tar.gz":
        import gzip

        return cast("IO[bytes]", gzip.GzipFile(fileobj=fileobj, mode="rb"))
    if archive_format == "tar.xz":
        import lzma

        return lzma.LZMAFile(fileobj, "rb")
    if archive_format == "tar.zst":
        return open_zstd(fileobj)
    return fileobj


@contextlib.contextmanager
def _decompressed(path: Path, archive_format: str) -> Iterator[IO[bytes]]:
    with open(path, "rb") as raw, decompressing_stream(raw, archive_format) as stream:
        yield stream


def _tar_content_opener(tf: tarfile.TarFile, info: tarfile.TarInfo) -> Callable[[], IO[bytes]]:
    def open_content() -> IO[bytes]:
        stream = tf.extractfile(info)
        assert stream is not None  # a regular file always has content
        return stream

    return open_content


def _tar_members(path: Path, archive_format: str) -> Iterator[ArchiveMember]:
    with _open_tar_stream(path, archive_format) as stream, tarfile.open(fileobj=stream, mode="r|") as tf:
        for info in tf:
            if info.isreg():
                kind: MemberKind = "file"
            elif info.isdir():
                kind = "dir"
            elif info.issym():
                kind = "symlink"
            elif info.islnk():
                kind = "hardlink"
            else:
                kind = "special"
            yield ArchiveMember(
                name=info.name,
                kind=kind,
                mode=info.mode & 0o7777,
                mtime=info.mtime,
                size=info.size if kind == "file" else 0,
                link_target=info.linkname,
                uid=info.uid,
                gid=info.gid,
                uname=info.uname,
                gname=info.gname,
                open_content=_tar_content_opener(tf, info) if kind == "file" else None,
            )


def _zip_members(path: Path) -> Iterator[ArchiveMember]:
    import calendar
    import zipfile

    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            st_mode = info.external_attr >> 16 if info.create_system == 3 else 0
            link_target = ""
            if info.is_dir() or stat.S_ISDIR(st_mode):
                kind: MemberKind = "dir"
            elif stat.S_ISLNK(st_mode):
                kind = "symlink"
                link_target = zf.read(info).decode("utf-8", "surrogateescape")
            elif st_mode and not stat.S_ISREG(st_mode):
                kind = "special"
            else:
                kind = "file"
            yield ArchiveMember(
                name=info.filename,
                kind=kind,
                mode=stat.S_IMODE(st_mode) if st_mode else None,
                mtime=calendar.timegm(info.date_time),
                size=info.file_size if kind == "file" else 0,
                link_target=link_target,
                open_content=functools.partial(zf.open, info) if kind == "file" else None,
            )


def iter_archive_members(path: Path, archive_format: str | None = None) -> Iterator[ArchiveMember]:
    """Stream the members of the archive at `path` in stored order: .tar(.gz/.zst/.xz) or .zip.

    `archive_format` is detected (`read_archive_format`) when not given; an unknown format is a
    VenvstacksError naming the file. Errors of a corrupt archive surface while iterating, as the
    decompressor raises them: wrap the loop in `archive_read_errors`.
    """
    if archive_format is None:
        archive_format = read_archive_format(path)
    if archive_format is None:
        raise VenvstacksError(f"archive {path.name!r}: not a zip archive nor a tar archive (plain, gzip, zstd or xz)")
    if archive_format == "zip":
        return _zip_members(path)
    return _tar_members(path, archive_format)


@contextlib.contextmanager
def archive_read_errors(origin: str) -> Iterator[None]:
    """Turn what reading a bad archive raises into a VenvstacksError naming the archive `origin`."""
    try:
        yield
    except VenvstacksError:
        raise
    except OSError as error:
        if error.filename is not None:
            raise VenvstacksError(f"archive {origin!r}: cannot read: {error.strerror}") from error
        raise VenvstacksError(f"archive {origin!r}: corrupt or truncated: {error}") from error
    except Exception as error:
        # tarfile.TarError, zipfile.BadZipFile, EOFError, lzma.LZMAError, zstandard.ZstdError.
        raise VenvstacksError(f"archive {origin!r}: corrupt or truncated: {error}") from error


def normalized_member_name(name: str) -> str:
    """A member name without leading `./` or trailing `/` ("" for the archive's own root)."""
    while name.startswith("./"):
        name = name[2:]
    return "" if name == "." else name.rstrip("/")


def read_tar_entries(path: Path, strip_prefix: str, add_prefix: str) -> list[ArchiveEntry]:
    """Read the tar at `path` (.tar.gz/.tgz, .tar.zst, .tar.xz or plain) into archive entries.

    Each member's leading `strip_prefix` directory is replaced by `add_prefix` (either may be
    empty); a member outside `strip_prefix` is an error naming the archive and the member. Hard
    links become copies of the file they link to; device, FIFO and other special members are
    rejected. File contents are held in memory (a hard link shares its target's bytes).
    """
    return reroot_entries(_read_all_tar_entries(path), strip_prefix, add_prefix, path.name)


def _read_all_tar_entries(path: Path) -> list[ArchiveEntry]:
    origin = path.name
    entries: list[ArchiveEntry] = []
    file_data: dict[str, bytes] = {}
    seen: set[str] = set()
    with archive_read_errors(origin):
        archive_format = read_archive_format(path)
        if archive_format is None or archive_format == "zip":
            raise VenvstacksError(f"archive {origin!r}: not a tar archive compressed with gzip, zstd or xz")
        for member in _tar_members(path, archive_format):
            name = normalized_member_name(member.name)
            if not name:
                continue  # the archive's own root, "./"
            if name in seen:
                raise VenvstacksError(f"archive {origin!r}: member {name!r} appears twice")
            seen.add(name)
            mode = member.mode or 0
            if member.kind == "file":
                assert member.open_content is not None
                data = member.open_content().read()
                file_data[name] = data
                entries.append(ArchiveEntry(name, "file", mode, data=data))
            elif member.kind == "dir":
                entries.append(ArchiveEntry(name, "dir", mode))
            elif member.kind == "symlink":
                entries.append(ArchiveEntry(name, "symlink", 0o777, link_target=member.link_target))
            elif member.kind == "hardlink":
                linked = file_data.get(normalized_member_name(member.link_target))
                if linked is None:
                    raise VenvstacksError(
                        f"archive {origin!r}: hard link {name!r} points to"
                        f" {member.link_target!r}, which is not an earlier regular file"
                    )
                # A hard link's own header usually carries the same mode as its target.
                entries.append(ArchiveEntry(name, "file", mode, data=linked))
            else:
                raise VenvstacksError(
                    f"archive {origin!r}: member {name!r} is a device, FIFO or other special"
                    " file, which a layer cannot contain"
                )
    return entries


def reroot_entries(
    entries: Iterable[ArchiveEntry], strip_prefix: str, add_prefix: str, origin: str
) -> list[ArchiveEntry]:
    """Replace the leading directory `strip_prefix` of every entry name with `add_prefix`.

    The `strip_prefix` directory entry itself becomes `add_prefix` (dropped when `add_prefix` is
    empty). An entry outside `strip_prefix` is a VenvstacksError naming `origin` and the entry.
    Symlink targets are relative and are kept as they are.
    """
    strip = strip_prefix.strip("/")
    add = add_prefix.strip("/")
    result: list[ArchiveEntry] = []
    for entry in entries:
        name = entry.name
        if strip:
            if name == strip:
                if entry.kind != "dir":
                    raise VenvstacksError(
                        f"archive {origin!r}: member {name!r} is the strip prefix but is a"
                        f" {entry.kind}, not a directory"
                    )
                if not add:
                    continue
                rest = ""
            elif name.startswith(strip + "/"):
                rest = name[len(strip) + 1 :]
            else:
                raise VenvstacksError(f"archive {origin!r}: member {name!r} is not under the strip prefix {strip!r}")
        else:
            rest = name
        new_name = posixpath.join(add, rest) if add and rest else (add or rest)
        result.append(
            ArchiveEntry(
                new_name,
                entry.kind,
                entry.mode,
                data=entry.data,
                source_path=entry.source_path,
                link_target=entry.link_target,
            )
        )
    return result
