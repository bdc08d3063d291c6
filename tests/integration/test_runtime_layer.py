"""The runtime layer through a real Bazel: fetch from 127.0.0.1, pack, unpack, run; and failures."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import zstandard

from venvstacks_testing.bazel_workspace import CHECKOUT, Workspace
from venvstacks_testing.fixture_pbs import make_fixture_runtime, windows_runtime_module
from venvstacks_testing.http_server import serve_directory
from venvstacks_testing.local_pbs import LocalRuntime, make_local_runtime
from venvstacks_testing.stack_workspace import copy_checkout
from venvstacks_tool.core.platforms import by_name

pytestmark = pytest.mark.integration

BUILD_FILE = """\
load("@rules_venvstacks//rules_venvstacks:defs.bzl", "runtime_layer")

runtime_layer(name = "cpython_layer", runtime = "@cpython_local")

[
    runtime_layer(
        name = "cpython_layer_" + kind,
        archive_format = archive_format,
        layer_name = "cpython_layer",
        runtime = "@cpython_local",
    )
    for kind, archive_format in [("xz", "tar.xz"), ("zip", "zip")]
]
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalRuntime, str]]:
    """The host CPython as a PBS-layout archive, served on 127.0.0.1."""
    directory = tmp_path_factory.mktemp("pbs")
    runtime = make_local_runtime(directory)
    (directory / "broken-layout.tar.gz").write_bytes(_archive_with_member("other/bin/python3"))
    # A "mirror" that serves wrong bytes under the real PBS file name, for the table path.
    table = json.loads((CHECKOUT / "rules_venvstacks/private/fetch/pbs_releases.json").read_text())
    version = table["latest"]["3.12"]
    entry = table["versions"][version]
    mirror = directory / "mirror" / entry["release"] / entry["assets"]["x86_64-unknown-linux-gnu"]["file"]
    mirror.parent.mkdir(parents=True)
    shutil.copy(runtime.path, mirror)
    with serve_directory(directory) as url:
        yield runtime, url


def _archive_with_member(name: str) -> bytes:
    """A .tar.gz holding one empty file; byte-stable (no gzip header time)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = 0
        tar.addfile(info, io.BytesIO(b""))
    return gzip.compress(buffer.getvalue(), mtime=0)


def _module(runtime: LocalRuntime, url: str) -> str:
    return f"""\
        venvstacks.runtime(
            name = "cpython_local",
            python_version = "{runtime.python_version}",
            urls = ["{url}/{runtime.path.name}"],
            sha256 = "{runtime.sha256}",
        )
        use_repo(venvstacks, "cpython_local")
        """


def _make_workspace(root: Path, runtime: LocalRuntime, url: str, rules_path: Path = CHECKOUT) -> Workspace:
    workspace = Workspace(root, rules_path)
    workspace.write_module(_module(runtime, url))
    workspace.write("BUILD.bazel", BUILD_FILE)
    return workspace


@pytest.fixture(scope="module")
def built(served: tuple[LocalRuntime, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """A workspace with the three runtime layers built."""
    runtime, url = served
    workspace = _make_workspace(tmp_path_factory.mktemp("ws_a"), runtime, url)
    workspace.bazel("build", "//:all")
    yield workspace
    workspace.shutdown()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_layer_unpacks_and_its_interpreter_runs(
    built: Workspace, tmp_path: Path, served: tuple[LocalRuntime, str]
) -> None:
    archive = built.output("cpython_layer.tar.zst")
    with (
        archive.open("rb") as raw,
        zstandard.ZstdDecompressor().stream_reader(raw) as stream,
        tarfile.open(fileobj=stream, mode="r|") as tar,
    ):
        tar.extractall(tmp_path, filter="tar")
    python = tmp_path / "cpython_layer" / "bin" / "python3"
    assert python.is_symlink(), "the PBS bin/python3 symlink is kept as a symlink"
    code = "import sys, json; print(json.dumps([sys.prefix, sys.version.split()[0]]))"
    prefix, version = json.loads(
        subprocess.run([python, "-I", "-c", code], check=True, capture_output=True, text=True).stdout
    )
    assert Path(prefix) == tmp_path / "cpython_layer"
    assert version == served[0].python_version
    config = json.loads((tmp_path / "cpython_layer/share/venv/metadata/venvstacks_layer.json").read_text())
    assert config["py_version"] == version


def test_metadata_describes_archive_and_source(built: Workspace, served: tuple[LocalRuntime, str]) -> None:
    runtime, _ = served
    metadata = json.loads(built.output("cpython_layer.json").read_text())
    archive = built.output("cpython_layer.tar.zst")
    assert metadata["layer_name"] == "cpython_layer"
    assert metadata["python_version"] == runtime.python_version
    assert metadata["archive"]["sha256"] == _sha256(archive)
    assert metadata["archive"]["size"] == archive.stat().st_size
    assert metadata["source"]["sha256"] == runtime.sha256
    assert "urls" not in metadata["source"], "a mirror's URL must not change the action key of layers above"
    assert str(built.root) not in built.output("cpython_layer.json").read_text()


def test_xz_and_zip_formats_hold_the_same_members(built: Workspace) -> None:
    import zipfile

    with tarfile.open(built.output("cpython_layer_xz.tar.xz")) as tar:
        tar_names = sorted(m.name for m in tar.getmembers() if not m.isdir())
    with zipfile.ZipFile(built.output("cpython_layer_zip.zip")) as archive:
        zip_names = sorted(n for n in archive.namelist() if not n.endswith("/"))
    assert tar_names == zip_names
    assert "cpython_layer/bin/python3" in tar_names


def test_same_bytes_from_a_checkout_at_another_path(
    built: Workspace, served: tuple[LocalRuntime, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    runtime, url = served
    other = copy_checkout(tmp_path_factory.mktemp("checkout_b") / "rules_venvstacks")
    workspace = _make_workspace(tmp_path_factory.mktemp("ws_b"), runtime, url, rules_path=other)
    try:
        workspace.bazel("build", "//:all")
        for name in (
            "cpython_layer.tar.zst",
            "cpython_layer_xz.tar.xz",
            "cpython_layer_zip.zip",
            "cpython_layer.json",
        ):
            assert _sha256(workspace.output(name)) == _sha256(built.output(name)), name
    finally:
        workspace.shutdown()


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """One workspace whose MODULE.bazel each failure case rewrites (one Bazel server for all)."""
    workspace = Workspace(tmp_path_factory.mktemp("ws_fail"))
    workspace.write("BUILD.bazel", BUILD_FILE)
    yield workspace
    workspace.shutdown()


def _fails(workspace: Workspace, module: str, *expected: str) -> None:
    workspace.write_module(module)
    result = workspace.bazel("build", "//:cpython_layer", check=False)
    assert result.returncode != 0
    for text in expected:
        assert text in result.stderr, f"{text!r} not in:\n{result.stderr[-4000:]}"


def test_wrong_sha256_names_runtime_expected_and_found(scratch: Workspace, served: tuple[LocalRuntime, str]) -> None:
    runtime, url = served
    wrong = "0" * 64
    module = _module(runtime, url).replace(runtime.sha256, wrong)
    _fails(
        scratch,
        module,
        "runtime 'cpython_local'",
        f"sha256 {wrong}",
        f"Checksum was {runtime.sha256}",
    )


def test_mirror_of_the_table_is_checked_against_the_real_pbs_sha256(
    scratch: Workspace, served: tuple[LocalRuntime, str]
) -> None:
    runtime, url = served
    table = json.loads((CHECKOUT / "rules_venvstacks/private/fetch/pbs_releases.json").read_text())
    version = table["latest"]["3.12"]
    real = table["versions"][version]["assets"]["x86_64-unknown-linux-gnu"]["sha256"]
    module = f"""\
        venvstacks.runtime(name = "cpython_local", python_version = "3.12", base_urls = ["{url}/mirror"])
        use_repo(venvstacks, "cpython_local")
        """
    _fails(
        scratch,
        module,
        "runtime 'cpython_local'",
        f"sha256 {real}",
        f"Checksum was {runtime.sha256}",
    )


def test_unknown_version_lists_known_ones(scratch: Workspace) -> None:
    module = """\
        venvstacks.runtime(name = "cpython_local", python_version = "3.99")
        use_repo(venvstacks, "cpython_local")
        """
    _fails(
        scratch,
        module,
        "runtime 'cpython_local'",
        "python_version '3.99' is not in the built-in PBS table",
        "known:",
    )


def test_wrong_layout_says_what_was_expected_and_found(scratch: Workspace, served: tuple[LocalRuntime, str]) -> None:
    runtime, url = served
    broken = hashlib.sha256(_archive_with_member("other/bin/python3")).hexdigest()
    module = f"""\
        venvstacks.runtime(
            name = "cpython_local",
            python_version = "{runtime.python_version}",
            urls = ["{url}/broken-layout.tar.gz"],
            sha256 = "{broken}",
        )
        use_repo(venvstacks, "cpython_local")
        """
    _fails(
        scratch,
        module,
        "runtime 'cpython_local'",
        "'python/bin/python3'",
        "found top-level entries: other/",
    )


def test_custom_build_without_sha256_is_refused(scratch: Workspace, served: tuple[LocalRuntime, str]) -> None:
    runtime, url = served
    module = _module(runtime, url).replace(f'sha256 = "{runtime.sha256}",', "")
    _fails(scratch, module, "runtime 'cpython_local'", "needs its `sha256`")


_EARLY_REFUSALS = {
    "archive-for-an-untargeted-platform": (
        'venvstacks.runtime_archive(runtime = "cpython_local", platform = "windows_x86_64", python_version ='
        ' "{version}", urls = ["{url}/unused.tar.gz"], sha256 = "{zeros}")\n',
        "venvstacks.runtime_archive(runtime = 'cpython_local', platform = 'windows_x86_64') in the MODULE.bazel of"
        " module 'scratch': runtime 'cpython_local' does not target windows_x86_64 (its platforms: linux_x86_64),"
        " so this archive would never be used; add 'windows_x86_64' to the runtime's `platforms`, or remove the tag",
    ),
    "glibc-of-no-release": (
        'glibc_minimum = "2.99"',
        "runtime 'cpython_local' (module 'scratch'): glibc_minimum = '2.99' is not a glibc release"
        " rules_venvstacks knows; give one from 2.17 (PBS' floor) to 2.44",
    ),
    "macos-of-no-release": (
        'macos_minimum = "16.0"',
        "runtime 'cpython_local' (module 'scratch'): macos_minimum = '16.0' is not a macOS release"
        " rules_venvstacks knows; give 10.9 to 10.15, or MAJOR.MINOR with MAJOR one of 11, 12, 13, 14, 15, 26",
    ),
}


@pytest.mark.parametrize("case", sorted(_EARLY_REFUSALS))
def test_inputs_that_would_be_ignored_or_name_no_release_fail_in_the_module_extension(
    scratch: Workspace, served: tuple[LocalRuntime, str], case: str
) -> None:
    """Refused when the extension runs, with the tag or attribute at fault in one line, before any fetch."""
    runtime, url = served
    addition, expected = _EARLY_REFUSALS[case]
    module = textwrap.dedent(_module(runtime, url))
    if addition.startswith("venvstacks."):
        module += addition.format(version=runtime.python_version, url=url, zeros="0" * 64)
    else:
        module = module.replace('name = "cpython_local",', f'name = "cpython_local",\n    {addition},')
    scratch.write_module(module)
    result = scratch.bazel("build", "--nobuild", "//:cpython_layer", check=False)
    assert result.returncode != 0
    assert f"Error in fail: {expected}" in result.stderr.splitlines(), result.stderr[-4000:]


def test_local_archive_file(scratch: Workspace, served: tuple[LocalRuntime, str]) -> None:
    runtime, _ = served
    shutil.copy(runtime.path, scratch.root / "runtime.tar.gz")
    scratch.write_module(f"""\
        venvstacks.runtime(
            name = "cpython_local",
            python_version = "{runtime.python_version}",
            archive = "//:runtime.tar.gz",
            sha256 = "{runtime.sha256}",
        )
        use_repo(venvstacks, "cpython_local")
        """)
    scratch.bazel("build", "//:cpython_layer")
    metadata = json.loads(scratch.output("cpython_layer.json").read_text())
    assert metadata["source"] == {"sha256": runtime.sha256, "strip_prefix": "python"}


# --- hardening: every bad input caught at the earliest phase, in one line ----------------------


def _xy(version: str) -> str:
    return ".".join(version.split(".")[:2])


def test_a_runtime_of_another_patch_release_fails_when_its_repository_is_made(
    scratch: Workspace, served: tuple[LocalRuntime, str]
) -> None:
    """The exact version comes from the archive's patchlevel.h, not from running its interpreter."""
    runtime, url = served
    major, minor, micro = runtime.python_version.split(".")[:3]
    declared = f"{major}.{minor}.{int(micro) + 1}"
    module = _module(runtime, url).replace(f'"{runtime.python_version}"', f'"{declared}"')
    _fails(
        scratch,
        module,
        f"runtime 'cpython_local': archive '{runtime.path.name}' holds CPython {runtime.python_version}"
        f" (python/include/python{major}.{minor}/patchlevel.h), but python_version is {declared}",
    )


def _analyze_for_windows(workspace: Workspace) -> subprocess.CompletedProcess[str]:
    # Analysis selects, hence makes, the Windows runtime repository; nothing is built.
    return workspace.bazel(
        "build", "--nobuild", "--platforms=@rules_venvstacks//platforms:windows_x86_64", "//:cpython_layer", check=False
    )


def test_a_windows_runtime_is_checked_by_its_include_patchlevel_h(
    scratch: Workspace, served: tuple[LocalRuntime, str]
) -> None:
    runtime, url = served
    directory = scratch.root / "pbs"
    declared = f"{_xy(runtime.python_version)}.14"
    fixture = make_fixture_runtime(directory, by_name("windows_x86_64"), declared, patchlevel=f"{_xy(declared)}.2")
    shutil.copy(fixture.path, runtime.path.parent / fixture.path.name)
    scratch.write_module(windows_runtime_module("cpython_local", runtime, url, fixture))
    result = _analyze_for_windows(scratch)
    assert result.returncode != 0
    expected = (
        f"runtime 'cpython_local': archive '{fixture.path.name}' holds CPython {_xy(declared)}.2"
        f" (python/Include/patchlevel.h), but python_version is {declared}"
    )
    assert expected in result.stderr, result.stderr[-4000:]


def test_an_archive_without_patchlevel_h_is_checked_on_its_x_y(
    scratch: Workspace, served: tuple[LocalRuntime, str]
) -> None:
    """The documented fallback: a custom build without headers passes on its lib/python3.X (Lib/) alone."""
    runtime, url = served
    fixture = make_fixture_runtime(scratch.root / "pbs", by_name("windows_x86_64"), f"{_xy(runtime.python_version)}.14")
    shutil.copy(fixture.path, runtime.path.parent / fixture.path.name)
    scratch.write_module(windows_runtime_module("cpython_local", runtime, url, fixture))
    result = _analyze_for_windows(scratch)
    assert result.returncode == 0, result.stderr[-4000:]


_LOCK_TEMPLATE = """\
lock-version = "1.0"
created-by = "rules_venvstacks"
requires-python = "==3.11.*"
environments = [
    "sys_platform == 'linux' and platform_machine == 'x86_64'",
]

[[packages]]
name = "demo"
version = "1.0"
wheels = [
    {{ name = "demo-1.0-py3-none-any.whl", {where}, hashes = {{ sha256 = "{sha256}" }} }},
]

[packages.tool.venvstacks.platform-wheels]
x86_64-unknown-linux-gnu = "demo-1.0-py3-none-any.whl"

[tool.venvstacks]
layer = "app"
kind = "application"
inputs-hash = "sha256:{zeros}"
python-version = "3.11.7"
platforms = [
    "{triple}",
]
requirements = [
    "demo",
]
provided = [
]
"""


_DEMO_URL = 'url = "https://files.example/demo-1.0-py3-none-any.whl"'
_LINUX = "x86_64-unknown-linux-gnu"


@pytest.mark.parametrize(
    ("where", "sha256", "triple", "expected"),
    [
        (
            _DEMO_URL,
            "",
            _LINUX,
            "8: package 'demo': the sha256 of demo-1.0-py3-none-any.whl is not 64 lowercase hex digits (it is empty):"
            " ''",
        ),
        (
            _DEMO_URL,
            "XYZ",
            _LINUX,
            "8: package 'demo': the sha256 of demo-1.0-py3-none-any.whl is not 64 lowercase hex digits (it has 3",
        ),
        (
            'path = "../../outside/demo-1.0-py3-none-any.whl"',
            "a" * 64,
            _LINUX,
            "8: package 'demo': the path '../../outside/demo-1.0-py3-none-any.whl' of demo-1.0-py3-none-any.whl"
            " points outside the workspace (its '..' climb out of the workspace)",
        ),
        (
            'path = "/etc/demo-1.0-py3-none-any.whl"',
            "a" * 64,
            _LINUX,
            "8: package 'demo': the path '/etc/demo-1.0-py3-none-any.whl' of demo-1.0-py3-none-any.whl points outside"
            " the workspace (it is absolute)",
        ),
        (
            # Before the reader knew the triples, this failed later as a bare key error in the hub.
            _DEMO_URL,
            "a" * 64,
            "x86_64-unknown-freebsd",
            "24: 'x86_64-unknown-freebsd' is not the triple of a platform rules_venvstacks builds for; known:"
            " linux_aarch64 (aarch64-unknown-linux-gnu), linux_x86_64 (x86_64-unknown-linux-gnu),",
        ),
    ],
    ids=["empty-sha256", "short-sha256", "path-climbs-out", "absolute-path", "unknown-triple"],
)
def test_a_lock_the_tool_would_not_write_fails_in_the_module_extension(
    scratch: Workspace, served: tuple[LocalRuntime, str], where: str, sha256: str, triple: str, expected: str
) -> None:
    runtime, url = served
    scratch.write("stacks/BUILD.bazel", 'exports_files(["pylock.app.toml"])\n')
    lock = _LOCK_TEMPLATE.format(where=where, sha256=sha256, zeros="0" * 64, triple=triple)
    scratch.write("stacks/pylock.app.toml", lock)
    module = _module(runtime, url).replace(
        'use_repo(venvstacks, "cpython_local")',
        'venvstacks.lock(name = "app", file = "//stacks:pylock.app.toml")\n'
        '        use_repo(venvstacks, "cpython_local", "venvstacks_wheels")',
    )
    _fails(scratch, module, "pylock.app.toml:" + expected)


def test_an_index_url_with_credentials_fails_at_analysis_without_showing_them(
    scratch: Workspace, served: tuple[LocalRuntime, str]
) -> None:
    runtime, url = served
    secret = "s3cret-in-a-build-file"
    scratch.write(
        "creds/BUILD.bazel",
        f"""\
load("@rules_venvstacks//rules_venvstacks:defs.bzl", "framework_layer", "layer_stack", "runtime_layer")

runtime_layer(name = "rt", runtime = "@cpython_local")

framework_layer(
    name = "fw",
    index_url = "https://user:{secret}@index.example/simple",
    runtime = ":rt",
)

layer_stack(name = "stack", layers = [":fw"])
""",
    )
    module = _module(runtime, url).replace(
        'use_repo(venvstacks, "cpython_local")',
        'venvstacks.lock(name = "fw", file = "//creds:pylock.fw.toml")\n'
        '        use_repo(venvstacks, "cpython_local", "venvstacks_wheels")',
    )
    scratch.write_module(module)
    # The stack's `.lock` writes its layers' arguments into a plan in bazel-bin: refused too.
    for target in ("//creds:fw.lock", "//creds:fw.lock_test", "//creds:stack.lock"):
        result = scratch.bazel("build", "--nobuild", target, check=False)
        assert result.returncode != 0
        expected = f"{target}: the URL https://***@index.example/simple carries credentials"
        assert expected in result.stderr, result.stderr[-4000:]
        assert "put them in ~/.netrc" in result.stderr
        assert secret not in result.stderr + result.stdout
    # Without credentials in the URL (pip takes them from ~/.netrc) the targets analyze.
    scratch.write("creds/BUILD.bazel", (scratch.root / "creds/BUILD.bazel").read_text().replace(f"user:{secret}@", ""))
    scratch.bazel("build", "--nobuild", "//creds:fw.lock", "//creds:fw.lock_test", "//creds:stack.lock")
    (scratch.root / "creds/BUILD.bazel").unlink()
