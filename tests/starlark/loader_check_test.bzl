"""Unit tests of which files the layer rule gives the loader check (rules_venvstacks/private/build/loader_check.bzl).

The names are tests/golden/binary_names.txt, which the tool's `is_binary_name` must judge alike
(tests/unit/test_loader_check.py): the two cannot drift apart.
"""

load("@bazel_skylib//lib:unittest.bzl", "asserts", "unittest")
load("@venvstacks_golden//:golden.bzl", "GOLDEN_FILES")
load("//rules_venvstacks/private/build:loader_check.bzl", "loader_check_testlib")  # buildifier: disable=bzl-visibility

def _golden_binary_names_test(ctx):
    env = unittest.begin(ctx)
    cases = 0
    for line in GOLDEN_FILES["binary_names.txt"].splitlines():
        if not line or line.startswith("#"):
            continue
        name, expected = line.split(" ")
        said = "yes" if loader_check_testlib.may_be_library(name) else "no"
        asserts.equals(env, expected, said, name)
        cases += 1
    asserts.true(env, cases >= 20, "the golden names were read")
    return unittest.end(env)

golden_binary_names_test = unittest.make(_golden_binary_names_test)

def loader_check_test_suite(name):
    """The loader check's Starlark unit tests.

    Args:
      name: the test suite's name.
    """
    unittest.suite(name, golden_binary_names_test)
