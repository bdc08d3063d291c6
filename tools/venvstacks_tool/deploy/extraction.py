"""The safety checks and the writes of unpacking one layer archive, shared by every reader.

`Extraction.check` validates a member before anything of it is written; the `write_*` methods
and `open_file` then create it below the staging directory. The boundary is DEST, the directory
all layers of a stack share (a layer's `bin/python` legitimately points into the sibling runtime
layer), so a symlink is resolved through the current archive's own symlinks and through the
symlinks of the layers already on disk in DEST, never through anything outside DEST.

The readers (`lean_tar`, `fallback`) raise `ArchiveDamage` for bytes that are not a well-formed
archive; `deploy.extract_layer` reports it as "corrupt or truncated", naming the archive.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Mapping
from pathlib import Path

from venvstacks_tool.core.archive import MAX_SYMLINK_HOPS, SymlinkResolution, follow_symlinks
from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.core.fsutil import CHUNK_SIZE
from venvstacks_tool.core.protocol import is_layer_name

# Names deploy gives its own entries in DEST; a layer name never starts with a dot.
TMP_PREFIX = ".venvstacks-tmp-"
OLD_PREFIX = ".venvstacks-old-"

# The largest pax extended header or GNU long name/link record either reader accepts. A name or
# link target is at most a few KiB on every file system; without a cap, a small compressed
# archive could make a reader hold hundreds of MiB of header in memory.
MAX_EXTENDED_HEADER = 1 << 20
# The largest symlink target read from a zip (whose targets are member contents): PATH_MAX.
MAX_LINK_TARGET = 4096
# How many symlinks one resolution may follow before it counts as a loop (as core.archive).


class ArchiveDamage(Exception):
    """The archive's bytes are not a well-formed archive (the message says where and how)."""


class NotLean(Exception):
    """The archive uses something the lean tar reader does not handle: unpack it with tarfile.

    Never raised for damage: a reader that has seen damage raises `ArchiveDamage` and stops.
    """


class ExtendedHeaderTooLarge(Exception):
    """A pax or GNU long-name record over MAX_EXTENDED_HEADER: refused before it is read."""

    def __init__(self, offset: int, size: int) -> None:
        super().__init__(
            f"the extended header at offset {offset} is {size} bytes, over the limit of"
            f" {MAX_EXTENDED_HEADER} bytes for a pax or GNU long-name record"
        )


def split_name(raw: str, origin: str) -> tuple[str, ...]:
    """Validate a member name; return its components (a leading `./` is dropped)."""
    if "\x00" in raw:
        raise VenvstacksError(f"archive {origin!r}: member name {raw!r} contains a NUL character")
    name = raw.replace("\\", "/") if os.sep == "\\" else raw
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise VenvstacksError(f"archive {origin!r}: member {raw!r} has an absolute name")
    while name.startswith("./"):
        name = name[2:]
    parts = tuple(part for part in name.rstrip("/").split("/") if part not in ("", "."))
    if ".." in parts:
        raise VenvstacksError(f"archive {origin!r}: member {raw!r} contains a '..' component")
    return parts


def layer_mismatch(origin: str, layer: str, metadata: str, expected: str) -> VenvstacksError:
    """The error for an archive that holds `layer` given with the metadata of layer `expected`."""
    return VenvstacksError(
        f"archive {origin!r} holds layer {layer!r}, but its metadata {metadata!r} is for layer {expected!r}"
    )


# Member kinds (as the readers name them) in messages.
_KIND_NAMES = {"file": "file", "symlink": "symlink", "hardlink": "hard link"}

# The longest path the OS takes, NUL included (Linux' PATH_MAX); the staging path is what is
# created, and it is longer than the final one.
_PATH_MAX = 4096


def _name_max(dest: str) -> int:
    """The longest file name (in bytes) DEST's file system takes: NAME_MAX, 255 where it cannot be asked."""
    try:
        return os.pathconf(dest, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):  # no pathconf (Windows), or no answer
        return 255


_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def write_all(fd: int, data: bytes | memoryview) -> None:
    """Write all of `data` to `fd`."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class Extraction:
    """The checks and writes of one `extract_layer` run.

    `origin` names the archive in errors, `dest` is DEST, `target` the empty staging directory
    that becomes the layer directory, `expected_layer` the layer the metadata names ("" to take
    the archive's top-level directory as it is). Each directory is created once: `made` holds
    the components of every directory that exists (the layer directory is `target`).
    """

    def __init__(self, origin: str, dest: Path, target: Path, expected_layer: str = "", metadata: str = "") -> None:
        self.origin = origin
        self.dest = os.fspath(dest)
        self.target = os.fspath(target)
        self.expected_layer = expected_layer
        self.metadata = metadata
        self.layer = ""
        self.links: dict[tuple[str, ...], str] = {}
        self.seen: dict[tuple[str, ...], str] = {}  # parts -> kind
        self.made: set[tuple[str, ...]] = set()
        self._disk_links: dict[tuple[str, ...], str | None] = {}
        umask = os.umask(0o022)
        os.umask(umask)
        self.umask = umask
        self.name_max = _name_max(self.dest)

    # --- checks -----------------------------------------------------------------------------

    def check(self, name: str, kind: str, link_target: str) -> tuple[str, ...] | None:
        """Validate member `name`; its components, or None when nothing is to be written."""
        origin = self.origin
        parts = split_name(name, origin)
        if not parts:
            return None
        if kind == "special":
            raise VenvstacksError(f"archive {origin!r}: member {name!r} is a device, FIFO or other special file")
        if not self.layer:
            self._set_layer(parts[0])
        if parts[0] != self.layer:
            raise VenvstacksError(f"archive {origin!r}: member {name!r} is outside the layer directory {self.layer!r}")
        self._check_name_lengths(name, parts)
        seen = self.seen
        for i in range(1, len(parts)):
            if seen.setdefault(parts[:i], "dir") != "dir":  # a parent without its own member is a directory too
                raise VenvstacksError(
                    f"archive {origin!r}: member {name!r} is below {'/'.join(parts[:i])!r}, which is not a directory"
                )
        if len(parts) == 1:
            if kind != "dir":
                raise VenvstacksError(f"archive {origin!r}: the layer directory {name!r} is not a directory")
            seen[parts] = "dir"
            return None
        if seen.get(parts) == "dir" and kind != "dir":
            raise VenvstacksError(
                f"archive {origin!r}: member {name!r} is a {_KIND_NAMES.get(kind, kind)} where an earlier member"
                " needs a directory"
            )
        if parts in seen and not (kind == "dir" and seen[parts] == "dir"):
            raise VenvstacksError(f"archive {origin!r}: member {name!r} appears twice")
        if kind == "symlink":
            self._check_symlink(parts, link_target)
            self.links[parts] = link_target
        elif kind == "hardlink" and seen.get(split_name(link_target, origin)) != "file":
            raise VenvstacksError(
                f"archive {origin!r}: hard link {name!r} -> {link_target!r} is not a link to"
                " an earlier regular file of the layer"
            )
        seen[parts] = "file" if kind == "hardlink" else kind
        return parts

    def _set_layer(self, layer: str) -> None:
        origin = self.origin
        if not is_layer_name(layer):
            raise VenvstacksError(f"archive {origin!r}: {layer!r} is not a valid layer directory name")
        if self.expected_layer and layer != self.expected_layer:
            raise layer_mismatch(origin, layer, self.metadata, self.expected_layer)
        self.layer = layer
        self.made.add((layer,))

    def _check_name_lengths(self, name: str, parts: tuple[str, ...]) -> None:
        """Refuse a name DEST's file system cannot hold, before anything of it is written."""
        for part in parts:
            size = len(os.fsencode(part))
            if size > self.name_max:
                raise VenvstacksError(
                    f"archive {self.origin!r}: member {name!r} has a name component of {size} bytes, over the"
                    f" limit of {self.name_max} bytes of the file system of {self.dest}"
                )
        size = len(os.fsencode(self.path(parts)))
        if size >= _PATH_MAX:
            raise VenvstacksError(
                f"archive {self.origin!r}: member {name!r} would have a path of {size} bytes while it is"
                f" unpacked in {self.dest}, over the limit of {_PATH_MAX - 1} bytes"
            )

    def _check_symlink(self, parts: tuple[str, ...], link_target: str) -> None:
        origin, shown = self.origin, "/".join(parts)
        if not link_target:
            raise VenvstacksError(f"archive {origin!r}: symlink {shown!r} has an empty target")
        if "\x00" in link_target:
            raise VenvstacksError(f"archive {origin!r}: symlink {shown!r} has a target containing a NUL character")
        resolution, via = self.resolve(parts[:-1], link_target)
        if resolution == "loop":
            raise VenvstacksError(
                f"archive {origin!r}: symlink {shown!r} -> {link_target!r} is a symlink loop"
                f" (more than {MAX_SYMLINK_HOPS} links deep)"
            )
        if resolution == "outside":
            through = f" through the deployed symlink {via!r}" if via else ""
            raise VenvstacksError(
                f"archive {origin!r}: symlink {shown!r} -> {link_target!r} points outside {self.dest}{through}"
            )

    def _disk_link(self, parts: tuple[str, ...]) -> str | None:
        """The target of DEST/`parts` if it is a symlink on disk (its parents are real directories)."""
        if parts not in self._disk_links:
            path = os.path.join(self.dest, *parts)
            try:
                link: str | None = os.readlink(path) if stat.S_ISLNK(os.lstat(path).st_mode) else None
            except OSError:
                link = None  # missing, or below a file: judged by its path alone
            self._disk_links[parts] = link
        return self._disk_links[parts]

    def resolve(self, parent: tuple[str, ...], target: str) -> tuple[str, str]:
        """Where a symlink in directory `parent` (components below DEST) pointing to `target` leads.

        Returns ("inside" | "outside" | "loop", the last symlink of another layer on disk that
        the resolution went through, or ""). Components of this layer are resolved with the
        archive's own symlinks (DEST/<layer> on disk is the deployment being replaced); those
        of any other entry of DEST with what is on disk, one component at a time, so nothing
        outside DEST is ever looked at. A target that does not exist is judged by its path.
        """
        via = ""

        def lookup(key: tuple[str, ...]) -> str | None:
            nonlocal via
            if key[0] == self.layer:
                return self.links.get(key)
            link = self._disk_link(key)
            if link is not None:
                via = "/".join(key)
            return link

        return follow_symlinks(parent, target, lookup), via

    def finish(self) -> str:
        """Check every symlink again (a later one may change where an earlier one resolves)."""
        if not self.layer:
            raise VenvstacksError(f"archive {self.origin!r}: the archive is empty")
        for parts, link_target in self.links.items():
            self._check_symlink(parts, link_target)
        return self.layer

    def check_deployed_links(self, deployed: Mapping[str, Mapping[str, str]]) -> None:
        """Refuse the layer if it makes a symlink of another deployed layer resolve outside DEST.

        `deployed` gives, for each other layer that stays in DEST, its symlinks (DEST-relative
        path -> target). Each is resolved as it will be once this layer replaces DEST/<layer>
        (with this archive's links, as `resolve` does); only a resolution that goes through a
        link of this archive can have changed, so only such a one is refused, naming that link.
        """
        for other in sorted(deployed):
            for shown, link_target in sorted(deployed[other].items()):
                parts = tuple(shown.split("/"))
                if len(parts) < 2 or parts[0] != other:
                    continue  # not a link of that layer (a hand-edited state file)
                resolution, ours = self._resolve_noting_ours(parts[:-1], link_target)
                if resolution == "inside" or not ours:
                    continue
                member = "/".join(ours[-1])
                what = "a symlink loop" if resolution == "loop" else f"point outside {self.dest}"
                raise VenvstacksError(
                    f"archive {self.origin!r}: symlink {member!r} -> {self.links[ours[-1]]!r} would make the"
                    f" deployed symlink {shown!r} -> {link_target!r} of layer {other!r} {what}"
                )

    def _resolve_noting_ours(
        self, parent: tuple[str, ...], target: str
    ) -> tuple[SymlinkResolution, list[tuple[str, ...]]]:
        """As `resolve`, with the links of this archive the resolution followed, in order."""
        ours: list[tuple[str, ...]] = []

        def lookup(key: tuple[str, ...]) -> str | None:
            if key[0] != self.layer:
                return self._disk_link(key)
            link = self.links.get(key)
            if link is not None:
                ours.append(key)
            return link

        return follow_symlinks(parent, target, lookup), ours

    def symlinks(self) -> dict[str, str]:
        """This layer's symlinks, DEST-relative path -> target (kept in the deploy state)."""
        return {"/".join(parts): target for parts, target in sorted(self.links.items())}

    # --- writes -----------------------------------------------------------------------------

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
        """Copy the earlier regular file `link_target` (checked) to the new file `parts`, with its mode."""
        source = self.path(split_name(link_target, self.origin))
        fd = self.open_file(parts, os.stat(source, follow_symlinks=False).st_mode)
        try:
            with open(source, "rb") as f:
                while chunk := f.read(CHUNK_SIZE):
                    write_all(fd, chunk)
        finally:
            os.close(fd)

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

    def clear(self) -> None:
        """Remove everything written so far (before another reader starts over)."""
        for entry in os.scandir(self.target):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
