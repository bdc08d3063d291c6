"""Tests of `pack-runtime` (venvstacks_tool.build.runtime), on fake PBS archives built here."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import lzma
import random
import tarfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import zstandard

from venvstacks_testing.archives import archive_listing
from venvstacks_tool.build import runtime as runtime_layer
from venvstacks_tool.build import runtime_tooling
from venvstacks_tool.core import cli
from venvstacks_tool.core.errors import VenvstacksError

MTIME = 1_700_000_000
# (name under the prefix, kind, content or link target, mode)
PBS_TREE: list[tuple[str, str, bytes | str, int]] = [
    ("bin/python3.12", "file", b"\x7fELF fake interpreter", 0o755),
    ("bin/python3", "symlink", "python3.12", 0o777),
    ("bin/python", "symlink", "python3.12", 0o777),
    ("lib/libpython3.12.so.1.0", "file", b"\x7fELF fake library", 0o755),
    ("lib/libpython3.12.so", "hardlink", "lib/libpython3.12.so.1.0", 0o755),
    ("lib/python3.12/os.py", "file", b"import abc\n", 0o644),
    ("lib/python3.12/json/__init__.py", "file", b"# json\n", 0o644),
    ("lib/python3.12/site-packages/README.txt", "file", b"site\n", 0o644),
    ("include/python3.12/Python.h", "file", b"/* header */\n", 0o644),
]


def make_pbs_archive(
    path: Path,
    tree: list[tuple[str, str, bytes | str, int]] = PBS_TREE,
    *,
    prefix: str = "python",
    seed: int = 0,
    mtime: int = 1_600_000_000,
    gzip_level: int = 9,
    compression: str = "gz",
) -> Path:
    """Write a fake python-build-standalone install_only archive to `path`.

    `seed` shuffles member order (parents still first) and perturbs modes within the same x bit.
    """
    rng = random.Random(seed)
    members = list(tree)
    if seed:
        rng.shuffle(members)
    dirs: set[str] = set()
    buf = io.BytesIO()
    lead = f"{prefix}/" if prefix else ""
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:

        def add_dir(name: str) -> None:
            if name in dirs or not name:
                return
            parent = name.rpartition("/")[0]
            add_dir(parent)
            dirs.add(name)
            info = tarfile.TarInfo(name)
            info.type = tarfile.DIRTYPE
            info.mode = rng.choice([0o755, 0o775, 0o700]) if seed else 0o755
            info.mtime = mtime + seed
            tf.addfile(info)

        if prefix:
            add_dir(prefix)
        hardlinks = []
        for name, kind, payload, mode in members:
            full = lead + name
            add_dir(full.rpartition("/")[0])
            info = tarfile.TarInfo(full)
            info.mtime = mtime + seed
            info.uid, info.uname = (1000, "builder") if seed else (0, "")
            if seed and mode != 0o777:
                mode = (0o700 if mode & 0o111 else 0o600) | (mode & 0o055 if seed % 2 else 0)
            info.mode = mode
            if kind == "file":
                assert isinstance(payload, bytes)
                info.size = len(payload)
                tf.addfile(info, io.BytesIO(payload))
            elif kind == "symlink":
                assert isinstance(payload, str)
                info.type = tarfile.SYMTYPE
                info.linkname = payload
                tf.addfile(info)
            else:
                hardlinks.append((info, lead + str(payload)))
        for info, target in hardlinks:  # a hard link follows the file it links to
            info.type = tarfile.LNKTYPE
            info.linkname = target
            tf.addfile(info)
    raw = buf.getvalue()
    if compression == "gz":
        data = gzip.compress(raw, compresslevel=gzip_level, mtime=mtime + seed)
    elif compression == "xz":
        data = lzma.compress(raw)
    else:
        data = zstandard.ZstdCompressor().compress(raw)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def run_args(
    source: Path,
    out_dir: Path,
    fmt: str = "tar.zst",
    *,
    layer: str = "cpython3_12",
    version: str = "3.12.7",
    platform: str = "x86_64-unknown-linux-gnu",
    extra: tuple[str, ...] = (),
) -> list[str]:
    return [
        "--source-archive",
        str(source),
        "--layer-name",
        layer,
        "--python-version",
        version,
        "--pbs-release",
        "20241016",
        "--platform",
        platform,
        "--archive-format",
        fmt,
        "--mtime",
        str(MTIME),
        "--output",
        str(out_dir / f"{layer}.{fmt}"),
        "--metadata",
        str(out_dir / f"{layer}.json"),
        "--bytecode",
        "none",  # the archives here are of other Pythons than the host's (see test_cross_build.py)
        *extra,
    ]


@pytest.mark.parametrize("fmt", ["tar.zst", "tar.xz", "zip"])
def test_pack_runtime_layout_and_metadata(tmp_path: Path, fmt: str) -> None:
    source = make_pbs_archive(tmp_path / "cpython-3.12.7-install_only.tar.gz")
    out = tmp_path / "out"
    assert runtime_layer.main(run_args(source, out, fmt)) == 0

    layer_archive = out / f"cpython3_12.{fmt}"
    listing = archive_listing(layer_archive)
    assert all(name == "cpython3_12" or name.startswith("cpython3_12/") for name in listing)
    assert listing["cpython3_12/bin/python3"] == ("symlink", 0o777, "python3.12")
    assert listing["cpython3_12/bin/python3.12"] == ("file", 0o755, b"\x7fELF fake interpreter")
    # The hard link became a plain copy.
    assert listing["cpython3_12/lib/libpython3.12.so"] == ("file", 0o755, b"\x7fELF fake library")
    assert listing["cpython3_12/lib/python3.12/os.py"] == ("file", 0o644, b"import abc\n")

    config_name = "cpython3_12/share/venv/metadata/venvstacks_layer.json"
    kind, mode, config_bytes = listing[config_name]
    assert (kind, mode) == ("file", 0o644)
    assert isinstance(config_bytes, bytes)
    config = json.loads(config_bytes)
    assert config_bytes.decode() == json.dumps(config, indent=2, sort_keys=True) + "\n"
    assert config == {
        "layer_name": "cpython3_12",
        "python_implementation": "cpython",
        "py_version": "3.12.7",
        "runtime_name": "cpython3_12",
        "install_target": "cpython3_12",
        "kind": "runtime",
        # venvstacks' postinstall.LayerConfig fields
        "python": "bin/python3",
        "base_python": "bin/python3",
        "site_dir": "lib/python3.12/site-packages",
        "pylib_dirs": [],
        "dynlib_dirs": [],
    }

    metadata_path = out / "cpython3_12.json"
    text = metadata_path.read_text()
    metadata = json.loads(text)
    assert text == json.dumps(metadata, indent=2, sort_keys=True) + "\n"
    assert metadata == {
        "layer_name": "cpython3_12",
        "kind": "runtime",
        "python_version": "3.12.7",
        "platform": "x86_64-unknown-linux-gnu",
        "pbs_release": "20241016",
        "archive": {
            "file": f"cpython3_12.{fmt}",
            "format": fmt,
            "sha256": hashlib.sha256(layer_archive.read_bytes()).hexdigest(),
            "size": layer_archive.stat().st_size,
        },
        "source": {
            "sha256": hashlib.sha256(source.read_bytes()).hexdigest(),
            "strip_prefix": "python",
        },
    }
    assert str(tmp_path) not in text
    assert sorted(p.name for p in out.iterdir()) == sorted([f"cpython3_12.{fmt}", "cpython3_12.json"])


def test_pack_runtime_publishes_venvstacks_metadata(tmp_path: Path) -> None:
    """With --published-metadata, the same facts in venvstacks' schema (tests/unit/test_published_metadata.py)."""
    source = make_pbs_archive(tmp_path / "cpython-3.12.7-install_only.tar.gz")
    out = tmp_path / "out"
    published = out / "__venvstacks__/linux_x86_64/env_metadata/cpython3_12.json"
    assert runtime_layer.main(run_args(source, out, extra=("--published-metadata", str(published)))) == 0
    metadata = json.loads((out / "cpython3_12.json").read_text())
    assert json.loads(published.read_text()) == {
        "archive_build": 1,
        "archive_hashes": {"sha256": metadata["archive"]["sha256"]},
        "archive_name": "cpython3_12.tar.zst",
        "archive_size": metadata["archive"]["size"],
        "bound_to_implementation": True,
        "install_target": "cpython3_12",
        "layer_name": "cpython3_12",
        "lock_version": 1,
        "locked_at": datetime.fromtimestamp(MTIME, timezone.utc).isoformat(),
        "python_implementation": "cpython@3.12.7",
        "requirements_hash": "sha256:" + metadata["source"]["sha256"],
        "runtime_layer": "cpython3_12",
        "target_platform": "linux_x86_64",
    }


@pytest.mark.parametrize("fmt", ["tar.zst", "tar.xz", "zip"])
def test_pack_runtime_is_deterministic(tmp_path: Path, fmt: str) -> None:
    """Same content in a differently built source archive, elsewhere: same layer bytes."""
    one = make_pbs_archive(tmp_path / "a" / "pbs.tar.gz", seed=0)
    two = make_pbs_archive(tmp_path / "b" / "other-name.tar.gz", seed=3, mtime=1_234_567_890, gzip_level=1)
    assert one.read_bytes() != two.read_bytes()
    runtime_layer.main(run_args(one, tmp_path / "out1", fmt))
    runtime_layer.main(run_args(two, tmp_path / "deeper" / "out2", fmt))
    first = (tmp_path / "out1" / f"cpython3_12.{fmt}").read_bytes()
    second = (tmp_path / "deeper" / "out2" / f"cpython3_12.{fmt}").read_bytes()
    assert first == second
    meta1 = json.loads((tmp_path / "out1" / "cpython3_12.json").read_text())
    meta2 = json.loads((tmp_path / "deeper" / "out2" / "cpython3_12.json").read_text())
    assert meta1["source"].pop("sha256") != meta2["source"].pop("sha256")
    assert meta1 == meta2
    for path in (tmp_path / "out1").iterdir():
        assert str(tmp_path).encode() not in _decompressed(path)


def _decompressed(path: Path) -> bytes:
    data = path.read_bytes()
    if path.name.endswith(".zst"):
        return zstandard.ZstdDecompressor().decompress(data)
    if path.name.endswith(".xz"):
        return lzma.decompress(data)
    return data


@pytest.mark.parametrize("compression", ["xz", "zst"])
def test_pack_runtime_reads_other_source_compressions(tmp_path: Path, compression: str) -> None:
    source = make_pbs_archive(tmp_path / "pbs.download", compression=compression)
    assert runtime_layer.main(run_args(source, tmp_path / "out")) == 0
    listing = archive_listing(tmp_path / "out" / "cpython3_12.tar.zst")
    assert listing["cpython3_12/bin/python3"] == ("symlink", 0o777, "python3.12")


def test_pack_runtime_reads_a_param_file(tmp_path: Path) -> None:
    """Bazel's multiline param file, with the empty values a custom local build passes."""
    source = make_pbs_archive(tmp_path / "pbs.tar.gz")
    args = run_args(source, tmp_path / "out", extra=("--pbs-release", "", "--source-sha256", ""))
    params = tmp_path / "args.params"
    params.write_text("\n".join(args) + "\n")
    assert runtime_layer.main([f"@{params}"]) == 0
    assert (tmp_path / "out" / "cpython3_12.tar.zst").is_file()
    metadata = json.loads((tmp_path / "out" / "cpython3_12.json").read_text())
    assert metadata["pbs_release"] == ""
    assert metadata["source"]["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()


def test_pack_runtime_windows_layout(tmp_path: Path) -> None:
    tree: list[tuple[str, str, bytes | str, int]] = [
        ("python.exe", "file", b"MZ", 0o644),
        ("python312.dll", "file", b"MZ dll", 0o644),
        ("Lib/os.py", "file", b"import abc\n", 0o644),
        ("Lib/site-packages/README.txt", "file", b"site\n", 0o644),
    ]
    source = make_pbs_archive(tmp_path / "pbs.tar.gz", tree)
    args = run_args(source, tmp_path / "out", "zip", platform="x86_64-pc-windows-msvc")
    assert runtime_layer.main(args) == 0
    listing = archive_listing(tmp_path / "out" / "cpython3_12.zip")
    config_bytes = listing["cpython3_12/share/venv/metadata/venvstacks_layer.json"][2]
    assert isinstance(config_bytes, bytes)
    config = json.loads(config_bytes)
    assert (config["python"], config["site_dir"]) == ("python.exe", "Lib/site-packages")

    wrong = make_pbs_archive(tmp_path / "wrong.tar.gz", [*tree[:1], *tree[2:], tree[1]])
    args = run_args(
        wrong,
        tmp_path / "out2",
        "zip",
        version="3.13.1",
        layer="cpython3_13",
        platform="x86_64-pc-windows-msvc",
    )
    with pytest.raises(VenvstacksError, match=r"holds Python 3\.12 \('python/python312\.dll'\)"):
        runtime_layer.main(args)


def refusal(source: Path, out: Path, **run_args_overrides: Any) -> str:
    """The message `pack-runtime` fails with on `source`; checks that it wrote nothing to `out`."""
    with pytest.raises(VenvstacksError) as info:
        runtime_layer.main(run_args(source, out, **run_args_overrides))
    assert not out.exists() or list(out.iterdir()) == []
    return str(info.value)


def test_wrong_layout_is_reported_with_top_level_entries(tmp_path: Path) -> None:
    tree: list[tuple[str, str, bytes | str, int]] = [
        ("a/bin/python3", "file", b"", 0o755),
        ("b/lib/python3.12/os.py", "file", b"", 0o644),
        ("c.txt", "file", b"", 0o644),
    ]
    source = make_pbs_archive(tmp_path / "foo.tar.gz", tree, prefix="")
    assert refusal(source, tmp_path / "out") == (
        "runtime layer 'cpython3_12': archive 'foo.tar.gz' does not have the"
        " python-build-standalone install_only layout: expected 'python/bin/python3' and"
        " 'python/lib/python3.12/os.py'; found top-level entries: a/, b/, c.txt"
    )


def test_missing_stdlib_is_a_layout_error(tmp_path: Path) -> None:
    tree = [row for row in PBS_TREE if not row[0].startswith("lib/python3.12/os")]
    source = make_pbs_archive(tmp_path / "foo.tar.gz", tree)
    assert "expected 'python/bin/python3' and 'python/lib" in refusal(source, tmp_path / "out")


def test_version_mismatch_names_expected_and_found(tmp_path: Path) -> None:
    source = make_pbs_archive(tmp_path / "pbs.tar.gz")
    assert refusal(source, tmp_path / "out", layer="cpython3_11", version="3.11.9") == (
        "runtime layer 'cpython3_11': archive 'pbs.tar.gz' holds Python 3.12"
        " ('python/lib/python3.12/'), but --python-version is 3.11.9"
        " (expected 'python/lib/python3.11/')"
    )


def test_member_outside_strip_prefix_is_named(tmp_path: Path) -> None:
    source = make_pbs_archive(tmp_path / "pbs.tar.gz")
    # Add a stray top-level file next to python/.
    raw = gzip.decompress(source.read_bytes())
    buf = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(raw)) as src,
        tarfile.open(fileobj=buf, mode="w") as dst,
    ):
        for m in src.getmembers():
            dst.addfile(m, src.extractfile(m) if m.isfile() else None)
        stray = tarfile.TarInfo("STRAY.txt")
        dst.addfile(stray, io.BytesIO(b""))
    source.write_bytes(gzip.compress(buf.getvalue()))
    assert "'pbs.tar.gz': member 'STRAY.txt' is not under" in refusal(source, tmp_path / "out")


def test_source_sha256_is_checked(tmp_path: Path) -> None:
    source = make_pbs_archive(tmp_path / "pbs.tar.gz")
    good = hashlib.sha256(source.read_bytes()).hexdigest()
    out = tmp_path / "out"
    assert f"'pbs.tar.gz' has sha256 {good}, but" in refusal(source, out, extra=("--source-sha256", "0" * 64))
    assert runtime_layer.main(run_args(source, out, extra=("--source-sha256", good.upper()))) == 0


@pytest.mark.parametrize(
    ("run_args_overrides", "message"),
    [
        ({"layer": "../evil"}, "the layer name must be"),
        ({"version": "3.12"}, "'3.12' is not a full X.Y.Z version"),
        ({"extra": ("--source-sha256", "xyz")}, "'xyz' is not a hex sha256"),
        ({"platform": ""}, "--platform is empty"),
        ({"platform": "sparc-sun-solaris"}, "--platform: 'sparc-sun-solaris' is not the triple of a platform"),
    ],
)
def test_bad_arguments(tmp_path: Path, run_args_overrides: dict[str, Any], message: str) -> None:
    source = make_pbs_archive(tmp_path / "pbs.tar.gz")
    assert message in refusal(source, tmp_path / "out", **run_args_overrides)


def test_parse_request_is_typed_and_frozen(tmp_path: Path) -> None:
    """The command line is parsed once, into a frozen `RuntimePack` holding the target platform."""
    source = tmp_path / "pbs.tar.gz"
    request = runtime_layer.parse_request(
        run_args(source, tmp_path / "out", platform="x86_64-pc-windows-msvc", extra=("--source-sha256", "AB" * 32))
    )
    assert request.platform.name == "windows_x86_64"
    assert (request.major, request.minor, request.python_version) == (3, 12, "3.12.7")
    assert request.source_sha256 == "ab" * 32
    assert request.strip_prefix == "python"
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.layer = "other"  # type: ignore[misc]


def test_cli_reports_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = make_pbs_archive(tmp_path / "pbs.tar.gz")
    code = cli.main(["pack-runtime", *run_args(source, tmp_path / "out", version="3.13.0")])
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("venvstacks: error: runtime layer 'cpython3_12': archive 'pbs.tar.gz'")
    assert err.count("\n") == 1
    assert cli.main(["pack-runtime", *run_args(source, tmp_path / "out")]) == 0


_SITE = "lib/python3.12/site-packages"


def _record(*paths: str) -> bytes:
    return "".join(f"{path},,\n" for path in paths).encode()


# pip and setuptools as PBS bundles them (scripts in bin/, distutils-precedence.pth, a stray
# pyc the RECORD does not list), beside a package the runtime's builder added on purpose.
_TOOLING_TREE: list[tuple[str, str, bytes | str, int]] = [
    *PBS_TREE,
    ("bin/pip3", "file", b"#!/bin/sh\n", 0o755),
    ("bin/pip3.12", "file", b"#!/bin/sh\n", 0o755),
    (f"{_SITE}/pip/__init__.py", "file", b"", 0o644),
    (f"{_SITE}/pip/__pycache__/__init__.cpython-312.pyc", "file", b"pyc", 0o644),
    (
        f"{_SITE}/pip-24.2.dist-info/RECORD",
        "file",
        _record("pip/__init__.py", "../../../bin/pip3", "../../../bin/pip3.12", "pip-24.2.dist-info/RECORD"),
        0o644,
    ),
    (f"{_SITE}/pip-24.2.dist-info/METADATA", "file", b"Name: pip\n", 0o644),
    (f"{_SITE}/setuptools/__init__.py", "file", b"", 0o644),
    (f"{_SITE}/_distutils_hack/__init__.py", "file", b"", 0o644),
    (f"{_SITE}/distutils-precedence.pth", "file", b"import _distutils_hack\n", 0o644),
    (
        f"{_SITE}/setuptools-75.1.0.dist-info/RECORD",
        "file",
        _record("setuptools/__init__.py", "_distutils_hack/__init__.py", "distutils-precedence.pth"),
        0o644,
    ),
    (f"{_SITE}/keepme/__init__.py", "file", b"", 0o644),
    (f"{_SITE}/keepme-1.0.dist-info/RECORD", "file", _record("keepme/__init__.py", "../../../bin/keepme"), 0o644),
    ("bin/keepme", "file", b"#!/bin/sh\n", 0o755),
]


def test_runtime_layer_ships_without_installer_tooling_and_with_postinstall(tmp_path: Path) -> None:
    """As venvstacks ships a runtime: no pip/setuptools/wheel, and the protocol's postinstall.py."""
    source = make_pbs_archive(tmp_path / "pbs.tar.gz", _TOOLING_TREE)
    assert runtime_layer.main(run_args(source, tmp_path / "out")) == 0
    listing = archive_listing(tmp_path / "out" / "cpython3_12.tar.zst")
    left = sorted(name.removeprefix(f"cpython3_12/{_SITE}/") for name in listing if f"/{_SITE}/" in name)
    assert left == [
        "README.txt",
        "keepme",
        "keepme-1.0.dist-info",
        "keepme-1.0.dist-info/RECORD",
        "keepme/__init__.py",
    ]
    assert sorted(name for name in listing if name.startswith("cpython3_12/bin/")) == [
        "cpython3_12/bin/keepme",
        "cpython3_12/bin/python",
        "cpython3_12/bin/python3",
        "cpython3_12/bin/python3.12",
    ]
    template = Path(runtime_layer.postinstall_template.__file__).read_bytes()
    assert listing["cpython3_12/postinstall.py"] == ("file", 0o644, template)


def test_strip_installer_tooling_on_windows_layout() -> None:
    entries = [
        runtime_layer.ArchiveEntry("rt/Scripts/pip.exe", "file", 0o644, data=b"MZ"),
        runtime_layer.ArchiveEntry("rt/Lib/site-packages/wheel/__init__.py", "file", 0o644, data=b""),
        runtime_layer.ArchiveEntry(
            "rt/Lib/site-packages/wheel-0.44.0.dist-info/RECORD",
            "file",
            0o644,
            data=_record("wheel/__init__.py", "..\\..\\Scripts\\wheel.exe", "../../../../outside"),
        ),
        runtime_layer.ArchiveEntry("rt/Scripts/wheel.exe", "file", 0o644, data=b"MZ"),
        runtime_layer.ArchiveEntry("rt/Lib/site-packages/README.txt", "file", 0o644, data=b""),
    ]
    kept, removed = runtime_tooling.strip_installer_tooling(entries, "rt/Lib/site-packages", "rt")
    assert removed == ["wheel"]
    # pip.exe stays: nothing of pip's RECORD is in this archive to say it is pip's.
    assert [entry.name for entry in kept] == ["rt/Scripts/pip.exe", "rt/Lib/site-packages/README.txt"]
    assert runtime_tooling.strip_installer_tooling(kept, "rt/Lib/site-packages", "rt") == (kept, [])


def test_layer_name_is_limited_to_100_characters(tmp_path: Path) -> None:
    source = make_pbs_archive(tmp_path / "pbs.tar.gz")
    message = refusal(source, tmp_path / "out", layer="r" * 101)
    assert "the layer name must be 1 to 100 letters" in message
