"""`diff-archives`: say why two layer archives are not byte-identical.

    venvstacks_tool diff-archives A B [--max N]

Reads two archives (.tar.zst, .tar.xz, .tar.gz, .tar or .zip, in any combination, through
`archive.iter_archive_members`) and prints one line per difference: first the archive-level ones
(format, compression header fields, member order, and an mtime change shared by every member,
which is then not repeated per member), then, sorted by member name, members only in
A or only in B and, for members in both, kind, mode, mtime, owners, link target, size and content
(sha256; a short unified diff for small text files, indented under the content line). Values read
`A -> B`. The last line counts the differing members. Exit status: 0 when the archives are
byte-identical (one line, `identical: <sha256>`), 1 when they differ, 2 when one cannot be read.

Each archive is streamed once and summarized (member metadata and content sha256, computed while
reading), so memory grows with the member count, not the archive size; a second pass reads only
the small text files whose content differs, to diff them. A zip holds no owners and stores
timestamps at two-second resolution between 1980 and 2107: those fields are compared only as far
as both archives can hold them, so a .zip and a .tar.zst of the same tree differ in format only.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from venvstacks_tool.core.archive import (
    ARCHIVE_HEAD_SIZE,
    ArchiveMember,
    archive_read_errors,
    iter_archive_members,
    normalized_member_name,
    read_archive_format,
)
from venvstacks_tool.core.cli import subcommand_parser
from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.core.fsutil import CHUNK_SIZE, sha256_file

# Files up to this size whose content is UTF-8 text without NUL bytes get a unified diff.
TEXT_DIFF_MAX_SIZE = 64 * 1024
# At most this many lines of one file's unified diff are printed.
TEXT_DIFF_MAX_LINES = 20
DEFAULT_MAX_MEMBERS = 100
# The range of an MS-DOS timestamp (as `archive.write_archive` clamps zip mtimes), in epoch seconds.
_DOS_MIN_MTIME = 315532800
_DOS_MAX_MTIME = 4354819198
_XZ_CHECKS = {0: "none", 1: "CRC32", 4: "CRC64", 10: "SHA-256"}


@dataclass
class MemberSummary:
    """What is compared of one member: its metadata and, for a file, the sha256 of its content."""

    kind: str
    mode: int | None
    mtime: float
    uid: int | None
    gid: int | None
    uname: str | None
    gname: str | None
    link_target: str
    size: int
    sha256: str = ""
    is_text: bool = False  # small UTF-8 text: worth a unified diff
    dos_time: bool = False  # from a zip: two-second resolution, 1980..2107
    stored: int = 1  # how many times the name is stored in the archive


@dataclass
class ArchiveSummary:
    """One archive, summarized: its format, compression header fields and members by name."""

    path: Path
    archive_format: str
    sha256: str
    header: dict[str, str]
    members: dict[str, MemberSummary] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)  # member names in stored order, each once


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of `diff-archives` (reads `@paramfile` arguments)."""
    parser = subcommand_parser(
        "diff-archives", "Print why two layer archives differ (exit 0 identical, 1 different, 2 unreadable)."
    )
    parser.add_argument("archive_a", type=Path, metavar="A", help="an archive (.tar.zst, .tar.xz or .zip)")
    parser.add_argument("archive_b", type=Path, metavar="B", help="the archive to compare it with")
    parser.add_argument(
        "--max",
        type=int,
        default=DEFAULT_MAX_MEMBERS,
        metavar="N",
        help=f"report at most N differing members (default {DEFAULT_MAX_MEMBERS}; 0 for all); all are counted",
    )
    return parser


# --- reading -----------------------------------------------------------------------------------


def _header_fields(path: Path, archive_format: str, head: bytes) -> dict[str, str]:
    """Compression parameters that can be read from the first bytes of the file."""
    if archive_format == "tar.zst":
        import zstandard

        params = zstandard.get_frame_parameters(head)
        return {
            "zstd content size": "unknown" if params.content_size < 0 else str(params.content_size),
            "zstd window size": str(params.window_size),
            "zstd dictionary id": str(params.dict_id),
            "zstd checksum": "yes" if params.has_checksum else "no",
        }
    if archive_format == "tar.xz":
        fields = {"xz check": _XZ_CHECKS.get(head[7] & 0x0F, str(head[7] & 0x0F))}
        dictionary = _xz_lzma2_dictionary_size(head)
        if dictionary is not None:
            fields["xz dictionary size"] = str(dictionary)
        return fields
    if archive_format == "tar.gz":
        # RFC 1952: MTIME at bytes 4..7 (little-endian), XFL at 8, OS at 9, FNAME flag 0x08.
        return {
            "gzip mtime": str(int.from_bytes(head[4:8], "little")),
            "gzip os": str(head[9]),
            "gzip file name": "yes" if head[3] & 0x08 else "no",
        }
    if archive_format == "zip":
        import zipfile

        with zipfile.ZipFile(path) as zf:
            return {"zip comment": repr(zf.comment)}
    return {}


def _xz_lzma2_dictionary_size(head: bytes) -> int | None:
    """The LZMA2 dictionary size of the first xz block, or None if its header is not the usual one.

    The stream header is 12 bytes; the block header then holds its size, flags (no optional
    sizes), and one filter: LZMA2 (id 0x21) with a one-byte property encoding the dictionary size.
    """
    if len(head) < 18 or head[12] == 0:
        return None
    flags = head[13]
    if flags & 0x03 != 0 or flags & 0xC0:  # more than one filter, or optional size fields
        return None
    if head[14] != 0x21 or head[15] != 1:
        return None
    bits = head[16] & 0x3F
    if bits > 40:
        return None
    return 0xFFFFFFFF if bits == 40 else (2 | (bits & 1)) << (bits // 2 + 11)


def _content_digest(member: ArchiveMember) -> tuple[str, bool]:
    """The sha256 of a file member's content, read in chunks, and whether it is small text."""
    import hashlib

    digest = hashlib.sha256()
    small = member.size <= TEXT_DIFF_MAX_SIZE
    head = bytearray()
    assert member.open_content is not None
    with member.open_content() as stream:
        while chunk := stream.read(CHUNK_SIZE):
            digest.update(chunk)
            if small:
                head += chunk
                small = len(head) <= TEXT_DIFF_MAX_SIZE
    return digest.hexdigest(), small and _is_text(bytes(head))


def _is_text(data: bytes) -> bool:
    if b"\0" in data:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _display_name(raw: str) -> str:
    return normalized_member_name(raw) or "."


@contextlib.contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Map every error of reading `path` to a VenvstacksError naming it."""
    if not path.is_file():
        raise VenvstacksError(f"archive {str(path)!r}: no such file")
    with archive_read_errors(str(path)):
        yield


def summarize(path: Path) -> ArchiveSummary:
    """Read the archive at `path` once; raises VenvstacksError naming it if it cannot be read."""
    with _reading(path):
        archive_format = read_archive_format(path)
        if archive_format is None:
            raise VenvstacksError(f"archive {str(path)!r}: not a zip archive nor a tar archive")
        with open(path, "rb") as f:
            head = f.read(ARCHIVE_HEAD_SIZE)
        summary = ArchiveSummary(path, archive_format, sha256_file(path), _header_fields(path, archive_format, head))
        for member in iter_archive_members(path, archive_format):
            name = _display_name(member.name)
            sha256, is_text = _content_digest(member) if member.kind == "file" else ("", False)
            previous = summary.members.get(name)
            summary.members[name] = MemberSummary(
                kind=member.kind,
                mode=member.mode,
                mtime=member.mtime,
                uid=member.uid,
                gid=member.gid,
                uname=member.uname,
                gname=member.gname,
                link_target=member.link_target,
                size=member.size,
                sha256=sha256,
                is_text=is_text,
                dos_time=archive_format == "zip",
                stored=1 if previous is None else previous.stored + 1,
            )
            if previous is None:
                summary.order.append(name)
    return summary


def _read_texts(summary: ArchiveSummary, names: set[str]) -> dict[str, list[str]]:
    """The lines of the members `names` (small text files) of the archive, in a second pass."""
    texts: dict[str, list[str]] = {}
    if not names:
        return texts
    with _reading(summary.path):
        for member in iter_archive_members(summary.path, summary.archive_format):
            name = _display_name(member.name)
            if name in names and member.kind == "file" and member.open_content is not None:
                with member.open_content() as stream:
                    texts[name] = stream.read().decode("utf-8").splitlines()
    return texts


# --- comparing ---------------------------------------------------------------------------------


def _sort_key(name: str) -> bytes:
    # The order `write_archive` stores members in.
    return name.encode("utf-8", "surrogateescape")


def _show(value: str) -> str:
    """A name or link target as printed: as is when printable, else as a Python literal."""
    return value if value.isprintable() and value.strip() == value and value else repr(value)


def _show_mtime(mtime: float) -> str:
    return str(int(mtime)) if float(mtime).is_integer() else str(mtime)


def _dos_mtime(mtime: float) -> int:
    """`mtime` as a zip stores it: clamped to the MS-DOS range, rounded down to even seconds."""
    seconds = min(max(int(mtime), _DOS_MIN_MTIME), _DOS_MAX_MTIME)
    return seconds - seconds % 2


def compare_headers(a: ArchiveSummary, b: ArchiveSummary) -> list[str]:
    """The archive-level differences: format, then compression header fields of the same format."""
    if a.archive_format != b.archive_format:
        return [f"archive format: {a.archive_format} -> {b.archive_format}"]
    lines = []
    for key in sorted(a.header.keys() | b.header.keys()):
        value_a, value_b = a.header.get(key, "-"), b.header.get(key, "-")
        if value_a != value_b:
            lines.append(f"archive {key}: {value_a} -> {value_b}")
    return lines


def _order_difference(a: ArchiveSummary, b: ArchiveSummary) -> str | None:
    common = a.members.keys() & b.members.keys()
    order_a = [name for name in a.order if name in common]
    order_b = [name for name in b.order if name in common]
    for index, (name_a, name_b) in enumerate(zip(order_a, order_b, strict=True)):
        if name_a != name_b:
            return f"archive member order: shared member {index + 1} is {_show(name_a)} -> {_show(name_b)}"
    return None


def _same_mtime(a: MemberSummary, b: MemberSummary) -> bool:
    if a.dos_time or b.dos_time:
        return _dos_mtime(a.mtime) == _dos_mtime(b.mtime)
    return a.mtime == b.mtime


def _uniform_mtime_change(a: ArchiveSummary, b: ArchiveSummary) -> tuple[float, float] | None:
    """(A's, B's) mtime when every member in both archives has that same change, else None."""
    changes = set()
    for name in a.members.keys() & b.members.keys():
        member_a, member_b = a.members[name], b.members[name]
        if _same_mtime(member_a, member_b):
            return None
        changes.add((member_a.mtime, member_b.mtime))
        if len(changes) > 1:
            return None
    return changes.pop() if changes else None


def compare_members(name: str, a: MemberSummary, b: MemberSummary, *, compare_mtime: bool = True) -> list[str]:
    """One line per differing field of member `name`; content last (its diff is added later).

    `compare_mtime=False` leaves out the mtime (when `diff_archives` reports one change for all).
    """
    lines: list[str] = []
    if a.stored != b.stored:
        lines.append(f"{_show(name)}: stored {a.stored} -> {b.stored} times")
    if a.kind != b.kind:
        return [*lines, f"{_show(name)}: kind {a.kind} -> {b.kind}"]
    if a.mode is not None and b.mode is not None and a.mode != b.mode:
        lines.append(f"{_show(name)}: mode {a.mode:04o} -> {b.mode:04o}")
    if compare_mtime and not _same_mtime(a, b):
        lines.append(f"{_show(name)}: mtime {_show_mtime(a.mtime)} -> {_show_mtime(b.mtime)}")
    for label, value_a, value_b in (("uid", a.uid, b.uid), ("gid", a.gid, b.gid)):
        if value_a is not None and value_b is not None and value_a != value_b:
            lines.append(f"{_show(name)}: {label} {value_a} -> {value_b}")
    for label, text_a, text_b in (("uname", a.uname, b.uname), ("gname", a.gname, b.gname)):
        if text_a is not None and text_b is not None and text_a != text_b:
            lines.append(f"{_show(name)}: {label} {text_a!r} -> {text_b!r}")
    if a.kind in ("symlink", "hardlink") and a.link_target != b.link_target:
        lines.append(f"{_show(name)}: link target {_show(a.link_target)} -> {_show(b.link_target)}")
    if a.kind == "file":
        if a.size != b.size:
            lines.append(f"{_show(name)}: size {a.size} -> {b.size}")
        if a.sha256 != b.sha256:
            lines.append(f"{_show(name)}: content sha256 {a.sha256} -> {b.sha256}")
    return lines


def text_diff(name: str, lines_a: list[str], lines_b: list[str], max_lines: int = TEXT_DIFF_MAX_LINES) -> list[str]:
    """The hunks of a unified diff of two texts, indented, cut after `max_lines` lines."""
    hunks = list(difflib.unified_diff(lines_a, lines_b, f"A/{name}", f"B/{name}", lineterm="", n=2))[2:]
    shown = [f"    {line}" for line in hunks[:max_lines]]
    if len(hunks) > max_lines:
        shown.append(f"    ... ({len(hunks) - max_lines} more diff lines)")
    return shown


@dataclass
class Report:
    """The differences found, as printed."""

    archive_lines: list[str]
    member_lines: dict[str, list[str]]  # member name -> its lines, in member-name order

    @property
    def differing_members(self) -> int:
        """How many members differ (including those in only one archive)."""
        return len(self.member_lines)


def diff_archives(a: ArchiveSummary, b: ArchiveSummary) -> Report:
    """Compare two summarized archives; reads the small differing text files again for their diffs."""
    archive_lines = compare_headers(a, b)
    # A changed SOURCE_DATE_EPOCH touches every member: one line instead of one per member.
    mtime_change = _uniform_mtime_change(a, b)
    if mtime_change is not None:
        mtime_a, mtime_b = mtime_change
        archive_lines.append(f"archive member mtimes: all {_show_mtime(mtime_a)} -> {_show_mtime(mtime_b)}")
    member_lines: dict[str, list[str]] = {}
    to_diff: set[str] = set()
    for name in sorted(a.members.keys() | b.members.keys(), key=_sort_key):
        member_a, member_b = a.members.get(name), b.members.get(name)
        if member_b is None:
            assert member_a is not None
            member_lines[name] = [f"only in A: {_show(name)} ({member_a.kind})"]
        elif member_a is None:
            member_lines[name] = [f"only in B: {_show(name)} ({member_b.kind})"]
        else:
            lines = compare_members(name, member_a, member_b, compare_mtime=mtime_change is None)
            if lines:
                member_lines[name] = lines
                if member_a.sha256 != member_b.sha256 and member_a.is_text and member_b.is_text:
                    to_diff.add(name)
    order = _order_difference(a, b)
    if order is not None:
        archive_lines.append(order)
    if a.sha256 != b.sha256 and not archive_lines and not member_lines:
        archive_lines.append(
            f"archive bytes: sha256 {a.sha256} -> {b.sha256}; size {a.path.stat().st_size} ->"
            f" {b.path.stat().st_size} (same members and headers: compression settings or tar headers differ)"
        )
    if to_diff:
        texts_a, texts_b = _read_texts(a, to_diff), _read_texts(b, to_diff)
        for name in sorted(to_diff, key=_sort_key):
            member_lines[name] += text_diff(name, texts_a.get(name, []), texts_b.get(name, []))
    return Report(archive_lines, member_lines)


def render(report: Report, max_members: int) -> Iterable[str]:
    """The printed lines of `report`: archive lines, at most `max_members` members (0: all), the count."""
    yield from report.archive_lines
    shown = list(report.member_lines.values())
    if max_members > 0 and len(shown) > max_members:
        hidden = len(shown) - max_members
        shown = shown[:max_members]
    else:
        hidden = 0
    for lines in shown:
        yield from lines
    if hidden:
        yield f"... {hidden} more differing members not shown (--max {max_members})"
    yield f"{report.differing_members} members differ"


def main(argv: list[str]) -> int:
    """Run `diff-archives`: 0 identical, 1 different, 2 when an archive cannot be read."""
    args = build_parser().parse_args(argv)
    if args.max < 0:
        build_parser().error("--max must not be negative")
    try:
        summary_a = summarize(args.archive_a)
        with _reading(args.archive_b):
            identical = sha256_file(args.archive_b) == summary_a.sha256
        if identical:
            print(f"identical: {summary_a.sha256}")
            return 0
        report = diff_archives(summary_a, summarize(args.archive_b))
    except VenvstacksError as error:
        # Handled here, not by cli.main: its exit status 1 means "the archives differ" here.
        print(f"venvstacks: error: {error}", file=sys.stderr)
        return 2
    for line in render(report, args.max):
        print(line)
    return 1
