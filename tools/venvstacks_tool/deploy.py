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
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from venvstacks_tool import postinstall_template
from venvstacks_tool.archive import iter_archive_members, resolve_symlink
from venvstacks_tool.errors import VenvstacksError
from venvstacks_tool.fsutil import CHUNK_SIZE
from venvstacks_tool.layer_metadata import LAYER_CONFIG_PATH, POSTINSTALL_NAME, is_layer_name
from venvstacks_tool.process import output_tail, run_captured

TMP_PREFIX = ".venvstacks-tmp-"
OLD_PREFIX = ".venvstacks-old-"


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
        for member in iter_archive_members(archive):
            parts = _split_name(member.name, origin)
            if not parts:
                continue
            if member.kind == "special":
                raise VenvstacksError(
                    f"archive {origin!r}: member {member.name!r} is a device, FIFO or other special file"
                )
            if not layer:
                layer = parts[0]
                if not is_layer_name(layer) or layer.startswith((TMP_PREFIX, OLD_PREFIX)):
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
                if resolve_symlink(parts[:-1], member.link_target, links) != "inside":
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
                assert member.open_content is not None
                with member.open_content() as source, open(path, "xb") as out:
                    shutil.copyfileobj(source, out, CHUNK_SIZE)
                os.chmod(path, 0o755 if (member.mode or 0) & 0o111 else 0o644)
            seen[parts] = "file" if member.kind == "hardlink" else member.kind
    except VenvstacksError:
        raise
    except OSError as error:
        # Not archive.archive_read_errors: an OSError here is mostly a failed write into DEST.
        raise VenvstacksError(f"archive {origin!r}: cannot unpack into {dest}: {error}") from error
    except Exception as error:
        # tarfile/zipfile errors, EOFError, lzma.LZMAError, zstandard.ZstdError: bad archive data.
        raise VenvstacksError(f"archive {origin!r}: corrupt or truncated: {error}") from error
    if not layer:
        raise VenvstacksError(f"archive {origin!r}: the archive is empty")
    # A later symlink may change where an earlier one resolves: check them all again.
    for parts, link_target in links.items():
        if resolve_symlink(parts[:-1], link_target, links) != "inside":
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
