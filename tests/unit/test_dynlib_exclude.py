"""build/dynlib_exclude.py: venvstacks' `dynlib_exclude` globs, and a layer built with them."""

from __future__ import annotations

import glob
import re
import sys
from pathlib import Path

import pytest

from venvstacks_testing.archives import archive_listing
from venvstacks_testing.layer_inputs import SITE, XY, build, build_argv
from venvstacks_testing.wheel_index import build_wheel
from venvstacks_tool.build import layer as layer_build
from venvstacks_tool.build.dynlib_exclude import compile_exclusions, pattern_problem, translate
from venvstacks_tool.core.errors import VenvstacksError

ROOT = Path(__file__).resolve().parents[2]
NODOT = XY.replace(".", "")
SP = "lib/python3.12/site-packages"

# (pattern, path below the layer root, excluded?): what glob.translate("/" + pattern,
# recursive=True, include_hidden=True) says of each, as venvstacks matches (checked against
# Python 3.13's glob.translate below when the tests run on 3.13 or newer).
CASES = [
    ("libfoo.so", f"{SP}/libfoo.so", True),
    ("libfoo.so", f"{SP}/x/libfoo.so", True),
    ("libfoo.so", f"{SP}/xlibfoo.so", False),  # the end of the path, at a `/` boundary
    ("libfoo.so", f"{SP}/libfoo.so.bak", False),
    ("*.so", f"{SP}/pkg.libs/libz.so", True),
    ("pkg.libs/*.so", f"{SP}/pkg.libs/libz.so", True),
    ("pkg.libs/*.so", f"{SP}/pkg.libs/sub/libz.so", False),  # `*` stays in one component
    ("**/libcuda*.so", f"{SP}/nvidia/cuda/lib/libcudart.so", True),
    ("**/libcuda*.so", f"{SP}/libcuda.so", True),
    ("torch/**", f"{SP}/torch/lib/libtorch.so", True),
    ("a/**/b/*.dylib", f"{SP}/a/q/r/b/c.dylib", True),
    ("a/**/b/*.dylib", f"{SP}/a/b/c.dylib", True),
    ("lib?.so", f"{SP}/liba.so", True),
    ("lib?.so", f"{SP}/libab.so", False),
    ("lib[ab].so", f"{SP}/libb.so", True),
    ("lib[ab].so", f"{SP}/libc.so", False),
    ("lib[!a].so", f"{SP}/libc.so", True),
    ("lib[!a].so", f"{SP}/liba.so", False),
    ("lib[]x].so", f"{SP}/lib].so", True),
    ("lib[.so", f"{SP}/lib[.so", True),  # an unclosed `[` is itself
    ("*.so", f"{SP}/.hidden.so", True),  # wildcards match hidden names
    ("site-packages/**/x.so", f"{SP}/x.so", True),
    ("lib+(1).so", f"{SP}/lib+(1).so", True),  # regex characters are literal
]


@pytest.mark.parametrize(("pattern", "path", "excluded"), CASES)
def test_patterns_match_the_end_of_the_path_as_venvstacks(pattern: str, path: str, excluded: bool) -> None:
    assert compile_exclusions([pattern], "fw").excludes(path) is excluded
    if sys.version_info >= (3, 13):
        reference = re.compile(glob.translate("/" + pattern, recursive=True, include_hidden=True, seps="/"))  # type: ignore[attr-defined,unused-ignore]
        assert bool(reference.search("/" + path)) is excluded
    assert translate(pattern).pattern.endswith(r"\Z")


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [("", "is empty"), ("/abs/libx.so", "starts with '/'"), ("dir\\libx.so", "holds a '\\'")],
)
def test_bad_patterns_are_refused_naming_layer_and_pattern(pattern: str, problem: str) -> None:
    with pytest.raises(VenvstacksError) as error:
        compile_exclusions(["ok.so", pattern], "fw")
    assert str(error.value).startswith(f"layer 'fw': dynlib_exclude pattern {pattern!r} {problem}")


def test_the_starlark_check_says_the_same() -> None:
    """rules_venvstacks/private/build/dynlib_exclude.bzl refuses the same patterns in the same words, at analysis."""
    text = (ROOT / "rules_venvstacks/private/build/dynlib_exclude.bzl").read_text(encoding="utf-8")
    for pattern in ("", "/abs", "a\\b"):
        phrase = pattern_problem(pattern)
        assert f'return "{phrase.replace(chr(92), chr(92) * 2)}"' in text, phrase


def _two_libfoo_wheels(directory: Path) -> list[Path]:
    tag = f"cp{NODOT}-cp{NODOT}-manylinux_2_17_x86_64"
    return [
        build_wheel(
            directory, name, "1.0", tag=tag, files={f"{name}/__init__.py": b"", f"{name}.libs/libfoo.so": b"\x7fELF"}
        )
        for name in ("one", "two")
    ]


def test_two_libraries_of_one_name_build_once_one_is_excluded(tmp_path: Path) -> None:
    wheels = _two_libfoo_wheels(tmp_path / "wheels")
    with pytest.raises(VenvstacksError, match=r"two shared libraries are named 'libfoo\.so'.*dynlib_exclude"):
        layer_build.build_layer(layer_build.parse_request(build_argv(tmp_path / "refused", "fw", wheels=wheels)))
    build(build_argv(tmp_path / "fw", "fw", wheels=wheels, extra=("--dynlib-exclude", "two.libs/libfoo.so")))
    listing = archive_listing(tmp_path / "fw/fw.tar.zst")
    assert listing["fw/share/venv/dynlib/libfoo.so"] == ("symlink", 0o777, f"../../../{SITE}/one.libs/libfoo.so")
    assert f"fw/{SITE}/two.libs/libfoo.so" in listing, "excluded from linking, still installed"
    # Excluding every copy leaves nothing to link, and no dynlib directory.
    build(build_argv(tmp_path / "none", "fw", wheels=wheels, extra=("--dynlib-exclude", "**/libfoo.so")))
    assert not any(name.startswith("fw/share/venv/dynlib") for name in archive_listing(tmp_path / "none/fw.tar.zst"))
