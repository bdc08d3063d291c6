"""Tests of `image-layer` (tools/venvstacks_tool/image/image_layer.py) and its blobs (image/blobs.py)."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import json
import marshal
import os
import re
import sys
import tarfile
from pathlib import Path

import pytest
import zstandard

from venvstacks_testing.deploy_layers import tree
from venvstacks_tool.core import postinstall_template
from venvstacks_tool.core.archive import ArchiveEntry, write_archive
from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.deploy import deploy
from venvstacks_tool.image import image_layer

SITE = "lib/python3.11/site-packages"
MTIME = 1_700_000_000
LINUX = "x86_64-unknown-linux-gnu"
TEMPLATE = Path(postinstall_template.__file__).read_bytes()
BIG = bytes(range(256)) * 2048  # 512 KiB: spooled to a scratch file, not held in memory


def _archive(path: Path, layer: str, entries: list[ArchiveEntry], kind: str) -> Path:
    write_archive(entries, path, "tar.zst", MTIME)
    metadata = {
        "archive": {
            "file": path.name,
            "format": "tar.zst",
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "size": path.stat().st_size,
        },
        "kind": kind,
        "layer_name": layer,
    }
    path.with_name(f"{layer}.json").write_text(json.dumps(metadata))
    return path


def runtime_archive(directory: Path) -> Path:
    """A runtime layer `rt` whose `bin/python3` runs the host's Python (so deploy can post-install)."""
    config = {"python": "bin/python3", "base_python": "bin/python3", "kind": "runtime", "layer_name": "rt"}
    wrapper = f'#!/bin/sh\nexec "{os.path.realpath(sys.executable)}" "$@"\n'.encode()
    entries = [
        ArchiveEntry("rt/bin/python3", "file", 0o755, data=wrapper),
        ArchiveEntry(f"rt/{SITE}/rt_module.py", "file", 0o644, data=b"X = 1\n"),
        ArchiveEntry(f"rt/{postinstall_template.LAYER_CONFIG_PATH}", "file", 0o644, data=json.dumps(config).encode()),
    ]
    return _archive(directory / "rt.tar.zst", "rt", entries, "runtime")


def framework_archive(directory: Path, *, stack_module: bytes = b"# stale\n", data: bytes = b"data") -> Path:
    """A framework layer `fw` on `rt`: a stale stacking module with its bytecode, a symlink, a big file."""
    config = {
        "base_python": "../rt/bin/python3",
        "dynlib_dirs": [],
        "kind": "framework",
        "layer_name": "fw",
        "py_version": "3.11.2",
        "pylib_dirs": [f"../rt/{SITE}"],
        "python": "bin/python",
        "site_dir": SITE,
    }
    entries = [
        ArchiveEntry("fw/bin/python", "file", 0o755, data=b"#!/bin/sh\n"),
        ArchiveEntry("fw/bin/python3", "symlink", 0o777, link_target="python"),
        ArchiveEntry(f"fw/{SITE}/_venvstacks_stack.py", "file", 0o644, data=stack_module),
        ArchiveEntry(f"fw/{SITE}/__pycache__/_venvstacks_stack.cpython-311.pyc", "file", 0o644, data=b"pyc"),
        ArchiveEntry(f"fw/{SITE}/__pycache__/other.cpython-311.pyc", "file", 0o644, data=b"pyc"),
        ArchiveEntry(f"fw/{SITE}/big.bin", "file", 0o644, data=BIG),
        ArchiveEntry(f"fw/{SITE}/data.txt", "file", 0o644, data=data),
        ArchiveEntry(f"fw/{postinstall_template.LAYER_CONFIG_PATH}", "file", 0o644, data=json.dumps(config).encode()),
        ArchiveEntry("fw/postinstall.py", "file", 0o644, data=TEMPLATE),
    ]
    return _archive(directory / "fw.tar.zst", "fw", entries, "framework")


def make_image_layer(
    archive: Path, out: Path, *, prefix: str = "/opt/venvstacks", compression: str = "gzip", platform: str = LINUX
) -> tuple[Path, dict[str, object]]:
    layer = archive.name.split(".")[0]
    out.mkdir(parents=True, exist_ok=True)
    blob, descriptor = out / f"{layer}.layer", out / f"{layer}.layer.json"
    argv = ["--archive", str(archive), "--layer-name", layer, "--prefix", prefix, "--compression", compression]
    argv += ["--platform", platform, "--output", str(blob), "--descriptor", str(descriptor)]
    assert image_layer.main(argv) == 0
    return blob, json.loads(descriptor.read_text())


def plain_tar(blob: Path) -> bytes:
    data = blob.read_bytes()
    return (
        gzip.decompress(data)
        if data[:2] == b"\x1f\x8b"
        else zstandard.ZstdDecompressor().decompressobj().decompress(data)
    )


def tar_tree(data: bytes, top: str) -> dict[str, tuple[str, bytes | str | None]]:
    """The members below `top/` in the form of `deploy_layers.tree`."""
    found: dict[str, tuple[str, bytes | str | None]] = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        for member in tf.getmembers():
            if not member.name.startswith(top + "/"):
                continue
            rel = member.name[len(top) + 1 :]
            if member.issym():
                found[rel] = ("symlink", member.linkname)
            elif member.isdir():
                found[rel] = ("dir", None)
            else:
                f = tf.extractfile(member)
                assert f is not None
                found[rel] = ("file", f.read())
    return found


PYC = f"{SITE}/__pycache__/_venvstacks_stack.{sys.implementation.cache_tag}.pyc"


def test_an_image_layer_holds_what_deploy_leaves_at_the_prefix(tmp_path: Path) -> None:
    archives = [runtime_archive(tmp_path), framework_archive(tmp_path)]
    dest = tmp_path / "deployed"
    dest.mkdir()
    deploy.deploy(archives, dest)
    for archive in archives:
        layer = archive.name.split(".")[0]
        blob, _ = make_image_layer(archive, tmp_path / "out", prefix=str(dest))
        image = tar_tree(plain_tar(blob), f"{str(dest).lstrip('/')}/{layer}")
        # And the stacking module's bytecode, which a deployed layer gets at its first start.
        assert image.pop(PYC, None) is not None or layer == "rt"
        assert image == tree(dest / layer), layer
    # Post-install did its work: the runtime's path under the prefix, the stale bytecode gone.
    cfg = (dest / "fw" / "pyvenv.cfg").read_text()
    assert f"home = {dest}/rt/bin\n" in cfg
    assert not (dest / "fw" / PYC).exists()
    assert (dest / "fw" / SITE / "__pycache__" / "other.cpython-311.pyc").exists()


def test_the_stacking_module_is_compiled_for_its_path_in_the_image(tmp_path: Path) -> None:
    members = tar_tree(
        plain_tar(make_image_layer(framework_archive(tmp_path), tmp_path / "out")[0]), "opt/venvstacks/fw"
    )
    source = members[f"{SITE}/_venvstacks_stack.py"][1]
    pyc = members[PYC][1]
    assert isinstance(source, bytes) and isinstance(pyc, bytes)
    # A checked-hash pyc (flags 0b11) of this very source: valid whatever the file's mtime.
    assert pyc[:4] == importlib.util.MAGIC_NUMBER and int.from_bytes(pyc[4:8], "little") == 0b11
    assert pyc[8:16] == importlib.util.source_hash(source)
    code = marshal.loads(pyc[16:])
    assert code.co_filename == f"/opt/venvstacks/fw/{SITE}/_venvstacks_stack.py"


def test_members_are_deterministic_under_the_prefix(tmp_path: Path) -> None:
    archive = framework_archive(tmp_path)
    blob, descriptor = make_image_layer(archive, tmp_path / "out")
    with tarfile.open(fileobj=io.BytesIO(plain_tar(blob))) as tf:
        members = tf.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names, key=lambda n: n.encode())
    assert names[:3] == ["opt", "opt/venvstacks", "opt/venvstacks/fw"]
    assert {(m.uid, m.gid, m.uname, m.gname, m.mtime) for m in members} == {(0, 0, "", "", MTIME)}
    cfg = next(m for m in members if m.name == "opt/venvstacks/fw/pyvenv.cfg")
    assert cfg.mode == 0o644
    assert descriptor["prefix"] == "/opt/venvstacks" and descriptor["layer_name"] == "fw"


def test_blob_digests_are_stable_and_both_compressions_hold_one_tar(tmp_path: Path) -> None:
    archive = framework_archive(tmp_path)
    first, gz = make_image_layer(archive, tmp_path / "a")
    os.chdir(tmp_path)
    second, again = make_image_layer(archive, tmp_path / "b" / "deeper")
    assert first.read_bytes() == second.read_bytes() and gz == again
    data = first.read_bytes()
    # gzip header: no mtime, no file name (FLG has no FNAME bit), so the bytes name no time or path.
    assert data[4:8] == b"\0\0\0\0" and not data[3] & 0x08
    assert gz["digest"] == "sha256:" + hashlib.sha256(data).hexdigest() and gz["size"] == len(data)
    assert gz["diff_id"] == "sha256:" + hashlib.sha256(gzip.decompress(data)).hexdigest()
    assert gz["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
    zst_blob, zst = make_image_layer(archive, tmp_path / "z", compression="zstd")
    assert zst["mediaType"] == "application/vnd.oci.image.layer.v1.tar+zstd"
    assert zst["diff_id"] == gz["diff_id"]  # the same tar under either compression
    assert zst["digest"] == "sha256:" + hashlib.sha256(zst_blob.read_bytes()).hexdigest()
    assert make_image_layer(archive, tmp_path / "z2", compression="zstd")[0].read_bytes() == zst_blob.read_bytes()


def test_a_stacking_module_already_right_is_kept(tmp_path: Path) -> None:
    module = postinstall_template.stack_module_text(
        {"site_dir": SITE, "pylib_dirs": [f"../rt/{SITE}"], "python": "bin/python"}
    ).encode()
    archive = framework_archive(tmp_path, stack_module=module)
    members = tar_tree(plain_tar(make_image_layer(archive, tmp_path / "out")[0]), "opt/venvstacks/fw")
    assert members[f"{SITE}/_venvstacks_stack.py"] == ("file", module)
    assert members[PYC][1] != b"pyc"  # the archive's own (here a stand-in) is replaced by the compiled one


def test_a_runtime_layer_is_only_moved_under_the_prefix(tmp_path: Path) -> None:
    blob, _ = make_image_layer(runtime_archive(tmp_path), tmp_path / "out", prefix="/srv/py")
    members = tar_tree(plain_tar(blob), "srv/py/rt")
    assert sorted(members) == [
        "bin",
        "bin/python3",
        "lib",
        "lib/python3.11",
        f"{SITE}",
        f"{SITE}/rt_module.py",
        "share",
        "share/venv",
        "share/venv/metadata",
        postinstall_template.LAYER_CONFIG_PATH,
    ]


@pytest.mark.parametrize(
    ("prefix", "message"),
    [
        ("opt/venvstacks", "is not absolute"),
        ("/opt//venvstacks", "is not normalised (write '/opt/venvstacks')"),
        ("/opt/venvstacks/", "is not normalised (write '/opt/venvstacks')"),
        ("/opt/x/../venvstacks", "is not normalised"),
        ("/", "is the root directory"),
    ],
)
def test_a_bad_prefix_is_refused_naming_it_and_the_layer(tmp_path: Path, prefix: str, message: str) -> None:
    archive = framework_archive(tmp_path)
    with pytest.raises(VenvstacksError) as raised:
        make_image_layer(archive, tmp_path / "out", prefix=prefix)
    assert str(raised.value).startswith(f"image prefix '{prefix}' of layer 'fw' {message}")
    assert not (tmp_path / "out" / "fw.layer").exists()


def test_a_layer_for_macos_or_windows_is_refused(tmp_path: Path) -> None:
    archive = framework_archive(tmp_path)
    with pytest.raises(VenvstacksError, match="built for macos_arm64: container images are for Linux targets only"):
        make_image_layer(archive, tmp_path / "out", platform="aarch64-apple-darwin")


def test_a_member_outside_the_layer_is_an_error_and_nothing_is_written(tmp_path: Path) -> None:
    entries = [
        ArchiveEntry("fw/a.txt", "file", 0o644, data=b"a"),
        ArchiveEntry("other/b.txt", "file", 0o644, data=b"b"),
    ]
    archive = _archive(tmp_path / "fw.tar.zst", "fw", entries, "framework")
    with pytest.raises(VenvstacksError, match=re.escape("member 'other' is not under the layer 'fw'")):
        make_image_layer(archive, tmp_path / "out")
    assert os.listdir(tmp_path / "out") == []


def test_a_layer_without_its_config_is_an_error(tmp_path: Path) -> None:
    archive = _archive(tmp_path / "fw.tar.zst", "fw", [ArchiveEntry("fw/a.txt", "file", 0o644, data=b"a")], "framework")
    with pytest.raises(
        VenvstacksError, match=re.escape("no layer config 'fw/share/venv/metadata/venvstacks_layer.json'")
    ):
        make_image_layer(archive, tmp_path / "out")
