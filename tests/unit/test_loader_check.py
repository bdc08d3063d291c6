"""build.loader_check (`check-libraries`): real PyPI wheels for three platforms, and crafted binaries that must fail.

The real wheels are pinned by version and sha256 and fetched once with pip (`--require-hashes`)
into a cache shared by every run (`VENVSTACKS_TEST_WHEELS`, default ~/.cache/rules_venvstacks/
test-wheels): about 230 MB, the first time only. torch is checked when its CPU wheel is in
/opt/wheels (as for the full corpus); CI's machines do not download its 192 MB for this.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from venvstacks_testing.crafted_binaries import compile_elf, macho_bundle, needs_gcc, pe_dll
from venvstacks_tool.build import loader_check
from venvstacks_tool.core.errors import VenvstacksError

CACHE = Path(os.environ.get("VENVSTACKS_TEST_WHEELS", Path.home() / ".cache" / "rules_venvstacks" / "test-wheels"))
# (pip --platform, requirement, file, sha256)
WHEELS = {
    "opencv-python": (
        "manylinux_2_28_x86_64",
        "opencv-python==4.13.0.92",
        "opencv_python-4.13.0.92-cp37-abi3-manylinux_2_28_x86_64.whl",
        "620d602b8f7d8b8dab5f4b99c6eb353e78d3fb8b0f53db1bd258bb1aa001c1d5",
    ),
    "opencv-python-headless": (
        "manylinux_2_28_x86_64",
        "opencv-python-headless==4.13.0.92",
        "opencv_python_headless-4.13.0.92-cp37-abi3-manylinux_2_28_x86_64.whl",
        "0bd48544f77c68b2941392fcdf9bcd2b9cdf00e98cb8c29b2455d194763cf99e",
    ),
    "numpy-linux": (
        "manylinux_2_28_x86_64",
        "numpy==2.4.6",
        "numpy-2.4.6-cp312-cp312-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl",
        "90f9849678c75fe7afa2d348ac842c168b0a4d3d61919687216dfc547976d853",
    ),
    "scipy-linux": (
        "manylinux_2_28_x86_64",
        "scipy==1.17.1",
        "scipy-1.17.1-cp312-cp312-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl",
        "02ae3b274fde71c5e92ac4d54bc06c42d80e399fec704383dcd99b301df37458",
    ),
    "numpy-windows": (
        "win_amd64",
        "numpy==2.4.6",
        "numpy-2.4.6-cp312-cp312-win_amd64.whl",
        "d8e8286dd7cea7895157318d1b91cdacac64c479f3cbc8dce548331728484751",
    ),
    "pydantic-core-windows": (
        "win_amd64",
        "pydantic-core==2.50.5",
        "pydantic_core-2.50.5-cp312-cp312-win_amd64.whl",
        "baa107902f8e38011a5f79836d905eb6bfaac1d4b0bd09fc86509b711d0b09c8",
    ),
    "scipy-macos": (
        "macosx_14_0_arm64",
        "scipy==1.17.1",
        "scipy-1.17.1-cp312-cp312-macosx_14_0_arm64.whl",
        "cc90d2e9c7e5c7f1a482c9875007c095c3194b1cfedca3c2f3291cdc2bc7c086",
    ),
}
TORCH = Path(os.environ.get("VENVSTACKS_CORPUS_TORCH_WHEELS", "/opt/wheels")) / (
    "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"
)
# What a PBS runtime holds of libraries (names only are read): the shared libpython on Linux,
# the interpreter's DLLs and the C runtime beside python.exe on Windows.
RUNTIME_FILES = {
    "linux_x86_64": ("lib/libpython3.12.so.1.0", "lib/python3.12/lib-dynload/_ssl.cpython-312-x86_64-linux-gnu.so"),
    "macos_arm64": ("lib/libpython3.12.dylib",),
    "windows_x86_64": ("python3.dll", "python312.dll", "vcruntime140.dll", "vcruntime140_1.dll", "DLLs/libffi-8.dll"),
}


PIP_DOWNLOAD = (sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--require-hashes")


def pypi_wheel(key: str) -> Path:
    """The pinned wheel `key`, from the cache or fetched with pip, its sha256 checked by pip."""
    platform, requirement, file, sha256 = WHEELS[key]
    wheel = CACHE / file
    if not wheel.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        requirements = CACHE / f"{file}.txt"
        requirements.write_text(f"{requirement} --hash=sha256:{sha256}\n")
        subprocess.run(
            [*PIP_DOWNLOAD, "--platform", platform, "--python-version", "3.12", "-d", CACHE, "-r", requirements],
            check=True,
        )
    return wheel


def request(tmp_path: Path, platform: str, wheels: list[Path], *extra: str) -> list[str]:
    """`check-libraries` arguments for a layer 'app' of `wheels` on `platform`'s runtime."""
    triple = {
        "linux_x86_64": "x86_64-unknown-linux-gnu",
        "macos_arm64": "aarch64-apple-darwin",
        "windows_x86_64": "x86_64-pc-windows-msvc",
    }[platform]
    args = ["--layer-name", "app", "--platform", triple, "--python-version", "3.12.7", "--runtime-root", "rt/python"]
    args += [f"--runtime-file=rt/python/{path}" for path in RUNTIME_FILES[platform]]
    args += [f"--wheel={wheel}" for wheel in wheels]
    args += ["--output", str(tmp_path / "report.txt"), "--libraries", str(tmp_path / "libraries.json"), *extra]
    return args


def run(tmp_path: Path, platform: str, wheels: list[Path], *extra: str) -> str:
    assert loader_check.main(request(tmp_path, platform, wheels, *extra)) == 0
    return (tmp_path / "report.txt").read_text()


def make_wheel(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


def test_opencv_python_needs_libgl_and_the_headless_build_does_not(tmp_path: Path) -> None:
    report = run(tmp_path, "linux_x86_64", [pypi_wheel("opencv-python")])
    lines = [line for line in report.splitlines() if line.startswith("warning: ")]
    gl = [line for line in lines if "libGL.so.1 is needed by" in line]
    assert gl and gl[0].startswith("warning: layer 'app' (linux_x86_64): libGL.so.1 is needed by app/lib/python3.12/")
    assert "(opencv_python 4.13.0.92)" in gl[0] and "servers and slim container images" in gl[0], gl[0]
    # Only what the policy leaves to desktops, and libxcb (Qt's X11 plugin): every bundled library resolves.
    missing = {line.split(": ", 2)[2].split(" ")[0] for line in lines}
    assert missing <= {"libGL.so.1", "libICE.so.6", "libSM.so.6", "libX11.so.6", "libXext.so.6"} | {
        "libglib-2.0.so.0", "libgthread-2.0.so.0", "libxcb.so.1"
    }, missing  # fmt: skip
    headless = run(tmp_path, "linux_x86_64", [pypi_wheel("opencv-python-headless")])
    assert "warning" not in headless and headless.endswith(" binaries read, 0 libraries found nowhere\n"), headless
    # The fix for opencv-python where the targets have the libraries: allow them.
    allows = [f"--allow={name}" for name in sorted(missing)]
    allowed = run(tmp_path, "linux_x86_64", [pypi_wheel("opencv-python")], "--strict", *allows)
    assert "0 libraries found nowhere; allowed: libGL.so.1 (" in allowed, allowed


@pytest.mark.parametrize(
    ("platform", "keys"),
    [
        ("linux_x86_64", ["numpy-linux", "scipy-linux"]),
        ("windows_x86_64", ["numpy-windows", "pydantic-core-windows"]),
        ("macos_arm64", ["scipy-macos"]),
    ],
)
def test_real_wheels_resolve_fully(tmp_path: Path, platform: str, keys: list[str]) -> None:
    report = run(tmp_path, platform, [pypi_wheel(key) for key in keys], "--strict")
    count = int(report.split(" binaries read")[0].rpartition(" ")[2])
    assert count > 0 and report.endswith(", 0 libraries found nowhere\n"), report


def test_windows_pyd_files_need_the_runtimes_dlls(tmp_path: Path) -> None:
    args = request(tmp_path, "windows_x86_64", [pypi_wheel("pydantic-core-windows")])
    args = [arg for arg in args if not arg.startswith("--runtime-file=")]
    report = loader_check.check_libraries(loader_check.parse_request(args))
    assert "python312.dll is needed by app/Lib/site-packages/pydantic_core/" in report, report
    assert "VCRUNTIME140.dll is needed by" in report, report


@pytest.mark.skipif(not TORCH.exists(), reason=f"torch's CPU wheel is not in {TORCH.parent}")
def test_torch_resolves_fully(tmp_path: Path) -> None:
    args = request(tmp_path, "linux_x86_64", [TORCH], "--strict")
    args[args.index("3.12.7")] = "3.11.9"
    assert loader_check.main(args) == 0


@needs_gcc
def test_crafted_binaries_of_each_format_fail_when_strict(tmp_path: Path) -> None:
    elf = compile_elf(tmp_path, "libvsmissing.so", rpath="$ORIGIN/../vs.libs")
    cases = {
        "linux_x86_64": ("vs/_ext.abi3.so", elf, "libvsmissing.so"),
        "macos_arm64": ("vs/_ext.abi3.so", macho_bundle(["@rpath/libvsmissing.dylib"], ["@loader_path"]), "@rpath/"),
        "windows_x86_64": ("vs/_ext.pyd", pe_dll(["vsmissing.dll", "KERNEL32.dll"]), "vsmissing.dll"),
    }
    for platform, (member, data, library) in cases.items():
        wheel = make_wheel(tmp_path / f"vs-1.0-{platform}.whl", {member: data, "vs/__init__.py": b""})
        warned = run(tmp_path, platform, [wheel])
        assert f"warning: layer 'app' ({platform}): {library}" in warned and f"/vs/{member[3:]} (vs 1.0)" in warned
        with pytest.raises(VenvstacksError, match=rf"strict_libraries:\n  layer 'app' \({platform}\): {library}"):
            loader_check.main(request(tmp_path, platform, [wheel], "--strict"))
    # A binary of another OS cannot load at all: reported as such.
    linux_in_windows = make_wheel(tmp_path / "vs-1.0-x.whl", {"vs/_ext.pyd": elf})
    assert "is a ELF file, which windows_x86_64 cannot load" in run(tmp_path, "windows_x86_64", [linux_in_windows])


@needs_gcc
def test_a_library_of_a_lower_layer_is_found_through_its_libraries_document(tmp_path: Path) -> None:
    lower_dir, upper_dir = tmp_path / "lower", tmp_path / "upper"
    lower_dir.mkdir()
    upper_dir.mkdir()
    elf = compile_elf(tmp_path, "libvsdyn.so")
    framework = make_wheel(
        tmp_path / "vsdynlib-1.0-x.whl", {"vsdynlib.libs/libvsdyn.so": (tmp_path / "libvsdyn.so").read_bytes()}
    )
    run(lower_dir, "linux_x86_64", [framework])
    document = json.loads((lower_dir / "libraries.json").read_text())
    assert document == {"layer_name": "app", "libraries": ["libvsdyn.so"], "platform": "x86_64-unknown-linux-gnu"}
    app = make_wheel(tmp_path / "vsdynext-1.0-x.whl", {"vsdynext/_ext.abi3.so": elf})
    assert "libvsdyn.so is needed" in run(upper_dir, "linux_x86_64", [app])
    lower = f"--lower-libraries={lower_dir / 'libraries.json'}"
    assert "warning" not in run(upper_dir, "linux_x86_64", [app], lower)
    # A library the lower layer keeps out of its dynlib directory (`dynlib_exclude`) is not found by name.
    run(lower_dir, "linux_x86_64", [framework], "--dynlib-exclude=vsdynlib.libs/*.so")
    assert json.loads((lower_dir / "libraries.json").read_text())["libraries"] == []
    assert "libvsdyn.so is needed" in run(upper_dir, "linux_x86_64", [app], lower)


def test_a_wheels_data_scheme_lands_at_the_layer_root_and_headers_nowhere() -> None:
    site, scripts = "Lib/site-packages", "Scripts"
    assert loader_check.wheel_member_path("pkg-1.0.data/data/Library/bin/x.dll", site, scripts) == "Library/bin/x.dll"
    assert loader_check.wheel_member_path("pkg-1.0.data/platlib/pkg/x.pyd", site, scripts) == f"{site}/pkg/x.pyd"
    assert loader_check.wheel_member_path("pkg-1.0.data/headers/x.h", site, scripts) is None
    assert loader_check.is_binary_name("libcudart.so.12") and not loader_check.is_binary_name("x.py")


def test_binary_names_are_the_golden_table() -> None:
    """The names tests/golden/binary_names.txt says may be binaries, as the layer rule's `_may_be_library` says."""
    golden = Path(__file__).resolve().parents[1] / "golden" / "binary_names.txt"
    cases = [line.split(" ") for line in golden.read_text(encoding="utf-8").splitlines() if line and line[0] != "#"]
    assert len(cases) >= 20
    for name, expected in cases:
        assert ("yes" if loader_check.is_binary_name(name) else "no") == expected, name


def test_cli_arguments_are_checked(tmp_path: Path) -> None:
    args = request(tmp_path, "linux_x86_64", [], "--app-file=nodest")
    with pytest.raises(VenvstacksError, match="--app-file 'nodest' is not of the form DEST=PATH"):
        loader_check.parse_request(args)
    outside = request(tmp_path, "linux_x86_64", [], "--runtime-file=/elsewhere/lib/x.so")
    with pytest.raises(VenvstacksError, match=r"runtime file '/elsewhere/lib/x\.so' is not under 'rt/python'"):
        loader_check.parse_request(outside)
