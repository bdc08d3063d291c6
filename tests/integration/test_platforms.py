"""Multi-platform stacks through a real Bazel: one lock for five platforms, every platform built here.

A workspace whose runtime targets all five python-build-standalone platforms: the host's runtime
is this machine's CPython in PBS layout, the other four are small PBS-layout fixtures (the real
layouts, fake binaries: GitHub, where PBS lives, is unreachable), all served from 127.0.0.1 as
`venvstacks.runtime_archive`s. Wheels are real, from PyPI: a numpy framework and an application
using click (which needs colorama on Windows only). Both layers are locked once for every
platform, every platform's archives are built on this Linux host and checked (layout, extension
module tags, reproducibility), the host's stack is deployed and run, a second checkout gets
another platform's layers from a remote cache, and switching from one platform to another and
back keeps both platforms' archives (the checkout's `.bazelrc`, as examples/stack's, gives each
platform an output directory of its own). A framework and an application narrowed to macos_arm64
(`platforms`) are locked for it alone, and a `layer_stack` holds them on that platform only.
"""

from __future__ import annotations

import json
import platform as host_platform
import shutil
import tarfile
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
import tomllib
import zstandard

from venvstacks_testing.bazel_workspace import Workspace
from venvstacks_testing.fixture_pbs import make_fixture_runtime
from venvstacks_testing.http_server import serve_directory
from venvstacks_testing.local_pbs import make_local_runtime
from venvstacks_testing.remote_cache import remote_cache
from venvstacks_testing.stack_workspace import describe_spawns, layer_spawns, read_execution_log, remote_cache_hit
from venvstacks_tool.core.platforms import PLATFORMS, by_name

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(host_platform.machine() != "x86_64", reason="the host runtime fixture is Linux x86_64"),
]

HOST = "linux_x86_64"
FOREIGN_VERSION = "3.11.14"
NAMES = [p.name for p in PLATFORMS]
APP_MAIN = """\
import click
import numpy

click.echo(f"numpy {numpy.__version__} from {numpy.__file__}")
"""
BUILD = """\
load(
    "@rules_venvstacks//rules_venvstacks:defs.bzl",
    "application_layer",
    "framework_layer",
    "layer_stack",
    "runtime_layer",
)

runtime_layer(name = "cpython", runtime = "@cpython")

framework_layer(
    name = "numpy_framework",
    requirements = ["numpy>=2,<3"],
    runtime = ":cpython",
)

application_layer(
    name = "app",
    srcs = ["app/__main__.py"],
    frameworks = [":numpy_framework"],
    launch_module = "app",
    requirements = ["click==8.1.8", "numpy"],
    runtime = ":cpython",
)

# Narrowed to one platform of the runtime's five (docs/layers.md, "Narrower platforms").
framework_layer(
    name = "mac_framework",
    platforms = ["macos_arm64"],
    requirements = ["six"],
    runtime = ":cpython",
)

application_layer(
    name = "mac_app",
    srcs = ["mac_app/__main__.py"],
    frameworks = [":mac_framework"],
    launch_module = "mac_app",
    platforms = ["macos_arm64"],
    runtime = ":cpython",
)

layer_stack(
    name = "stack",
    layers = [":app", ":mac_app"],
)
"""
# What an extension module of numpy is named on each target (one of numpy's core modules).
NUMPY_EXTENSION = {
    "linux_x86_64": "_multiarray_umath.cpython-311-x86_64-linux-gnu.so",
    "linux_aarch64": "_multiarray_umath.cpython-311-aarch64-linux-gnu.so",
    "macos_x86_64": "_multiarray_umath.cpython-311-darwin.so",
    "macos_arm64": "_multiarray_umath.cpython-311-darwin.so",
    "windows_x86_64": "_multiarray_umath.cp311-win_amd64.pyd",
}


@dataclass
class PlatformStack:
    """The locked workspace and the archives built for each platform (copied out of bazel-bin)."""

    workspace: Workspace
    module_body: str
    built: dict[str, dict[str, Path]]
    runtimes_url: str


def _module_body(runtimes_url: str, archives: dict[str, tuple[str, str, str]]) -> str:
    lines = [
        "venvstacks.runtime(",
        '    name = "cpython",',
        '    python_version = "3.11",',
        f"    platforms = {json.dumps(NAMES)},",
        ")",
    ]
    for name, (file_name, sha256, version) in sorted(archives.items()):
        lines += [
            "venvstacks.runtime_archive(",
            '    runtime = "cpython",',
            f'    platform = "{name}",',
            f'    python_version = "{version}",',
            f'    urls = ["{runtimes_url}/{file_name}"],',
            f'    sha256 = "{sha256}",',
            ")",
        ]
    lines += [
        'venvstacks.lock(name = "numpy_framework", file = "//:pylock.numpy_framework.toml")',
        'venvstacks.lock(name = "app", file = "//:pylock.app.toml")',
        'venvstacks.lock(name = "mac_framework", file = "//:pylock.mac_framework.toml")',
        'venvstacks.lock(name = "mac_app", file = "//:pylock.mac_app.toml")',
        'use_repo(venvstacks, "cpython", "venvstacks_wheels")',
    ]
    return "\n".join(lines) + "\n"


def _build(workspace: Workspace, name: str, out: Path, *extra: str) -> dict[str, Path]:
    """`bazel build --platforms=...:NAME` of the app's stack; copies the archives and metadata to `out`."""
    workspace.bazel("build", f"--platforms=@rules_venvstacks//platforms:{name}", *extra, "//:app", "//:cpython")
    out.mkdir(parents=True, exist_ok=True)
    copied = {}
    for file_name in ("cpython.tar.zst", "numpy_framework.tar.zst", "app.tar.zst", "app.json", "cpython.json"):
        copied[file_name] = Path(shutil.copy(workspace.output(file_name), out / file_name))
    return copied


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformStack]:
    base = tmp_path_factory.mktemp("platforms")
    runtimes = base / "pbs"
    runtimes.mkdir()
    host = make_local_runtime(runtimes)
    archives = {HOST: (host.path.name, host.sha256, host.python_version)}
    for name in NAMES:
        if name != HOST:
            fixture = make_fixture_runtime(runtimes, by_name(name), FOREIGN_VERSION)
            archives[name] = (fixture.path.name, fixture.sha256, fixture.python_version)
    with ExitStack() as stack:
        runtimes_url = stack.enter_context(serve_directory(runtimes))
        workspace = Workspace(base / "ws")
        body = _module_body(runtimes_url, archives)
        workspace.write_module(body)
        workspace.write("BUILD.bazel", BUILD)
        workspace.write("app/__main__.py", APP_MAIN)
        workspace.write("mac_app/__main__.py", "import six\n")
        stack.callback(workspace.shutdown)
        for layer in ("numpy_framework", "app", "mac_framework", "mac_app"):
            workspace.bazel("run", f"//:{layer}.lock")
        built = {name: _build(workspace, name, base / "built" / name) for name in NAMES}
        yield PlatformStack(workspace, body, built, runtimes_url)


def _lock(stack: PlatformStack, layer: str) -> dict[str, object]:
    return tomllib.loads((stack.workspace.root / f"pylock.{layer}.toml").read_text())


def _members(archive: Path) -> list[str]:
    with (
        open(archive, "rb") as raw,
        zstandard.ZstdDecompressor().stream_reader(raw) as stream,
        tarfile.open(fileobj=stream, mode="r|") as tar,
    ):
        return [member.name for member in tar]


def test_one_lock_covers_every_platform(stack: PlatformStack) -> None:
    triples = sorted(p.triple for p in PLATFORMS)
    app = _lock(stack, "app")
    assert app["tool"]["venvstacks"]["platforms"] == triples  # type: ignore[index]
    assert len(app["environments"]) == 5  # type: ignore[arg-type]
    packages = {p["name"]: p for p in app["packages"]}  # type: ignore[attr-defined,index]
    assert set(packages) == {"click", "colorama"}
    colorama = packages["colorama"]
    assert "win32" in colorama["marker"]
    assert set(colorama["tool"]["venvstacks"]["platform-wheels"]) == {"x86_64-pc-windows-msvc"}
    assert "marker" not in packages["click"]
    assert set(packages["click"]["tool"]["venvstacks"]["platform-wheels"]) == set(triples)
    provided = {p["name"] for p in app["tool"]["venvstacks"]["provided"]}  # type: ignore[index]
    assert "numpy" in provided

    framework = _lock(stack, "numpy_framework")
    numpy = [p for p in framework["packages"] if p["name"] == "numpy"]  # type: ignore[attr-defined,index]
    assert len(numpy) == 1, "one numpy version for every platform"
    wheels = numpy[0]["tool"]["venvstacks"]["platform-wheels"]
    assert set(wheels) == set(triples)
    assert "manylinux" in wheels["x86_64-unknown-linux-gnu"] and "x86_64" in wheels["x86_64-unknown-linux-gnu"]
    assert "aarch64" in wheels["aarch64-unknown-linux-gnu"]
    assert "macosx" in wheels["aarch64-apple-darwin"] and "arm64" in wheels["aarch64-apple-darwin"]
    assert "macosx" in wheels["x86_64-apple-darwin"] and "x86_64" in wheels["x86_64-apple-darwin"]
    assert wheels["x86_64-pc-windows-msvc"].endswith("win_amd64.whl")


def test_lock_tests_pass_for_the_same_sources(stack: PlatformStack) -> None:
    stack.workspace.bazel("test", "//:numpy_framework.lock_test", "//:app.lock_test")


@pytest.mark.parametrize("name", NAMES)
def test_every_platform_builds_here_with_its_own_files(stack: PlatformStack, name: str) -> None:
    built = stack.built[name]
    target = by_name(name)
    windows = target.os == "windows"
    site = "Lib/site-packages" if windows else "lib/python3.11/site-packages"
    framework = _members(built["numpy_framework.tar.zst"])
    extensions = [m for m in framework if m.endswith((".so", ".pyd")) and "/numpy/" in m and ".cp" in m]
    assert extensions, "numpy ships extension modules"
    for member in extensions:
        assert member.endswith(target.extension_suffixes("3.11")), member
    assert any(m.endswith("/numpy/_core/" + NUMPY_EXTENSION[name]) for m in framework), NUMPY_EXTENSION[name]
    assert f"numpy_framework/{site}/_venvstacks_stack.pth" in framework

    app = set(_members(built["app.tar.zst"]))
    assert f"app/{site}/app/__main__.py" in app
    assert (f"app/{site}/colorama/__init__.py" in app) == windows, "colorama is Windows-only"
    if windows:
        assert {"app/Scripts/python.exe", "app/Scripts/pythonw.exe"} <= app
    else:
        assert "app/bin/python" in app

    runtime = set(_members(built["cpython.tar.zst"]))
    assert ("cpython/python.exe" in runtime) == windows
    metadata = json.loads(built["app.json"].read_text())
    assert metadata["platform"] == target.triple
    assert json.loads(built["cpython.json"].read_text())["platform"] == target.triple


def test_another_platform_rebuilt_from_scratch_gives_the_same_bytes(stack: PlatformStack, tmp_path: Path) -> None:
    stack.workspace.bazel("clean")
    again = _build(stack.workspace, "windows_x86_64", tmp_path)
    for file_name, path in again.items():
        assert path.read_bytes() == stack.built["windows_x86_64"][file_name].read_bytes(), file_name


def test_the_host_stack_deploys_and_runs(stack: PlatformStack) -> None:
    result = stack.workspace.bazel("test", "--test_output=all", "//:app.test")
    assert "numpy 2." in result.stdout + result.stderr


def test_a_platform_the_lock_does_not_cover_is_named(stack: PlatformStack) -> None:
    lock = stack.workspace.root / "pylock.app.toml"
    original = lock.read_text()
    try:
        lines = [line for line in original.splitlines() if "aarch64-apple-darwin" not in line]
        lock.write_text("\n".join(lines) + "\n")
        result = stack.workspace.bazel(
            "build", "--platforms=@rules_venvstacks//platforms:macos_arm64", "//:app", check=False
        )
        assert result.returncode != 0
        assert "pylock.app.toml has no wheels for macos_arm64" in result.stderr
        assert "bazel run //:app.lock" in result.stderr
    finally:
        lock.write_text(original)


def test_an_unknown_platform_lists_the_known_ones(stack: PlatformStack) -> None:
    module = stack.workspace.root / "MODULE.bazel"
    original = module.read_text()
    try:
        module.write_text(original.replace('"windows_x86_64"]', '"windows_x86_64", "solaris_sparc"]'))
        result = stack.workspace.bazel("build", "//:app", check=False)
        assert result.returncode != 0
        assert "unknown platform 'solaris_sparc'" in result.stderr
        assert "linux_x86_64, macos_arm64, macos_x86_64, windows_x86_64" in result.stderr
    finally:
        module.write_text(original)


def test_a_second_checkout_gets_another_platforms_layers_from_the_remote_cache(
    stack: PlatformStack, tmp_path: Path
) -> None:
    with remote_cache(tmp_path / "cache") as cache:
        flags = (f"--remote_cache={cache.url}", "--platforms=@rules_venvstacks//platforms:macos_arm64")
        stack.workspace.bazel("clean")
        stack.workspace.bazel("build", *flags, "//:app")
        clone = Workspace(tmp_path / "elsewhere" / "ws")
        for name in ("MODULE.bazel", ".bazelrc", "BUILD.bazel", "app/__main__.py"):
            clone.write(name, (stack.workspace.root / name).read_text())
        for lock in stack.workspace.root.glob("pylock.*.toml"):
            clone.write(lock.name, lock.read_text())
        log = tmp_path / "exec.json"
        try:
            clone.bazel("build", *flags, f"--execution_log_json_file={log}", "//:app")
        finally:
            clone.shutdown()
        spawns = layer_spawns(read_execution_log(log))
        assert {s["targetLabel"] for s in spawns} == {"//:cpython", "//:numpy_framework", "//:app"}
        for spawn in spawns:
            assert remote_cache_hit(spawn), spawn
        assert clone.output("app.tar.zst").read_bytes() == stack.workspace.output("app.tar.zst").read_bytes()


def test_bazel_run_of_another_platforms_layer_fails_naming_the_platform(stack: PlatformStack) -> None:
    """The layers build for Windows (the fixture did); running them here is one line naming it."""
    for target in ("//:app", "//:cpython"):
        result = stack.workspace.bazel(
            "run", "--platforms=@rules_venvstacks//platforms:windows_x86_64", target, check=False
        )
        assert result.returncode != 0, target
        (line,) = [line for line in result.stderr.splitlines() if line.startswith("venvstacks:")]
        assert "is built for windows_x86_64, not for this machine" in line and target.lstrip("@") in line, line


def test_switching_back_to_a_platform_built_before_runs_no_layer_action(stack: PlatformStack, tmp_path: Path) -> None:
    """Host, then Windows, then the host again: the third build finds every layer up to date.

    The host build (no `--platforms`) keeps the directory it always had, so its paths and action
    keys are those of a checkout without the `.bazelrc` line; Windows gets a directory of its own,
    and both platforms' archives stay there side by side, the same bytes as the fixture's builds.
    """
    targets = ("//:app", "//:cpython")
    stack.workspace.bazel("build", *targets)
    stack.workspace.bazel("build", "--platforms=@rules_venvstacks//platforms:windows_x86_64", *targets)
    log = tmp_path / "exec.json"
    stack.workspace.bazel("build", f"--execution_log_json_file={log}", *targets)
    again = read_execution_log(log)
    assert not layer_spawns(again), describe_spawns(again)
    assert not again, f"a no-op build, yet these ran:\n{describe_spawns(again)}"
    for directory, name in (("k8-fastbuild", HOST), ("windows_x86_64-fastbuild", "windows_x86_64")):
        for file_name, reference in stack.built[name].items():
            path = stack.workspace.root / "bazel-out" / directory / "bin" / file_name
            assert path.read_bytes() == reference.read_bytes(), path


def test_deploying_another_platforms_stack_fails_at_analysis_naming_both_platforms(stack: PlatformStack) -> None:
    """`.deploy` post-installs here: for a Windows stack it fails before anything runs, naming the
    target, the stack's platform and this machine's (`--nobuild`: an analysis error)."""
    result = stack.workspace.bazel(
        "build", "--nobuild", "--platforms=@rules_venvstacks//platforms:windows_x86_64", "//:app.deploy", check=False
    )
    assert result.returncode != 0
    expected = "//:app.deploy: the stack is built for windows_x86_64, but `.deploy` unpacks and post-installs it"
    assert expected in result.stderr and "on this machine (linux_x86_64)" in result.stderr, result.stderr[-3000:]
    assert "incompatible" not in result.stderr


# --- layers narrowed by `platforms` (docs/layers.md, "Narrower platforms") ----------------------

MAC = by_name("macos_arm64")


def _stack_outputs(stack: PlatformStack, name: str) -> tuple[str, str]:
    """`bazel build --platforms=...:NAME //:stack`: the text of stack.json and of venvstacks' summary."""
    stack.workspace.bazel("build", f"--platforms=@rules_venvstacks//platforms:{name}", "//:stack")
    platform_dir = {"linux_x86_64": "linux_x86_64", "macos_arm64": "macosx_arm64"}[name]
    summary = stack.workspace.output(f"__venvstacks__/{platform_dir}/venvstacks.json").read_text()
    return stack.workspace.output("stack.json").read_text(), summary


def test_a_narrowed_layer_is_locked_for_its_platforms_only(stack: PlatformStack) -> None:
    for layer in ("mac_framework", "mac_app"):
        lock = _lock(stack, layer)
        assert lock["tool"]["venvstacks"]["platforms"] == [MAC.triple]  # type: ignore[index]
        assert len(lock["environments"]) == 1  # type: ignore[arg-type]
    # The check of `.lock_test` (and of the build) agrees: the narrowed locks are fresh; and the
    # stack's `.lock`, run on this machine, locks them too, for their platforms (kept as they are).
    stack.workspace.bazel("test", "//:mac_framework.lock_test", "//:mac_app.lock_test")
    locks = {layer: stack.workspace.root / f"pylock.{layer}.toml" for layer in ("mac_framework", "mac_app")}
    before = {layer: path.read_bytes() for layer, path in locks.items()}
    stack.workspace.bazel("run", "//:stack.lock")
    for layer, data in before.items():
        assert locks[layer].read_bytes() == data, layer


def test_a_stack_leaves_a_narrowed_layer_out_on_other_platforms(stack: PlatformStack) -> None:
    # `//...` for this machine skips the macOS-only layers and every target built from them
    # (analysed only: the stack below builds what this machine gets).
    result = stack.workspace.bazel("build", "--nobuild", f"--platforms=@rules_venvstacks//platforms:{HOST}", "//...")
    assert "//:mac_app" not in result.stderr, result.stderr[-3000:]
    combined, summary = _stack_outputs(stack, HOST)
    assert '"app"' in combined and '"numpy_framework"' in summary
    for layer in ("mac_app", "mac_framework"):
        assert layer not in combined and layer not in summary
        assert not stack.workspace.output(f"{layer}.tar.zst").exists()


def test_a_stack_holds_a_narrowed_layer_on_its_platform(stack: PlatformStack) -> None:
    combined, summary = _stack_outputs(stack, "macos_arm64")
    for layer in ("app", "numpy_framework", "mac_app", "mac_framework"):
        assert f'"{layer}"' in combined and layer in summary, layer
    assert json.loads(stack.workspace.output("mac_app.json").read_text())["platform"] == MAC.triple
    assert any(m.endswith("/six.py") for m in _members(stack.workspace.output("mac_framework.tar.zst")))
