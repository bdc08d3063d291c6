"""A Debian CPython of another CPU architecture, extracted into a directory: `local-runtime --debian-arch`.

    python3 -m venvstacks_maint local-runtime --runtime cpython3_11 --debian-arch arm64 --output-dir DIR

Debian builds the same CPython for every architecture it supports. `mmdebstrap --variant=extract`
downloads the `python3-minimal` and `libpython3-stdlib` packages of one architecture with every
library they depend on (libc, libssl, libffi, ...) and unpacks them into a root directory
without running any of their scripts, so it works for a foreign architecture with no emulator
(the packages' sha256s are checked by apt against the signed release files). The root's
`usr/bin/python3.X` is then packed like the host's distro CPython (`local_runtime`).

The root is also what the packed runtime needs from the target system: its C library and the
libraries the standard library's extension modules link (libssl, libffi, libsqlite3, ...), as a
real target machine has them. To run that architecture's programs on this machine, qemu-user
takes it as its library root (`QEMU_LD_PREFIX`, `emulation_env`); docs/platforms.md says how
a cross-deploy uses it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from venvstacks_tool.core.errors import VenvstacksError

# Debian architecture names and the CPU each is (what `platform.machine()` says there).
DEBIAN_MACHINES = {"amd64": "x86_64", "arm64": "aarch64"}
DEFAULT_SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# Metapackages: the suite's default CPython, whichever X.Y that is, and its standard library.
PYTHON_PACKAGES = ("python3-minimal", "libpython3-stdlib")
# Debian's mirrors serve the release files of a stable suite for longer than they claim to be valid.
_APT_OPTIONS = ('Acquire::Check-Valid-Until "false"',)


def debian_root_name(arch: str, suite: str = DEFAULT_SUITE) -> str:
    """`debian-SUITE-ARCH`: the directory name of a root, so roots of several kinds share a parent."""
    return f"debian-{suite}-{arch}"


def mmdebstrap_command(arch: str, root: Path, suite: str = DEFAULT_SUITE, mirror: str = DEFAULT_MIRROR) -> list[str]:
    """The `mmdebstrap` command line that extracts the CPython of `arch` into `root`."""
    return [
        "mmdebstrap",
        "--variant=extract",
        f"--architectures={arch}",
        *(f"--aptopt={option}" for option in _APT_OPTIONS),
        f"--include={','.join(PYTHON_PACKAGES)}",
        suite,
        str(root),
        mirror,
    ]


def debian_python_root(arch: str, parent: Path, suite: str = DEFAULT_SUITE, mirror: str = DEFAULT_MIRROR) -> Path:
    """`parent/debian-SUITE-ARCH`, holding Debian SUITE's CPython for `arch`; made once, then reused.

    Made in a `.partial` sibling and renamed when complete, so an interrupted run leaves no root
    that looks finished. Raises VenvstacksError for an unknown architecture, a missing
    mmdebstrap and a failed download, each naming what to do.
    """
    if arch not in DEBIAN_MACHINES:
        known = ", ".join(sorted(DEBIAN_MACHINES))
        raise VenvstacksError(f"unknown Debian architecture {arch!r}; known: {known}")
    root = parent / debian_root_name(arch, suite)
    if root.is_dir():
        return root
    if shutil.which("mmdebstrap") is None:
        raise VenvstacksError("mmdebstrap is missing; install it (apt-get install -y mmdebstrap)")
    partial = root.with_name(root.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    parent.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        mmdebstrap_command(arch, partial, suite, mirror), capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        shutil.rmtree(partial, ignore_errors=True)
        tail = (result.stdout + result.stderr).strip()[-2000:]
        raise VenvstacksError(f"mmdebstrap could not extract Debian {suite}'s CPython for {arch}:\n{tail}")
    os.replace(partial, root)
    return root


def emulation_env(root: Path) -> dict[str, str]:
    """The environment variable that points qemu-user at `root` for the target's libraries.

    qemu-user (run by the kernel through binfmt_misc, or directly) opens the program's loader
    (`/lib/ld-linux-aarch64.so.1`) and every library under this directory first.
    """
    return {"QEMU_LD_PREFIX": str(root)}
