"""Inputs of `build-layer` made in code: small real wheels, application files and the argv.

The host interpreter stands in for the layer's runtime (`build-layer` runs in-process), so the
layer's Python version and site-packages are the host's. Shared by tests/unit/test_layer_build.py
and tests/unit/test_deploy.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import sys
import sysconfig
from pathlib import Path

from venvstacks_testing.wheel_index import build_wheel
from venvstacks_tool.core import cli
from venvstacks_tool.core.protocol import LAYER_CONFIG_PATH

MTIME = 1_700_000_000
PY_VERSION = platform.python_version()
XY = f"{sys.version_info[0]}.{sys.version_info[1]}"
SITE = f"lib/python{XY}/site-packages"
PLATFORM = "x86_64-unknown-linux-gnu"

FW_INIT = b"VALUE = 'framework'\n\n\ndef main():\n    import sys\n    print('fwtool', sys.prefix)\n"
FW_UTIL = b"def double(x):\n    return 2 * x\n\n\nKNOWN = {'a', 'b', 'c', 'd'}\n"
FW_PY2 = b"print 'a Python 2 leftover'\n"
APPDEP_INIT = b"def main():\n    import sys\n    print('apptool', sys.prefix)\n"
APP_INIT = b""
APP_MAIN = b"import fwpkg\n\nprint('myapp sees', fwpkg.VALUE, fwpkg.__file__)\n"


def sha256(path: Path) -> str:
    """The hex sha256 of the file at `path`."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_fw_wheel(directory: Path) -> Path:
    """`fwpkg` 1.0: a package with a console script and a module that does not compile (Python 2)."""
    return build_wheel(
        directory,
        "fwpkg",
        "1.0",
        files={"fwpkg/__init__.py": FW_INIT, "fwpkg/util.py": FW_UTIL, "fwpkg/py2only.py": FW_PY2},
        console_scripts={"fwtool": "fwpkg:main"},
    )


def make_appdep_wheel(directory: Path) -> Path:
    """`appdep` 2.0: an application layer's dependency, with a console script."""
    return build_wheel(
        directory,
        "appdep",
        "2.0",
        files={"appdep/__init__.py": APPDEP_INIT},
        console_scripts={"apptool": "appdep:main"},
    )


def make_app_sources(directory: Path) -> dict[str, Path]:
    """The application's own files: DEST under site-packages -> source path."""
    (directory / "myapp").mkdir(parents=True, exist_ok=True)
    (directory / "myapp" / "__init__.py").write_bytes(APP_INIT)
    (directory / "myapp" / "__main__.py").write_bytes(APP_MAIN)
    return {"myapp/__init__.py": directory / "myapp/__init__.py", "myapp/__main__.py": directory / "myapp/__main__.py"}


def build_argv(
    out_dir: Path,
    layer: str,
    *,
    kind: str = "framework",
    runtime: str = "cpython_rt",
    wheels: list[Path] = (),  # type: ignore[assignment]
    lower: tuple[str, ...] = (),
    app_files: dict[str, Path] | None = None,
    launch_module: str = "",
    fmt: str = "tar.zst",
    bytecode: str = "compiled",
    extra: tuple[str, ...] = (),
) -> list[str]:
    """`build-layer` arguments writing `<out_dir>/<layer>.<fmt>`, its record and contents (`_<layer>.*.json`)."""
    argv = [
        "--layer-name",
        layer,
        "--layer-kind",
        kind,
        "--runtime-layer",
        runtime,
        "--python-version",
        PY_VERSION,
        "--platform",
        PLATFORM,
        "--archive-format",
        fmt,
        "--bytecode",
        bytecode,
        "--mtime",
        str(MTIME),
        "--output",
        str(out_dir / f"{layer}.{fmt}"),
        "--archive-record",
        str(out_dir / f"_{layer}.archive.json"),
        "--contents",
        str(out_dir / f"_{layer}.contents.json"),
    ]
    for wheel in wheels:
        argv += ["--wheel", f"{wheel}={sha256(wheel)}"]
    for name in lower:
        argv += ["--lower-layer", name]
    for dest, source in (app_files or {}).items():
        argv += ["--app-file", f"{dest}={source}"]
    if launch_module:
        argv += ["--launch-module", launch_module]
    return argv + list(extra)


_IDENTITY_FLAGS = (
    "--layer-name",
    "--layer-kind",
    "--python-version",
    "--platform",
    "--launch-module",
    "--archive-format",
)


def _option(argv: list[str], flag: str) -> str:
    """The value of `flag`'s last occurrence in `argv`, as argparse reads a repeated option."""
    return argv[len(argv) - 1 - argv[::-1].index(flag) + 1]


def write_lower_record(directory: Path, name: str, archive_sha256: str) -> Path:
    """An archive record of a lower layer `name` whose archive has `archive_sha256` (no archive needed)."""
    path = directory / f"_{name}.lower.json"
    record = {"archive": {"file": f"{name}.tar.zst", "format": "tar.zst", "sha256": archive_sha256, "size": 1}}
    path.write_text(json.dumps({**record, "layer_name": name}), encoding="utf-8")
    return path


def metadata_argv(build_args: list[str], required: dict[str, str] | None = None) -> list[str]:
    """`layer-metadata` arguments for the layer `build_args` builds, as the Bazel rule passes them.

    The lock is a file holding `lock-of-<layer>`; each `required` layer (name -> archive sha256)
    gets an archive record file. The metadata is written to `<out_dir>/<layer>.json`.
    """
    out_dir = Path(_option(build_args, "--output")).parent
    layer = _option(build_args, "--layer-name")
    lock = out_dir / f"pylock.{layer}.toml"
    lock.write_text(f"lock-of-{layer}\n", encoding="utf-8")
    argv = [item for flag in _IDENTITY_FLAGS if flag in build_args for item in (flag, _option(build_args, flag))]
    argv += ["--lock-file", str(lock), "--archive-record", _option(build_args, "--archive-record")]
    for name, digest in (required or {}).items():
        argv += ["--lower-record", str(write_lower_record(out_dir, name, digest))]
    return [*argv, "--output", str(out_dir / f"{layer}.json")]


def build(argv: list[str], required: dict[str, str] | None = None) -> None:
    """Run `build-layer` and then `layer-metadata` in-process through the CLI entry point, as Bazel does."""
    assert cli.main(["build-layer", *argv]) == 0
    assert cli.main(["layer-metadata", *metadata_argv(argv, required)]) == 0


def make_runtime_dir(dest: Path, name: str = "cpython_rt") -> Path:
    """A deployed runtime layer `dest/name` backed by the host interpreter, for deploying built layers.

    `bin/python3` is a copy of the host's interpreter (a symlink out of DEST is refused by deploy),
    its stdlib the host's (symlinked entries), with an empty site-packages and a runtime config.
    """
    runtime = dest / name
    (runtime / "bin").mkdir(parents=True)
    shutil.copy2(os.path.realpath(sys.executable), runtime / "bin" / "python3")
    stdlib = Path(sysconfig.get_path("stdlib"))
    lib = runtime / "lib" / f"python{XY}"
    (lib / "site-packages").mkdir(parents=True)
    for entry in sorted(os.listdir(stdlib)):
        if entry != "site-packages":
            os.symlink(stdlib / entry, lib / entry)
    config = {"base_python": "bin/python3", "python": "bin/python3", "kind": "runtime", "layer_name": name}
    (runtime / "share/venv/metadata").mkdir(parents=True)
    (runtime / LAYER_CONFIG_PATH).write_text(json.dumps(config))
    return runtime
