"""A small base image for the image tests: the host libraries a deployed stack needs, as an OCI layout.

No registry is reachable from these machines, so a base image is made here: every ELF file of a
deployed stack goes through `ldd`, and the host libraries it names (the C library, the dynamic
loader, libz, libexpat, ...) land in a root filesystem tar at the paths `ldd` printed, with
`/bin/sh` (the layers' `bin/python` wrappers are shell scripts) and `/tmp`. `umoci` turns that
tar into an OCI image layout (`umoci init`, `umoci new`, `umoci raw add-layer`). It takes a
second, needs no network, and holds exactly what the test runtime (this machine's CPython in
PBS layout, linked against the host's libraries) needs; docs/images.md says why it is not a
distribution image.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

# `libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x...)` and `/lib64/ld-linux-x86-64.so.2 (0x...)`,
# one a line (a path may hold spaces: the stack's own libraries, in a directory with one).
_LDD_PATH = re.compile(r"^\s*(?:\S+ => )?(/.*?) \(0x[0-9a-f]+\)$", re.MULTILINE)
_EXTRA = ("/bin/bash",)


def _elf_files(root: Path) -> list[Path]:
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            with open(path, "rb") as f:
                if f.read(4) == b"\x7fELF":
                    found.append(path)
    return found


def host_libraries(deployed: Path) -> list[str]:
    """The host paths that the ELF files of `deployed` (and /bin/bash) load, sorted."""
    paths: set[str] = set()
    for binary in [*_elf_files(deployed), *map(Path, _EXTRA)]:
        result = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=False)
        for match in _LDD_PATH.finditer(result.stdout):
            path = match.group(1)
            if not Path(path).resolve().is_relative_to(deployed.resolve()):
                paths.add(path)
    return sorted(paths)


def write_rootfs_tar(paths: list[str], output: Path) -> None:
    """A root filesystem tar: each of `paths` as a regular file (symlinks followed) at its own path, and /tmp."""
    with tarfile.open(output, "w") as tf:
        for path in sorted({*paths, *_EXTRA}):
            info = tf.gettarinfo(os.path.realpath(path), arcname=path.lstrip("/"))
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            with open(path, "rb") as f:
                tf.addfile(info, f)
        tmp = tarfile.TarInfo("tmp")
        tmp.type, tmp.mode = tarfile.DIRTYPE, 0o1777
        tf.addfile(tmp)


def make_base_layout(deployed: Path, layout: Path, tag: str = "base") -> Path:
    """An OCI image layout at `layout` (tag `tag`) of the host libraries that the stack in `deployed` needs."""
    if layout.exists():
        shutil.rmtree(layout)
    layout.parent.mkdir(parents=True, exist_ok=True)
    rootfs = layout.with_name(layout.name + ".rootfs.tar")
    write_rootfs_tar(host_libraries(deployed), rootfs)
    for command in (
        ["umoci", "init", "--layout", str(layout)],
        ["umoci", "new", "--image", f"{layout}:{tag}"],
        ["umoci", "raw", "add-layer", "--image", f"{layout}:{tag}", str(rootfs)],
    ):
        subprocess.run(command, check=True, capture_output=True, text=True)
    rootfs.unlink()
    return layout
