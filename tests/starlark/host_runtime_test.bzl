"""Unit tests of which runtime runs the tools that belong to no layer (rules_venvstacks/private/fetch/host_runtime.bzl)."""

load("@bazel_skylib//lib:unittest.bzl", "asserts", "unittest")
load("//rules_venvstacks/private/fetch:host_runtime.bzl", "pick_host_runtime")  # buildifier: disable=bzl-visibility

def _pick_host_runtime_test(ctx):
    env = unittest.begin(ctx)
    asserts.equals(env, "", pick_host_runtime([]))

    # The root module's first, even after another module's.
    asserts.equals(env, "mine", pick_host_runtime([(False, "theirs"), (True, "mine"), (True, "second")]))

    # Only other modules' runtimes: the first of them.
    asserts.equals(env, "theirs", pick_host_runtime([(False, "theirs"), (False, "other")]))
    return unittest.end(env)

pick_host_runtime_test = unittest.make(_pick_host_runtime_test)

def host_runtime_test_suite(name):
    """The host runtime's unit tests.

    Args:
      name: the test suite's name.
    """
    unittest.suite(name, pick_host_runtime_test)
