"""Tests of `build-layer` (venvstacks_tool.layer_build), on small real wheels built here.

The host interpreter stands in for the layer's runtime: `build-layer` runs in-process, with PyPA's
`installer` from the host environment, and runs the bytecode compiler on `sys.executable`. The
inputs come from tests/support/layer_inputs.py, shared with tests/unit/test_deploy.py.
"""

from __future__ import annotations

import ast
import json
import marshal
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from venvstacks_testing.archives import archive_listing
from venvstacks_testing.layer_inputs import (
    APP_MAIN,
    PLATFORM,
    PY_VERSION,
    SITE,
    XY,
    build,
    build_argv,
    make_app_sources,
    make_appdep_wheel,
    make_fw_wheel,
    metadata_argv,
    sha256,
)
from venvstacks_testing.wheel_index import build_wheel, record_hash
from venvstacks_tool.build import layer as layer_build
from venvstacks_tool.build import layer_metadata, wheel_install
from venvstacks_tool.core import cli, postinstall_template
from venvstacks_tool.core.errors import VenvstacksError

PYC_TAG = sys.implementation.cache_tag


def lower_site_dirs(module: bytes) -> list[str]:
    """The lower site-packages a stacking module (`_venvstacks_stack.py`) adds, as written in it."""
    tree = ast.parse(module)
    for node in tree.body:
        if isinstance(node, ast.Assign) and [ast.unparse(t) for t in node.targets] == ["LOWER_SITE_DIRS"]:
            return list(ast.literal_eval(node.value))
    raise AssertionError("no LOWER_SITE_DIRS in the stacking module")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("inputs")
    return {
        "fw_wheel": make_fw_wheel(root / "wheels"),
        "appdep_wheel": make_appdep_wheel(root / "wheels"),
        "app_files": make_app_sources(root / "src"),
    }


@pytest.fixture(scope="module")
def fw_build(tmp_path_factory: pytest.TempPathFactory, inputs: dict[str, Any]) -> Path:
    out = tmp_path_factory.mktemp("fw")
    build(build_argv(out, "fw", wheels=[inputs["fw_wheel"]]))
    return out


def test_framework_layer_layout(fw_build: Path) -> None:
    listing = archive_listing(fw_build / "fw.tar.zst")
    pyc = f"__pycache__/__init__.{PYC_TAG}.pyc"
    assert sorted(listing) == sorted(
        [
            "fw",
            "fw/bin",
            "fw/bin/fwtool",
            "fw/bin/python",
            "fw/bin/python3",
            f"fw/bin/python{XY}",
            "fw/lib",
            f"fw/lib/python{XY}",
            f"fw/{SITE}",
            f"fw/{SITE}/_venvstacks_stack.pth",
            f"fw/{SITE}/_venvstacks_stack.py",  # no pyc: postinstall.py may rewrite it
            f"fw/{SITE}/fwpkg",
            f"fw/{SITE}/fwpkg/__init__.py",
            f"fw/{SITE}/fwpkg/__pycache__",
            f"fw/{SITE}/fwpkg/{pyc}",
            f"fw/{SITE}/fwpkg/__pycache__/util.{PYC_TAG}.pyc",
            f"fw/{SITE}/fwpkg/py2only.py",  # does not compile: kept, without a pyc
            f"fw/{SITE}/fwpkg/util.py",
            f"fw/{SITE}/fwpkg-1.0.dist-info",
            f"fw/{SITE}/fwpkg-1.0.dist-info/INSTALLER",
            f"fw/{SITE}/fwpkg-1.0.dist-info/METADATA",
            f"fw/{SITE}/fwpkg-1.0.dist-info/RECORD",
            f"fw/{SITE}/fwpkg-1.0.dist-info/REQUESTED",
            f"fw/{SITE}/fwpkg-1.0.dist-info/WHEEL",
            f"fw/{SITE}/fwpkg-1.0.dist-info/entry_points.txt",
            "fw/postinstall.py",
            "fw/share",
            "fw/share/venv",
            "fw/share/venv/metadata",
            "fw/share/venv/metadata/venvstacks_layer.json",
        ]
    )
    # The interpreter links are relative, into the sibling runtime layer.
    for name in ("python", "python3", f"python{XY}"):
        assert listing[f"fw/bin/{name}"] == ("symlink", 0o777, "../../cpython_rt/bin/python3")
    assert listing[f"fw/{SITE}/_venvstacks_stack.pth"][2] == postinstall_template.stack_pth_text().encode()
    assert listing[f"fw/{SITE}/_venvstacks_stack.pth"][2].decode().splitlines()[1:] == ["import _venvstacks_stack"]
    assert lower_site_dirs(listing[f"fw/{SITE}/_venvstacks_stack.py"][2]) == [f"../../../../cpython_rt/{SITE}"]
    assert listing["fw/postinstall.py"] == ("file", 0o644, layer_build.POSTINSTALL_TEMPLATE.read_bytes())
    config_bytes = listing["fw/share/venv/metadata/venvstacks_layer.json"][2]
    assert json.loads(config_bytes) == {
        "base_python": "../cpython_rt/bin/python3",
        "dynlib_dirs": [],
        "install_target": "fw",
        "kind": "framework",
        "layer_name": "fw",
        "lower_layers": [],
        "py_version": PY_VERSION,
        "pylib_dirs": [f"../cpython_rt/{SITE}"],
        "python": "bin/python",
        "python_implementation": "cpython",
        "runtime_name": "cpython_rt",
        "site_dir": SITE,
    }
    # Modes are normalized: only the console script is executable.
    assert listing["fw/bin/fwtool"][1] == 0o755
    assert listing[f"fw/{SITE}/fwpkg/__init__.py"][1] == 0o644
    # Nothing but the outputs is left next to them (the scratch directory is gone).
    assert sorted(p.name for p in fw_build.iterdir()) == [
        "_fw.archive.json",
        "_fw.contents.json",
        "fw.json",
        "fw.tar.zst",
        "pylock.fw.toml",
    ]


def test_console_script_is_relocatable_and_record_matches(fw_build: Path) -> None:
    listing = archive_listing(fw_build / "fw.tar.zst")
    script = listing["fw/bin/fwtool"][2]
    assert script.startswith(wheel_install.RELOCATABLE_SHEBANG)
    assert b"from fwpkg import main" in script
    assert os.fsencode(sys.executable) not in script
    # direct_url.json (the sandbox file:// URL of the wheel) is gone, and RECORD is consistent.
    record = listing[f"fw/{SITE}/fwpkg-1.0.dist-info/RECORD"][2].decode()
    assert "direct_url.json" not in record
    rows = [line.split(",") for line in record.splitlines() if line]
    checked = set()
    for path, digest, size in rows:
        member = os.path.normpath(f"fw/{SITE}/{path}")
        if not digest:
            assert path.endswith("RECORD")
            continue
        data = listing[member][2]
        assert (digest, int(size)) == (record_hash(data), len(data)), path
        checked.add(path)
    assert {"../../../bin/fwtool", "fwpkg/__init__.py", "fwpkg-1.0.dist-info/entry_points.txt"} <= checked


def test_bytecode_is_relative_and_unchecked_hash(fw_build: Path) -> None:
    listing = archive_listing(fw_build / "fw.tar.zst")
    data = listing[f"fw/{SITE}/fwpkg/__pycache__/__init__.{PYC_TAG}.pyc"][2]
    flags = int.from_bytes(data[4:8], "little")
    assert flags == 0b01  # hash-based, not checked against the source
    code = marshal.loads(data[16:])
    assert code.co_filename == f"fw/{SITE}/fwpkg/__init__.py"
    # The scratch directory was inside the output directory: no file mentions either.
    for name, (kind, _, content) in listing.items():
        if kind == "file":
            assert os.fsencode(fw_build.parent) not in content and b".fw.build-" not in content, name


def test_metadata(fw_build: Path) -> None:
    text = (fw_build / "fw.json").read_text()
    metadata = json.loads(text)
    assert text == json.dumps(metadata, indent=2, sort_keys=True) + "\n"
    archive = fw_build / "fw.tar.zst"
    assert metadata == {
        "archive": {
            "file": "fw.tar.zst",
            "format": "tar.zst",
            "sha256": sha256(archive),
            "size": archive.stat().st_size,
        },
        "kind": "framework",
        "launch_module": None,
        "layer_name": "fw",
        "lock_hash": "sha256:" + sha256(fw_build / "pylock.fw.toml"),
        "platform": PLATFORM,
        "python_version": PY_VERSION,
        "required_layers": [],
    }


def test_application_layer(tmp_path: Path, inputs: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    required = {"cpython_rt": "a" * 64, "fw_b": "b" * 64, "fw_a": "c" * 64}
    build(
        build_argv(
            out,
            "app",
            kind="application",
            wheels=[inputs["appdep_wheel"]],
            lower=("fw_b", "fw_a"),
            app_files=inputs["app_files"],
            launch_module="myapp",
            fmt="zip",
        ),
        required=required,
    )
    assert capsys.readouterr().out == (
        "built application layer 'app' for linux_x86_64: 1 wheel(s), 2 app file(s)\n"
        "wrote the metadata of application layer 'app'\n"
    )
    listing = archive_listing(out / "app.zip")
    assert listing[f"app/{SITE}/myapp/__main__.py"] == ("file", 0o644, APP_MAIN)
    assert f"app/{SITE}/myapp/__pycache__/__main__.{PYC_TAG}.pyc" in listing
    assert listing["app/bin/apptool"][2].startswith(wheel_install.RELOCATABLE_SHEBANG)
    # Lower frameworks in the given order, then the runtime.
    assert lower_site_dirs(listing[f"app/{SITE}/_venvstacks_stack.py"][2]) == [
        f"../../../../fw_b/{SITE}",
        f"../../../../fw_a/{SITE}",
        f"../../../../cpython_rt/{SITE}",
    ]
    config = json.loads(listing["app/share/venv/metadata/venvstacks_layer.json"][2])
    assert config["launch_module"] == "myapp"
    assert config["kind"] == "application"
    assert config["lower_layers"] == ["fw_b", "fw_a"]
    assert config["pylib_dirs"] == [f"../fw_b/{SITE}", f"../fw_a/{SITE}", f"../cpython_rt/{SITE}"]
    metadata = json.loads((out / "app.json").read_text())
    assert metadata["launch_module"] == "myapp"
    assert metadata["kind"] == "application"
    assert metadata["required_layers"] == [{"name": n, "archive_sha256": d} for n, d in required.items()]


def _pycs(listing: dict[str, tuple[str, int, Any]]) -> dict[str, bytes]:
    return {name: content for name, (_, _, content) in listing.items() if name.endswith(".pyc")}


def test_rebuild_is_byte_identical(tmp_path: Path, inputs: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Different scratch/output dir, TMPDIR, cwd, umask, input paths, mtimes and modes: same bytes."""
    runs = []
    for i, (umask, tmpdir_name) in enumerate([(0o022, "tmp-a"), (0o077, "tmp-bb")]):
        run_dir = tmp_path / f"run{i}" / ("deeper" * i)
        wheels_dir = run_dir / "wheels"
        wheels_dir.mkdir(parents=True)
        wheel = wheels_dir / inputs["fw_wheel"].name
        shutil.copyfile(inputs["fw_wheel"], wheel)
        sources = make_app_sources(run_dir / "src")
        for path in [wheel, *sources.values()]:
            os.chmod(path, 0o600 if i else 0o664)
            os.utime(path, (1_000_000 * (i + 1), 1_000_000 * (i + 1)))
        tmpdir = tmp_path / tmpdir_name
        tmpdir.mkdir()
        monkeypatch.setenv("TMPDIR", str(tmpdir))
        monkeypatch.chdir(run_dir)
        out = run_dir / "out"
        argv = build_argv(
            out,
            "app",
            kind="application",
            wheels=[wheel],
            lower=("fw",),
            app_files=sources,
            launch_module="myapp",
        )
        old_umask = os.umask(umask)
        try:
            build(argv)
        finally:
            os.umask(old_umask)
        runs.append(out)
    first, second = ((out / "app.tar.zst").read_bytes() for out in runs)
    assert first == second
    assert (runs[0] / "app.json").read_bytes() == (runs[1] / "app.json").read_bytes()
    pycs = _pycs(archive_listing(runs[0] / "app.tar.zst"))
    assert len(pycs) == 4  # fwpkg/__init__, fwpkg/util, myapp/__init__, myapp/__main__
    assert pycs == _pycs(archive_listing(runs[1] / "app.tar.zst"))


def test_bytecode_none(tmp_path: Path, inputs: dict[str, Any]) -> None:
    build(build_argv(tmp_path, "fw", wheels=[inputs["fw_wheel"]], bytecode="none", fmt="tar.xz"))
    listing = archive_listing(tmp_path / "fw.tar.xz")
    assert f"fw/{SITE}/fwpkg/__init__.py" in listing
    assert not [name for name in listing if "__pycache__" in name]


def test_hash_mismatch_names_the_wheel(
    tmp_path: Path, inputs: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = build_argv(tmp_path, "fw")
    argv += ["--wheel", f"{inputs['fw_wheel']}={'0' * 64}"]
    assert cli.main(["build-layer", *argv]) == 1
    err = capsys.readouterr().err
    assert "fwpkg-1.0-py3-none-any.whl" in err
    assert "0" * 64 in err
    assert not (tmp_path / "fw.tar.zst").exists()


def test_a_wheel_that_is_not_a_zip_is_named(tmp_path: Path) -> None:
    wheel = tmp_path / "wheels" / "broken-1.0-py3-none-any.whl"
    wheel.parent.mkdir()
    wheel.write_bytes(b"not a zip file")
    request = layer_build.parse_request(build_argv(tmp_path, "fw", wheels=[wheel]))
    with pytest.raises(VenvstacksError, match=r"layer 'fw': wheel 'broken-1\.0-py3-none-any\.whl' cannot be installed"):
        layer_build.build_layer(request)
    assert not (tmp_path / "fw.tar.zst").exists()


def test_a_wheel_member_outside_its_scheme_is_refused(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path / "wheels", "escape", "1.0", files={"escape/__init__.py": b"", "../../evil.py": b""})
    request = layer_build.parse_request(build_argv(tmp_path, "fw", wheels=[wheel]))
    with pytest.raises(VenvstacksError, match=r"wheel 'escape-1\.0-py3-none-any\.whl' cannot be installed.*outside"):
        layer_build.build_layer(request)
    assert not list(tmp_path.rglob("evil.py"))


def test_a_later_wheel_replaces_a_file_and_its_pyc_follows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """As with pip, the later wheel's file wins, and the build says so; the bytecode is that of the final file."""
    wheels_dir = tmp_path / "wheels"
    first = build_wheel(wheels_dir, "ns_a", "1.0", files={"ns/__init__.py": b"WHO = 'a'\n", "ns/a.py": b""})
    second = build_wheel(wheels_dir, "ns_b", "1.0", files={"ns/__init__.py": b"WHO = 'b'\n", "ns/b.py": b""})
    build(build_argv(tmp_path, "fw", wheels=[first, second]))
    out = capsys.readouterr().out
    assert "1 file(s) installed by two wheels; the later wheel's copy is kept:" in out
    assert f"{SITE}/ns/__init__.py (ns_a-1.0-py3-none-any.whl -> ns_b-1.0-py3-none-any.whl)" in out
    listing = archive_listing(tmp_path / "fw.tar.zst")
    assert listing[f"fw/{SITE}/ns/__init__.py"][2] == b"WHO = 'b'\n"
    pyc = listing[f"fw/{SITE}/ns/__pycache__/__init__.{PYC_TAG}.pyc"][2]
    namespace: dict[str, Any] = {}
    exec(marshal.loads(pyc[16:]), namespace)
    assert namespace["WHO"] == "b"


@pytest.mark.filterwarnings("error")  # installer's RuntimeWarning would fail the test
def test_pycache_files_of_a_wheel_are_left_out_and_only_unusual_ones_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """As numpy's wheels ship `numpy/distutils/__pycache__/`: no sandbox path, no warning for bytecode."""
    stale = "pkg/distutils/__pycache__/conv.cpython-39.pyc"
    odd = "odd/__pycache__/notes.txt"
    wheels_dir = tmp_path / "wheels"
    quiet = build_wheel(wheels_dir, "pkg", "1.0", files={"pkg/__init__.py": b"", stale: b"\0" * 16})
    loud = build_wheel(wheels_dir, "odd", "1.0", files={"odd/__init__.py": b"", odd: b"x"})
    build(build_argv(tmp_path, "fw", wheels=[quiet, loud]))
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f"venvstacks: layer 'fw': wheel 'odd-1.0-py3-none-any.whl': not installed, in a __pycache__ directory: {odd}"
    ]
    listing = archive_listing(tmp_path / "fw.tar.zst")
    assert f"fw/{SITE}/pkg/__init__.py" in listing
    assert not [name for name in listing if name.endswith(("conv.cpython-39.pyc", "notes.txt"))]


def test_build_machine_path_is_refused(tmp_path: Path) -> None:
    """A wheel built in the same build (--local-wheel) is scanned for the build's paths."""
    wheels_dir = tmp_path / "wheels"
    wheel_path = wheels_dir / "leaky-1.0-py3-none-any.whl"
    build_wheel(
        wheels_dir, "leaky", "1.0", files={"leaky/__init__.py": b"", "leaky/where.txt": os.fsencode(wheel_path)}
    )
    argv = build_argv(tmp_path, "fw", extra=("--local-wheel", str(wheel_path)))
    with pytest.raises(VenvstacksError) as info:
        layer_build.build_layer(layer_build.parse_request(argv))
    message = str(info.value)
    assert f"'fw/{SITE}/leaky/where.txt'" in message
    assert "leaky-1.0-py3-none-any.whl" in message
    assert not (tmp_path / "fw.tar.zst").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".fw.build-")]


def test_a_locked_wheels_own_bytes_are_not_scanned(tmp_path: Path) -> None:
    """A locked wheel's bytes were pinned before the build, so they cannot hold its paths."""
    wheels_dir = tmp_path / "wheels"
    wheel_path = wheels_dir / "fixed-1.0-py3-none-any.whl"
    build_wheel(
        wheels_dir, "fixed", "1.0", files={"fixed/__init__.py": b"", "fixed/where.txt": os.fsencode(wheel_path)}
    )
    build(build_argv(tmp_path, "fw", wheels=[wheel_path]))
    assert f"fw/{SITE}/fixed/where.txt" in archive_listing(tmp_path / "fw.tar.zst")


def test_app_file_clashing_with_a_wheel_file(tmp_path: Path, inputs: dict[str, Any]) -> None:
    source = tmp_path / "init.py"
    source.write_bytes(b"")
    argv = build_argv(
        tmp_path,
        "app",
        kind="application",
        wheels=[inputs["fw_wheel"]],
        app_files={"fwpkg/__init__.py": source},
        launch_module="fwpkg",
    )
    # Refused before any file is copied, naming the first-party code and the locked package.
    with pytest.raises(
        VenvstacksError, match=r"the first-party package 'fwpkg' \('fwpkg', from the application's srcs\)"
    ):
        layer_build.build_layer(layer_build.parse_request(argv))


def test_a_framework_holds_first_party_files_compiled_and_named_by_their_library(
    tmp_path: Path, inputs: dict[str, Any]
) -> None:
    """`deps` files of a framework: copied where the rule says, compiled, owned by their library."""
    source = tmp_path / "mylib_init.py"
    source.write_bytes(b"GREETING = 'hi'\n")
    data = tmp_path / "greeting.txt"
    data.write_bytes(b"hello\n")
    files = {"mylib/__init__.py": source, "mylib/resources/greeting.txt": data}
    argv = build_argv(tmp_path, "fw", wheels=[inputs["fw_wheel"]], app_files=files)
    build([*argv, "--app-owner", "mylib=//libs/mylib:mylib"])
    listing = archive_listing(tmp_path / "fw.tar.zst")
    assert listing[f"fw/{SITE}/mylib/__init__.py"][2] == b"GREETING = 'hi'\n"
    assert listing[f"fw/{SITE}/mylib/resources/greeting.txt"][2] == b"hello\n"
    assert f"fw/{SITE}/mylib/__pycache__/__init__.{PYC_TAG}.pyc" in listing
    contents = json.loads((tmp_path / "_fw.contents.json").read_text())
    assert contents["names"]["mylib"] == {
        "first_party": True,
        "kind": "package",
        "owner": "//libs/mylib:mylib",
        "path": f"fw/{SITE}/mylib/__init__.py",
    }
    assert contents["names"]["fwpkg"]["first_party"] is False


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"launch_module": "myapp"}, "--launch-module is only for application layers"),
        ({"kind": "application"}, "--launch-module is required"),
        ({"kind": "application", "launch_module": "my-app"}, "not a dotted module name"),
        ({"lower": ("fw_a", "fw_a")}, "--lower-layer 'fw_a' is also an earlier --lower-layer"),
        ({"lower": ("cpython_rt",)}, "is also the runtime layer"),
        ({"lower": ("../x",)}, "--lower-layer '../x' must be"),
        ({"extra": ("--python-version", "2.7.18")}, "the tool runs on Python"),
        ({"extra": ("--python-version", "3.12")}, "is not a full X.Y.Z version"),
        ({"extra": ("--wheel", "pkg.tar.gz=" + "0" * 64)}, "is not a .whl file"),
        ({"extra": ("--wheel", "pkg.whl=xyz")}, "is not a hex sha256"),
        ({"extra": ("--platform", "sparc-sun-solaris")}, "'sparc-sun-solaris' is not the triple of a platform"),
        ({"extra": ("--mtime", "-1")}, "--mtime must not be negative"),
    ],
)
def test_argument_errors(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    argv = build_argv(tmp_path, "fw", **change)
    with pytest.raises(VenvstacksError, match=message.replace(".", r"\.").replace("(", r"\(")):
        layer_build.build_layer(layer_build.parse_request(argv))


@pytest.mark.parametrize("dest", ["../evil.py", "/abs.py", "a/./b.py", "a//b.py", "a/../b.py"])
def test_app_file_destination_must_stay_in_site_packages(tmp_path: Path, dest: str) -> None:
    source = tmp_path / "x.py"
    source.write_bytes(b"")
    argv = build_argv(tmp_path, "app", kind="application", launch_module="x", app_files={dest: source})
    with pytest.raises(VenvstacksError, match="must be a relative path inside site-packages"):
        layer_build.build_layer(layer_build.parse_request(argv))


def _script(header: bytes) -> bytes:
    return header + b"# -*- coding: utf-8 -*-\nimport sys\nfrom pkg import main\nsys.exit(main())\n"


def test_relocatable_script_forms() -> None:
    """The placeholder header `installer` writes (with or without arguments) is replaced; others are kept."""
    placeholder = os.fsencode(wheel_install.SCRIPT_INTERPRETER)
    cases = [
        (b"#!" + placeholder + b"\n", True),
        (b"#!" + placeholder + b" -E\n", True),
        (b"#!/usr/bin/env python3\n", False),
        (b"#!/bin/sh\n", False),
        (b"#!/some/other/python\n", False),
    ]
    for header, rewritten in cases:
        expected = _script(wheel_install.RELOCATABLE_SHEBANG) if rewritten else _script(header)
        assert wheel_install.relocatable_script(_script(header)) == expected, header
    assert wheel_install.relocatable_script(b"\x7fELF binary") == b"\x7fELF binary"


def test_postinstall_template_stack_module_matches_config() -> None:
    config = {"site_dir": SITE, "pylib_dirs": [f"../a/{SITE}", f"../rt/{SITE}"]}
    assert lower_site_dirs(postinstall_template.stack_module_text(config).encode()) == [
        f"../../../../a/{SITE}",
        f"../../../../rt/{SITE}",
    ]


@pytest.mark.parametrize("fmt", ["tar.xz", "zip"])
def test_other_formats_hold_the_same_tree(tmp_path: Path, fw_build: Path, inputs: dict[str, Any], fmt: str) -> None:
    build(build_argv(tmp_path, "fw", wheels=[inputs["fw_wheel"]], fmt=fmt))
    assert archive_listing(tmp_path / f"fw.{fmt}") == archive_listing(fw_build / "fw.tar.zst")


def _app_on_fw(tmp_path: Path) -> tuple[Path, list[str]]:
    """An application layer on `fw` built into tmp_path/out; (out, its `layer-metadata` arguments)."""
    out = tmp_path / "out"
    source = tmp_path / "main.py"
    source.write_bytes(b"print('hi')\n")
    argv = build_argv(
        out, "app", kind="application", lower=("fw",), app_files={"main.py": source}, launch_module="main"
    )
    build(argv)
    return out, metadata_argv(argv)


def test_metadata_action_writes_the_run_key_run_key_would(tmp_path: Path, fw_build: Path) -> None:
    """`--run-key-output`: the `bazel run` key of the stack below and including the layer, the
    very bytes the `run-key` subcommand writes from the same records in deployment order."""
    _, metadata_args = _app_on_fw(tmp_path)
    own = metadata_args[metadata_args.index("--archive-record") + 1]
    lower = str(fw_build / "_fw.archive.json")
    key = tmp_path / "metadata.run_key"
    assert cli.main(["layer-metadata", *metadata_args, "--lower-record", lower, "--run-key-output", str(key)]) == 0
    expected = tmp_path / "run-key.run_key"
    assert cli.main(["run-key", "--layer", "app", "--record", lower, "--record", own, "--output", str(expected)]) == 0
    assert key.read_bytes() == expected.read_bytes() and len(key.read_text().strip()) == 32


def test_metadata_records_the_packages_built_from_sdists(tmp_path: Path, fw_build: Path) -> None:
    """`--built-from-sdist NAME=SHA256` (build_from_sdist): listed in the metadata, sorted; absent without one."""
    out, metadata_args = _app_on_fw(tmp_path)
    lower = ["--lower-record", str(fw_build / "_fw.archive.json")]
    assert cli.main(["layer-metadata", *metadata_args, *lower]) == 0
    assert "built_from_sdists" not in json.loads((out / "app.json").read_text())
    built = ["--built-from-sdist", f"docopt={'d' * 64}", "--built-from-sdist", f"attrs={'a' * 64}"]
    assert cli.main(["layer-metadata", *metadata_args, *lower, *built]) == 0
    assert json.loads((out / "app.json").read_text())["built_from_sdists"] == [
        {"name": "attrs", "sdist_sha256": "a" * 64},
        {"name": "docopt", "sdist_sha256": "d" * 64},
    ]


def test_metadata_records_the_lock_and_the_lower_layers(tmp_path: Path, fw_build: Path) -> None:
    """`layer-metadata` as the Bazel rule runs it: the lock file's sha256, the lower layers' records."""
    out, metadata_args = _app_on_fw(tmp_path)
    lock = Path(metadata_args[metadata_args.index("--lock-file") + 1])
    assert cli.main(["layer-metadata", *metadata_args, "--lower-record", str(fw_build / "_fw.archive.json")]) == 0
    metadata = json.loads((out / "app.json").read_text())
    assert metadata["lock_hash"] == "sha256:" + sha256(lock)
    assert metadata["required_layers"] == [{"name": "fw", "archive_sha256": sha256(fw_build / "fw.tar.zst")}]
    # venvstacks' schema beside it: the launch module's hash from the application's own files.
    published = out / "__venvstacks__/linux_x86_64/env_metadata/app.json"
    published_args = ["--published-metadata", str(published), "--runtime-layer", "fw", "--source-date-epoch", "0"]
    assert (
        cli.main(
            [
                "layer-metadata",
                *metadata_args,
                "--lower-record",
                str(fw_build / "_fw.archive.json"),
                *published_args,
                "--app-file",
                f"main.py={tmp_path / 'main.py'}",  # the application's file, as _app_on_fw wrote it
            ]
        )
        == 0
    )
    venvstacks = json.loads(published.read_text())
    assert venvstacks["requirements_hash"] == metadata["lock_hash"]
    assert venvstacks["archive_hashes"] == {"sha256": metadata["archive"]["sha256"]}
    assert venvstacks["locked_at"] == "1970-01-01T00:00:00+00:00"
    assert venvstacks["app_launch_module_hash"].startswith("sha256:")
    assert venvstacks["required_layers"] == []  # its one lower layer was named its runtime here
    # A lower layer's metadata serves as well as its record (the runtime layer's metadata is its record).
    assert cli.main(["layer-metadata", *metadata_args, "--lower-record", str(fw_build / "fw.json")]) == 0
    assert json.loads((out / "app.json").read_text()) == metadata

    def metadata_error(*extra: str) -> str:
        with pytest.raises(VenvstacksError) as info:
            layer_metadata.write_layer_metadata(layer_metadata.parse_request([*metadata_args, *extra]))
        return str(info.value)

    assert "is not an archive record" in metadata_error("--lower-record", str(lock))
    assert "--launch-module is only for application layers" in metadata_error("--layer-kind", "framework")
    other = tmp_path / "other.json"
    other.write_text((fw_build / "_fw.archive.json").read_text())
    assert "is layer 'fw''s" in metadata_error("--archive-record", str(other))
    assert "is not an archive record" in metadata_error("--archive-record", str(lock))
    assert "are one file" in metadata_error("--output", metadata_args[metadata_args.index("--archive-record") + 1])
    assert "needs --runtime-layer" in metadata_error("--published-metadata", str(published))
    assert "is not among the lower records" in metadata_error(
        *published_args[:2], "--runtime-layer", "rt", "--source-date-epoch", "0"
    )
    assert "given twice" in metadata_error(
        "--lower-record", str(fw_build / "fw.json"), "--lower-record", str(fw_build / "fw.json")
    )


def test_data_directory_schemes(tmp_path: Path) -> None:
    """`.data/{scripts,headers,data,purelib}` land where pip's `--prefix` install puts them."""
    data = "datapkg-1.0.data"
    wheel = build_wheel(
        tmp_path / "wheels",
        "datapkg",
        "1.0",
        files={
            "datapkg/__init__.py": b"",
            f"{data}/scripts/datatool": b"#!python\nprint('hi')\n",
            f"{data}/headers/datapkg.h": b"/* header */\n",
            f"{data}/data/share/datapkg/notes.txt": b"notes\n",
            f"{data}/purelib/datapkg_extra.py": b"EXTRA = 1\n",
        },
    )
    build(build_argv(tmp_path, "fw", wheels=[wheel]))
    listing = archive_listing(tmp_path / "fw.tar.zst")
    assert listing["fw/bin/datatool"][2] == wheel_install.RELOCATABLE_SHEBANG + b"print('hi')\n"
    assert listing["fw/bin/datatool"][1] & 0o111
    assert listing[f"fw/include/python{XY}/datapkg/datapkg.h"][2] == b"/* header */\n"
    assert listing["fw/share/datapkg/notes.txt"][2] == b"notes\n"
    assert f"fw/{SITE}/__pycache__/datapkg_extra.{PYC_TAG}.pyc" in listing
    record = listing[f"fw/{SITE}/datapkg-1.0.dist-info/RECORD"][2].decode()
    assert f"../../../include/python{XY}/datapkg/datapkg.h," in record
    assert listing[f"fw/{SITE}/datapkg-1.0.dist-info/INSTALLER"][2] == b"venvstacks\n"


def test_archive_record_and_no_metadata(tmp_path: Path, fw_build: Path, inputs: dict[str, Any]) -> None:
    """`build-layer` writes the archive, its record and its contents only; the record matches the archive."""
    archive_only = tmp_path / "archive-only"
    argv = build_argv(archive_only, "fw", wheels=[inputs["fw_wheel"]])
    assert cli.main(["build-layer", *argv]) == 0
    assert sorted(p.name for p in archive_only.iterdir()) == ["_fw.archive.json", "_fw.contents.json", "fw.tar.zst"]
    archive = archive_only / "fw.tar.zst"
    assert archive.read_bytes() == (fw_build / "fw.tar.zst").read_bytes()
    expected = json.loads((fw_build / "fw.json").read_text())
    assert json.loads((archive_only / "_fw.archive.json").read_text()) == {
        "archive": expected["archive"],
        "layer_name": "fw",
    }
    same = [*argv, "--archive-record", str(archive)]
    with pytest.raises(VenvstacksError, match="must be different files"):
        layer_build.build_layer(layer_build.parse_request(same))


def test_a_launch_module_missing_from_the_layer_fails_the_build(tmp_path: Path, inputs: dict[str, Any]) -> None:
    argv = build_argv(tmp_path, "app", kind="application", app_files=inputs["app_files"], launch_module="myapp.nothere")
    with pytest.raises(VenvstacksError, match=r"launch_module 'myapp\.nothere' is in none of its srcs"):
        layer_build.build_layer(layer_build.parse_request(argv))


def test_a_module_and_a_package_of_one_name_fail_the_build(tmp_path: Path, inputs: dict[str, Any]) -> None:
    module = tmp_path / "src" / "myapp.py"
    module.parent.mkdir(parents=True)
    module.write_bytes(b"")
    files = {**inputs["app_files"], "myapp.py": module}
    argv = build_argv(tmp_path, "app", kind="application", app_files=files, launch_module="myapp")
    with pytest.raises(VenvstacksError, match=r"myapp\.py and the package myapp/ .* shadow each other"):
        layer_build.build_layer(layer_build.parse_request(argv))


def test_a_dist_info_vendored_inside_a_package_is_fine(tmp_path: Path) -> None:
    """setuptools ships `setuptools/_vendor/<name>.dist-info`: inside site-packages, not a stray install."""
    wheel = build_wheel(
        tmp_path / "wheels",
        "vendoring",
        "1.0",
        files={
            "vendoring/__init__.py": b"",
            "vendoring/_vendor/inner-2.0.dist-info/METADATA": b"Name: inner\nVersion: 2.0\n",
        },
    )
    build(build_argv(tmp_path, "fw", wheels=[wheel]))
    listing = archive_listing(tmp_path / "fw.tar.zst")
    assert f"fw/{SITE}/vendoring/_vendor/inner-2.0.dist-info/METADATA" in listing
