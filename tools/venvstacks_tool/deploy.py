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
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import stat
import subprocess
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

from venvstacks_tool.errors import VenvstacksError
from venvstacks_tool.layer_build import LAYER_CONFIG_PATH, LAYER_NAME_RE, POSTINSTALL_NAME

TMP_PREFIX = ".venvstacks-tmp-"
OLD_PREFIX = ".venvstacks-old-"
_CHUNK = 1 << 20
_MAX_OUTPUT = 4000
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_XZ_MAGIC = b"\xfd7zXZ\x00"
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


@dataclass(frozen=True)
class Member:
    """One archive member, independent of the archive format."""

    name: str  # as stored, for messages
    parts: tuple[str, ...]  # the validated path components (parts[0] is the layer directory)
    kind: str  # "file", "dir", "symlink" or "hardlink"
    executable: bool = False
    link_target: str = ""
    open_data: Any = None  # a callable returning a binary file object, for a "file"


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of `deploy` (reads `@paramfile` arguments)."""
    parser = argparse.ArgumentParser(
        prog="venvstacks_tool deploy",
        description="Unpack layer archives into a directory and run each layer's postinstall.py.",
        fromfile_prefix_chars="@",
    )
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


def _resolves_inside(parts: tuple[str, ...], target: str, links: dict[tuple[str, ...], str]) -> bool:
    """Whether symlink `parts` -> `target` stays inside the archive root (DEST).

    Symlinks of the same archive met on the way are followed; anything else is judged by the
    path alone.
    """
    if target.startswith("/") or (len(target) > 1 and target[1] == ":") or "\x00" in target:
        return False
    resolved = list(parts[:-1])
    pending = list(reversed(target.replace("\\", "/").split("/")))
    hops = 0
    while pending:
        part = pending.pop()
        if part in ("", "."):
            continue
        if part == "..":
            if not resolved:
                return False
            resolved.pop()
            continue
        resolved.append(part)
        link = links.get(tuple(resolved))
        if link is not None:
            hops += 1
            if hops > 64 or link.startswith("/"):
                return False
            resolved.pop()
            pending.extend(reversed(link.replace("\\", "/").split("/")))
    return True


@contextlib.contextmanager
def _open_tar(path: Path, head: bytes) -> Iterator[IO[bytes]]:
    """A decompressed stream of the tar archive at `path` (zstd, xz or plain, by magic)."""
    with open(path, "rb") as raw:
        if head.startswith(_ZSTD_MAGIC):
            import zstandard

            with zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True) as zst_stream:
                yield cast("IO[bytes]", zst_stream)
        elif head.startswith(_XZ_MAGIC):
            import lzma

            with lzma.LZMAFile(raw, "rb") as xz_stream:
                yield xz_stream
        else:
            yield raw


def _tar_members(path: Path) -> Iterator[Member]:
    origin = path.name
    with open(path, "rb") as f:
        head = f.read(8)
    with _open_tar(path, head) as stream, tarfile.open(fileobj=stream, mode="r|") as tf:
        for info in tf:
            parts = _split_name(info.name, origin)
            if not parts:
                continue
            if info.isreg():
                yield Member(
                    info.name,
                    parts,
                    "file",
                    executable=bool(info.mode & 0o111),
                    open_data=lambda info=info: tf.extractfile(info),
                )
            elif info.isdir():
                yield Member(info.name, parts, "dir")
            elif info.issym():
                yield Member(info.name, parts, "symlink", link_target=info.linkname)
            elif info.islnk():
                yield Member(info.name, parts, "hardlink", link_target=info.linkname)
            else:
                raise VenvstacksError(
                    f"archive {origin!r}: member {info.name!r} is a device, FIFO or other special file"
                )


def _zip_members(path: Path) -> Iterator[Member]:
    origin = path.name
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            parts = _split_name(info.filename, origin)
            if not parts:
                continue
            mode = info.external_attr >> 16 if info.create_system == 3 else 0
            if info.is_dir() or stat.S_ISDIR(mode):
                yield Member(info.filename, parts, "dir")
            elif stat.S_ISLNK(mode):
                target = zf.read(info).decode("utf-8", "surrogateescape")
                yield Member(info.filename, parts, "symlink", link_target=target)
            elif mode and not stat.S_ISREG(mode):
                raise VenvstacksError(
                    f"archive {origin!r}: member {info.filename!r} is not a file, directory or symlink"
                )
            else:
                yield Member(
                    info.filename,
                    parts,
                    "file",
                    executable=bool(mode & 0o111),
                    open_data=lambda info=info: zf.open(info),
                )


def _iter_members(path: Path) -> Iterator[Member]:
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(_ZIP_MAGIC):
        yield from _zip_members(path)
    else:
        yield from _tar_members(path)


def extract_layer(archive: Path, dest: Path, target: Path) -> str:
    """Unpack the layer in `archive` into the empty directory `target` (a sibling in `dest`).

    The archive's top-level directory is stripped; its name, the layer name, is returned.
    Raises VenvstacksError naming the archive and the member for any unsafe member.
    """
    origin = archive.name
    layer = ""
    links: dict[tuple[str, ...], str] = {}
    seen: dict[tuple[str, ...], str] = {}  # parts -> kind
    try:
        for member in _iter_members(archive):
            parts = member.parts
            if not layer:
                layer = parts[0]
                if not LAYER_NAME_RE.fullmatch(layer) or layer.startswith((TMP_PREFIX, OLD_PREFIX)):
                    raise VenvstacksError(f"archive {origin!r}: {layer!r} is not a valid layer directory name")
            if parts[0] != layer:
                raise VenvstacksError(
                    f"archive {origin!r}: member {member.name!r} is outside the layer directory {layer!r}"
                )
            for i in range(1, len(parts)):
                if seen.get(parts[:i], "dir") != "dir":
                    raise VenvstacksError(
                        f"archive {origin!r}: member {member.name!r} is below {'/'.join(parts[:i])!r}, which is not"
                        " a directory"
                    )
            if len(parts) == 1:
                if member.kind != "dir":
                    raise VenvstacksError(f"archive {origin!r}: the layer directory {member.name!r} is not a directory")
                seen[parts] = "dir"
                continue
            if parts in seen and not (member.kind == "dir" and seen[parts] == "dir"):
                raise VenvstacksError(f"archive {origin!r}: member {member.name!r} appears twice")
            path = target.joinpath(*parts[1:])
            path.parent.mkdir(parents=True, exist_ok=True)
            if member.kind == "dir":
                path.mkdir(exist_ok=True)
            elif member.kind == "symlink":
                if not _resolves_inside(parts, member.link_target, links):
                    raise VenvstacksError(
                        f"archive {origin!r}: symlink {member.name!r} -> {member.link_target!r} points outside {dest}"
                    )
                links[parts] = member.link_target
                os.symlink(member.link_target, path)
            elif member.kind == "hardlink":
                linked = _split_name(member.link_target, origin)
                if seen.get(linked) != "file":
                    raise VenvstacksError(
                        f"archive {origin!r}: hard link {member.name!r} -> {member.link_target!r} is not a link to"
                        " an earlier regular file of the layer"
                    )
                shutil.copyfile(target.joinpath(*linked[1:]), path, follow_symlinks=False)
                os.chmod(path, os.stat(target.joinpath(*linked[1:])).st_mode & 0o777)
            else:
                source = member.open_data()
                with source, open(path, "xb") as out:
                    shutil.copyfileobj(source, out, _CHUNK)
                os.chmod(path, 0o755 if member.executable else 0o644)
            seen[parts] = "file" if member.kind == "hardlink" else member.kind
    except VenvstacksError:
        raise
    except OSError as error:
        raise VenvstacksError(f"archive {origin!r}: cannot unpack into {dest}: {error}") from error
    except Exception as error:
        # tarfile/zipfile errors, EOFError, lzma.LZMAError, zstandard.ZstdError: bad archive data.
        raise VenvstacksError(f"archive {origin!r}: corrupt or truncated: {error}") from error
    if not layer:
        raise VenvstacksError(f"archive {origin!r}: the archive is empty")
    # A later symlink may change where an earlier one resolves: check them all again.
    for parts, link_target in links.items():
        if not _resolves_inside(parts, link_target, links):
            raise VenvstacksError(
                f"archive {origin!r}: symlink {'/'.join(parts)!r} -> {link_target!r} points outside {dest}"
            )
    return layer


def _load_config(layer_dir: Path, origin: str) -> dict[str, Any]:
    path = layer_dir.joinpath(*LAYER_CONFIG_PATH.split("/"))
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise VenvstacksError(
            f"archive {origin!r}: cannot read the layer config {LAYER_CONFIG_PATH!r}: {error}"
        ) from error
    if not isinstance(config, dict) or "python" not in config or "base_python" not in config:
        raise VenvstacksError(f"archive {origin!r}: {LAYER_CONFIG_PATH!r} is not a venvstacks layer config")
    return config


def _run_postinstall(layer: str, staged: Path, final: Path, origin: str) -> None:
    """Run the staged layer's postinstall.py with the interpreter of its runtime."""
    config = _load_config(staged, origin)
    is_runtime = os.path.normpath(config["python"]) == os.path.normpath(config["base_python"])
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
    result = subprocess.run(
        [str(python), "-I", str(script)],
        cwd=staged,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        check=False,
    )
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()
        if len(output) > _MAX_OUTPUT:
            output = "..." + output[-_MAX_OUTPUT:]
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
