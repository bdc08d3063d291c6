"""`deploy`: unpack layer archives side by side into a directory and run their post-install.

Archives are given in dependency order (the runtime first, then frameworks, then applications).
Each one is unpacked into a fresh `.venvstacks-tmp-*` directory inside DEST, a sibling of the
deployed layers, so the layer's relative paths to its runtime and lower layers already resolve
there; its `postinstall.py` then runs with the deployed runtime's `bin/python3` (the runtime
layer's own for the runtime itself), and only then does the directory replace `DEST/<layer>`:
the old layer is renamed aside, the new one renamed in, and the old one deleted. On any failure
the temporary directory is removed and the previous layer is left as it was.

Archive members are checked before anything is written: every member must be under the one
top-level layer directory, no name may be absolute or contain `..`, nothing may be written
through a symlink, and a symlink or hard link may not resolve outside DEST. (A layer's
`bin/python` legitimately points into the sibling runtime layer, so the boundary is DEST, the
directory all layers of a stack share, not the layer directory.)

A .tar.zst as `write_archive` writes it (ustar headers, pax headers holding only `path` and
`linkpath`) is read by a lean reader that decompresses in a background thread and writes each
file with one `os.open` + `os.write`; any other tar.zst, and every other format, is read with
tarfile/zipfile. Both go through the same checks (`_Extraction`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import queue
import shutil
import tempfile
import threading
from pathlib import Path

from venvstacks_tool.core import postinstall_template
from venvstacks_tool.core.archive import iter_archive_members, read_archive_format, resolve_symlink
from venvstacks_tool.core.cli import subcommand_parser
from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.core.fsutil import CHUNK_SIZE
from venvstacks_tool.core.process import output_tail, run_captured
from venvstacks_tool.core.protocol import POSTINSTALL_NAME, is_layer_name, read_layer_config

TMP_PREFIX = ".venvstacks-tmp-"
OLD_PREFIX = ".venvstacks-old-"


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of `deploy` (reads `@paramfile` arguments)."""
    parser = subcommand_parser("deploy", "Unpack layer archives into a directory and run each layer's postinstall.py.")
    parser.add_argument(
        "--archive",
        action="append",
        required=True,
        dest="archives",
        type=Path,
        metavar="PATH",
        help="a layer archive (.tar.zst, .tar.xz or .zip); repeatable, in dependency order (runtime first)",
    )
    parser.add_argument("--dest", required=True, type=Path, help="the directory the layers are deployed into")
    return parser


def _split_name(raw: str, origin: str) -> tuple[str, ...]:
    """Validate a member name; return its components (a leading `./` is dropped)."""
    name = raw.replace("\\", "/") if os.sep == "\\" else raw
    if name.startswith("/") or (len(name) > 1 and name[1] == ":") or "\x00" in name:
        raise VenvstacksError(f"archive {origin!r}: member {raw!r} has an absolute name")
    while name.startswith("./"):
        name = name[2:]
    parts = tuple(part for part in name.rstrip("/").split("/") if part not in ("", "."))
    if ".." in parts:
        raise VenvstacksError(f"archive {origin!r}: member {raw!r} contains a '..' component")
    return parts


class _Extraction:
    """The safety checks and the writes of one `extract_layer` run, shared by both readers.

    `check` validates a member before anything of it is written and returns its components;
    the `write_*` methods then create it below `target`. Each directory is created once: `made`
    holds the components of every directory that exists (the layer directory is `target`).
    """

    def __init__(self, origin: str, dest: Path, target: Path) -> None:
        self.origin = origin
        self.dest = dest
        self.target = os.fspath(target)
        self.layer = ""
        self.links: dict[tuple[str, ...], str] = {}
        self.seen: dict[tuple[str, ...], str] = {}  # parts -> kind
        self.made: set[tuple[str, ...]] = set()
        umask = os.umask(0o022)
        os.umask(umask)
        self.umask = umask

    def check(self, name: str, kind: str, link_target: str) -> tuple[str, ...] | None:
        """Validate member `name`; its components, or None when nothing is to be written."""
        origin = self.origin
        parts = _split_name(name, origin)
        if not parts:
            return None
        if kind == "special":
            raise VenvstacksError(f"archive {origin!r}: member {name!r} is a device, FIFO or other special file")
        if not self.layer:
            self.layer = parts[0]
            if not is_layer_name(self.layer) or self.layer.startswith((TMP_PREFIX, OLD_PREFIX)):
                raise VenvstacksError(f"archive {origin!r}: {self.layer!r} is not a valid layer directory name")
            self.made.add(parts[:1])
        if parts[0] != self.layer:
            raise VenvstacksError(f"archive {origin!r}: member {name!r} is outside the layer directory {self.layer!r}")
        seen = self.seen
        for i in range(1, len(parts)):
            if seen.get(parts[:i], "dir") != "dir":
                raise VenvstacksError(
                    f"archive {origin!r}: member {name!r} is below {'/'.join(parts[:i])!r}, which is not a directory"
                )
        if len(parts) == 1:
            if kind != "dir":
                raise VenvstacksError(f"archive {origin!r}: the layer directory {name!r} is not a directory")
            seen[parts] = "dir"
            return None
        if parts in seen and not (kind == "dir" and seen[parts] == "dir"):
            raise VenvstacksError(f"archive {origin!r}: member {name!r} appears twice")
        if kind == "symlink":
            if resolve_symlink(parts[:-1], link_target, self.links) != "inside":
                raise VenvstacksError(
                    f"archive {origin!r}: symlink {name!r} -> {link_target!r} points outside {self.dest}"
                )
            self.links[parts] = link_target
        elif kind == "hardlink" and seen.get(_split_name(link_target, origin)) != "file":
            raise VenvstacksError(
                f"archive {origin!r}: hard link {name!r} -> {link_target!r} is not a link to"
                " an earlier regular file of the layer"
            )
        seen[parts] = "file" if kind == "hardlink" else kind
        return parts

    def path(self, parts: tuple[str, ...]) -> str:
        """The path below `target` of a member with components `parts` (layer name first)."""
        return os.path.join(self.target, *parts[1:])

    def make_parent(self, parts: tuple[str, ...]) -> None:
        """Create the directories above `parts` that do not exist yet."""
        parent = parts[:-1]
        if parent not in self.made:
            os.makedirs(self.path(parent), exist_ok=True)
            for i in range(1, len(parent) + 1):
                self.made.add(parent[:i])

    def write_dir(self, parts: tuple[str, ...]) -> None:
        """Create the directory `parts` (a repeated directory member is no error)."""
        if parts not in self.made:
            self.make_parent(parts)
            os.mkdir(self.path(parts))
            self.made.add(parts)

    def write_symlink(self, parts: tuple[str, ...], link_target: str) -> None:
        """Create the (already checked) symlink `parts` -> `link_target`."""
        self.make_parent(parts)
        os.symlink(link_target, self.path(parts))

    def write_hardlink(self, parts: tuple[str, ...], link_target: str) -> None:
        """Copy the earlier regular file `link_target` (checked) to `parts`, with its mode."""
        self.make_parent(parts)
        source = self.path(_split_name(link_target, self.origin))
        path = self.path(parts)
        shutil.copyfile(source, path, follow_symlinks=False)
        os.chmod(path, os.stat(source).st_mode & 0o777)

    def open_file(self, parts: tuple[str, ...], mode: int | None) -> int:
        """Create the new regular file `parts` (never through a symlink); return its descriptor.

        The mode is 0o755 when `mode` has an executable bit, else 0o644, whatever the umask.
        """
        self.make_parent(parts)
        perm = 0o755 if (mode or 0) & 0o111 else 0o644
        fd = os.open(self.path(parts), _CREATE_FLAGS, perm)
        if perm & self.umask:
            os.fchmod(fd, perm)
        return fd

    def finish(self) -> str:
        """Check every symlink again (a later one may change where an earlier one resolves)."""
        if not self.layer:
            raise VenvstacksError(f"archive {self.origin!r}: the archive is empty")
        for parts, link_target in self.links.items():
            if resolve_symlink(parts[:-1], link_target, self.links) != "inside":
                raise VenvstacksError(
                    f"archive {self.origin!r}: symlink {'/'.join(parts)!r} -> {link_target!r} points outside"
                    f" {self.dest}"
                )
        return self.layer


_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def _write_all(fd: int, data: bytes | memoryview) -> None:
    """Write all of `data` to `fd`."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _extract_with_tarfile(archive: Path, extraction: _Extraction) -> None:
    """Unpack any supported archive with `iter_archive_members` (tarfile / zipfile)."""
    for member in iter_archive_members(archive):
        parts = extraction.check(member.name, member.kind, member.link_target)
        if parts is None:
            continue
        if member.kind == "dir":
            extraction.write_dir(parts)
        elif member.kind == "symlink":
            extraction.write_symlink(parts, member.link_target)
        elif member.kind == "hardlink":
            extraction.write_hardlink(parts, member.link_target)
        else:
            assert member.open_content is not None
            fd = extraction.open_file(parts, member.mode)
            try:
                with member.open_content() as source:
                    while chunk := source.read(CHUNK_SIZE):
                        _write_all(fd, chunk)
            finally:
                os.close(fd)


# --- the lean tar.zst reader ---------------------------------------------------------------------


class _NotLean(Exception):
    """The archive uses something the lean reader does not handle: unpack it with tarfile."""


_BLOCK = 512
_READ_SIZE = 1 << 20
_QUEUE_DEPTH = 8
# Typeflags the lean reader handles; tarfile's own meaning for each.
_LEAN_KINDS = {
    b"0": "file",
    b"5": "dir",
    b"2": "symlink",
    b"1": "hardlink",
    b"3": "special",
    b"4": "special",
    b"6": "special",
}
_PAX_KEYS = {"path", "linkpath"}


class _ZstdBlocks:
    """The decompressed bytes of a .tar.zst, decompressed ahead in a background thread.

    zstandard releases the GIL while it decompresses, so that overlaps with the writes.
    `read(n)` returns exactly `n` bytes (EOFError at the end of the data).
    """

    def __init__(self, archive: Path) -> None:
        import zstandard

        self._raw = open(archive, "rb")  # noqa: SIM115 - closed by close()
        self._reader = zstandard.ZstdDecompressor().stream_reader(self._raw, read_across_frames=True, closefd=False)
        self._queue: queue.Queue[bytes | BaseException] = queue.Queue(_QUEUE_DEPTH)
        self._stop = threading.Event()
        self._buf = b""
        self._pos = 0
        self._thread = threading.Thread(target=self._produce, name="deploy-zstd", daemon=True)
        self._thread.start()

    def _produce(self) -> None:
        """Thread body: queue chunks of decompressed data, then b"" (or the exception)."""
        try:
            while not self._stop.is_set():
                chunk = self._reader.read(_READ_SIZE)
                self._queue.put(chunk)
                if not chunk:
                    return
        except BaseException as error:  # handed to the reading thread
            self._queue.put(error)

    def _next_chunk(self) -> bytes:
        item = self._queue.get()
        if isinstance(item, BaseException):
            raise item
        if not item:
            self._queue.put(item)  # the end stays the end
            raise EOFError("unexpected end of data")
        return item

    def read(self, n: int) -> bytes:
        """The next `n` bytes."""
        end = self._pos + n
        if end <= len(self._buf):
            data = self._buf[self._pos : end]
            self._pos = end
            return data
        pieces = [self._buf[self._pos :]]
        have = len(pieces[0])
        while have < n:
            chunk = self._next_chunk()
            pieces.append(chunk)
            have += len(chunk)
        last = pieces[-1]
        keep = have - n
        pieces[-1] = last[: len(last) - keep]
        self._buf, self._pos = last, len(last) - keep
        return b"".join(pieces)

    def copy_to(self, fd: int, n: int) -> None:
        """Write the next `n` bytes to `fd`, without joining the chunks they span."""
        while n > 0:
            if self._pos >= len(self._buf):
                self._buf, self._pos = self._next_chunk(), 0
            take = min(n, len(self._buf) - self._pos)
            _write_all(fd, memoryview(self._buf)[self._pos : self._pos + take])
            self._pos += take
            n -= take

    def skip(self, n: int) -> None:
        """Drop the next `n` bytes."""
        while n > 0:
            if self._pos >= len(self._buf):
                self._buf, self._pos = self._next_chunk(), 0
            take = min(n, len(self._buf) - self._pos)
            self._pos += take
            n -= take

    def close(self) -> None:
        """Stop the thread and close the file."""
        self._stop.set()
        while self._thread.is_alive():
            with contextlib.suppress(queue.Empty):
                self._queue.get(timeout=0.05)
        self._thread.join()
        self._reader.close()  # type: ignore[no-untyped-call]  # zstandard types close() without annotations
        self._raw.close()


def _octal(field: bytes) -> int:
    """A ustar number field (NUL/space terminated octal); _NotLean for anything else (base-256)."""
    digits = field.rstrip(b"\0 ").lstrip(b" ")
    if not digits:
        return 0
    try:
        return int(digits, 8)
    except ValueError:
        raise _NotLean from None


def _field(header: bytes, start: int, end: int) -> str:
    """A NUL-terminated ustar string field, decoded as tarfile does for `write_archive`'s tars."""
    raw = header[start:end]
    nul = raw.find(b"\0")
    return (raw if nul < 0 else raw[:nul]).decode("utf-8", "surrogateescape")


def _parse_pax(data: bytes) -> dict[str, str]:
    """The records of a pax extended header; _NotLean for any key but path and linkpath."""
    records: dict[str, str] = {}
    pos = 0
    while pos < len(data) and data[pos] != 0:
        space = data.find(b" ", pos)
        if space < 0:
            raise _NotLean
        digits = data[pos:space]
        if not digits.isdigit():
            raise _NotLean
        length = int(digits)
        record = data[space + 1 : pos + length]
        key, eq, value = record.partition(b"=")
        if length <= 0 or not eq or not record.endswith(b"\n"):
            raise _NotLean
        name = key.decode("ascii", "replace")
        if name not in _PAX_KEYS:
            raise _NotLean
        records[name] = value[:-1].decode("utf-8", "surrogateescape")
        pos += length
    return records


def _header_ok(header: bytes) -> bool:
    """Whether `header` is a POSIX ustar header with a valid checksum."""
    if header[257:265] != b"ustar\x0000":
        return False
    checksum = _octal(header[148:156])
    unsigned = sum(header[:148]) + 256 + sum(header[156:])
    return checksum == unsigned


def _extract_lean(archive: Path, extraction: _Extraction) -> None:
    """Unpack a .tar.zst of ustar/pax headers as `write_archive` writes it.

    Raises _NotLean, before or after writing some members, for anything else (a GNU or global
    header, a pax key other than path/linkpath, a bad checksum, data ending before the end
    marker): the caller then starts over with tarfile, which decides what such an archive means.
    """
    blocks = _ZstdBlocks(archive)
    try:
        pax: dict[str, str] = {}
        while True:
            try:
                header = blocks.read(_BLOCK)
            except EOFError:
                raise _NotLean from None
            if header == _ZERO_BLOCK:
                if pax:
                    raise _NotLean
                return
            if not _header_ok(header):
                raise _NotLean
            typeflag = header[156:157]
            size = _octal(header[124:136])
            padded = -(-size // _BLOCK) * _BLOCK
            if typeflag == b"x":
                if pax or size > _READ_SIZE:
                    raise _NotLean
                pax = _parse_pax(blocks.read(padded)[:size])
                continue
            kind = _LEAN_KINDS.get(typeflag)
            if kind is None:
                raise _NotLean
            name = pax.get("path")
            if name is None:
                name = _field(header, 0, 100)
                prefix = _field(header, 345, 500)
                if prefix:
                    name = f"{prefix}/{name}"
            link_target = pax.get("linkpath")
            if link_target is None:
                link_target = _field(header, 157, 257)
            pax = {}
            if kind != "file":
                size = padded = 0  # tarfile reads no data for these types
            _lean_member(blocks, extraction, name, kind, _octal(header[100:108]), link_target, size)
            blocks.skip(padded - size)
    except EOFError:
        raise _NotLean from None
    finally:
        blocks.close()


_ZERO_BLOCK = bytes(_BLOCK)


def _lean_member(
    blocks: _ZstdBlocks, extraction: _Extraction, name: str, kind: str, mode: int, link_target: str, size: int
) -> None:
    """Check and write one member the lean reader read; a file's `size` bytes come from `blocks`."""
    parts = extraction.check(name, kind, link_target)
    if parts is None:
        blocks.skip(size)
    elif kind == "file":
        fd = extraction.open_file(parts, mode)
        try:
            blocks.copy_to(fd, size)
        finally:
            os.close(fd)
    elif kind == "dir":
        extraction.write_dir(parts)
    elif kind == "symlink":
        extraction.write_symlink(parts, link_target)
    else:
        extraction.write_hardlink(parts, link_target)


def _clear(target: Path) -> None:
    """Remove everything in the directory `target` (what the lean reader wrote before giving up)."""
    for entry in os.scandir(target):
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path)
        else:
            os.unlink(entry.path)


def extract_layer(archive: Path, dest: Path, target: Path) -> str:
    """Unpack the layer in `archive` into the empty directory `target` (a sibling in `dest`).

    The archive's top-level directory is stripped; its name, the layer name, is returned.
    Raises VenvstacksError naming the archive and the member for any unsafe member.
    A .tar.zst is read by the lean reader (`_extract_lean`) and anything it does not handle,
    or any other format, by tarfile/zipfile; both apply the same checks (`_Extraction`).
    """
    origin = archive.name
    try:
        if read_archive_format(archive) == "tar.zst":
            extraction = _Extraction(origin, dest, target)
            try:
                _extract_lean(archive, extraction)
                return extraction.finish()
            except _NotLean:
                _clear(target)
        extraction = _Extraction(origin, dest, target)
        _extract_with_tarfile(archive, extraction)
    except VenvstacksError:
        raise
    except OSError as error:
        # Not archive.archive_read_errors: an OSError here is mostly a failed write into DEST.
        raise VenvstacksError(f"archive {origin!r}: cannot unpack into {dest}: {error}") from error
    except Exception as error:
        # tarfile/zipfile errors, EOFError, lzma.LZMAError, zstandard.ZstdError: bad archive data.
        raise VenvstacksError(f"archive {origin!r}: corrupt or truncated: {error}") from error
    return extraction.finish()


def _run_postinstall(layer: str, staged: Path, final: Path, origin: str) -> None:
    """Run the staged layer's postinstall.py with the interpreter of its runtime."""
    config = read_layer_config(staged, origin)
    is_runtime = not postinstall_template.is_layered(config)
    script = staged / POSTINSTALL_NAME
    if not script.is_file():
        if is_runtime:
            return  # a runtime layer needs no post-install step
        raise VenvstacksError(f"archive {origin!r}: layer {layer!r} has no {POSTINSTALL_NAME}")
    if is_runtime:
        python = staged.joinpath(*config["python"].split("/"))
    else:
        python = Path(os.path.normpath(final.joinpath(*config["base_python"].split("/"))))
    if not os.path.exists(python):
        runtime = config.get("runtime_name") or python.parent.parent.name
        raise VenvstacksError(
            f"archive {origin!r}: layer {layer!r} needs the runtime layer {runtime!r} at {python.parent.parent};"
            " deploy the runtime's archive first (archives go in dependency order)"
        )
    result = run_captured([str(python), "-I", str(script)], cwd=staged)
    if result.returncode != 0:
        output = output_tail(result.stdout + result.stderr)
        raise VenvstacksError(
            f"archive {origin!r}: {POSTINSTALL_NAME} of layer {layer!r} failed (exit {result.returncode}):\n{output}"
        )


def _swap_in(staged: Path, final: Path) -> None:
    """Move `staged` to `final`; an existing `final` is renamed aside first and deleted after."""
    if not os.path.lexists(final):
        os.rename(staged, final)
        return
    old = final.parent / (OLD_PREFIX + staged.name[len(TMP_PREFIX) :])
    os.rename(final, old)
    try:
        os.rename(staged, final)
    except BaseException:
        os.rename(old, final)
        raise
    if old.is_dir() and not old.is_symlink():
        shutil.rmtree(old, ignore_errors=True)
    else:
        old.unlink()


def deploy_layer(archive: Path, dest: Path) -> str:
    """Deploy one layer archive into `dest` atomically; return the layer name."""
    if not archive.is_file():
        raise VenvstacksError(f"archive {str(archive)!r} does not exist")
    staged = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=dest))
    try:
        os.chmod(staged, 0o755)  # mkdtemp makes it 0700; it becomes the layer directory
        layer = extract_layer(archive, dest, staged)
        final = dest / layer
        _run_postinstall(layer, staged, final, archive.name)
        _swap_in(staged, final)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    return layer


def deploy(archives: list[Path], dest: Path) -> list[str]:
    """Deploy `archives` (in dependency order) into `dest`; return the layer names."""
    dest = Path(os.path.abspath(dest))
    dest.mkdir(parents=True, exist_ok=True)
    layers = []
    for archive in archives:
        layer = deploy_layer(archive, dest)
        print(f"deployed layer {layer!r} to {dest / layer}", flush=True)
        layers.append(layer)
    return layers


def main(argv: list[str]) -> int:
    """Run `deploy` with `argv`; errors are raised as VenvstacksError."""
    args = build_parser().parse_args(argv)
    deploy(args.archives, args.dest)
    return 0
