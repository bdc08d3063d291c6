"""aarch64 programs run on this x86_64 machine: qemu-user through binfmt_misc, a Debian arm64 root.

`aarch64_emulation()` sets up, once per machine, what the aarch64 stack test needs and says
what it set up; on a fresh Debian machine as root it does all of it:

1. Debian's `qemu-user-static` (installed with apt-get when missing);
2. `binfmt_misc` mounted on `/proc/sys/fs/binfmt_misc` and qemu-aarch64 registered there from
   the package's own `/usr/lib/binfmt.d/qemu-aarch64.conf` (what systemd-binfmt does at boot on
   a machine with systemd). Its `F` flag makes the kernel open the emulator when it is
   registered, so aarch64 programs also run inside Bazel's sandbox and mount namespaces;
3. Debian bookworm's arm64 CPython with its libraries, extracted once into
   `/var/cache/rules_venvstacks/debian-bookworm-arm64` (`venvstacks_maint.debian_root`), the
   target system's libraries for qemu (`QEMU_LD_PREFIX`).

It raises EmulationUnavailable, which the test turns into a skip naming the reason, only where
that cannot be done here: not root, no apt-get, or a kernel that refuses binfmt_misc.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from venvstacks_maint.debian_root import debian_python_root, emulation_env
from venvstacks_maint.local_runtime import find_relocatable_python

BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
QEMU_CONF = Path("/usr/lib/binfmt.d/qemu-aarch64.conf")
ROOTS_DIR = Path(os.environ.get("VENVSTACKS_DEBIAN_ROOTS", "/var/cache/rules_venvstacks"))


class EmulationUnavailable(RuntimeError):
    """aarch64 programs cannot be made to run on this machine; the message says why."""


@dataclass(frozen=True)
class Emulation:
    """A working aarch64 emulation: the Debian arm64 root and the environment that points qemu at it."""

    root: Path

    @property
    def python(self) -> Path:
        """The root's aarch64 CPython (`usr/bin/python3.X`)."""
        return find_relocatable_python(self.root)

    @property
    def env(self) -> dict[str, str]:
        """`os.environ` plus `QEMU_LD_PREFIX`: for every aarch64 program the test starts."""
        return {**os.environ, **emulation_env(self.root)}


def _say(message: str) -> None:
    print(f"emulation: {message}", flush=True)


def _run(command: list[str], what: str) -> None:
    result = subprocess.run(
        command, capture_output=True, text=True, check=False, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    )
    if result.returncode != 0:
        raise EmulationUnavailable(f"{what}: `{' '.join(command)}` failed:\n{(result.stdout + result.stderr)[-2000:]}")


def _apt_install(*packages: str) -> None:
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise EmulationUnavailable(f"{' '.join(packages)} missing, and installing needs root and apt-get")
    _say(f"installing {' '.join(packages)} (apt-get)")
    _run(["apt-get", "update", "-q"], "apt-get update")
    _run(["apt-get", "install", "-y", "-q", *packages], "apt-get install")


def _register_qemu() -> None:
    """binfmt_misc mounted and qemu-aarch64 registered in it (both machine-wide, kept for later runs)."""
    if not (BINFMT_DIR / "register").exists():
        if os.geteuid() != 0:
            raise EmulationUnavailable(f"binfmt_misc is not mounted on {BINFMT_DIR}, and mounting it needs root")
        _say(f"mounting binfmt_misc on {BINFMT_DIR}")
        _run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT_DIR)], "this kernel refuses binfmt_misc")
    entry = BINFMT_DIR / "qemu-aarch64"
    if entry.exists():
        if entry.read_text().splitlines()[0] != "enabled":
            raise EmulationUnavailable(f"{entry} is registered but disabled (echo 1 > {entry})")
        return
    _say(f"registering qemu-aarch64 with binfmt_misc ({QEMU_CONF})")
    try:
        (BINFMT_DIR / "register").write_text(QEMU_CONF.read_text().strip())
    except OSError as error:
        raise EmulationUnavailable(f"cannot register {QEMU_CONF} with binfmt_misc: {error}") from None


def aarch64_emulation() -> Emulation:
    """Sets up what is missing (qemu-user-static, binfmt_misc, the arm64 root), then checks it runs."""
    if not QEMU_CONF.exists():
        _apt_install("qemu-user-static")
    if not shutil.which("mmdebstrap"):
        _apt_install("mmdebstrap")
    _register_qemu()
    emulation = Emulation(debian_python_root("arm64", ROOTS_DIR))
    probe = subprocess.run(
        [emulation.python, "-I", "-c", "import platform; print(platform.machine())"],
        capture_output=True,
        text=True,
        check=False,
        env=emulation.env,
    )
    if probe.stdout.strip() != "aarch64":
        raise EmulationUnavailable(f"{emulation.python} does not run as aarch64 here: {probe.stdout}{probe.stderr}")
    return emulation
