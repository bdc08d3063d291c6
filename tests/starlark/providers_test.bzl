"""Unit tests of VenvstacksRuntimeInfo's one constructor (rules_venvstacks/private/common/providers.bzl)."""

load("@bazel_skylib//lib:unittest.bzl", "asserts", "unittest")
load("//rules_venvstacks/private/common:providers.bzl", "VenvstacksRuntimeInfo")  # buildifier: disable=bzl-visibility

_LINUX = "x86_64-unknown-linux-gnu"
_WINDOWS = "x86_64-pc-windows-msvc"

def _one_platform():
    return VenvstacksRuntimeInfo(
        name = "cpython3_12",
        python_version = "3.12.7",
        platform_triple = _WINDOWS,
        pbs_release = "20241016",
        source_sha256 = "a" * 64,
        strip_prefix = "python",
        tool_zips = ["installer.whl"],
        source_date_epoch = 1729036800,
    )

def _defaults_test(ctx):
    env = unittest.begin(ctx)
    info = _one_platform()
    asserts.equals(env, [_WINDOWS], info.platform_triples)
    asserts.equals(env, "3.12.7", info.lock_python_version)
    asserts.equals(env, struct(glibc = "", macos = ""), info.wheel_floors)
    asserts.equals(env, None, info.exec_runtime)
    asserts.equals(env, "", info.unavailable)
    asserts.equals(env, [], info.files.to_list())
    return unittest.end(env)

defaults_test = unittest.make(_defaults_test)

def _hub_test(ctx):
    env = unittest.begin(ctx)
    build = _one_platform()
    tool = VenvstacksRuntimeInfo(name = "cpython3_12", python_version = "3.12.7", platform_triple = _LINUX)
    hub = VenvstacksRuntimeInfo(
        name = "cpython3_12",
        platform_triples = [_LINUX, _WINDOWS],
        lock_python_version = "3.12.7",
        wheel_floors = struct(glibc = "2.28", macos = ""),
        exec_runtime = tool,
        build = build,
    )

    # The target platform's build as it is, the hub's own declared platforms, floors and tool.
    for field in ["python_version", "platform_triple", "pbs_release", "source_sha256", "strip_prefix", "tool_zips", "source_date_epoch"]:
        asserts.equals(env, getattr(build, field), getattr(hub, field), field)
    asserts.equals(env, [_LINUX, _WINDOWS], hub.platform_triples)
    asserts.equals(env, "2.28", hub.wheel_floors.glibc)
    asserts.equals(env, _LINUX, hub.exec_runtime.platform_triple)

    unavailable = VenvstacksRuntimeInfo(
        name = "cpython3_12",
        python_version = "3.12.7",
        unavailable = "no build",
        platform_triples = [_LINUX],
        exec_runtime = tool,
    )
    asserts.equals(env, ("", None, [_LINUX], "3.12.7"), (unavailable.platform_triple, unavailable.interpreter, unavailable.platform_triples, unavailable.lock_python_version))
    return unittest.end(env)

hub_test = unittest.make(_hub_test)

def providers_test_suite(name):
    """The runtime provider's constructor tests.

    Args:
      name: the test suite's name.
    """
    unittest.suite(name, defaults_test, hub_test)
