"""Cross-building: `build-layer` and `pack-runtime` for every target platform on this one machine.

The host interpreter runs the tool, as a Bazel action on the execution platform does; the target
(`--platform`) decides the layout. Wheels are built here per target (a platform-tagged one whose
extension module carries the target's suffix - fake bytes, nothing loads it), runtimes come from
tests/support/fixture_pbs.py (the real PBS layout of each platform, fake contents).
"""

from __future__ import annotations

import ast
import gzip
import importlib.machinery
import io
import json
import marshal
import platform
import sys
import tarfile
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

from venvstacks_testing.archives import archive_listing
from venvstacks_testing.fixture_pbs import (
    FIXTURE_MTIME,
    FixtureRuntime,
    fixture_runtime_bytes,
    launcher_bytes,
    make_fixture_runtime,
    windows_venv_launchers,
)
from venvstacks_testing.layer_inputs import MTIME, PY_VERSION, XY, build, build_argv, sha256
from venvstacks_testing.wheel_index import build_wheel, record_hash
from venvstacks_tool.build import layer as layer_build
from venvstacks_tool.build import runtime as runtime_layer
from venvstacks_tool.build import wheel_install
from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.core.platforms import PLATFORMS, TargetPlatform, by_name

PYC_TAG = sys.implementation.cache_tag
RUNTIME = "cpython_rt"
PURE_INIT = b"VALUE = 'pure'\n\n\ndef main():\n    print('puretool', VALUE)\n"
PURE_UTIL = b"def triple(x):\n    return 3 * x\n"
AUX_SCRIPT = b"#!python\nprint('pureaux')\n"
# The sha256 of the linux_x86_64 3.11.14 fixture runtime, the same on every machine: a change to
# fixture_pbs.py that moves it moves every copy pinned in a test workspace too.
PINNED_FIXTURE_SHA256 = "892adb08afba3f3c9fd3afd422a96e28d3f972012128d4a3b4e298ac1814cdbd"


def _host_platform() -> TargetPlatform | None:
    """The target platform this machine is, if it is one (`platform.machine()` is what TargetPlatform records)."""
    os_name = {"linux": "linux", "darwin": "macos", "win32": "windows"}.get(sys.platform)
    return next((p for p in PLATFORMS if p.os == os_name and p.machine == platform.machine()), None)


HOST = _host_platform()
FOREIGN = [p for p in PLATFORMS if p != HOST]
FOREIGN_IDS = [p.name for p in FOREIGN]
# The suffix this interpreter's own extension modules carry (`.cpython-311-x86_64-linux-gnu.so`).
HOST_SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]


def _wheel_tag(target: TargetPlatform) -> str:
    """A CPython wheel tag for `target`: its interpreter's ABI and its most specific platform tag."""
    cp = "cp" + XY.replace(".", "")
    return f"{cp}-{cp}-{target.platform_tags()[0]}"


def _ext_suffix(target: TargetPlatform) -> str:
    return target.extension_suffixes(XY)[0]


def make_pure_wheel(directory: Path) -> Path:
    """`purepkg` 1.0: a console and a GUI entry point, a `.data/scripts` script, a header and a data file."""
    data = "purepkg-1.0.data"
    return build_wheel(
        directory,
        "purepkg",
        "1.0",
        files={
            "purepkg/__init__.py": PURE_INIT,
            "purepkg/util.py": PURE_UTIL,
            f"{data}/scripts/pureaux": AUX_SCRIPT,
            f"{data}/headers/purepkg.h": b"/* purepkg */\n",
            f"{data}/data/share/purepkg/notes.txt": b"notes\n",
            # Written by hand (not `console_scripts=`) to hold a gui_scripts section too.
            "purepkg-1.0.dist-info/entry_points.txt": (
                b"[console_scripts]\npuretool = purepkg:main\n\n[gui_scripts]\npuregui = purepkg:main\n"
            ),
        },
    )


def make_ext_wheel(directory: Path, target: TargetPlatform) -> Path:
    """`speedups` 1.0 for `target`: tagged for it, with an extension module named with its suffix."""
    return build_wheel(
        directory,
        "speedups",
        "1.0",
        tag=_wheel_tag(target),
        files={
            "speedups/__init__.py": b"from speedups._speed import *  # noqa: F403\n",
            f"speedups/_speed{_ext_suffix(target)}": f"fake extension for {target.triple}\n".encode(),
        },
    )


def extract_launchers(runtime: FixtureRuntime, directory: Path) -> dict[str, Path]:
    """The fixture Windows runtime's venv launchers, as the runtime repository exposes them: venv name -> file."""
    directory.mkdir(parents=True, exist_ok=True)
    result = {}
    with tarfile.open(runtime.path) as tar:
        for name, source in windows_venv_launchers(runtime.python_version).items():
            member = tar.extractfile(f"python/Lib/venv/scripts/nt/{source}")
            assert member is not None
            path = directory / source
            path.write_bytes(member.read())
            result[name] = path
    return result


def cross_argv(out: Path, target: TargetPlatform, wheels: list[Path], launchers: dict[str, Path] | None) -> list[str]:
    """`build-layer` arguments for framework layer `fw` of `target` (a zip on Windows, as its users unpack)."""
    extra: list[str] = []
    for name, path in (launchers or {}).items():
        extra += ["--venv-launcher", f"{name}={path}"]
    fmt = "zip" if target.os == "windows" else "tar.zst"
    argv = build_argv(out, "fw", runtime=RUNTIME, wheels=wheels, fmt=fmt, extra=tuple(extra))
    # Replaced in place, not appended: `layer_inputs.metadata_argv` reads an option's first value.
    argv[argv.index("--platform") + 1] = target.triple
    return argv


def _archive(out: Path) -> Path:
    """The `fw` layer archive in `out` (a zip for Windows, a .tar.zst otherwise)."""
    return next(p for p in out.iterdir() if p.name in ("fw.zip", "fw.tar.zst"))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("cross-inputs")
    windows = by_name("windows_x86_64")
    runtime = make_fixture_runtime(root / "runtimes", windows, PY_VERSION)
    return {
        "root": root,
        "pure": make_pure_wheel(root / "wheels"),
        "ext": {p.name: make_ext_wheel(root / "wheels" / p.name, p) for p in PLATFORMS},
        "launchers": extract_launchers(runtime, root / "launchers"),
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, inputs: dict[str, Any]) -> dict[str, Path]:
    """Target name -> the output directory of its `fw` layer (archive, record, metadata)."""
    result = {}
    for target in FOREIGN:
        out = tmp_path_factory.mktemp(f"fw-{target.name}")
        launchers = inputs["launchers"] if target.os == "windows" else None
        build(cross_argv(out, target, [inputs["pure"], inputs["ext"][target.name]], launchers))
        result[target.name] = out
    return result


def _launcher_parts(data: bytes) -> tuple[bytes, zipfile.ZipFile]:
    """The `#!` line of a Windows entry-point launcher and the zip appended to it."""
    archive = zipfile.ZipFile(io.BytesIO(data))
    start = min(info.header_offset for info in archive.infolist())
    shebang_start = data.rindex(b"#!", 0, start)
    return data[shebang_start:start], archive


@pytest.mark.parametrize("target", FOREIGN, ids=FOREIGN_IDS)
def test_layer_layout(built: dict[str, Path], target: TargetPlatform) -> None:
    listing = archive_listing(_archive(built[target.name]))
    site = f"fw/{target.site_packages(XY)}"
    scripts = f"fw/{target.scripts_dir}"
    assert listing[f"{site}/purepkg/__init__.py"] == ("file", 0o644, PURE_INIT)
    assert f"{site}/speedups/_speed{_ext_suffix(target)}" in listing
    assert f"{site}/purepkg/__pycache__/util.{PYC_TAG}.pyc" in listing
    # Nothing in the other layout's places.
    other_scripts = "fw/bin" if target.os == "windows" else "fw/Scripts"
    assert not [name for name in listing if name == other_scripts or name.startswith(other_scripts + "/")]
    if target.os == "windows":
        assert not [name for name in listing if name.startswith("fw/lib/")]
        for name, shebang in (("puretool", b"#!python.exe\n"), ("puregui", b"#!pythonw.exe\n")):
            kind, mode, data = listing[f"{scripts}/{name}.exe"]
            assert (kind, mode) == ("file", 0o755)
            assert data.startswith(b"MZ")  # installer's win-amd64 launcher stub
            header, archive = _launcher_parts(data)
            assert header == shebang
            assert archive.namelist() == ["__main__.py"]
            assert b"from purepkg import main" in archive.read("__main__.py")
            assert archive.getinfo("__main__.py").date_time == wheel_install.LAUNCHER_ZIP_DATE
        assert listing[f"{scripts}/pureaux"][2] == b"#!python.exe\nprint('pureaux')\n"
        # The layer's interpreter: the runtime's venv launchers, copied.
        for name in ("python.exe", "pythonw.exe"):
            assert listing[f"{scripts}/{name}"] == ("file", 0o755, launcher_bytes(target, PY_VERSION, name))
        # `.data/headers` to Include/<dist>, `.data/data` to the prefix (pip's Windows prefix scheme).
        assert listing["fw/Include/purepkg/purepkg.h"][2] == b"/* purepkg */\n"
    else:
        for name in ("puretool", "puregui", "pureaux"):
            kind, mode, data = listing[f"{scripts}/{name}"]
            assert (kind, mode) == ("file", 0o755)
            assert data.startswith(wheel_install.RELOCATABLE_SHEBANG)
        for name in ("python", "python3", f"python{XY}"):
            assert listing[f"{scripts}/{name}"] == ("symlink", 0o777, f"../../{RUNTIME}/bin/python3")
        assert listing[f"fw/include/python{XY}/purepkg/purepkg.h"][2] == b"/* purepkg */\n"
    assert listing["fw/share/purepkg/notes.txt"][2] == b"notes\n"


@pytest.mark.parametrize("target", FOREIGN, ids=FOREIGN_IDS)
def test_layer_config_stack_pth_and_metadata(built: dict[str, Path], target: TargetPlatform) -> None:
    out = built[target.name]
    listing = archive_listing(_archive(out))
    site_dir = target.site_packages(XY)
    config = json.loads(listing["fw/share/venv/metadata/venvstacks_layer.json"][2])
    windows = target.os == "windows"
    assert config["python"] == ("Scripts/python.exe" if windows else "bin/python")
    assert config["base_python"] == f"../{RUNTIME}/" + ("python.exe" if windows else "bin/python3")
    assert config["site_dir"] == site_dir
    assert config["pylib_dirs"] == [f"../{RUNTIME}/{site_dir}"]
    depth = "../" * (1 + site_dir.count("/") + 1)  # out of site-packages, then out of the layer
    assert listing[f"fw/{site_dir}/_venvstacks_stack.pth"][2].decode().splitlines()[1:] == ["import _venvstacks_stack"]
    module = ast.parse(listing[f"fw/{site_dir}/_venvstacks_stack.py"][2])
    lower = next(
        n.value for n in module.body if isinstance(n, ast.Assign) and ast.unparse(n.targets[0]) == "LOWER_SITE_DIRS"
    )
    assert ast.literal_eval(lower) == (f"{depth}{RUNTIME}/{site_dir}",)
    metadata = json.loads((out / "fw.json").read_text())
    assert metadata["platform"] == target.triple
    assert metadata["archive"]["sha256"] == sha256(_archive(out))


@pytest.mark.parametrize("target", FOREIGN, ids=FOREIGN_IDS)
def test_record_matches_the_files(built: dict[str, Path], target: TargetPlatform) -> None:
    """Every RECORD row names a file of the layer, by a POSIX path relative to site-packages, with its hash."""
    listing = archive_listing(_archive(built[target.name]))
    site = f"fw/{target.site_packages(XY)}"
    record = listing[f"{site}/purepkg-1.0.dist-info/RECORD"][2].decode()
    assert "\\" not in record
    up = "../" * (target.site_packages(XY).count("/") + 1)
    paths = set()
    for line in record.splitlines():
        path, digest, size = line.split(",")
        paths.add(path)
        if not digest:
            continue
        member = "/".join([*site.split("/"), *path.split("/")])
        parts: list[str] = []
        for part in member.split("/"):
            if part == "..":
                parts.pop()
            else:
                parts.append(part)
        data = listing["/".join(parts)][2]
        assert (digest, int(size)) == (record_hash(data), len(data)), path
    if target.os == "windows":
        expected = {f"{up}Scripts/puretool.exe", f"{up}Scripts/puregui.exe", f"{up}Scripts/pureaux"}
        expected.add(f"{up}Include/purepkg/purepkg.h")
    else:
        expected = {f"{up}bin/puretool", f"{up}bin/puregui", f"{up}bin/pureaux"}
        expected.add(f"{up}include/python{XY}/purepkg/purepkg.h")
    assert expected | {f"{up}share/purepkg/notes.txt"} <= paths


def test_bytecode_does_not_depend_on_the_target(built: dict[str, Path]) -> None:
    """The same source compiles to the same pyc for every target; only `co_filename` follows the site dir."""
    pycs: dict[str, dict[str, bytes]] = {}
    for target in FOREIGN:
        listing = archive_listing(_archive(built[target.name]))
        site = f"fw/{target.site_packages(XY)}"
        pycs[target.name] = {
            module: listing[f"{site}/purepkg/__pycache__/{module}.{PYC_TAG}.pyc"][2] for module in ("__init__", "util")
        }
    posix = [p.name for p in FOREIGN if p.os != "windows"]
    for name in posix[1:]:
        assert pycs[name] == pycs[posix[0]], name  # one site dir: byte for byte
    if "windows_x86_64" in pycs:
        for module, data in pycs["windows_x86_64"].items():
            other = pycs[posix[0]][module]
            assert data[:16] == other[:16]  # magic, flags, source hash
            windows_code, posix_code = marshal.loads(data[16:]), marshal.loads(other[16:])
            assert windows_code == posix_code  # code equality leaves co_filename out
            assert windows_code.co_filename == f"fw/Lib/site-packages/purepkg/{module}.py"


@pytest.mark.parametrize("target", FOREIGN, ids=FOREIGN_IDS)
def test_rebuild_is_byte_identical(
    tmp_path: Path,
    built: dict[str, Path],
    inputs: dict[str, Any],
    target: TargetPlatform,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another output directory and another clock (a Windows launcher's zip is dated by it): the same bytes."""
    later = time.time() + 86_400 * 400 + 3
    monkeypatch.setattr(time, "time", lambda: later)
    launchers = inputs["launchers"] if target.os == "windows" else None
    out = tmp_path / "again"
    build(cross_argv(out, target, [inputs["pure"], inputs["ext"][target.name]], launchers))
    assert _archive(out).read_bytes() == _archive(built[target.name]).read_bytes()


def test_record_does_not_depend_on_the_build_machines_os(
    tmp_path: Path, built: dict[str, Path], inputs: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a Windows build machine `installer` would write absolute RECORD paths; the layer is the same there."""
    import installer.destinations

    monkeypatch.setattr(installer.destinations, "_WINDOWS", True)
    target = by_name("windows_x86_64")
    out = tmp_path / "out"
    build(cross_argv(out, target, [inputs["pure"], inputs["ext"][target.name]], inputs["launchers"]))
    assert _archive(out).read_bytes() == _archive(built[target.name]).read_bytes()


def test_deterministic_launcher_ignores_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """installer's launcher zip is stamped with the clock; `deterministic_launcher` removes it, nothing else."""
    from installer.scripts import Script

    script = Script("tool", "pkg", "main", "console")
    first = script.generate("python.exe", "win-amd64")[1]
    monkeypatch.setattr(time, "time", lambda: 1_000_000_000.0)
    second = script.generate("python.exe", "win-amd64")[1]
    assert first != second
    fixed = wheel_install.deterministic_launcher(first)
    assert fixed == wheel_install.deterministic_launcher(second)
    assert len(fixed) == len(first)
    header, archive = _launcher_parts(fixed)
    assert header == b"#!python.exe\n"
    assert archive.read("__main__.py") == zipfile.ZipFile(io.BytesIO(first)).read("__main__.py")


@pytest.mark.parametrize("target", FOREIGN, ids=FOREIGN_IDS)
def test_host_extension_in_a_foreign_layer_fails(
    tmp_path: Path, inputs: dict[str, Any], target: TargetPlatform
) -> None:
    ext_name = f"_native{HOST_SUFFIX}"
    if HOST_SUFFIX in target.extension_suffixes(XY):
        pytest.skip(f"{target.name} loads the host's {HOST_SUFFIX}")
    wheel = build_wheel(
        tmp_path / "wheels", "hostext", "1.0", files={"hostext/__init__.py": b"", f"hostext/{ext_name}": b"\x7fELF"}
    )
    launchers = inputs["launchers"] if target.os == "windows" else None
    out = tmp_path / "out"
    request = layer_build.parse_request(cross_argv(out, target, [wheel], launchers))
    with pytest.raises(VenvstacksError) as info:
        layer_build.build_layer(request)
    message = str(info.value)
    assert f"'fw/{target.site_packages(XY)}/hostext/{ext_name}'" in message
    assert f"another platform than {target.name}" in message
    assert not out.exists() or not [p for p in out.iterdir() if p.name in ("fw.zip", "fw.tar.zst")]


def test_a_pyd_in_a_posix_layer_fails(tmp_path: Path) -> None:
    target = next(p for p in FOREIGN if p.os != "windows")
    wheel = build_wheel(tmp_path / "wheels", "winext", "1.0", files={"winext/_x.pyd": b"MZ"})
    request = layer_build.parse_request(cross_argv(tmp_path / "out", target, [wheel], None))
    with pytest.raises(VenvstacksError, match=rf"winext/_x\.pyd' is an extension module for .* than {target.name}"):
        layer_build.build_layer(request)


def test_venv_launchers_are_required_for_windows_only(tmp_path: Path, inputs: dict[str, Any]) -> None:
    windows = by_name("windows_x86_64")
    posix = next(p for p in PLATFORMS if p.os != "windows")
    with pytest.raises(VenvstacksError, match=r"--venv-launcher is required for a Windows target .*windows_x86_64\)"):
        layer_build.parse_request(cross_argv(tmp_path, windows, [], None))
    with pytest.raises(VenvstacksError, match=rf"only for one \(target {posix.name}\)"):
        layer_build.parse_request(cross_argv(tmp_path, posix, [], inputs["launchers"]))
    python_only = {"python.exe": inputs["launchers"]["python.exe"]}
    with pytest.raises(
        VenvstacksError, match=r"must name python\.exe and pythonw\.exe once each \(given: python\.exe\)$"
    ):
        layer_build.parse_request(cross_argv(tmp_path, windows, [], python_only))
    escaping = {**inputs["launchers"], "../evil.exe": inputs["launchers"]["python.exe"]}
    with pytest.raises(VenvstacksError, match=r"given: python\.exe, pythonw\.exe, \.\./evil\.exe"):
        layer_build.parse_request(cross_argv(tmp_path, windows, [], escaping))


def test_missing_venv_launcher_file_is_named(tmp_path: Path, inputs: dict[str, Any]) -> None:
    launchers = {**inputs["launchers"], "pythonw.exe": tmp_path / "nowhere" / "pythonw.exe"}
    request = layer_build.parse_request(cross_argv(tmp_path / "out", by_name("windows_x86_64"), [], launchers))
    with pytest.raises(VenvstacksError, match=r"the runtime's venv launcher '.*nowhere/pythonw\.exe' does not exist"):
        layer_build.build_layer(request)


def test_a_lib_dir_differing_in_case_is_refused_on_windows(tmp_path: Path, inputs: dict[str, Any]) -> None:
    """`.data/data/lib/...` is a directory of its own on Linux but the layer's `Lib` on Windows."""
    wheel = build_wheel(
        tmp_path / "wheels",
        "posixdata",
        "1.0",
        files={"posixdata/__init__.py": b"", "posixdata-1.0.data/data/lib/posixdata.cfg": b"x = 1\n"},
    )
    windows = by_name("windows_x86_64")
    request = layer_build.parse_request(cross_argv(tmp_path / "out", windows, [wheel], inputs["launchers"]))
    with pytest.raises(VenvstacksError, match=r"a wheel created 'lib', which is the layer's 'Lib' on its case-insens"):
        layer_build.build_layer(request)
    # Linux file systems keep `lib` and `Lib` apart: the same wheel's `Lib/` is its own directory there.
    linux = next(p for p in PLATFORMS if p.os == "linux")
    upper = build_wheel(
        tmp_path / "wheels2",
        "posixdata",
        "1.0",
        files={"posixdata/__init__.py": b"", "posixdata-1.0.data/data/Lib/posixdata.cfg": b"x = 1\n"},
    )
    build(cross_argv(tmp_path / "linux", linux, [upper], None))


# --- fixture runtimes and pack-runtime ---------------------------------------------------------


def _tar_members(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data))) as tar:
        return tar.getmembers()


@pytest.mark.parametrize("target", PLATFORMS, ids=[p.name for p in PLATFORMS])
def test_fixture_runtime_layout(tmp_path: Path, target: TargetPlatform) -> None:
    runtime = make_fixture_runtime(tmp_path, target, "3.11.14", release="20251031")
    assert runtime.path.name == f"cpython-3.11.14+20251031-{target.triple}-install_only.tar.gz"
    data = runtime.path.read_bytes()
    assert data[4:8] == b"\0\0\0\0"  # gzip MTIME
    members = _tar_members(data)
    names = [m.name for m in members]
    assert names == sorted(names)
    assert {m.mtime for m in members} == {FIXTURE_MTIME}
    assert {(m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, "", "")}
    kinds = {m.name: ("symlink:" + m.linkname if m.issym() else "dir" if m.isdir() else "file") for m in members}
    if target.os == "windows":
        expected = {
            "python/python.exe": "file",
            "python/pythonw.exe": "file",
            "python/python311.dll": "file",
            "python/python3.dll": "file",
            "python/vcruntime140.dll": "file",
            "python/vcruntime140_1.dll": "file",
            "python/Lib/os.py": "file",
            "python/Lib/site-packages/README.txt": "file",
            "python/Lib/venv/scripts/nt/python.exe": "file",
            "python/Lib/venv/scripts/nt/pythonw.exe": "file",
            "python/DLLs/_ssl.pyd": "file",
            "python/Include/Python.h": "file",
        }
    else:
        library = "libpython3.11.dylib" if target.os == "macos" else "libpython3.11.so"
        expected = {
            "python/bin/python3.11": "file",
            "python/bin/python3": "symlink:python3.11",
            "python/bin/python": "symlink:python3.11",
            "python/lib/python3.11/os.py": "file",
            "python/lib/python3.11/site-packages/README.txt": "file",
            f"python/lib/python3.11/lib-dynload/_ssl{target.extension_suffixes('3.11')[0]}": "file",
            f"python/lib/{library}": "file",
            "python/include/python3.11/Python.h": "file",
        }
    assert {name: kind for name, kind in kinds.items() if kind != "dir"} == expected


def test_fixture_runtime_launchers_by_version(tmp_path: Path) -> None:
    """CPython 3.13 ships the venv launchers as venvlauncher.exe and venvwlauncher.exe."""
    windows = by_name("windows_x86_64")
    for version, names in (
        ("3.12.10", {"python.exe", "pythonw.exe"}),
        ("3.13.9", {"venvlauncher.exe", "venvwlauncher.exe"}),
    ):
        runtime = make_fixture_runtime(tmp_path, windows, version)
        members = _tar_members(runtime.path.read_bytes())
        assert {m.name.rpartition("/")[2] for m in members if "/venv/scripts/nt/" in m.name} == names


def test_fixture_runtime_is_deterministic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same bytes in another directory, at another time, and the sha256 pinned here (so on every machine)."""
    linux = by_name("linux_x86_64")
    first = make_fixture_runtime(tmp_path / "a", linux, "3.11.14")
    monkeypatch.setattr(time, "time", lambda: 2_000_000_000.0)
    second = make_fixture_runtime(tmp_path / "b" / "deeper", linux, "3.11.14")
    assert first.path.read_bytes() == second.path.read_bytes()
    assert first.sha256 == second.sha256 == sha256(first.path)
    assert first.sha256 == PINNED_FIXTURE_SHA256
    assert len({fixture_runtime_bytes(p, "3.11.14") for p in PLATFORMS}) == len(PLATFORMS)


def _pack_argv(runtime: FixtureRuntime, out: Path) -> list[str]:
    return [
        "--source-archive",
        str(runtime.path),
        "--source-sha256",
        runtime.sha256,
        "--layer-name",
        RUNTIME,
        "--python-version",
        runtime.python_version,
        "--pbs-release",
        "20251031",
        "--platform",
        runtime.platform.triple,
        "--archive-format",
        "zip" if runtime.platform.os == "windows" else "tar.zst",
        "--mtime",
        str(MTIME),
        "--output",
        str(out / (f"{RUNTIME}.zip" if runtime.platform.os == "windows" else f"{RUNTIME}.tar.zst")),
        "--metadata",
        str(out / f"{RUNTIME}.json"),
    ]


@pytest.mark.parametrize("target", PLATFORMS, ids=[p.name for p in PLATFORMS])
def test_pack_fixture_runtime(tmp_path: Path, target: TargetPlatform) -> None:
    runtime = make_fixture_runtime(tmp_path / "pbs", target, "3.11.14")
    out = tmp_path / "out"
    request = runtime_layer.parse_request(_pack_argv(runtime, out))
    assert request.platform == target
    runtime_layer.pack_runtime(request)
    archive = next(p for p in out.iterdir() if p.name != f"{RUNTIME}.json")
    listing = archive_listing(archive)
    config = json.loads(listing[f"{RUNTIME}/share/venv/metadata/venvstacks_layer.json"][2])
    if target.os == "windows":
        assert (config["python"], config["site_dir"]) == ("python.exe", "Lib/site-packages")
        assert f"{RUNTIME}/Lib/venv/scripts/nt/python.exe" in listing
    else:
        assert (config["python"], config["site_dir"]) == ("bin/python3", "lib/python3.11/site-packages")
        assert listing[f"{RUNTIME}/bin/python3"] == ("symlink", 0o777, "python3.11")
    assert config["base_python"] == config["python"]
    # The stdlib gets bytecode, compiled by this machine's Python for the target (same X.Y).
    stdlib = "Lib" if target.os == "windows" else "lib/python3.11"
    pyc = listing[f"{RUNTIME}/{stdlib}/__pycache__/os.{sys.implementation.cache_tag}.pyc"][2]
    assert int.from_bytes(pyc[4:8], "little") == 0b01, "unchecked hash: no mtime in it"
    assert marshal.loads(pyc[16:]).co_filename == f"{RUNTIME}/{stdlib}/os.py"
    metadata = json.loads((out / f"{RUNTIME}.json").read_text())
    assert metadata["platform"] == target.triple
    assert metadata["source"] == {"sha256": runtime.sha256, "strip_prefix": "python"}


def test_pack_runtime_checks_the_platform_against_the_layout(tmp_path: Path) -> None:
    """A Linux runtime packed as a Windows one is a layout error (the target decides what is checked)."""
    runtime = make_fixture_runtime(tmp_path / "pbs", by_name("linux_aarch64"), "3.11.14")
    argv = _pack_argv(runtime, tmp_path / "out")
    argv[argv.index("--platform") + 1] = "x86_64-pc-windows-msvc"
    with pytest.raises(VenvstacksError, match=r"expected 'python/python\.exe' and 'python/Lib/os\.py'"):
        runtime_layer.main(argv)
