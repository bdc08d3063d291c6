"""Bad stacks fail at analysis time, with errors that name the targets at fault."""

from __future__ import annotations

import platform
from collections.abc import Iterator

import pytest

from venvstacks_testing.bazel_workspace import Workspace
from venvstacks_testing.http_server import serve_directory
from venvstacks_testing.local_pbs import make_local_runtime

pytestmark = pytest.mark.integration

# rt_two targets this machine's platform and macos_arm64 (the host's archive stands for both:
# analysis fetches only the host's), for the per-layer `platforms` cases.
HOST = "linux_x86_64" if platform.machine() == "x86_64" else "linux_aarch64"

BUILD_FILE = """\
load(
    "@rules_venvstacks//rules_venvstacks:defs.bzl",
    "application_layer",
    "framework_layer",
    "layer_image_layer",
    "layer_stack",
    "runtime_layer",
    "stack_image",
)

runtime_layer(name = "rt_a", runtime = "@rt_a")

runtime_layer(name = "rt_b", runtime = "@rt_b")

framework_layer(name = "fw_a", runtime = ":rt_a")

framework_layer(name = "fw_b", runtime = ":rt_b")

framework_layer(name = "fw_on_a", frameworks = [":fw_a"], runtime = ":rt_a")

framework_layer(name = "cycle_1", frameworks = [":cycle_2"], runtime = ":rt_a")

framework_layer(name = "cycle_2", frameworks = [":cycle_1"], runtime = ":rt_a")

framework_layer(name = "fw_named_like_a", layer_name = "fw_a", runtime = ":rt_a")

application_layer(name = "app_other_runtime", frameworks = [":fw_b"], launch_module = "m", runtime = ":rt_a")

# Names only the framework it uses: fw_a, below fw_on_a, is derived (C3), so analysis goes on.
application_layer(name = "app_derives_framework", frameworks = [":fw_on_a"], launch_module = "m", runtime = ":rt_a")

# Lists fw_a before fw_on_a, which sits on fw_a: the listed order contradicts the derived one.
application_layer(name = "app_contradicts", frameworks = [":fw_a", ":fw_on_a"], launch_module = "m", runtime = ":rt_a")

framework_layer(name = "fw_c", runtime = ":rt_a")

framework_layer(name = "fw_p", frameworks = [":fw_a", ":fw_c"], runtime = ":rt_a")

framework_layer(name = "fw_q", frameworks = [":fw_c", ":fw_a"], runtime = ":rt_a")

# fw_p puts fw_a before fw_c, fw_q the other way round: the graph has no linearization.
application_layer(name = "app_no_order", frameworks = [":fw_p", ":fw_q"], launch_module = "m", runtime = ":rt_a")

framework_layer(name = "fw_dot_name", layer_name = ".hidden", runtime = ":rt_a")

framework_layer(name = "fw_long_name", layer_name = "x" * 300, runtime = ":rt_a")

framework_layer(name = "fw_bad_dynlib_exclude", dynlib_exclude = ["pkg.libs/*.so", "/abs/libx.so"], runtime = ":rt_a")

application_layer(
    name = "app_same_name",
    frameworks = [":fw_a", ":fw_named_like_a"],
    launch_module = "m",
    runtime = ":rt_a",
)

application_layer(name = "app_ok", frameworks = [":fw_a"], launch_module = "m", runtime = ":rt_a")

application_layer(name = "app_on_app", frameworks = [":app_ok"], launch_module = "m", runtime = ":rt_a")

# Image layers (runtime layers: they need no lock, so analysis reaches the image checks).
runtime_layer(name = "rt_relative_prefix", image_prefix = "opt/stacks", runtime = "@rt_a")

runtime_layer(name = "rt_unnormalised_prefix", image_prefix = "/opt/stacks/", runtime = "@rt_a")

runtime_layer(name = "rt_lib", image_prefix = "/usr", layer_name = "lib", runtime = "@rt_a")

layer_image_layer(name = "rt_b_image_srv", layer = ":rt_b", prefix = "/srv/py")

layer_image_layer(name = "image_mixed_prefixes", layer = ":rt_a", lower = [":rt_b_image_srv"])

stack_image(name = "image_bad_base", base = ":not_a_layout", image_layer = ":rt_a.image_layer")

filegroup(name = "not_a_layout", srcs = ["MODULE.bazel"])

# A typo in a framework's label.
application_layer(name = "app_typo", frameworks = ["//:framwork"], launch_module = "m", runtime = ":rt_a")

# A typo in a stack's layers.
layer_stack(name = "stack_typo", layers = ["//:ap_ok"])

# Per-layer `platforms` (docs/layers.md, "Narrower platforms").
framework_layer(name = "fw_not_on_runtime", platforms = ["macos_arm64"], runtime = ":rt_a")

runtime_layer(name = "rt_two", runtime = "@rt_two")

framework_layer(name = "fw_mac", platforms = ["macos_arm64"], runtime = ":rt_two")

application_layer(
    name = "app_wider",
    frameworks = [":fw_mac"],
    launch_module = "m",
    platforms = ["HOST"],
    runtime = ":rt_two",
)

framework_layer(name = "fw_host", platforms = ["HOST"], runtime = ":rt_two")

# Narrowed alike: its lock inputs analyse, so what fails is the framework's lock, not yet written.
application_layer(
    name = "app_on_fw_host",
    frameworks = [":fw_host"],
    launch_module = "m",
    platforms = ["HOST"],
    runtime = ":rt_two",
)

# Built for this machine, the stack leaves the macOS-only framework out: nothing to build.
layer_stack(name = "stack_mac_only", layers = [":fw_mac"], published_summary = "mac.json")
""".replace("HOST", HOST)


_LOAD_STACK = 'load("@rules_venvstacks//rules_venvstacks:defs.bzl", "layer_stack")\n\n'

# Two stacks of one package would both write __venvstacks__/<platform>/venvstacks.json.
TWO_STACKS = (
    _LOAD_STACK
    + """\
layer_stack(name = "first", layers = ["//:app_ok"])

layer_stack(name = "second", layers = ["//:fw_a"])
"""
)

BAD_PLATFORM = (
    'load("@rules_venvstacks//rules_venvstacks:defs.bzl", "framework_layer")\n\n'
    'framework_layer(name = "fw", platforms = ["macos_amd64"], runtime = "//:rt_a")\n'
)

BAD_SUMMARY = _LOAD_STACK + 'layer_stack(name = "stack", layers = ["//:app_ok"], published_summary = "../x.json")\n'


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """Two runtimes (the same archive under two names) and a set of badly stacked layers."""
    directory = tmp_path_factory.mktemp("pbs")
    runtime = make_local_runtime(directory)
    with serve_directory(directory) as url:
        workspace = Workspace(tmp_path_factory.mktemp("ws_errors"))
        declarations = "".join(
            f'venvstacks.runtime(name = "{name}", python_version = "{runtime.python_version}", '
            f'urls = ["{url}/{runtime.path.name}"], sha256 = "{runtime.sha256}")\n'
            for name in ("rt_a", "rt_b")
        )
        declarations += (
            f'venvstacks.runtime(name = "rt_two", python_version = "{runtime.python_version}", '
            f'platforms = ["{HOST}", "macos_arm64"], urls = ["{url}/{runtime.path.name}"], '
            f'sha256 = "{runtime.sha256}")\n'
            f'venvstacks.runtime_archive(runtime = "rt_two", platform = "macos_arm64", '
            f'python_version = "{runtime.python_version}", urls = ["{url}/{runtime.path.name}"], '
            f'sha256 = "{runtime.sha256}")\n'
        )
        layers = ["fw_a", "fw_b", "fw_on_a", "cycle_1", "cycle_2", "fw_named_like_a"]
        layers += ["app_other_runtime", "app_derives_framework", "app_same_name", "app_ok", "app_on_app"]
        layers += ["app_contradicts", "fw_c", "fw_p", "fw_q", "app_no_order", "fw_dot_name", "fw_long_name"]
        layers += ["fw_bad_dynlib_exclude", "app_typo", "fw_not_on_runtime", "fw_mac", "app_wider", "fw_host"]
        layers += ["app_on_fw_host"]
        # Locks that do not exist yet: the hub still resolves, so analysis reaches the stack checks.
        declarations += "".join(f'venvstacks.lock(name = "{n}", file = "//:pylock.{n}.toml")\n' for n in layers)
        workspace.write_module(declarations + 'use_repo(venvstacks, "rt_a", "rt_b", "rt_two", "venvstacks_wheels")\n')
        workspace.write("BUILD.bazel", BUILD_FILE)
        workspace.write("two_stacks/BUILD.bazel", TWO_STACKS)
        workspace.write("bad_summary/BUILD.bazel", BAD_SUMMARY)
        workspace.write("bad_platform/BUILD.bazel", BAD_PLATFORM)
        yield workspace
        workspace.shutdown()


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("app_other_runtime", ["//:app_other_runtime", "//:fw_b", "share one runtime"]),
        # Not a stack error any more: the stack checks pass and the missing lock is what fails.
        (
            "app_derives_framework.lock",
            ["//:app_derives_framework", "the lock of framework //:fw_on_a does not exist yet"],
        ),
        (
            "app_contradicts",
            ["//:app_contradicts", "contradicts", "//:fw_a, //:fw_on_a conflict", "//:fw_on_a sits on [//:fw_a]"],
        ),
        ("app_no_order", ["//:app_no_order", "//:fw_a, //:fw_c conflict", "//:fw_p", "//:fw_q"]),
        # A name the build would refuse fails the lock at analysis too, naming the target.
        ("fw_dot_name.lock", ["//:fw_dot_name", "the layer name '.hidden' starts with"]),
        ("fw_long_name.lock", ["//:fw_long_name", "is 300 characters long; a layer name has at most 100"]),
        ("fw_long_name", ["//:fw_long_name", "is 300 characters long"]),
        (
            "fw_bad_dynlib_exclude",
            ["//:fw_bad_dynlib_exclude", "dynlib_exclude pattern \"/abs/libx.so\" starts with '/'"],
        ),
        ("app_same_name", ["//:app_same_name", "named 'fw_a'", "//:fw_named_like_a"]),
        ("app_on_app", ["//:app_on_app", "//:app_ok", "only framework layers"]),
        ("cycle_1", ["cycle in dependency graph", "//:cycle_1", "//:cycle_2"]),
        ("fw_a", ["//:fw_a", "pylock.fw_a.toml does not exist yet", "bazel run //:fw_a.lock"]),
        ("rt_relative_prefix.image_layer", ["//:rt_relative_prefix.image_layer: prefix 'opt/stacks' is not absolute"]),
        (
            "rt_unnormalised_prefix.image_layer",
            ["//:rt_unnormalised_prefix.image_layer: prefix '/opt/stacks/' is not normalised (write '/opt/stacks')"],
        ),
        (
            "rt_lib.image_layer",
            ["//:rt_lib.image_layer: prefix '/usr' with the layer 'lib' gives '/usr/lib', a directory of the base"],
        ),
        (
            "image_mixed_prefixes",
            [
                "//:image_mixed_prefixes: prefix '/opt/venvstacks' differs from the prefix '/srv/py'",
                "//:rt_b_image_srv",
            ],
        ),
        (
            "image_bad_base",
            ["//:image_bad_base: base ", "//:not_a_layout is not an OCI image layout: no `oci-layout` file"],
        ),
        # The lock inputs (and `.lock_test`) analyse on every platform: the platform check is there.
        (
            "fw_not_on_runtime.lock_test",
            [
                "//:fw_not_on_runtime: `platforms` names macos_arm64, but the runtime //:rt_a it sits on is not"
                f" built for it (its platforms: {HOST})"
            ],
        ),
        (
            "app_wider.lock_test",
            [
                f"//:app_wider: `platforms` names {HOST}, but the framework //:fw_mac it sits on is not built for"
                " it (its platforms: macos_arm64); a layer's platforms must be among those of every layer below it"
            ],
        ),
        ("app_on_fw_host.lock_test", ["//:app_on_fw_host", "the lock of framework //:fw_host does not exist yet"]),
    ],
)
def test_bad_stack_fails_at_analysis_naming_the_targets(workspace: Workspace, target: str, expected: list[str]) -> None:
    # --keep_going: a dependency with no lock yet must not hide the stack error.
    result = workspace.bazel("build", "--nobuild", "--keep_going", f"//:{target}", check=False)
    assert result.returncode != 0
    # --nobuild stops after analysis: failing here means the error is an analysis-time error.
    for text in expected:
        assert text in result.stderr, f"{text!r} not in:\n{result.stderr[-3000:]}"


@pytest.mark.parametrize(
    ("command", "typo"),
    [
        (("build", "//:app_typo"), "framwork"),
        (("run", "//:app_typo.lock"), "framwork"),
        (("build", "//:stack_typo"), "ap_ok"),
        (("run", "//:stack_typo.lock"), "ap_ok"),
    ],
)
def test_unknown_layer_is_named_as_written(workspace: Workspace, command: tuple[str, str], typo: str) -> None:
    """`frameworks = ["//:framwork"]`, `layer_stack(layers = ["//:ap_ok"])`: the build and the lock
    name the label as written, not a target derived from it (`//:framwork.lock_inputs`)."""
    result = workspace.bazel(*command, check=False)
    assert result.returncode != 0
    as_written = result.stderr.find(f"'//:{typo}' does not exist")
    assert as_written >= 0, result.stderr[-3000:]
    # A stack also names each layer's `.in_stack` (layer_macros.bzl), which Bazel reports missing
    # too: only after the label as written, which comes first.
    assert f"{typo}." not in result.stderr.replace(f"'//:{typo}.in_stack' does not exist", ""), result.stderr[-3000:]
    derived = result.stderr.find(f"{typo}.")
    assert derived == -1 or derived > as_written, result.stderr[-3000:]


@pytest.mark.parametrize(
    ("package", "expected"),
    [
        (
            "two_stacks",
            "layer_stack 'second': layer_stack 'first' of this package already writes "
            "__venvstacks__/<platform>/venvstacks.json; give one of them another `published_summary`",
        ),
        ("bad_summary", "`published_summary` must be a plain file name ending in .json, got '../x.json'"),
        (
            "bad_platform",
            "framework_layer 'fw': `platforms`: unknown platform 'macos_amd64'; known platforms: linux_aarch64,"
            " linux_x86_64, macos_arm64, macos_x86_64, windows_x86_64",
        ),
    ],
)
def test_a_stack_summary_that_cannot_be_written_fails_at_loading(
    workspace: Workspace, package: str, expected: str
) -> None:
    """Before any analysis: the package's BUILD file is refused, naming the stacks."""
    result = workspace.bazel("query", f"//{package}:all", check=False)
    assert result.returncode != 0
    assert expected in result.stderr, result.stderr[-3000:]


def test_a_layer_asked_for_on_another_platform_is_named_incompatible(workspace: Workspace) -> None:
    """A macOS-only framework asked for by name on this machine: Bazel's own message, naming the constraint."""
    result = workspace.bazel("build", "--nobuild", "//:fw_mac", check=False)
    assert result.returncode != 0
    assert "//:fw_mac is incompatible and cannot be built" in result.stderr, result.stderr[-3000:]
    assert "platforms//:incompatible" in result.stderr, result.stderr[-3000:]


def test_a_stack_of_layers_narrowed_to_other_platforms_builds_nothing_here(workspace: Workspace) -> None:
    """`layer_stack` leaves out a layer whose `platforms` exclude the target platform (its `.in_stack`)."""
    result = workspace.bazel("build", "//:stack_mac_only")
    assert "fw_mac" not in result.stderr.replace("//:stack_mac_only", ""), result.stderr[-3000:]
