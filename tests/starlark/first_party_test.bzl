"""Unit tests of where first-party files land in a layer (rules_venvstacks/private/build/first_party.bzl)."""

load("@bazel_skylib//lib:unittest.bzl", "asserts", "unittest")
load("//rules_venvstacks/private/build:first_party.bzl", "first_party_testlib")  # buildifier: disable=bzl-visibility

def _destination_test(ctx):
    env = unittest.begin(ctx)
    lib = first_party_testlib

    # Below the longest root that holds the file: nested roots are as py_binary's sys.path finds them.
    roots = ["_main/libs/mylib/src", "_main/libs", "other+/pkgs"]
    asserts.equals(env, "mylib/__init__.py", lib.destination("_main/libs/mylib/src/mylib/__init__.py", roots))
    asserts.equals(env, "mylib/README", lib.destination("_main/libs/mylib/README", roots))
    asserts.equals(env, "tool.py", lib.destination("other+/pkgs/tool.py", roots))

    # Under no root: the path inside its repository (each repository's runfiles root is on sys.path).
    asserts.equals(env, "mybase/__init__.py", lib.destination("_main/mybase/__init__.py", roots))
    asserts.equals(env, "x/y.py", lib.destination("other+/x/y.py", roots))

    # A root is a directory: `_main/libs` does not hold `_main/libsextra/...`.
    asserts.equals(env, "libsextra/a.py", lib.destination("_main/libsextra/a.py", ["_main/libs"]))
    return unittest.end(env)

destination_test = unittest.make(_destination_test)

def _names_test(ctx):
    env = unittest.begin(ctx)
    lib = first_party_testlib

    # `imports` entries as rules leave them: `.` and `..` resolved, empty parts dropped.
    asserts.equals(env, "_main/libs/gen", lib.normalize_import("_main/libs/gen/."))
    asserts.equals(env, "other+/src", lib.normalize_import("_main/../other+/src"))
    asserts.equals(env, "_main", lib.normalize_import("_main//"))

    # The import names a hub wheel installs, from its paths below site-packages.
    asserts.equals(env, "numpy", lib.top_level_name("numpy/__init__.py"))
    asserts.equals(env, "six", lib.top_level_name("six.py"))
    asserts.equals(env, "_cffi", lib.top_level_name("_cffi.cpython-312-x86_64-linux-gnu.so"))
    asserts.equals(env, None, lib.top_level_name("numpy-2.0.dist-info/METADATA"))
    asserts.equals(env, None, lib.top_level_name("numpy.libs/libgfortran.so.5"))
    asserts.equals(env, None, lib.top_level_name("distutils-precedence.pth"))
    asserts.equals(env, None, lib.top_level_name("1bad/__init__.py"))
    return unittest.end(env)

names_test = unittest.make(_names_test)

def _package_data_test(ctx):
    env = unittest.begin(ctx)
    lib = first_party_testlib
    packages = lib.package_dirs(["mylib/__init__.py", "libs/core/x.py", "top.py"])
    asserts.equals(env, {"mylib": True, "libs/core": True}, packages)

    # Data inside a package directory, or below one, is package data; elsewhere it is not.
    asserts.true(env, lib.inside_package("mylib/resources/greeting.txt", packages))
    asserts.true(env, lib.inside_package("mylib/py.typed", packages))
    asserts.false(env, lib.inside_package("libs/other/data.txt", packages))
    asserts.false(env, lib.inside_package("README.md", packages))
    return unittest.end(env)

package_data_test = unittest.make(_package_data_test)

def first_party_test_suite(name):
    """The unit tests of first-party file placement.

    Args:
      name: the test suite's name.
    """
    unittest.suite(name, destination_test, names_test, package_data_test)
