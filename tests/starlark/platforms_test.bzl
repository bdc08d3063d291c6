"""Unit tests of the target platform table (rules_venvstacks/private/common/platforms.bzl).

The list check's cases are tests/golden/platform_lists.txt, which the tool's `platforms_problem`
must judge with the same messages (tests/unit/test_platforms.py).
"""

load("@bazel_skylib//lib:unittest.bzl", "asserts", "unittest")
load("@venvstacks_golden//:golden.bzl", "GOLDEN_FILES")
load("//rules_venvstacks/private/common:platforms.bzl", "platforms_testlib")  # buildifier: disable=bzl-visibility

def _names_and_triples_test(ctx):
    env = unittest.begin(ctx)
    asserts.equals(env, "windows_x86_64", platforms_testlib.platform_name("x86_64-pc-windows-msvc"))
    asserts.equals(env, "macos_arm64", platforms_testlib.platform_name("aarch64-apple-darwin"))
    asserts.equals(env, "sparc-sun-solaris", platforms_testlib.platform_name("sparc-sun-solaris"))
    asserts.equals(
        env,
        ["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu"],
        platforms_testlib.platform_triples(["linux_x86_64", "linux_aarch64"], "test"),
    )
    asserts.equals(env, [], platforms_testlib.platform_triples([], "test"))
    asserts.equals(env, "", platforms_testlib.triple_problem("aarch64-apple-darwin"))
    asserts.equals(
        env,
        "'linux_x86_64' is not the triple of a platform rules_venvstacks builds for; known: linux_aarch64 (aarch64-unknown-linux-gnu), linux_x86_64 (x86_64-unknown-linux-gnu), macos_arm64 (aarch64-apple-darwin), macos_x86_64 (x86_64-apple-darwin), windows_x86_64 (x86_64-pc-windows-msvc)",
        platforms_testlib.triple_problem("linux_x86_64"),
    )
    return unittest.end(env)

names_and_triples_test = unittest.make(_names_and_triples_test)

def _golden_lists_test(ctx):
    env = unittest.begin(ctx)
    cases = 0
    for line in GOLDEN_FILES["platform_lists.txt"].splitlines():
        if not line or line.startswith("#"):
            continue
        kind, values, expected = line.split(" | ", 2)
        values = [value for value in values.strip().split(",") if value]
        problem = platforms_testlib.platforms_problem(values, short_names = kind == "names")
        said = "ok" if problem == None else "%d | %s" % (problem.index, problem.message)
        asserts.equals(env, expected, said, line)
        cases += 1
    asserts.true(env, cases >= 10, "the golden cases were read")
    return unittest.end(env)

golden_lists_test = unittest.make(_golden_lists_test)

def _wheel_floors_test(ctx):
    env = unittest.begin(ctx)
    for attribute, value in [
        ("glibc_minimum", "2.17"),
        ("glibc_minimum", "2.28"),
        ("glibc_minimum", "2.44"),
        ("macos_minimum", "10.9"),
        ("macos_minimum", "10.15"),
        ("macos_minimum", "11.0"),
        ("macos_minimum", "15.4"),
        ("macos_minimum", "26.0"),
    ]:
        asserts.equals(env, "", platforms_testlib.wheel_floor_problem(attribute, value), value)
    glibc = "is not a glibc release rules_venvstacks knows; give one from 2.17 (PBS' floor) to 2.44"
    for value in ["2.99", "2.16", "2.45", "3.0", "1.17"]:
        asserts.equals(env, "glibc_minimum = '%s' %s" % (value, glibc), platforms_testlib.wheel_floor_problem("glibc_minimum", value))
    macos = "is not a macOS release rules_venvstacks knows; give 10.9 to 10.15, or MAJOR.MINOR with MAJOR one of 11, 12, 13, 14, 15, 26"
    for value in ["10.8", "10.16", "16.0", "25.0", "9.0", "2.28"]:
        asserts.equals(env, "macos_minimum = '%s' %s" % (value, macos), platforms_testlib.wheel_floor_problem("macos_minimum", value))
    return unittest.end(env)

wheel_floors_test = unittest.make(_wheel_floors_test)

def platforms_test_suite(name):
    """The platform table's unit tests.

    Args:
      name: the test suite's name.
    """
    unittest.suite(name, names_and_triples_test, golden_lists_test, wheel_floors_test)
