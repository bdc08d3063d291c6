"""Unit tests of the image checks (rules_venvstacks/private/image/prefix.bzl): the prefix and the platform."""

load("@bazel_skylib//lib:unittest.bzl", "asserts", "unittest")
load("//rules_venvstacks/private/image:prefix.bzl", "image_testlib")  # buildifier: disable=bzl-visibility

def _prefix_test(ctx):
    env = unittest.begin(ctx)
    problem = image_testlib.image_prefix_problem
    asserts.equals(env, "", problem("/opt/venvstacks", "app"))
    asserts.equals(env, "", problem("/srv/python/stacks", "numpy_framework"))
    asserts.equals(env, "prefix 'opt/venvstacks' is not absolute", problem("opt/venvstacks", "app"))
    asserts.equals(env, "prefix '/opt//venvstacks' is not normalised (write '/opt/venvstacks')", problem("/opt//venvstacks", "app"))
    asserts.equals(env, "prefix '/opt/venvstacks/' is not normalised (write '/opt/venvstacks')", problem("/opt/venvstacks/", "app"))
    asserts.equals(env, "prefix '/opt/a/../b' is not normalised (write '/opt/b')", problem("/opt/a/../b", "app"))
    asserts.equals(env, "prefix '/opt/./b' is not normalised (write '/opt/b')", problem("/opt/./b", "app"))
    asserts.equals(env, "prefix '/' would put the layers beside the base image's own directories", problem("/", "app"))
    asserts.equals(
        env,
        "prefix '/usr' with the layer 'lib' gives '/usr/lib', a directory of the base image's own",
        problem("/usr", "lib"),
    )
    asserts.equals(env, "", problem("/usr", "venvstacks"))
    return unittest.end(env)

prefix_test = unittest.make(_prefix_test)

def _platform_test(ctx):
    env = unittest.begin(ctx)
    problem = image_testlib.image_platform_problem
    asserts.equals(env, "", problem("x86_64-unknown-linux-gnu"))
    asserts.equals(env, "", problem("aarch64-unknown-linux-gnu"))
    asserts.equals(
        env,
        "macos_arm64 is a macos platform: container images are for Linux targets only (--platforms=//platforms:linux_x86_64 or linux_aarch64)",
        problem("aarch64-apple-darwin"),
    )
    asserts.equals(
        env,
        "windows_x86_64 is a windows platform: container images are for Linux targets only (--platforms=//platforms:linux_x86_64 or linux_aarch64)",
        problem("x86_64-pc-windows-msvc"),
    )
    return unittest.end(env)

platform_test = unittest.make(_platform_test)

def image_test_suite(name):
    """The image checks' unit tests.

    Args:
      name: the test suite's name.
    """
    unittest.suite(name, prefix_test, platform_test)
