"""Unit tests of the Starlark pylock.toml reader (rules_venvstacks/private/fetch/pylock.bzl).

The reader reads the golden lock of tests/golden/ (`@venvstacks_golden`, tests/golden/golden.bzl),
the very text tests/unit/test_pylock.py requires the writer to produce; hand edits of it must fail
naming the file and line (analysis tests with `expect_failure`): those of `_REFUSED` below, and
those of tests/golden/lock_edits.json, which the tool's reader must refuse alike
(tests/unit/test_pylock.py).
"""

load("@bazel_skylib//lib:unittest.bzl", "analysistest", "asserts", "unittest")
load("@venvstacks_golden//:golden.bzl", "GOLDEN_FILES")
load("//rules_venvstacks/private/fetch:pylock.bzl", "pylock_testlib")  # buildifier: disable=bzl-visibility

_GOLDEN = GOLDEN_FILES["pylock.golden.toml"]
_SINGLE_PLATFORM = GOLDEN_FILES["pylock.single-platform.toml"]

# Where the extension would find it (its label's package and name); the depth bounds `..` in paths.
_SOURCE = "stacks/pylock.app.toml"
_DEPTH = 1

_LINUX = "x86_64-unknown-linux-gnu"
_MACOS = "aarch64-apple-darwin"
_WINDOWS = "x86_64-pc-windows-msvc"

_REQUESTS = "requests-2.32.3-py3-none-any.whl"
_LOCAL = "local_tool-0.1-py3-none-any.whl"

# (name, version, {triple: the wheel that platform installs}) of each package, in the lock's order.
_EXPECTED = [
    ("charset-normalizer", "3.4.0", {
        _LINUX: "charset_normalizer-3.4.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        _MACOS: "charset_normalizer-3.4.0-cp312-cp312-macosx_11_0_arm64.whl",
        _WINDOWS: "charset_normalizer-3.4.0-cp312-cp312-win_amd64.whl",
    }),
    ("click", "8.1.8", {triple: "click-8.1.8-py3-none-any.whl" for triple in [_LINUX, _MACOS, _WINDOWS]}),
    ("colorama", "0.4.6", {_WINDOWS: "colorama-0.4.6-py2.py3-none-any.whl"}),
    ("fastext", "2.0", {
        _LINUX: "fastext-2.0-cp312-cp312-linux_x86_64.whl",
        _MACOS: "fastext-2.0-cp312-cp312-macosx_14_0_arm64.whl",
        _WINDOWS: "fastext-2.0-cp312-cp312-win_amd64.whl",
    }),
    ("local-tool", "0.1", {triple: _LOCAL for triple in [_LINUX, _MACOS, _WINDOWS]}),
    ("numpy", "1.26.4", {_WINDOWS: "numpy-1.26.4-cp312-cp312-win_amd64.whl"}),
    ("numpy", "2.1.2", {
        _LINUX: "numpy-2.1.2-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        _MACOS: "numpy-2.1.2-cp312-cp312-macosx_14_0_arm64.whl",
    }),
    ("requests", "2.32.3", {triple: _REQUESTS for triple in [_LINUX, _MACOS, _WINDOWS]}),
    ("toposort", "1.10", {triple: "toposort-1.10-py3-none-any.whl" for triple in [_LINUX, _MACOS, _WINDOWS]}),
]

def _golden_test(ctx):
    env = unittest.begin(ctx)
    lock = pylock_testlib.parse_pylock(_GOLDEN, _SOURCE, depth = _DEPTH)
    asserts.equals(env, [_MACOS, _WINDOWS, _LINUX], lock.platform_triples)
    asserts.equals(env, 3, lock.lock_version)
    asserts.equals(env, _EXPECTED, [(p.name, p.version, p.platform_wheels) for p in lock.packages])
    asserts.equals(
        env,
        [3, 1, 1, 0, 1, 1, 2, 1, 0],
        [len(p.wheels) for p in lock.packages],
        "one entry per distinct wheel file",
    )
    for package in lock.packages:
        for wheel in package.wheels:
            if wheel.name == _LOCAL:
                asserts.equals(env, ("", "../wheels/" + _LOCAL), (wheel.url, wheel.path), "a find-links wheel")
                asserts.equals(env, "568b32931f1b6d1a3da3818e773c7c0eab98efa81679f5fe9383e0f8207a9533", wheel.sha256)
                continue

            # The golden index URLs are made of the wheel's hash, as PyPI's paths look: hash and URL
            # read from the same entry agree.
            parts = wheel.url.split("/")
            asserts.equals(env, "https://files.pythonhosted.org/packages", "/".join(parts[:4]), wheel.url)
            asserts.equals(env, wheel.sha256, "".join(parts[4:7]), wheel.name)
            asserts.equals(env, wheel.name, parts[7])
            asserts.equals(env, "", wheel.path)
    requests = lock.packages[-2].wheels[0]
    asserts.equals(env, "bd0c80ddb748e530fc1c4dec6b66909a820f246d37f72b3461438ce1fcd8a30a", requests.sha256)

    # A package built from its sdist: the sdist, the wheel it builds and its build wheels.
    toposort = lock.packages[-1]
    asserts.equals(env, "toposort-1.10.tar.gz", toposort.sdist.name)
    asserts.equals(env, "e419e539044a0137fd317537015afa35a7e02f165418130426b9116f003438d5", toposort.sdist.sha256)
    asserts.equals(env, "toposort-1.10-py3-none-any.whl", toposort.built_wheel)
    asserts.equals(env, ["setuptools-80.9.0-py3-none-any.whl"], [wheel.name for wheel in toposort.build_wheels])
    asserts.false(env, toposort.native)

    # A native sdist (extension modules): no built wheel, each platform builds the one it names.
    fastext = lock.packages[3]
    asserts.equals(env, "fastext-2.0.tar.gz", fastext.sdist.name)
    asserts.true(env, fastext.native)
    asserts.equals(env, "", fastext.built_wheel)
    asserts.equals(env, ["setuptools-80.9.0-py3-none-any.whl"], [wheel.name for wheel in fastext.build_wheels])
    asserts.equals(env, [None] * 7, [package.sdist for package in lock.packages[:3] + lock.packages[4:-1]])
    return unittest.end(env)

golden_test = unittest.make(_golden_test)

def _single_platform_test(ctx):
    env = unittest.begin(ctx)
    lock = pylock_testlib.parse_pylock(_SINGLE_PLATFORM, _SOURCE, depth = _DEPTH)
    asserts.equals(env, [_LINUX], lock.platform_triples)
    asserts.equals(env, None, lock.lock_version)
    asserts.equals(env, [("requests", "2.32.3", {_LINUX: _REQUESTS})], [(p.name, p.version, p.platform_wheels) for p in lock.packages])
    return unittest.end(env)

single_platform_test = unittest.make(_single_platform_test)

def _string_test(ctx):
    env = unittest.begin(ctx)
    asserts.equals(env, ("a\"b\\c", 11), pylock_testlib.string_at('x "a\\"b\\\\c" y', 2, "lock:1"))

    # Without an escape (the fast path: one slice), and an escape only after the closing quote.
    asserts.equals(env, ("plain", 9), pylock_testlib.string_at('x "plain" y', 2, "lock:1"))
    asserts.equals(env, ("", 4), pylock_testlib.string_at('x "" "\\"', 2, "lock:1"))
    asserts.equals(env, ("a b", 5), pylock_testlib.string_at('"a b", "c\\"d"', 0, "lock:1"))
    return unittest.end(env)

string_test = unittest.make(_string_test)

def _sha256_test(ctx):
    env = unittest.begin(ctx)
    asserts.equals(env, "", pylock_testlib.sha256_error("0123456789abcdef" * 4))
    asserts.equals(env, "it is empty", pylock_testlib.sha256_error(""))
    asserts.equals(env, "it has 4 characters, not 64", pylock_testlib.sha256_error("aaaa"))
    asserts.equals(env, "'A' is not a lowercase hex digit", pylock_testlib.sha256_error("A" * 64))
    asserts.equals(env, "'g' is not a lowercase hex digit", pylock_testlib.sha256_error("g" * 64))
    asserts.equals(env, "'G' is not a lowercase hex digit", pylock_testlib.sha256_error("ab" * 20 + "G" + "c" * 23))
    return unittest.end(env)

sha256_test = unittest.make(_sha256_test)

def _wheel_path_test(ctx):
    env = unittest.begin(ctx)
    check = pylock_testlib.wheel_path_error
    asserts.equals(env, 0, pylock_testlib.lock_depth("", "pylock.app.toml"))
    asserts.equals(env, 1, pylock_testlib.lock_depth("stacks", "pylock.app.toml"))
    asserts.equals(env, 3, pylock_testlib.lock_depth("a/b", "locks/pylock.app.toml"))

    # Inside: beside the lock, below it, or up to the workspace root and down again.
    for path in ["x.whl", "wheels/x.whl", "../wheels/x.whl", "./w/../x.whl", "w/../../x.whl"]:
        asserts.equals(env, "", check(path, 1), path)
    for path in ["/etc/x.whl", "\\\\server\\x.whl", "C:/w/x.whl", "C:\\w\\x.whl", "file:///w/x.whl", "https://h/x.whl"]:
        asserts.equals(env, "it is absolute", check(path, 1), path)
        asserts.equals(env, "it is absolute", check(path, None), path)
    for path in ["../../x.whl", "..\\..\\x.whl", "w/../../../x.whl", "../../../../../../etc/x.whl"]:
        asserts.equals(env, "its '..' climb out of the workspace", check(path, 1), path)
    asserts.equals(env, "its '..' climb out of the workspace", check("../x.whl", 0))
    asserts.equals(env, "", check("../../x.whl", None), "an unknown depth refuses absolute paths only")
    asserts.equals(env, "it is empty", check("", 1))
    return unittest.end(env)

wheel_path_test = unittest.make(_wheel_path_test)

def _wheel_error_test(ctx):
    env = unittest.begin(ctx)
    good = "a" * 64
    asserts.equals(env, "", pylock_testlib.wheel_error("p", struct(name = "p.whl", url = "https://h/p.whl", path = "", sha256 = good), 1))
    asserts.equals(
        env,
        "package 'p': the sha256 of p.whl is not 64 lowercase hex digits (it is empty): ''",
        pylock_testlib.wheel_error("p", struct(name = "p.whl", url = "https://h/p.whl", path = "", sha256 = ""), 1),
    )
    asserts.equals(
        env,
        "package 'p': the path '../../p.whl' of p.whl points outside the workspace (its '..' climb out of the workspace); a local wheel must be in a find-links directory in the workspace",
        pylock_testlib.wheel_error("p", struct(name = "p.whl", url = "", path = "../../p.whl", sha256 = good), 1),
    )
    return unittest.end(env)

wheel_error_test = unittest.make(_wheel_error_test)

def _wheel_version_test(ctx):
    """The same cases as tests/unit/test_pylock.py test_wheel_version and its comparable_version test."""
    env = unittest.begin(ctx)
    asserts.equals(env, "2.32.3", pylock_testlib.wheel_version(_REQUESTS))
    asserts.equals(env, "1.0", pylock_testlib.wheel_version("pkg-1.0-1-py3-none-any.whl"), "with a build tag")
    asserts.equals(env, "", pylock_testlib.wheel_version("not-a-wheel.tar.gz"))
    asserts.equals(env, "", pylock_testlib.wheel_version("p.whl"))
    same = pylock_testlib.comparable_version
    asserts.equals(env, same("1.0-post1"), same("1.0_post1"))
    asserts.equals(env, same("V2.0RC1"), same("2.0rc1"))
    asserts.true(env, same("2.0") != same("2.1"))
    return unittest.end(env)

wheel_version_test = unittest.make(_wheel_version_test)

# --- what the reader refuses: hand edits of the golden lock ---------------------------------

def _read_lock_impl(ctx):
    pylock_testlib.parse_pylock(ctx.attr.text, _SOURCE, depth = _DEPTH)
    return []

# Reads `text` at analysis, so that a test can expect the reader's failure.
_read_lock = rule(implementation = _read_lock_impl, attrs = {"text": attr.string()})

def _refused_test_impl(ctx):
    env = analysistest.begin(ctx)
    asserts.expect_failure(env, ctx.attr.expected)
    return analysistest.end(env)

refused_test = analysistest.make(_refused_test_impl, expect_failure = True, attrs = {"expected": attr.string()})

# The first line of fastext's table (a native sdist).
_FASTEXT_AT = '[[packages]]\nname = "fastext"'

# The first line of requests' table, where the reader reports what is wrong with the package as a whole.
_REQUESTS_AT = '[[packages]]\nname = "requests"'

_UNKNOWN = "'x86_64-unknown-freebsd' is not the triple of a platform rules_venvstacks builds for; known: linux_aarch64 (aarch64-unknown-linux-gnu)"

# name -> (golden text, the text replaced, its replacement, the message after "<file>:<line>: ", at).
# The line is where the replacement starts, or where `at` does when given: a mistake about a
# package as a whole is reported at its table's first line.
_REFUSED = {
    "foreign_wheel": (_GOLDEN, _WINDOWS + ' = "' + _REQUESTS + '"', _WINDOWS + ' = "other.whl"', "package 'requests': platform-wheels gives windows_x86_64 the wheel 'other.whl', which is not in its wheels", _REQUESTS_AT),
    "hand_comment": (_GOLDEN, 'version = "2.32.3"', 'version = "2.32.3" # hand edit', "unexpected text after the value of 'version'", None),
    "junk_in_wheels": (_GOLDEN, "wheels = [\n    { name = \"click", "wheels = [\n    junk,\n    { name = \"click", "unexpected line in a [[packages]] table", "junk,"),
    "native_and_built_wheel": (_GOLDEN, "native = true\n", "native = true\nbuilt-wheel = \"fastext-2.0-cp312-cp312-linux_x86_64.whl\"\n", "package 'fastext' has an sdist but not one of 'built-wheel' or 'native = true' in its [packages.tool.venvstacks] table", _FASTEXT_AT),
    "native_false": (_GOLDEN, "native = true\n", "native = false\n", "unexpected line in a [packages.tool.venvstacks] table", None),
    "no_platform_wheels": (_GOLDEN, "[packages.tool.venvstacks.platform-wheels]\n" + "".join([t + ' = "' + _REQUESTS + '"\n' for t in [_MACOS, _WINDOWS, _LINUX]]), "", "package 'requests' has no [packages.tool.venvstacks.platform-wheels] table", _REQUESTS_AT),
    "no_wheels": (_GOLDEN, [line + "\n" for line in _GOLDEN.split("\n") if line.startswith('    { name = "' + _REQUESTS)][0], "", "package 'requests' has no wheels", _REQUESTS_AT),
    "platform_not_locked": (_GOLDEN, _LINUX + ' = "' + _REQUESTS + '"', 'aarch64-unknown-linux-gnu = "' + _REQUESTS + '"', "package 'requests': platform-wheels names linux_aarch64, which is not among the lock's platforms (macos_arm64, windows_x86_64, linux_x86_64)", _REQUESTS_AT),
    "repeated_in_platforms": (_GOLDEN, '    "' + _LINUX + '",\n]', '    "' + _MACOS + '",\n]', "platform macos_arm64 is listed twice", None),
    "quoted_key": (_GOLDEN, _LINUX + ' = "' + _REQUESTS + '"', '"' + _LINUX + '" = "' + _REQUESTS + '"', "unexpected line in a [packages.tool.venvstacks.platform-wheels] table", None),
    "single_quotes": (_GOLDEN, 'marker = "sys_platform == \'win32\' and platform_machine == \'AMD64\'"\nwheels = [\n    { name = "colorama', "marker = 'x'\nwheels = [\n    { name = \"colorama", "expected a quoted string", "marker = 'x'"),
    "unknown_in_platforms": (_GOLDEN, '    "' + _LINUX + '",\n]', '    "x86_64-unknown-freebsd",\n]', _UNKNOWN, None),
    "unknown_in_platform_wheels": (_GOLDEN, _LINUX + ' = "' + _REQUESTS + '"', 'x86_64-unknown-freebsd = "' + _REQUESTS + '"', _UNKNOWN, None),
    "unknown_single_platform": (_SINGLE_PLATFORM, 'platform = "' + _LINUX + '"', 'platform = "x86_64-unknown-freebsd"', _UNKNOWN, None),
}

def _cases():
    """The cases of _REFUSED and of tests/golden/lock_edits.json, the latter in _REFUSED's form."""
    cases = dict(_REFUSED)
    for case in json.decode(GOLDEN_FILES["lock_edits.json"])["cases"]:
        if case["name"] in _REFUSED:
            fail("pylock_test.bzl: case '%s' is in both _REFUSED and lock_edits.json" % case["name"])
        cases[case["name"]] = (_GOLDEN, case["old"], case["new"], case["message"], case["at"] or None)
    return cases

def _line_of(text, fragment):
    """The 1-based number of the line where `fragment` starts in `text`."""
    return text[:text.find(fragment)].count("\n") + 1

def _refused_tests(prefix):
    """Declares a reader and a refused_test (`<prefix>_<case>`) for each case of _REFUSED; returns the tests' labels."""
    tests = []
    for name, (golden, old, new, message, at) in sorted(_cases().items()):
        if golden.count(old) != 1:
            fail("pylock_test.bzl: case '%s' must replace one place of the golden lock, found %d" % (name, golden.count(old)))
        text = golden.replace(old, new)
        line = _line_of(text, at if at else new)
        _read_lock(name = "%s_%s_lock" % (prefix, name), text = text, tags = ["manual"])
        refused_test(
            name = "%s_%s" % (prefix, name),
            target_under_test = ":%s_%s_lock" % (prefix, name),
            expected = "%s:%d: %s" % (_SOURCE, line, message),
        )
        tests.append(":%s_%s" % (prefix, name))
    return tests

def pylock_test_suite(name):
    """Declares the pylock reader tests.

    Args:
      name: the test suite's name.
    """
    unittest.suite(name, golden_test, single_platform_test, string_test, sha256_test, wheel_path_test, wheel_error_test, wheel_version_test)
    native.test_suite(name = name + "_refused", tests = _refused_tests(name + "_refuses"))
