"""core.platforms: the facts of the five PBS target platforms (pure, no network)."""

from __future__ import annotations

import importlib.machinery
import platform as host_platform
import re
import subprocess
import sys
from pathlib import Path

import pytest
from packaging import tags
from packaging.markers import Marker, default_environment

from venvstacks_tool.core import platforms
from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.core.platforms import PLATFORMS, by_name, by_triple

EXPECTED = {
    "x86_64-unknown-linux-gnu": "linux_x86_64",
    "aarch64-unknown-linux-gnu": "linux_aarch64",
    "x86_64-apple-darwin": "macos_x86_64",
    "aarch64-apple-darwin": "macos_arm64",
    "x86_64-pc-windows-msvc": "windows_x86_64",
}


def test_the_five_platforms_by_triple_and_name() -> None:
    assert {p.triple: p.name for p in PLATFORMS} == EXPECTED
    for triple, name in EXPECTED.items():
        assert by_triple(triple) is by_name(name)


def test_unknown_names_list_the_known_ones() -> None:
    with pytest.raises(VenvstacksError, match=r"unknown platform 'linux_riscv64'.*linux_x86_64.*windows_x86_64"):
        by_name("linux_riscv64")
    with pytest.raises(VenvstacksError, match=r"'x86_64-unknown-linux-musl'.*aarch64-apple-darwin"):
        by_triple("x86_64-unknown-linux-musl")


PLATFORM_LISTS = Path(__file__).resolve().parents[1] / "golden" / "platform_lists.txt"


def platform_list_cases() -> list[tuple[str, list[str], str]]:
    """(kind, values, expected) of each case of tests/golden/platform_lists.txt ("ok" or "INDEX | MESSAGE")."""
    cases = []
    for line in PLATFORM_LISTS.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            kind, values, expected = line.split(" | ", 2)
            cases.append((kind, [value for value in values.strip().split(",") if value], expected))
    return cases


def test_platform_lists_are_judged_as_the_golden_cases_say() -> None:
    """The cases tests/starlark/platforms_test.bzl holds platforms.bzl to: the same verdicts and messages."""
    cases = platform_list_cases()
    assert len(cases) >= 10 and {kind for kind, _, _ in cases} == {"names", "triples"}
    for kind, values, expected in cases:
        problem = platforms.platforms_problem(values, short_names=kind == "names")
        said = "ok" if problem is None else f"{problem.index} | {problem.message}"
        assert said == expected, (kind, values)


def test_by_name_and_by_triple_say_what_platforms_problem_says() -> None:
    for kind, values, expected in platform_list_cases():
        if len(values) == 1 and expected != "ok":
            lookup = by_name if kind == "names" else by_triple
            with pytest.raises(VenvstacksError) as info:
                lookup(values[0])
            assert str(info.value) == expected.partition(" | ")[2]


def test_marker_environment_has_packagings_keys_and_the_targets_values() -> None:
    for target in PLATFORMS:
        environment = target.marker_environment("3.11.7")
        assert set(environment) == set(default_environment())
        assert environment["python_version"] == "3.11"
        assert environment["python_full_version"] == environment["implementation_version"] == "3.11.7"
        assert environment["platform_release"] == environment["platform_version"] == ""
    windows = by_name("windows_x86_64").marker_environment("3.12.0rc1")
    assert (windows["os_name"], windows["sys_platform"], windows["platform_system"]) == ("nt", "win32", "Windows")
    assert windows["platform_machine"] == "AMD64"
    assert windows["python_full_version"] == "3.12.0rc1"
    assert by_name("macos_arm64").marker_environment("3.11.7")["platform_machine"] == "arm64"
    assert by_name("macos_x86_64").marker_environment("3.11.7")["sys_platform"] == "darwin"
    assert by_name("linux_aarch64").marker_environment("3.11.7")["platform_machine"] == "aarch64"
    # Usable as a marker environment as is.
    colorama = Marker('platform_system == "Windows" and python_version >= "3.8"')
    assert [colorama.evaluate(p.marker_environment("3.11.7")) for p in PLATFORMS] == [False] * 4 + [True]


def test_marker_environment_matches_the_host_where_it_is_one_of_them() -> None:
    host = default_environment()
    triple = {("Linux", "x86_64"): "x86_64-unknown-linux-gnu", ("Linux", "aarch64"): "aarch64-unknown-linux-gnu"}.get(
        (host_platform.system(), host_platform.machine())
    )
    if triple is None or sys.implementation.name != "cpython":
        pytest.skip("host is not a Linux PBS platform")
    ours = by_triple(triple).marker_environment(host_platform.python_version())
    ignored = {"platform_release", "platform_version"}
    assert {k: v for k, v in ours.items() if k not in ignored} == {k: v for k, v in host.items() if k not in ignored}


@pytest.mark.parametrize("version", ["3.11", "3", "3.11.x", ""])
def test_marker_environment_needs_a_full_version(version: str) -> None:
    with pytest.raises(VenvstacksError, match="full Python version"):
        by_name("linux_x86_64").marker_environment(version)


def test_linux_tags_are_manylinux_from_glibc_2_17_down() -> None:
    x86 = by_name("linux_x86_64").platform_tags()
    assert x86[:2] == ("manylinux_2_17_x86_64", "manylinux2014_x86_64")
    assert x86[-2:] == ("manylinux_2_5_x86_64", "manylinux1_x86_64")
    assert "manylinux2010_x86_64" in x86 and x86.index("manylinux2010_x86_64") == x86.index("manylinux_2_12_x86_64") + 1
    assert len(x86) == 13 + 3
    # aarch64 wheels start with manylinux2014 (glibc 2.17); no 2010/1 names exist for it.
    assert by_name("linux_aarch64").platform_tags() == ("manylinux_2_17_aarch64", "manylinux2014_aarch64")
    assert not any(tag.startswith("linux_") for p in PLATFORMS for tag in p.platform_tags())


def test_macos_tags_are_pips_for_the_pbs_deployment_target() -> None:
    x86 = by_name("macos_x86_64").platform_tags()
    arm = by_name("macos_arm64").platform_tags()
    assert x86 == tuple(tags.mac_platforms((10, 15), "x86_64"))
    assert arm == tuple(tags.mac_platforms((11, 0), "arm64"))
    assert x86[0] == "macosx_10_15_x86_64" and "macosx_10_9_x86_64" in x86 and "macosx_10_9_universal2" in x86
    assert "macosx_11_0_x86_64" not in x86  # would not load on the oldest Macs PBS supports
    assert arm[:2] == ("macosx_11_0_arm64", "macosx_11_0_universal2")
    assert "macosx_14_0_arm64" not in arm


def test_floors_can_be_raised_but_not_lowered() -> None:
    arm = by_name("macos_arm64")
    assert arm.platform_tags((14, 0)) == tuple(tags.mac_platforms((14, 0), "arm64"))
    assert arm.platform_tags((14, 0))[0] == "macosx_14_0_arm64"
    # One setting serves both Macs: below a platform's own floor, the floor stays.
    assert arm.platform_tags((10, 15)) == arm.platform_tags()
    linux = by_name("linux_x86_64")
    assert linux.platform_tags(glibc_minimum=(2, 28))[0] == "manylinux_2_28_x86_64"
    assert "manylinux_2_17_x86_64" in linux.platform_tags(glibc_minimum=(2, 28))
    assert linux.platform_tags(glibc_minimum=(2, 5)) == linux.platform_tags()
    assert linux.platform_tags()[0] == "manylinux_2_17_x86_64"


def test_the_default_floors_and_pbs_own() -> None:
    """By default a lock's wheels need glibc 2.28 and macOS 14.0; "2.17" and "10.15" give PBS' own floors back."""
    default = platforms.DEFAULT_FLOORS
    assert default.platform_tags(by_name("linux_aarch64"))[0] == "manylinux_2_28_aarch64"
    assert default.platform_tags(by_name("macos_x86_64"))[0] == "macosx_14_0_x86_64"
    assert default.floor_of(by_name("macos_arm64")) == (14, 0)
    assert default.floor_of(by_name("windows_x86_64")) is None
    pbs = platforms.WheelFloors(glibc=(2, 17), macos=(10, 15))
    for name in ("linux_x86_64", "macos_x86_64", "macos_arm64"):
        assert pbs.platform_tags(by_name(name)) == by_name(name).platform_tags(), name
    assert pbs.floor_of(by_name("macos_arm64")) == (11, 0), "arm64 Macs start at 11.0"
    # The lock's inputs hash holds the floors of the systems it covers only.
    assert default.as_dict() == {"glibc": "2.28", "macos": "14.0"}
    assert default.as_dict(["linux", "windows"]) == {"glibc": "2.28"}
    assert default.as_dict(["windows"]) == {}
    mac_first = (by_name(name).os for name in ("macos_arm64", "linux_x86_64"))
    assert default.as_dict(mac_first) == {"glibc": "2.28", "macos": "14.0"}, "a generator is read once"


def test_windows_tags() -> None:
    assert by_name("windows_x86_64").platform_tags() == ("win_amd64",)


def test_extension_suffixes() -> None:
    assert by_name("linux_x86_64").extension_suffixes("3.11") == (".cpython-311-x86_64-linux-gnu.so", ".abi3.so", ".so")
    assert by_name("linux_aarch64").extension_suffixes("3.12.1")[0] == ".cpython-312-aarch64-linux-gnu.so"
    assert by_name("macos_arm64").extension_suffixes("3.11") == (".cpython-311-darwin.so", ".abi3.so", ".so")
    assert by_name("macos_x86_64").extension_suffixes("3.13") == (".cpython-313-darwin.so", ".abi3.so", ".so")
    assert by_name("windows_x86_64").extension_suffixes("3.11") == (".cp311-win_amd64.pyd", ".pyd")
    if (host_platform.system(), host_platform.machine()) == ("Linux", "x86_64"):
        version = f"{sys.version_info[0]}.{sys.version_info[1]}"
        host_suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
        if not hasattr(sys, "_is_gil_enabled") or sys._is_gil_enabled():
            assert by_name("linux_x86_64").extension_suffixes(version) == host_suffixes
    with pytest.raises(VenvstacksError, match="not a Python version"):
        by_name("linux_x86_64").extension_suffixes("three")


def test_layout() -> None:
    linux, mac, windows = by_name("linux_x86_64"), by_name("macos_arm64"), by_name("windows_x86_64")
    for posix in (linux, mac):
        assert posix.runtime_interpreter == "bin/python3"
        assert posix.site_packages("3.11") == "lib/python3.11/site-packages"
        assert posix.scripts_dir == "bin"
        assert posix.include_dir("3.12.4") == "include/python3.12"
        assert posix.venv_interpreter == "bin/python"
    assert windows.runtime_interpreter == "python.exe"
    assert windows.site_packages("3.11") == "Lib/site-packages"
    assert windows.scripts_dir == "Scripts"
    assert windows.include_dir("3.11") == "Include"
    assert windows.venv_interpreter == "Scripts/python.exe"


def test_platforms_are_frozen_and_import_nothing_outside_the_stdlib() -> None:
    with pytest.raises(AttributeError):
        PLATFORMS[0].name = "other"  # type: ignore[misc]
    tools = str(Path(platforms.__file__).parents[2])
    probe = (
        f"import sys; sys.path.insert(0, {tools!r}); import venvstacks_tool.core.platforms;"
        " print(sorted(m for m in sys.modules if m.split('.')[0] in ('packaging', 'pip')))"
    )
    result = subprocess.run([sys.executable, "-I", "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_the_starlark_table_names_the_same_platforms() -> None:
    """rules_venvstacks/private/common/platforms.bzl and core/platforms.py must agree (keep in sync)."""
    bzl = Path(__file__).resolve().parents[2] / "rules_venvstacks" / "private" / "common" / "platforms.bzl"
    pairs = re.findall(r'"(\w+)": struct\(triple = "([\w-]+)"', bzl.read_text(encoding="utf-8"))
    assert sorted(pairs) == sorted((p.name, p.triple) for p in platforms.PLATFORMS)
