"""Unit tests of the CPython version rule (rules_venvstacks/private/common/versions.bzl).

The cases are tests/golden/python_versions.txt, which the tool's PYTHON_VERSION_RE must judge
the same way (tests/unit/test_constants.py).
"""

load("@bazel_skylib//lib:unittest.bzl", "asserts", "unittest")
load("@venvstacks_golden//:golden.bzl", "GOLDEN_FILES")
load("//rules_venvstacks/private/common:versions.bzl", "versions_testlib")  # buildifier: disable=bzl-visibility

def _golden_cases_test(ctx):
    env = unittest.begin(ctx)
    verdicts = {"invalid": False, "valid": True}
    cases = 0
    for line in GOLDEN_FILES["python_versions.txt"].splitlines():
        if not line or line.startswith("#"):
            continue
        verdict, _, text = line.partition(" ")
        asserts.equals(env, verdicts[verdict], versions_testlib.is_python_version(text), text)
        cases += 1
    asserts.true(env, cases >= 20, "the golden cases were read")
    asserts.false(env, versions_testlib.is_python_version(""))
    return unittest.end(env)

golden_cases_test = unittest.make(_golden_cases_test)

def versions_test_suite(name):
    """The version rule's unit tests.

    Args:
      name: the test suite's name.
    """
    unittest.suite(name, golden_cases_test)
