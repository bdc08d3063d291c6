"""Tests of `deploy` (venvstacks_tool.deploy), and of built layers running once deployed.

The runtime layer of the deployed stacks is a directory made here that stands for a PBS
runtime: `bin/python3` is a copy of the host interpreter's executable (it finds its shared
libpython by its absolute run path) and `lib/pythonX.Y/` holds symlinks to the host's standard
library, with an empty site-packages of its own, so nothing of the host's site-packages is
visible. (`bin/python3` cannot be a symlink to the host: a layer's `bin/python` resolves through
it, and deploy rightly refuses a symlink that resolves outside the deploy directory.)

The malicious and damaged archives, every reader and DEST's safety are in test_deploy_hardening.py.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import sysconfig
import tarfile
from pathlib import Path
from typing import Any

import pytest

from venvstacks_testing.archives import Member, compress, tar_bytes, write_with_metadata, zip_bytes
from venvstacks_testing.layer_inputs import (
    MTIME,
    SITE,
    XY,
    build,
    build_argv,
    make_app_sources,
    make_appdep_wheel,
    make_fw_wheel,
    make_runtime_dir,
    sha256,
)
from venvstacks_tool.build import layer as layer_build
from venvstacks_tool.core import cli
from venvstacks_tool.core.archive import ArchiveEntry, write_archive
from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.deploy import deploy

RUNTIME = "cpython_rt"


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A framework layer (tar.zst) and an application layer on it (zip)."""
    root = tmp_path_factory.mktemp("build")
    fw_wheel = make_fw_wheel(root / "wheels")
    appdep_wheel = make_appdep_wheel(root / "wheels")
    out = root / "out"
    build(build_argv(out, "fw", runtime=RUNTIME, wheels=[fw_wheel]))
    build(
        build_argv(
            out,
            "app",
            kind="application",
            runtime=RUNTIME,
            wheels=[appdep_wheel],
            lower=("fw",),
            app_files=make_app_sources(root / "src"),
            launch_module="myapp",
            fmt="zip",
        ),
        required={"fw": sha256(out / "fw.tar.zst")},
    )
    return {"fw": out / "fw.tar.zst", "app": out / "app.zip"}


def run(command: list[str | Path], **kwargs: Any) -> str:
    """Run `command` without the host's Python environment variables; return its stdout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True, env=env, check=False, **kwargs)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def leftovers(dest: Path) -> list[str]:
    return sorted(p.name for p in dest.iterdir() if p.name.startswith((deploy.TMP_PREFIX, deploy.OLD_PREFIX)))


def test_deployed_stack_runs_anywhere(
    tmp_path: Path, archives: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    probe = "import fwpkg, json, sys; print(json.dumps({'fwpkg': fwpkg.__file__, 'path': sys.path}))"
    for dest in (tmp_path / "first", tmp_path / "elsewhere" / "second"):
        make_runtime_dir(dest)
        assert (
            cli.main(
                ["deploy", "--archive", str(archives["fw"]), "--archive", str(archives["app"]), "--dest", str(dest)]
            )
            == 0
        )
        assert (
            capsys.readouterr().out == f"deployed layer 'fw' to {dest / 'fw'}\ndeployed layer 'app' to {dest / 'app'}\n"
        )
        assert sorted(p.name for p in dest.iterdir()) == [
            deploy.transaction.LOCK_NAME,
            deploy.transaction.STATE_NAME,
            "app",
            RUNTIME,
            "fw",
        ]
        assert (dest / "app/pyvenv.cfg").read_text() == (
            f"home = {dest / RUNTIME / 'bin'}\n"
            "include-system-site-packages = false\n"
            f"version = {json.loads((dest / 'app' / layer_build.LAYER_CONFIG_PATH).read_text())['py_version']}\n"
            f"executable = {dest / RUNTIME / 'bin/python3'}\n"
        )

        # The application's interpreter imports the framework's package from the framework layer,
        # with its own site-packages first, then the framework's, then the runtime's.
        seen = json.loads(run([dest / "app/bin/python", "-c", probe], cwd=tmp_path))
        assert seen["fwpkg"] == str(dest / f"fw/{SITE}/fwpkg/__init__.py")
        sites = [p for p in seen["path"] if p.endswith("site-packages")]
        assert sites == [str(dest / f"{layer}/{SITE}") for layer in ("app", "fw", RUNTIME)]
        host_sites = set(sysconfig.get_paths().values()) | {sysconfig.get_path("purelib")}
        assert not host_sites & set(seen["path"])

        # The launch module, and console scripts of both layers, run from the deployed location.
        out = run([dest / "app/bin/python", "-m", "myapp"], cwd=tmp_path)
        assert out == f"myapp sees framework {dest / f'fw/{SITE}/fwpkg/__init__.py'}\n"
        assert run([dest / "fw/bin/fwtool"], cwd=tmp_path) == f"fwtool {dest / 'fw'}\n"
        assert run([dest / "app/bin/apptool"], cwd=tmp_path) == f"apptool {dest / 'app'}\n"
        # ... also through a symlink to the script, from another directory.
        link = tmp_path / f"apptool-link-{dest.name}"
        link.symlink_to(dest / "app/bin/apptool")
        assert run([link], cwd=dest) == f"apptool {dest / 'app'}\n"
        assert leftovers(dest) == []


def test_redeploy_replaces_the_layer(tmp_path: Path, archives: dict[str, Path]) -> None:
    make_runtime_dir(tmp_path)
    deploy.deploy([archives["fw"]], tmp_path)
    marker = tmp_path / "fw" / "stale-file"
    marker.write_text("from the previous deployment")
    deploy.deploy([archives["fw"]], tmp_path, force=True)
    assert not marker.exists()
    assert (tmp_path / "fw/pyvenv.cfg").is_file()
    assert leftovers(tmp_path) == []


def test_missing_runtime_is_named(tmp_path: Path, archives: dict[str, Path]) -> None:
    with pytest.raises(
        VenvstacksError, match=rf"needs the runtime layer '{RUNTIME}'.*deploy the runtime's archive first"
    ):
        deploy.deploy([archives["fw"]], tmp_path)
    assert sorted(os.listdir(tmp_path)) == [deploy.transaction.LOCK_NAME]


def _layer_of(members: list[Member]) -> str:
    return members[0][0].split("/")[0]


def _tar_xz(path: Path, members: list[Member]) -> Path:
    """Write a .tar.xz from `members` without any checks, and its metadata beside it."""
    return write_with_metadata(path, compress(tar_bytes(members), "tar.xz"), _layer_of(members))


def _tar_zst(path: Path, members: list[Member], tar_format: int = tarfile.PAX_FORMAT) -> Path:
    """Write a .tar.zst from `members` without any checks, and its metadata beside it."""
    return write_with_metadata(path, compress(tar_bytes(members, tar_format), "tar.zst"), _layer_of(members))


def _zip(path: Path, members: list[Member]) -> Path:
    """Write a .zip from `members` without any checks, and its metadata beside it."""
    return write_with_metadata(path, zip_bytes(members), _layer_of(members))


def _layer_members(layer: str = "fw", postinstall: bytes = b"") -> list[tuple[str, str, Any]]:
    config = {"python": "bin/python", "base_python": f"../{RUNTIME}/bin/python3", "kind": "framework"}
    members: list[tuple[str, str, Any]] = [
        (layer, "dir", None),
        (f"{layer}/share/venv/metadata/venvstacks_layer.json", "file", json.dumps(config).encode()),
        (f"{layer}/lib/data.txt", "file", b"new"),
    ]
    if postinstall:
        members.append((f"{layer}/postinstall.py", "file", postinstall))
    return members


@pytest.fixture
def no_tarfile_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if extract_layer falls back from the lean tar.zst reader to tarfile."""

    def refuse(fileobj: object, archive_format: str, extraction: object) -> None:
        raise AssertionError(f"{archive_format}: the lean reader fell back to tarfile")

    monkeypatch.setattr(deploy, "_extract_with_tarfile", refuse)


def test_failed_postinstall_keeps_the_previous_layer(tmp_path: Path) -> None:
    make_runtime_dir(tmp_path)
    good = _tar_xz(tmp_path / "good.tar.xz", _layer_members(postinstall=b"print('fine')\n"))
    deploy.deploy([good], tmp_path)
    assert (tmp_path / "fw/lib/data.txt").read_text() == "new"
    failing = _layer_members(postinstall=b"import sys\nprint('cannot finish')\nsys.exit(3)\n")
    failing[2] = ("fw/lib/data.txt", "file", b"newer")
    bad = _tar_xz(tmp_path / "bad.tar.xz", failing)
    with pytest.raises(VenvstacksError, match=r"postinstall\.py of layer 'fw' failed \(exit 3\):\ncannot finish"):
        deploy.deploy([bad], tmp_path)
    assert (tmp_path / "fw/lib/data.txt").read_text() == "new"
    assert leftovers(tmp_path) == []


def test_corrupt_archive(tmp_path: Path) -> None:
    good = _tar_xz(tmp_path / "fw.tar.xz", _layer_members())
    truncated = write_with_metadata(tmp_path / "truncated.tar.xz", good.read_bytes()[:-40], "fw")
    with pytest.raises(VenvstacksError, match=r"archive 'truncated\.tar\.xz': corrupt or truncated"):
        deploy.deploy([truncated], tmp_path / "dest")
    assert leftovers(tmp_path / "dest") == []


@pytest.mark.parametrize("with_postinstall", [False, True])
def test_runtime_archive_deploys_with_its_own_interpreter(tmp_path: Path, with_postinstall: bool) -> None:
    """A runtime layer archive: its postinstall.py (if any) runs on its own bin/python3."""
    wrapper = f'#!/bin/sh\nexec "{os.path.realpath(sys.executable)}" "$@"\n'.encode()
    config = {"python": "bin/python3", "base_python": "bin/python3", "kind": "runtime", "layer_name": RUNTIME}
    entries = [
        ArchiveEntry(f"{RUNTIME}/bin/python3", "file", 0o755, data=wrapper),
        ArchiveEntry(f"{RUNTIME}/{layer_build.LAYER_CONFIG_PATH}", "file", 0o644, data=json.dumps(config).encode()),
        ArchiveEntry(f"{RUNTIME}/lib/python{XY}/site-packages/README.txt", "file", 0o644, data=b"site\n"),
    ]
    if with_postinstall:
        entries.append(
            ArchiveEntry(f"{RUNTIME}/postinstall.py", "file", 0o644, data=layer_build.POSTINSTALL_TEMPLATE.read_bytes())
        )
    archive = tmp_path / f"{RUNTIME}.tar.zst"
    write_archive(entries, archive, "tar.zst", MTIME)
    write_with_metadata(archive, archive.read_bytes(), RUNTIME)
    dest = tmp_path / "dest"
    assert deploy.deploy([archive], dest) == [RUNTIME]
    deployed = sorted([RUNTIME, *(str(p.relative_to(dest)) for p in (dest / RUNTIME).rglob("*"))])
    expected = [
        RUNTIME,
        f"{RUNTIME}/bin",
        f"{RUNTIME}/bin/python3",
        f"{RUNTIME}/lib",
        f"{RUNTIME}/lib/python{XY}",
        f"{RUNTIME}/lib/python{XY}/site-packages",
        f"{RUNTIME}/lib/python{XY}/site-packages/README.txt",
        f"{RUNTIME}/share",
        f"{RUNTIME}/share/venv",
        f"{RUNTIME}/share/venv/metadata",
        f"{RUNTIME}/share/venv/metadata/venvstacks_layer.json",
    ]
    if with_postinstall:
        expected.append(f"{RUNTIME}/postinstall.py")
    assert deployed == sorted(expected)  # the runtime's post-install wrote nothing
    assert os.access(dest / RUNTIME / "bin/python3", os.X_OK)
    assert stat.S_IMODE(os.stat(dest / RUNTIME).st_mode) == 0o755


def test_layer_without_postinstall_is_refused(tmp_path: Path) -> None:
    make_runtime_dir(tmp_path)
    archive = _zip(tmp_path / "fw.zip", _layer_members())
    with pytest.raises(VenvstacksError, match=r"layer 'fw' has no postinstall\.py"):
        deploy.deploy([archive], tmp_path)
    assert not (tmp_path / "fw").exists()


def _tree(root: Path) -> dict[str, tuple[Any, ...]]:
    """Every path below `root`: its type, permission bits and content or symlink target."""
    tree: dict[str, tuple[Any, ...]] = {}
    for path in sorted(root.rglob("*")):
        st = os.lstat(path)
        rel = str(path.relative_to(root))
        if stat.S_ISLNK(st.st_mode):
            tree[rel] = ("symlink", os.readlink(path))
        elif stat.S_ISDIR(st.st_mode):
            tree[rel] = ("dir", stat.S_IMODE(st.st_mode))
        else:
            tree[rel] = ("file", stat.S_IMODE(st.st_mode), path.read_bytes())
    return tree


def _extract_both_ways(archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """extract_layer `archive` with the lean reader, and again with the tarfile fallback forced."""
    lean, fallback = tmp_path / "lean", tmp_path / "fallback"
    lean.mkdir()
    fallback.mkdir()
    with monkeypatch.context() as patch:
        patch.setattr(deploy, "_extract_with_tarfile", lambda *_: pytest.fail("lean reader fell back"))
        assert deploy.extract_layer(archive, tmp_path, lean).layer == "fw"

    def not_lean(*_: object) -> None:
        raise deploy.NotLean

    with monkeypatch.context() as patch:
        patch.setattr(deploy, "_extract_lean", not_lean)
        assert deploy.extract_layer(archive, tmp_path, fallback).layer == "fw"
    return lean, fallback


def test_lean_reader_and_tarfile_fallback_write_identical_trees(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """write_archive's tar.zst: long (pax) and non-ASCII names, links, modes, multi-chunk data."""
    long_dir = "fw/" + "d" * 90 + "/" + "e" * 90
    big = bytes(range(256)) * (3 * (1 << 20) // 256 + 7)  # spans several 1 MiB reads
    entries = [
        ArchiveEntry("fw/bin/tool", "file", 0o755, data=b"#!/bin/sh\n"),
        ArchiveEntry("fw/bin/python", "symlink", 0o777, link_target=f"../../{RUNTIME}/bin/python3"),
        ArchiveEntry("fw/lib/empty.txt", "file", 0o644, data=b""),
        ArchiveEntry("fw/lib/big.bin", "file", 0o600, data=big),
        ArchiveEntry("fw/lib/sp\u00e4ce \u00fcn\u00efc\u00f6d\u00e9.py", "file", 0o700, data=b"x = 1\n"),
        ArchiveEntry(f"{long_dir}/{'f' * 120}.txt", "file", 0o644, data=b"long\n"),
        ArchiveEntry("fw/lib/long-link", "symlink", 0o777, link_target=f"../{long_dir[3:]}/{'f' * 120}.txt"),
        ArchiveEntry("fw/share/empty-dir", "dir", 0o755),
    ]
    archive = tmp_path / "fw.tar.zst"
    write_archive(entries, archive, "tar.zst", MTIME)
    lean, fallback = _extract_both_ways(archive, tmp_path, monkeypatch)
    tree = _tree(lean)
    assert tree == _tree(fallback)
    assert tree["bin/tool"][:2] == ("file", 0o755)
    assert tree["lib/big.bin"] == ("file", 0o644, big)
    assert tree["lib/long-link"] == ("symlink", f"../{long_dir[3:]}/{'f' * 120}.txt")
    assert tree["share/empty-dir"][0] == "dir"


def test_lean_reader_handles_tarfile_pax_and_hardlinks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    members = [
        *_layer_members(),
        ("fw/lib/copy.txt", "hardlink", "fw/lib/data.txt"),
        ("fw/lib/" + "n" * 150 + ".txt", "file", b"pax name"),
    ]
    lean, fallback = _extract_both_ways(_tar_zst(tmp_path / "fw.tar.zst", members), tmp_path, monkeypatch)
    assert _tree(lean) == _tree(fallback)
    assert (lean / "lib/copy.txt").read_bytes() == b"new"


def test_unhandled_tar_falls_back_to_tarfile_from_scratch(tmp_path: Path) -> None:
    """A GNU long name after some members: the lean reader's partial tree is cleared first."""
    members = [*_layer_members(), ("fw/lib/" + "g" * 150 + ".txt", "file", b"gnu")]
    archive = _tar_zst(tmp_path / "fw.tar.zst", members, tarfile.GNU_FORMAT)
    target = tmp_path / "target"
    target.mkdir()
    assert deploy.extract_layer(archive, tmp_path, target).layer == "fw"
    assert (target / "lib" / ("g" * 150 + ".txt")).read_bytes() == b"gnu"
    assert (target / "lib/data.txt").read_bytes() == b"new"


def test_lean_reader_refuses_special_files(tmp_path: Path, no_tarfile_fallback: None) -> None:
    members = [*_layer_members(), ("fw/lib/pipe", "fifo", None)]
    archive = _tar_zst(tmp_path / "bad.tar.zst", members)
    target = tmp_path / "target"
    target.mkdir()
    with pytest.raises(VenvstacksError, match=r"archive 'bad\.tar\.zst': member 'fw/lib/pipe' is a device"):
        deploy.extract_layer(archive, tmp_path, target)


def test_corrupt_tar_zst(tmp_path: Path) -> None:
    good = tmp_path / "fw.tar.zst"
    write_archive([ArchiveEntry("fw/a.bin", "file", 0o644, data=os.urandom(1 << 16))], good, "tar.zst", MTIME)
    for name, data in {
        "truncated.tar.zst": good.read_bytes()[:-40],
        "garbled.tar.zst": good.read_bytes()[:100] + b"\xff" * 64 + good.read_bytes()[164:],
    }.items():
        bad = write_with_metadata(tmp_path / name, data, "fw")
        with pytest.raises(VenvstacksError, match=rf"archive '{name}': corrupt or truncated"):
            deploy.deploy([bad], tmp_path / "dest")
        assert leftovers(tmp_path / "dest") == []
