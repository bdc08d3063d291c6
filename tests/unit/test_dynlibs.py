"""Tests of shared libraries across layers (venvstacks_tool.build.dynlibs, and how build-layer uses it).

Discovery and linking on trees made here, a layer built from a wheel that ships a library, and
the `bin/python` wrapper run for real with the host's shell and interpreter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from venvstacks_testing.archives import archive_listing
from venvstacks_testing.layer_inputs import SITE, XY, build, build_argv
from venvstacks_testing.wheel_index import build_wheel
from venvstacks_tool.build import dynlibs
from venvstacks_tool.core import postinstall_template
from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.core.platforms import by_name

LINUX = by_name("linux_x86_64")
NODOT = XY.replace(".", "")


@pytest.mark.parametrize(
    ("name", "linked"),
    [
        ("libfoo.so", True),
        ("libfoo.dylib", True),
        ("_bare.so", True),  # a bare `.so` is both; venvstacks links it
        (f"_ext.cpython-{NODOT}-x86_64-linux-gnu.so", False),
        ("_ext.abi3.so", False),
        ("libcudart.so.12", False),  # versioned: last suffix `.12`, not linked (as venvstacks)
        ("foo.dll", False),
        ("foo.pyd", False),
        ("foo.py", False),
    ],
)
def test_which_files_are_shared_libraries(name: str, linked: bool) -> None:
    suffixes = dynlibs._extension_suffixes(LINUX, XY)
    assert dynlibs.is_shared_library(name, suffixes) is linked


def _touch(path: Path, data: bytes = b"\x7fELF") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_discovery_is_sorted_recursive_and_posix_only(tmp_path: Path) -> None:
    site = tmp_path / "layer" / SITE
    expected = [_touch(site / "b.libs/libz.so"), _touch(site / "a/lib/liba.so"), _touch(site / "a/libb.dylib")]
    _touch(site / f"a/_ext.cpython-{NODOT}-x86_64-linux-gnu.so")
    _touch(site / "a/libv.so.1")
    os.symlink("libz.so", site / "b.libs/libalias.so")  # a link is not a second library
    found = dynlibs.find_shared_libraries(site, LINUX, XY)
    assert found == sorted(expected, key=os.fsencode)
    assert dynlibs.find_shared_libraries(site, by_name("windows_x86_64"), XY) == []


def test_links_are_relative_and_sorted(tmp_path: Path) -> None:
    layer = tmp_path / "fw"
    libraries = [_touch(layer / SITE / "a.libs/liba.so", b"a"), _touch(layer / SITE / "b/libb.so", b"b")]
    linked = dynlibs.link_shared_libraries(layer, libraries, "fw")
    assert linked == {"liba.so": f"{SITE}/a.libs/liba.so", "libb.so": f"{SITE}/b/libb.so"}
    directory = layer / "share/venv/dynlib"
    assert sorted(os.listdir(directory)) == ["liba.so", "libb.so"]
    assert os.readlink(directory / "liba.so") == f"../../../{SITE}/a.libs/liba.so"
    assert (directory / "libb.so").read_bytes() == b"b"
    assert dynlibs.link_shared_libraries(tmp_path / "none", [], "none") == {}
    assert not (tmp_path / "none").exists()


def test_two_libraries_of_one_name_in_a_layer_fail_naming_both(tmp_path: Path) -> None:
    layer = tmp_path / "fw"
    first, second = _touch(layer / SITE / "a/libfoo.so"), _touch(layer / SITE / "b/libFOO.so")
    with pytest.raises(VenvstacksError) as error:
        dynlibs.link_shared_libraries(layer, [first, second], "fw", str.casefold)
    assert str(error.value).startswith("layer 'fw': two shared libraries are named 'libFOO.so'")
    assert f"'fw/{SITE}/a/libfoo.so'" in str(error.value) and f"'fw/{SITE}/b/libFOO.so'" in str(error.value)
    # Case matters where the target's file system keeps it.
    assert len(dynlibs.link_shared_libraries(layer, [first, second], "fw")) == 2


def test_a_wheel_that_installs_the_dynlib_directory_is_refused(tmp_path: Path) -> None:
    layer = tmp_path / "fw"
    (layer / "share/venv/dynlib").mkdir(parents=True)
    with pytest.raises(VenvstacksError, match="a wheel installs 'share/venv/dynlib'"):
        dynlibs.link_shared_libraries(layer, [_touch(layer / SITE / "libx.so")], "fw")


def _lib_wheel(directory: Path) -> Path:
    return build_wheel(
        directory,
        "libpkg",
        "1.0",
        tag=f"cp{NODOT}-cp{NODOT}-manylinux_2_17_x86_64",
        files={"libpkg/__init__.py": b"", "libpkg.libs/libpkg.so": b"\x7fELF not really"},
    )


def test_a_layer_links_its_libraries_and_upper_layers_get_the_wrapper(tmp_path: Path) -> None:
    wheel = _lib_wheel(tmp_path / "wheels")
    build(build_argv(tmp_path / "fw", "fw", wheels=[wheel]))
    fw = archive_listing(tmp_path / "fw/fw.tar.zst")
    assert fw["fw/share/venv/dynlib/libpkg.so"] == ("symlink", 0o777, f"../../../{SITE}/libpkg.libs/libpkg.so")
    assert fw["fw/bin/python"][0] == "symlink", "a framework directly on its runtime needs no wrapper"
    contents = json.loads((tmp_path / "fw/_fw.contents.json").read_text())
    assert contents["dynlibs"] == {"libpkg.so": f"fw/{SITE}/libpkg.libs/libpkg.so"}
    assert contents["names"]["libpkg"] == {
        "first_party": False,
        "kind": "package",
        "owner": "libpkg 1.0",
        "path": f"fw/{SITE}/libpkg/__init__.py",
    }

    build(build_argv(tmp_path / "up", "up", lower=("fw", "base")))
    up = archive_listing(tmp_path / "up/up.tar.zst")
    kind, mode, script = up["up/bin/python"]
    assert (kind, mode) == ("file", 0o755)
    assert script == dynlibs.python_wrapper(["../fw/share/venv/dynlib", "../base/share/venv/dynlib"], LINUX).encode()
    assert up["up/bin/python_"] == ("symlink", 0o777, "../../cpython_rt/bin/python3")
    assert up["up/bin/python3"] == up[f"up/bin/python{XY}"] == ("symlink", 0o777, "python")
    config = json.loads(up["up/share/venv/metadata/venvstacks_layer.json"][2])
    assert config["dynlib_dirs"] == ["../fw/share/venv/dynlib", "../base/share/venv/dynlib"]
    assert config["python"] == "bin/python"


def test_windows_layers_add_the_lower_dll_directories_that_exist(tmp_path: Path) -> None:
    """The stacking module of a Windows layer: `os.add_dll_directory` for each lower `Library/bin` present."""
    config = {
        "python": "Scripts/python.exe",
        "site_dir": "Lib/site-packages",
        "pylib_dirs": [],
        "dynlib_dirs": ["../fw/Library/bin", "../gone/Library/bin"],
    }
    module = postinstall_template.stack_module_text(config)
    site = tmp_path / "app/Lib/site-packages"
    (tmp_path / "fw/Library/bin").mkdir(parents=True)
    _touch(site / "_venvstacks_stack.py", module.encode())
    probe = (
        "import os, sys; sys.path.insert(0, sys.argv[1]);"
        "os.add_dll_directory = lambda path: print(os.path.relpath(path, sys.argv[2])) or path;"
        "import _venvstacks_stack"
    )
    result = subprocess.run([sys.executable, "-S", "-c", probe, site, tmp_path], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    added = result.stdout.split()
    assert added == [os.path.join("fw", "Library", "bin")]
    # POSIX layers leave it to the wrapper.
    assert "LOWER_DLL_DIRS = ()" in postinstall_template.stack_module_text({**config, "python": "bin/python"})


@pytest.fixture
def wrapped(tmp_path: Path) -> Path:
    """A deployed-like `app/bin/python` wrapper on the host interpreter, with one lower library directory."""
    root = tmp_path / "stack root"
    (root / "fw/share/venv/dynlib").mkdir(parents=True)
    bin_dir = root / "app/bin"
    bin_dir.mkdir(parents=True)
    wrapper = bin_dir / "python"
    wrapper.write_text(dynlibs.python_wrapper(["../fw/share/venv/dynlib", "../missing/share/venv/dynlib"], LINUX))
    wrapper.chmod(0o755)
    base = Path(os.path.realpath(sys.executable))
    os.symlink(base, bin_dir / dynlibs.WRAPPED_PYTHON)
    os.symlink("python", bin_dir / "python3")
    (root / "app/pyvenv.cfg").write_text(f"home = {base.parent}\ninclude-system-site-packages = false\n")
    return wrapper


_REPORT = "import os, sys; print(sys.executable); print(os.environ.get('LD_LIBRARY_PATH', '-'))"


def _run(command: list[str | Path], **kwargs: object) -> list[str]:
    env = {key: value for key, value in os.environ.items() if key != "LD_LIBRARY_PATH"}
    env.update(kwargs.pop("env", {}))  # type: ignore[call-overload]
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False, **kwargs)  # type: ignore[call-overload]
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_the_wrapper_adds_existing_lower_directories_and_keeps_sys_executable(wrapped: Path, tmp_path: Path) -> None:
    root = wrapped.parent.parent.parent
    fw_dir = f"{root}/app/bin/../../fw/share/venv/dynlib"
    assert _run([wrapped, "-c", _REPORT]) == [str(wrapped), fw_dir]
    # Through the in-bin link, from a relative path, and from a link outside the layer.
    assert _run([wrapped.with_name("python3"), "-c", _REPORT]) == [str(wrapped), fw_dir]
    assert _run(["bin/python", "-c", _REPORT], cwd=wrapped.parent.parent) == [str(wrapped), fw_dir]
    outside = tmp_path / "elsewhere" / "python"
    outside.parent.mkdir()
    os.symlink(wrapped, outside)
    assert _run([outside, "-c", _REPORT]) == [str(wrapped), fw_dir]
    # The caller's entries come first, and an entry already there is not added twice.
    assert _run([wrapped, "-c", _REPORT], env={"LD_LIBRARY_PATH": "/caller"}) == [str(wrapped), f"/caller:{fw_dir}"]
    assert _run([wrapped, "-c", _REPORT], env={"LD_LIBRARY_PATH": fw_dir}) == [str(wrapped), fw_dir]
    # `-I` ignores PYTHON* variables, not the loader's; the shell reads no start-up file.
    assert _run([wrapped, "-I", "-c", _REPORT]) == [str(wrapped), fw_dir]
    startup = tmp_path / "bash_env"
    startup.write_text("echo BASH_ENV ran >&2; exit 3\n")
    assert _run([wrapped, "-c", _REPORT], env={"BASH_ENV": str(startup)}) == [str(wrapped), fw_dir]


def test_the_wrapper_adds_nothing_when_no_lower_directory_exists(wrapped: Path) -> None:
    root = wrapped.parent.parent.parent
    os.rmdir(root / "fw/share/venv/dynlib")
    assert _run([wrapped, "-c", _REPORT]) == [str(wrapped), "-"]


def test_the_wrapper_for_macos_sets_dyld_library_path() -> None:
    script = dynlibs.python_wrapper(["../fw/share/venv/dynlib"], by_name("macos_arm64"))
    assert script.startswith("#!/bin/zsh -f\n")
    assert "DYLD_LIBRARY_PATH" in script and "LD_LIBRARY_PATH=" not in script.replace("DYLD_LIBRARY_PATH", "")
