"""Tests of venvstacks_tool.pylock: the exact text of a lock, round trips, escaping and errors."""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path

import pytest

from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.core.project_names import normalize_name
from venvstacks_tool.lock import lock_command, pylock
from venvstacks_tool.lock.pylock import Lock, LockedPackage, LockedWheel, ProvidedPackage

SHA_A = "a" * 64
SHA_B = "b" * 64
INPUTS = "sha256:" + "f" * 64

LINUX = "x86_64-unknown-linux-gnu"
MACOS = "aarch64-apple-darwin"
WINDOWS = "x86_64-pc-windows-msvc"
LINUX_MARKER = "sys_platform == 'linux' and platform_machine == 'x86_64'"
MACOS_MARKER = "sys_platform == 'darwin' and platform_machine == 'arm64'"
WINDOWS_MARKER = "sys_platform == 'win32' and platform_machine == 'AMD64'"

# The lock contract between the writer (lock/pylock.py) and the module extension's reader
# (rules_venvstacks/private/fetch/pylock.bzl): `render_lock(golden_lock())` must be these bytes, and
# tests/starlark/pylock_test.bzl reads the same file with the real Starlark reader. After a
# deliberate change of the form: `pytest tests/unit/test_pylock.py --update-golden`.
GOLDEN_DIR = Path(__file__).resolve().parents[1] / "golden"
GOLDEN_PATH = GOLDEN_DIR / "pylock.golden.toml"
GOLDEN = GOLDEN_PATH.read_text(encoding="utf-8")
GOLDEN_TARGET = "//stacks:app.lock"
# The single-platform form the tool wrote before multi-platform locks, frozen: both readers still read it.
SINGLE_PLATFORM = (GOLDEN_DIR / "pylock.single-platform.toml").read_text(encoding="utf-8")

C_LINUX = "charset_normalizer-3.4.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
C_MACOS = "charset_normalizer-3.4.0-cp312-cp312-macosx_11_0_arm64.whl"
C_WINDOWS = "charset_normalizer-3.4.0-cp312-cp312-win_amd64.whl"
CLICK = "click-8.1.8-py3-none-any.whl"
COLORAMA = "colorama-0.4.6-py2.py3-none-any.whl"
LOCAL = "local_tool-0.1-py3-none-any.whl"
NUMPY_1_WINDOWS = "numpy-1.26.4-cp312-cp312-win_amd64.whl"
NUMPY_2_LINUX = "numpy-2.1.2-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
NUMPY_2_MACOS = "numpy-2.1.2-cp312-cp312-macosx_14_0_arm64.whl"
REQUESTS = "requests-2.32.3-py3-none-any.whl"
TOPOSORT_SDIST = "toposort-1.10.tar.gz"
TOPOSORT = "toposort-1.10-py3-none-any.whl"
SETUPTOOLS = "setuptools-80.9.0-py3-none-any.whl"
FASTEXT_SDIST = "fastext-2.0.tar.gz"
# What each platform's build of fastext's sdist (extension modules) makes: a native sdist.
FASTEXT = {
    LINUX: "fastext-2.0-cp312-cp312-linux_x86_64.whl",
    MACOS: "fastext-2.0-cp312-cp312-macosx_14_0_arm64.whl",
    WINDOWS: "fastext-2.0-cp312-cp312-win_amd64.whl",
}
# requests installs on every platform: its platform-wheels table, as the writer sorts it.
REQUESTS_TABLE = "[packages.tool.venvstacks.platform-wheels]\n" + "".join(
    f'{triple} = "{REQUESTS}"\n' for triple in (MACOS, WINDOWS, LINUX)
)


def sha(file_name: str) -> str:
    """The (made-up, fixed) sha256 the golden lock records for `file_name`."""
    return hashlib.sha256(file_name.encode("utf-8")).hexdigest()


def index_wheel(file_name: str) -> LockedWheel:
    """A wheel as the index serves it, at a URL in PyPI's layout (its path made of its hash)."""
    digest = sha(file_name)
    url = f"https://files.pythonhosted.org/packages/{digest[:2]}/{digest[2:4]}/{digest[4:]}/{file_name}"
    return LockedWheel(file_name, url, digest)


def wheel_line(file_name: str) -> str:
    """The line of GOLDEN's `wheels` array that holds `file_name`."""
    (line,) = [line for line in GOLDEN.splitlines() if line.startswith(f'    {{ name = "{file_name}", ')]
    return line


def golden_lock() -> Lock:
    """The fixed inputs of tests/golden/pylock.golden.toml: every feature `render_lock` writes.

    Three platforms; packages given out of order and a provided package given twice (the writer
    sorts and deduplicates); charset-normalizer with a different wheel on each platform, click
    with one wheel for all, colorama on Windows only (one platform's marker), numpy at two
    versions (Windows' and the others', whose marker joins two platforms with `or`), a find-links
    wheel recorded by its path from the lock's directory, index hashes, the inputs-hash of fixed
    inputs, requirements that need escaping, a versioned layer's lock version, toposort built
    from its sdist with one build wheel (`build_from_sdist`), and fastext, a native sdist (extension
    modules) that each platform builds into a wheel of its own.
    """
    requirements = ["click>=8", 'colorama; sys_platform == "win32"', "numpy", "requests", "local-tool", "toposort"]
    requirements.append("fastext")
    digest = lock_command.inputs_hash(
        layer_name="app",
        layer_kind="application",
        requirements=requirements,
        requirements_in=[b"charset-normalizer\n"],
        python_version="3.12.7",
        platforms=[LINUX, MACOS, WINDOWS],
        lower_locks=[("framework", b"the framework's lock\n")],
        index_url="https://pypi.org/simple",
        extra_index_urls=[],
        find_links=["wheels"],
        build_from_sdist=["toposort", "fastext"],
    )
    built = pylock.BuiltFromSdist(index_wheel(TOPOSORT_SDIST), TOPOSORT, [index_wheel(SETUPTOOLS)])
    native = pylock.BuiltFromSdist(index_wheel(FASTEXT_SDIST), "", [index_wheel(SETUPTOOLS)], native=True)
    local = LockedWheel(LOCAL, "", sha(LOCAL), path=f"../wheels/{LOCAL}")
    return Lock(
        layer="app",
        kind="application",
        inputs_hash=digest,
        python_version="3.12.7",
        platforms=[WINDOWS, LINUX, MACOS],
        requirements=requirements,
        packages=[
            LockedPackage("toposort", "1.10", [], {p: TOPOSORT for p in (LINUX, MACOS, WINDOWS)}, built=built),
            LockedPackage("fastext", "2.0", [], dict(FASTEXT), built=native),
            LockedPackage(
                "requests", "2.32.3", [index_wheel(REQUESTS)], {p: REQUESTS for p in (LINUX, MACOS, WINDOWS)}
            ),
            LockedPackage(
                "numpy",
                "2.1.2",
                [index_wheel(NUMPY_2_MACOS), index_wheel(NUMPY_2_LINUX)],
                {MACOS: NUMPY_2_MACOS, LINUX: NUMPY_2_LINUX},
            ),
            LockedPackage("numpy", "1.26.4", [index_wheel(NUMPY_1_WINDOWS)], {WINDOWS: NUMPY_1_WINDOWS}),
            LockedPackage("local-tool", "0.1", [local], {p: LOCAL for p in (WINDOWS, MACOS, LINUX)}),
            LockedPackage("colorama", "0.4.6", [index_wheel(COLORAMA)], {WINDOWS: COLORAMA}),
            LockedPackage("click", "8.1.8", [index_wheel(CLICK)], {p: CLICK for p in (MACOS, LINUX, WINDOWS)}),
            LockedPackage(
                "charset-normalizer",
                "3.4.0",
                [index_wheel(C_WINDOWS), index_wheel(C_MACOS), index_wheel(C_LINUX)],
                {WINDOWS: C_WINDOWS, LINUX: C_LINUX, MACOS: C_MACOS},
            ),
        ],
        provided=[
            ProvidedPackage("typing-extensions", "4.12.2", "framework"),
            ProvidedPackage("idna", "3.10", "framework"),
            ProvidedPackage("typing-extensions", "4.12.2", "framework"),
        ],
        lock_version=3,
    )


def _sorted(lock: Lock) -> Lock:
    """`lock` as `parse_lock` reads back what `render_lock` wrote: sorted, deduplicated, markers computed."""
    packages = [
        LockedPackage(
            p.name,
            p.version,
            sorted(p.wheels, key=lambda w: w.name),
            dict(sorted(p.platform_wheels.items())),
            pylock.package_marker(p, lock.platforms),
            p.built,
        )
        for p in sorted(lock.packages, key=lambda p: (normalize_name(p.name), p.version))
    ]
    provided = sorted(set(lock.provided), key=lambda p: (normalize_name(p.name), p.version, p.layer))
    return Lock(
        lock.layer,
        lock.kind,
        lock.inputs_hash,
        lock.python_version,
        sorted(lock.platforms),
        list(lock.requirements),
        packages,
        provided,
        lock.lock_version,
    )


def test_the_writer_reproduces_the_golden_lock(tmp_path: Path, update_golden: bool) -> None:
    path = tmp_path / "stacks" / "pylock.app.toml"
    pylock.write_lock(path, golden_lock(), GOLDEN_TARGET)
    if update_golden:
        GOLDEN_PATH.write_bytes(path.read_bytes())
    assert sorted(p.name for p in path.parent.iterdir()) == ["pylock.app.toml"], "written atomically, no leftovers"
    assert path.read_bytes() == GOLDEN_PATH.read_bytes(), (
        f"the writer no longer writes {GOLDEN_PATH.name}; if the change is meant, regenerate it with"
        " `pytest tests/unit/test_pylock.py --update-golden` and review the diff (the Starlark reader"
        " reads it in tests/starlark/pylock_test.bzl)"
    )


def test_the_golden_lock_holds_every_feature_of_the_form() -> None:
    """The golden text is worth its name: it shows each thing the reader must read."""
    assert len(re.findall(r"^    \"sys_platform", GOLDEN, re.MULTILINE)) == 3
    assert f'marker = "{WINDOWS_MARKER}"\n' in GOLDEN
    assert f'marker = "({MACOS_MARKER}) or ({LINUX_MARKER})"\n' in GOLDEN
    assert GOLDEN.count('name = "numpy"\n') == 2
    assert f'path = "../wheels/{LOCAL}"' in GOLDEN
    assert re.search(r'^inputs-hash = "sha256:[0-9a-f]{64}"$', GOLDEN, re.MULTILINE)
    assert '\\"win32\\"' in GOLDEN
    assert len(set(re.findall(r'sha256 = "([0-9a-f]{64})"', GOLDEN))) == 13
    assert f'sdist = {{ name = "{TOPOSORT_SDIST}", url = "' in GOLDEN
    assert f'built-wheel = "{TOPOSORT}"\nbuild-wheels = [\n    {{ name = "{SETUPTOOLS}"' in GOLDEN


def test_render_without_target_has_generic_header() -> None:
    text = pylock.render_lock(golden_lock())
    assert text.splitlines()[0] == "# This file is generated by `bazel run` of the layer's .lock target; do not edit."
    assert text.splitlines()[1:] == GOLDEN.splitlines()[1:]


def test_round_trip() -> None:
    lock = golden_lock()
    parsed = pylock.parse_lock(GOLDEN, "stacks/pylock.app.toml")
    assert parsed == _sorted(lock)
    assert pylock.render_lock(parsed, GOLDEN_TARGET) == GOLDEN


def test_parses_as_toml_with_pep751_keys() -> None:
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib
    data = tomllib.loads(GOLDEN)
    assert data["lock-version"] == "1.0"
    assert data["created-by"] == "rules_venvstacks"
    assert data["requires-python"] == "==3.12.*"
    assert data["environments"] == [MACOS_MARKER, LINUX_MARKER, WINDOWS_MARKER]
    packages = data["packages"]
    assert [(p["name"], p["version"]) for p in packages] == [
        ("charset-normalizer", "3.4.0"),
        ("click", "8.1.8"),
        ("colorama", "0.4.6"),
        ("fastext", "2.0"),
        ("local-tool", "0.1"),
        ("numpy", "1.26.4"),
        ("numpy", "2.1.2"),
        ("requests", "2.32.3"),
        ("toposort", "1.10"),
    ]
    assert [p.get("marker", "") for p in packages] == [
        "",
        "",
        WINDOWS_MARKER,
        "",
        "",
        WINDOWS_MARKER,
        f"({MACOS_MARKER}) or ({LINUX_MARKER})",
        "",
        "",
    ]
    sdist = index_wheel(TOPOSORT_SDIST)
    assert packages[8]["sdist"] == {"name": TOPOSORT_SDIST, "url": sdist.url, "hashes": {"sha256": sdist.sha256}}
    assert "wheels" not in packages[8]
    assert packages[8]["tool"]["venvstacks"]["built-wheel"] == TOPOSORT
    assert packages[3]["tool"]["venvstacks"]["native"] is True
    assert "built-wheel" not in packages[3]["tool"]["venvstacks"]
    assert packages[3]["tool"]["venvstacks"]["platform-wheels"] == FASTEXT
    assert packages[1]["wheels"] == [{"name": CLICK, "url": index_wheel(CLICK).url, "hashes": {"sha256": sha(CLICK)}}]
    assert packages[4]["wheels"] == [{"name": LOCAL, "path": f"../wheels/{LOCAL}", "hashes": {"sha256": sha(LOCAL)}}]
    assert packages[0]["tool"]["venvstacks"]["platform-wheels"] == {MACOS: C_MACOS, WINDOWS: C_WINDOWS, LINUX: C_LINUX}
    assert data["tool"]["venvstacks"]["platforms"] == [MACOS, WINDOWS, LINUX]
    assert data["tool"]["venvstacks"]["provided"] == [
        {"name": "idna", "version": "3.10", "layer": "framework"},
        {"name": "typing-extensions", "version": "4.12.2", "layer": "framework"},
    ]


def test_markers_of_the_environments_and_of_several_platforms() -> None:
    from packaging.markers import Marker

    from venvstacks_tool.core.platforms import PLATFORMS

    for target in PLATFORMS:
        environment = target.marker_environment("3.12.7")
        for other in PLATFORMS:
            assert Marker(pylock.platform_marker(other.triple)).evaluate(environment) is (other == target)
    both = pylock.platforms_marker([WINDOWS, LINUX, LINUX])
    assert both == f"({LINUX_MARKER}) or ({WINDOWS_MARKER})"
    assert Marker(both).evaluate(PLATFORMS[0].marker_environment("3.12.7"))
    assert not Marker(both).evaluate(PLATFORMS[1].marker_environment("3.12.7"))


def test_the_old_single_platform_form_reads() -> None:
    """tests/starlark/pylock_test.bzl reads the same file with the Starlark reader."""
    parsed = pylock.parse_lock(SINGLE_PLATFORM, "stacks/pylock.app.toml")
    assert parsed.platforms == [LINUX]
    assert [(p.name, p.version, p.platform_wheels) for p in parsed.packages] == [
        ("requests", "2.32.3", {LINUX: REQUESTS})
    ]
    assert parsed.packages[0].installs_on(LINUX) and not parsed.packages[0].installs_on(WINDOWS)


def test_packages_sorted_by_normalized_name_and_wheels_by_file_name() -> None:
    def package(name: str, *files: str) -> LockedPackage:
        return LockedPackage(name, "1.0", [LockedWheel(f, f"https://x/{f}", SHA_A) for f in files], {LINUX: files[0]})

    lock = Lock(
        "fw",
        "framework",
        INPUTS,
        "3.11.9",
        [LINUX],
        packages=[
            package("zope-interface", "z.whl"),
            package("Babel", "b2.whl", "b1.whl", "B0.whl"),
            package("a_b", "ab.whl"),
            package("a-a", "aa.whl"),
        ],
    )
    text = pylock.render_lock(lock)
    names = re.findall(r'^name = "(.*)"$', text, re.MULTILINE)
    assert names == ["a-a", "a_b", "Babel", "zope-interface"]
    assert re.findall(r'\{ name = "([bB]\d\.whl)"', text) == ["B0.whl", "b1.whl", "b2.whl"]


def test_two_versions_of_a_package_each_with_its_platforms() -> None:
    old = LockedPackage("numpy", "1.26.4", [LockedWheel("n1.whl", "https://x/n1.whl", SHA_A)], {WINDOWS: "n1.whl"})
    new = LockedPackage("numpy", "2.0.0", [LockedWheel("n2.whl", "https://x/n2.whl", SHA_B)], {LINUX: "n2.whl"})
    lock = Lock("fw", "framework", INPUTS, "3.12.7", [LINUX, WINDOWS], packages=[new, old])
    text = pylock.render_lock(lock)
    assert re.findall(r'^(?:version|marker) = "(.*)"$', text, re.MULTILINE) == [
        "1.26.4",
        WINDOWS_MARKER,
        "2.0.0",
        LINUX_MARKER,
    ]
    assert pylock.parse_lock(text, "fw.toml") == _sorted(lock)


def test_escaping_of_quotes_backslashes_and_control_characters() -> None:
    lock = Lock(
        'we"ird\\layer',
        "framework",
        INPUTS,
        "3.13.1",
        ["aarch64-apple-darwin"],
        requirements=['pkg; platform_version == "a\\b"', "tab\there", "new\nline\x01"],
        packages=[
            LockedPackage(
                "pkg",
                "1.0",
                [LockedWheel("pkg.whl", 'https://x/"q"\\p.whl', SHA_A)],
                {"aarch64-apple-darwin": "pkg.whl"},
            )
        ],
    )
    text = pylock.render_lock(lock)
    assert 'layer = "we\\"ird\\\\layer"' in text
    assert '    "pkg; platform_version == \\"a\\\\b\\"",' in text
    assert '    "tab\\there",' in text
    assert '    "new\\nline\\u0001",' in text
    assert 'url = "https://x/\\"q\\"\\\\p.whl"' in text
    assert pylock.parse_lock(text, "weird.toml") == lock


def test_a_layer_without_own_packages_has_no_packages_table() -> None:
    lock = Lock(
        "app",
        "application",
        INPUTS,
        "3.12.7",
        [LINUX],
        requirements=["numpy"],
        provided=[ProvidedPackage("numpy", "2.1.2", "framework")],
    )
    text = pylock.render_lock(lock)
    assert "[[packages]]" not in text
    assert "requirements = [\n" in text
    assert pylock.parse_lock(text, "app.toml") == lock
    empty = Lock("fw", "framework", INPUTS, "3.12.7", [LINUX])
    assert "requirements = [\n]\nprovided = [\n]\n" in pylock.render_lock(empty)
    assert pylock.parse_lock(pylock.render_lock(empty), "fw.toml") == empty


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace('lock-version = "1.0"', 'lock-version = "2.0"'), "unsupported version '2.0'"),
        (lambda t: t.replace('lock-version = "1.0"\n', ""), "missing 'lock-version'"),
        (lambda t: t.replace("[tool.venvstacks]", "[tool.other]"), "missing the [tool.venvstacks] table"),
        (lambda t: t.replace('kind = "application"', 'kind = "runtime"'), "unknown layer kind 'runtime'"),
        (lambda t: re.sub(r'inputs-hash = ".*"', 'inputs-hash = "md5:00"', t), "'inputs-hash' must be 'sha256:'"),
        (lambda t: t.replace(sha(REQUESTS), "A" * 64), "sha256 must be 64 lowercase hex digits"),
        (lambda t: t.replace('version = "2.32.3"\n', ""), "packages[7]: missing 'version'"),
        (lambda t: t.replace(f'    "{MACOS}",\n    "{WINDOWS}",\n    "{LINUX}",\n', ""), "'platforms' is empty"),
        (lambda t: t.replace(f'    "{MACOS}",\n', "    3,\n"), "platforms[0]: must be a string"),
        (lambda t: t.replace(f'{LINUX} = "{REQUESTS}"', f'{LINUX} = "x.whl"'), "which is not in its wheels"),
        (
            lambda t: t.replace(f'{LINUX} = "{REQUESTS}"', f'aarch64-unknown-linux-gnu = "{REQUESTS}"'),
            "platform-wheels names linux_aarch64, which is not among the lock's platforms (macos_arm64, windows_x86_64,"
            " linux_x86_64)",
        ),
        (
            lambda t: t.replace(REQUESTS_TABLE, ""),
            "package 'requests' 2.32.3: missing its [packages.tool.venvstacks.platform-wheels] table",
        ),
        (lambda t: t.replace('layer = "framework" }', 'layr = "framework" }'), "provided[0]: missing 'layer'"),
        (lambda t: t.replace("requirements = [", "requirements = [ 1,"), "requirements[0]: must be a string"),
        (lambda t: t + "= broken\n", "not a valid TOML file"),
    ],
)
def test_parse_errors_name_the_file(edit, message) -> None:  # type: ignore[no-untyped-def]
    text = edit(GOLDEN)
    assert text != GOLDEN
    with pytest.raises(VenvstacksError, match=re.escape(message)) as info:
        pylock.parse_lock(text, "stacks/app.pylock.toml")
    assert str(info.value).startswith("stacks/app.pylock.toml: ")


UNKNOWN = (
    "'x86_64-unknown-freebsd' is not the triple of a platform rules_venvstacks builds for; known: linux_aarch64"
    " (aarch64-unknown-linux-gnu), linux_x86_64 (x86_64-unknown-linux-gnu), macos_arm64 (aarch64-apple-darwin),"
    " macos_x86_64 (x86_64-apple-darwin), windows_x86_64 (x86_64-pc-windows-msvc)"
)


@pytest.mark.parametrize(
    ("base", "old", "new", "message"),
    [
        (GOLDEN, f'    "{LINUX}",\n]', '    "x86_64-unknown-freebsd",\n]', UNKNOWN),
        (GOLDEN, f'{LINUX} = "{REQUESTS}"', f'x86_64-unknown-freebsd = "{REQUESTS}"', UNKNOWN),
        (SINGLE_PLATFORM, f'platform = "{LINUX}"', 'platform = "x86_64-unknown-freebsd"', UNKNOWN),
        (GOLDEN, f'    "{LINUX}",\n]', f'    "{MACOS}",\n]', "platform macos_arm64 is listed twice"),
    ],
    ids=["in_platforms", "in_platform_wheels", "single_platform", "repeated_in_platforms"],
)
def test_an_unknown_or_repeated_triple_is_refused_at_its_line(base: str, old: str, new: str, message: str) -> None:
    """The cases tests/starlark/pylock_test.bzl refuses with the extension's reader, at the same line."""
    assert base.count(old) == 1
    text = base.replace(old, new)
    line = text[: text.index(new)].count("\n") + 1
    with pytest.raises(VenvstacksError) as info:
        pylock.parse_lock(text, "stacks/pylock.app.toml")
    assert str(info.value) == f"stacks/pylock.app.toml:{line}: {message}"


# Hand edits both readers refuse alike, at the same line (tests/starlark/pylock_test.bzl reads them too).
LOCK_EDITS = json.loads((GOLDEN_DIR / "lock_edits.json").read_text(encoding="utf-8"))["cases"]


@pytest.mark.parametrize("case", LOCK_EDITS, ids=[case["name"] for case in LOCK_EDITS])
def test_a_hand_edit_of_the_golden_lock_is_refused_at_its_line(case: dict[str, str]) -> None:
    """Each case of tests/golden/lock_edits.json: `<file>:<line>: <message>`, then the edit hint."""
    assert GOLDEN.count(case["old"]) == 1, "a case replaces one place of the golden lock"
    text = GOLDEN.replace(case["old"], case["new"])
    line = text[: text.index(case["at"] or case["new"])].count("\n") + 1
    with pytest.raises(VenvstacksError) as info:
        pylock.parse_lock(text, "stacks/pylock.app.toml")
    assert str(info.value) == f"stacks/pylock.app.toml:{line}: {case['message']} ({pylock._EDIT_HINT})"


@pytest.mark.parametrize(
    ("file_name", "version"),
    [
        (REQUESTS, "2.32.3"),
        ("pkg-1.0-1-py3-none-any.whl", "1.0"),  # with a build tag
        ("not-a-wheel.tar.gz", ""),
        ("p.whl", ""),
    ],
)
def test_wheel_version(file_name: str, version: str) -> None:
    assert pylock.wheel_version(file_name) == version


def test_versions_compare_as_the_wheel_spec_escapes_them() -> None:
    assert pylock.comparable_version("1.0-post1") == pylock.comparable_version("1.0_post1")
    assert pylock.comparable_version("V2.0RC1") == pylock.comparable_version("2.0rc1")
    assert pylock.comparable_version("2.0") != pylock.comparable_version("2.1")


def test_every_checked_in_lock_reads_whole() -> None:
    """The example's and the corpus's locks, as the lock command wrote them, pass every check."""
    root = GOLDEN_DIR.parents[1]
    locks = sorted([*root.glob("examples/*/stacks/pylock.*.toml"), *root.glob("tests/corpus/**/pylock.*.toml")])
    assert locks
    for path in locks:
        pylock.read_lock(path, location=str(path.relative_to(root)))


def test_a_package_without_wheels_is_an_error() -> None:
    text = GOLDEN.replace(wheel_line(REQUESTS) + "\n", "")
    with pytest.raises(VenvstacksError, match=r"^stacks/a\.toml: package 'requests' 2\.32\.3: has no wheels$"):
        pylock.parse_lock(text, "stacks/a.toml")


def test_read_lock_of_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(VenvstacksError, match="the lock file does not exist"):
        pylock.read_lock(tmp_path / "nope.toml")


def test_normalize_name() -> None:
    assert normalize_name("Foo_Bar.baz--Qux") == "foo-bar-baz-qux"


def _with_local_wheel(path: str) -> str:
    """GOLDEN with requests' wheel recorded by `path` (a find-links wheel) instead of a URL."""
    line = wheel_line(REQUESTS)
    return GOLDEN.replace(
        line, line.replace(f'url = "{index_wheel(REQUESTS).url}"', f"path = {pylock.toml_string(path)}")
    )


@pytest.mark.parametrize("sha256", ["", "a" * 63, "A" * 64, "g" * 64, "sha256:" + "a" * 64])
def test_an_empty_or_malformed_sha256_fails_naming_the_package_and_the_lock(sha256: str) -> None:
    text = GOLDEN.replace(sha(REQUESTS), sha256)
    with pytest.raises(VenvstacksError) as info:
        pylock.parse_lock(text, "stacks/pylock.app.toml")
    message = str(info.value)
    assert message.startswith("stacks/pylock.app.toml: package 'requests' 2.32.3 wheels[0]: sha256 must be"), message
    assert "\n" not in message


@pytest.mark.parametrize("path", ["../wheels/r.whl", "wheels/r.whl", "r.whl", "./w/../../w/r.whl"])
def test_a_wheel_path_inside_the_workspace_reads(path: str) -> None:
    lock = pylock.parse_lock(_with_local_wheel(path), "stacks/pylock.app.toml")
    wheel = next(p for p in lock.packages if p.name == "requests").wheels[0]
    assert (wheel.path, wheel.url) == (path, "")


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/etc/r.whl", "it is absolute"),
        ("C:\\wheels\\r.whl", "it is absolute"),
        ("file:///wheels/r.whl", "it is absolute"),
        ("../../r.whl", "its '..' climb out of the workspace"),
        ("..\\..\\r.whl", "its '..' climb out of the workspace"),
        ("w/../../../../../../etc/r.whl", "its '..' climb out of the workspace"),
        ("", "it is empty"),
    ],
)
def test_a_wheel_path_outside_the_workspace_fails_naming_the_package_and_the_lock(path: str, reason: str) -> None:
    """The lock command never writes such a path; reading one back fails as writing would have."""
    with pytest.raises(VenvstacksError) as info:
        pylock.parse_lock(_with_local_wheel(path), "stacks/pylock.app.toml")
    assert str(info.value) == (
        f"stacks/pylock.app.toml: package 'requests' 2.32.3: the path {path!r} of {REQUESTS} points outside"
        f" the workspace ({reason}); a local wheel must be in a find-links directory in the workspace"
    )


def test_the_depth_of_the_lock_bounds_the_climb(tmp_path: Path) -> None:
    """`location` (workspace-relative) says where the root is; by default it is the source, if relative."""
    text = _with_local_wheel("../../wheels/r.whl")
    pylock.parse_lock(text, "a/b/pylock.app.toml")  # a/b/../../wheels: the root's wheels/
    with pytest.raises(VenvstacksError, match="climb out of the workspace"):
        pylock.parse_lock(text, "b/pylock.app.toml")
    with pytest.raises(VenvstacksError, match="climb out of the workspace"):
        pylock.parse_lock(text, "/abs/a/b/pylock.app.toml", location="b/pylock.app.toml")
    # A runfiles path of another repository's lock counts from that repository's root.
    pylock.parse_lock(text, "../other_repo/a/b/pylock.app.toml")
    path = tmp_path / "a" / "pylock.app.toml"
    path.parent.mkdir()
    path.write_text(text, encoding="utf-8")
    with pytest.raises(VenvstacksError, match="climb out of the workspace"):
        pylock.read_lock(path, location="a/pylock.app.toml")
    # Where the root is unknown (an absolute path), only absolute wheel paths are refused.
    assert pylock.read_lock(path).packages


def test_lock_depth() -> None:
    assert pylock.lock_depth("pylock.app.toml") == 0
    assert pylock.lock_depth("stacks/pylock.app.toml") == 1
    assert pylock.lock_depth("./stacks//pylock.app.toml") == 1
    assert pylock.lock_depth("../repo/stacks/pylock.app.toml") == 1
    assert pylock.lock_depth("/abs/stacks/pylock.app.toml") is None
    assert pylock.lock_depth("stacks/../../pylock.app.toml") is None


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("native = true\n", "native = false\n", "package 'fastext' 2.0: 'native' must be true, not False"),
        (
            "native = true\n",
            'native = true\nbuilt-wheel = "fastext-2.0-cp312-cp312-linux_x86_64.whl"\n',
            "package 'fastext' 2.0: has an sdist but not one of 'built-wheel' or 'native'",
        ),
        ("native = true\n", "", "package 'fastext' 2.0: has an sdist but not one of 'built-wheel' or 'native'"),
    ],
)
def test_a_native_sdist_edited_by_hand_is_refused(old: str, new: str, message: str) -> None:
    assert GOLDEN.count(old) == 1
    with pytest.raises(VenvstacksError, match=re.escape(message)):
        pylock.parse_lock(GOLDEN.replace(old, new), "stacks/app.pylock.toml")


def test_a_native_sdist_reads_back_with_each_platforms_wheel() -> None:
    [fastext] = [
        package for package in pylock.parse_lock(GOLDEN, "stacks/app.pylock.toml").packages if package.name == "fastext"
    ]
    assert fastext.built is not None and fastext.built.native and fastext.built.wheel_name == ""
    assert fastext.platform_wheels == FASTEXT
    assert fastext.wheels == []
