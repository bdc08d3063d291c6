"""Tests of `local-runtime` (venvstacks_maint.local_runtime) on this machine's own CPython."""

from __future__ import annotations

import hashlib
import re
import subprocess
import tarfile
from pathlib import Path

import pytest

import venvstacks_maint.__main__ as cli
from venvstacks_maint.local_runtime import LocalRuntime, find_relocatable_python, make_local_runtime
from venvstacks_tool.core.errors import VenvstacksError


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> LocalRuntime:
    """The distro CPython packed once for the module's tests."""
    return make_local_runtime(tmp_path_factory.mktemp("pbs"))


def test_the_archive_has_the_pbs_layout_and_declares_its_version(runtime: LocalRuntime) -> None:
    minor = ".".join(runtime.python_version.split(".")[:2])
    with tarfile.open(runtime.path) as tar:
        names = set(tar.getnames())
        header = tar.extractfile(f"python/include/python{minor}/patchlevel.h").read().decode()  # type: ignore[union-attr]
        assert tar.getmember("python/bin/python3").linkname == f"python{minor}"
    assert {f"python/bin/python{minor}", f"python/lib/python{minor}/os.py"} <= names
    assert f'#define PY_VERSION\t\t"{runtime.python_version}"' in header
    # Debian's pip guard and bytecode caches stay out; PBS archives have neither.
    assert not [name for name in names if name.endswith("EXTERNALLY-MANAGED") or "__pycache__" in name]


def test_packing_again_gives_the_same_bytes(runtime: LocalRuntime, tmp_path: Path) -> None:
    again = make_local_runtime(tmp_path)
    assert again.path.name == runtime.path.name
    assert again.sha256 == runtime.sha256 == hashlib.sha256(runtime.path.read_bytes()).hexdigest()


def test_the_unpacked_interpreter_runs_from_where_it_is(runtime: LocalRuntime, tmp_path: Path) -> None:
    with tarfile.open(runtime.path) as tar:
        tar.extractall(tmp_path, filter="tar")
    python = tmp_path / "python" / "bin" / "python3"
    code = "import json, sys; print(sys.prefix); print(json.__file__)"
    prefix, json_file = subprocess.run(
        [python, "-I", "-c", code], check=True, capture_output=True, text=True
    ).stdout.split()
    assert Path(prefix) == tmp_path / "python"
    assert Path(json_file).is_relative_to(tmp_path / "python" / "lib")


def test_the_command_prints_a_tag_with_a_file_url_to_the_archive(
    runtime: LocalRuntime, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["local-runtime", "--runtime", "cpython3_11", "--output-dir", str(runtime.path.parent)]) == 0
    tag = capsys.readouterr().out
    assert tag.startswith("venvstacks.runtime_archive(\n") and tag.endswith(")\n")
    assert '    runtime = "cpython3_11",\n    platform = "linux_x86_64",\n' in tag
    assert f'    python_version = "{runtime.python_version}",\n' in tag
    assert f'    sha256 = "{runtime.sha256}",\n' in tag
    # The path as it is, `+` included: what Bazel's downloader opens.
    assert f'    urls = ["file://{runtime.path}"],\n' in tag


def test_a_base_url_names_the_archive_on_a_mirror(runtime: LocalRuntime, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--runtime", "py", "--output-dir", str(runtime.path.parent), "--base-url", "https://mirror.example/pbs/"]
    assert cli.main(["local-runtime", *argv]) == 0
    urls = re.findall(r"urls = \[(.*)\]", capsys.readouterr().out)
    assert urls == [f'"https://mirror.example/pbs/{runtime.path.name}"']


def test_something_that_is_not_a_python_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["local-runtime", "--runtime", "py", "--output-dir", str(tmp_path), "--python", "/bin/false"]) == 1
    assert capsys.readouterr().err.startswith("venvstacks: error: cannot run /bin/false")
    assert not list(tmp_path.iterdir())


def test_the_default_interpreter_is_a_distro_cpython() -> None:
    python = find_relocatable_python()
    assert python.parent == Path("/usr/bin") and re.fullmatch(r"python3\.\d+", python.name)


def test_the_distro_python_is_found_under_a_root_of_another_system(tmp_path: Path) -> None:
    (tmp_path / "usr/bin").mkdir(parents=True)
    (tmp_path / "usr/lib/python3.11").mkdir(parents=True)
    (tmp_path / "usr/bin/python3.11").touch()
    (tmp_path / "usr/lib/python3.11/os.py").touch()
    assert find_relocatable_python(tmp_path) == tmp_path / "usr/bin/python3.11"
    with pytest.raises(VenvstacksError, match=f"no distro CPython in {tmp_path / 'elsewhere'}/usr/bin/python3.X"):
        find_relocatable_python(tmp_path / "elsewhere")


def test_a_program_this_machine_cannot_execute_is_named_with_the_emulator_it_needs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # No ELF header and no #! line: the kernel answers ENOEXEC, as for another CPU's binary
    # where no emulator is registered with binfmt_misc.
    foreign = tmp_path / "python3.11"
    foreign.write_bytes(b"\x00not a program for this machine")
    foreign.chmod(0o755)
    argv = ["local-runtime", "--runtime", "py", "--output-dir", str(tmp_path / "out"), "--python", str(foreign)]
    assert cli.main(argv) == 1
    error = capsys.readouterr().err
    assert error.startswith(f"venvstacks: error: cannot run {foreign}: Exec format error (a program for another CPU")
    assert "qemu-user-static" in error and "docs/platforms.md" in error
    assert not (tmp_path / "out").exists()
