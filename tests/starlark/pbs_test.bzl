"""Unit tests of the pure PBS helpers (rules_venvstacks/private/pbs.bzl)."""

load("@bazel_skylib//lib:unittest.bzl", "asserts", "unittest")
load("//rules_venvstacks/private/fetch:pbs.bzl", "pbs_testlib")  # buildifier: disable=bzl-visibility

_TABLE = {
    "download_base": "https://example.invalid/releases/download",
    "latest": {"3.12": "3.12.7"},
    "versions": {
        "3.12.6": {"assets": {}, "release": "20240909"},
        "3.12.7": {
            "assets": {
                "x86_64-unknown-linux-gnu": {
                    "file": "cpython-3.12.7+20241016-x86_64-unknown-linux-gnu-install_only.tar.gz",
                    "sha256": "a" * 64,
                    "strip_prefix": "python",
                },
            },
            "release": "20241016",
        },
    },
}

def _host_platform_test(ctx):
    env = unittest.begin(ctx)
    asserts.equals(env, "x86_64-unknown-linux-gnu", pbs_testlib.host_platform("linux", "amd64"))
    asserts.equals(env, "aarch64-unknown-linux-gnu", pbs_testlib.host_platform("linux", "aarch64"))
    asserts.equals(env, "aarch64-apple-darwin", pbs_testlib.host_platform("Mac OS X", "aarch64"))
    asserts.equals(env, "x86_64-apple-darwin", pbs_testlib.host_platform("mac os x", "x86_64"))
    asserts.equals(env, "x86_64-pc-windows-msvc", pbs_testlib.host_platform("Windows 10", "amd64"))
    asserts.equals(env, None, pbs_testlib.host_platform("linux", "s390x"))
    asserts.equals(env, None, pbs_testlib.host_platform("freebsd", "amd64"))
    return unittest.end(env)

def _resolve_version_test(ctx):
    env = unittest.begin(ctx)
    asserts.equals(env, "3.12.7", pbs_testlib.resolve_version(_TABLE, "3.12").version)
    asserts.equals(env, "3.12.6", pbs_testlib.resolve_version(_TABLE, "3.12.6").version)
    unknown = pbs_testlib.resolve_version(_TABLE, "3.99")
    asserts.equals(env, None, unknown.version)
    asserts.true(env, "'3.99' is not in the built-in PBS table; known: 3.12.6, 3.12.7" in unknown.error, unknown.error)
    asserts.equals(env, None, pbs_testlib.resolve_version(_TABLE, "3.12.99").version)
    return unittest.end(env)

def _asset_urls_test(ctx):
    env = unittest.begin(ctx)
    asset = pbs_testlib.asset_urls(_TABLE, "3.12.7", "x86_64-unknown-linux-gnu", [])
    asserts.equals(env, ["https://example.invalid/releases/download/20241016/cpython-3.12.7%2B20241016-x86_64-unknown-linux-gnu-install_only.tar.gz"], asset.urls)
    asserts.equals(env, "a" * 64, asset.sha256)
    asserts.equals(env, "20241016", asset.release)
    mirrored = pbs_testlib.asset_urls(_TABLE, "3.12.7", "x86_64-unknown-linux-gnu", ["https://m1/pbs/", "https://m2"])
    asserts.equals(env, "https://m1/pbs/20241016/", mirrored.urls[0][:len("https://m1/pbs/20241016/")])
    asserts.equals(env, "https://m2/20241016/", mirrored.urls[1][:len("https://m2/20241016/")])
    missing = pbs_testlib.asset_urls(_TABLE, "3.12.7", "aarch64-apple-darwin", [])
    asserts.true(env, "no PBS build of Python 3.12.7 for platform macos_arm64; this version has: linux_x86_64" in missing.error, missing.error)
    return unittest.end(env)

def _release_epoch_test(ctx):
    env = unittest.begin(ctx)
    asserts.equals(env, 1729036800, pbs_testlib.release_epoch("20241016"))  # 2024-10-16T00:00:00Z
    asserts.equals(env, 951782400, pbs_testlib.release_epoch("20000229"))  # a leap day
    asserts.equals(env, 315532800, pbs_testlib.release_epoch(""))  # custom build: 1980-01-01
    asserts.equals(env, 315532800, pbs_testlib.release_epoch("19700101"))  # clamped for zip
    asserts.equals(env, "3.12", pbs_testlib.python_minor("3.12.7"))
    return unittest.end(env)

host_platform_test = unittest.make(_host_platform_test)
resolve_version_test = unittest.make(_resolve_version_test)
asset_urls_test = unittest.make(_asset_urls_test)
release_epoch_test = unittest.make(_release_epoch_test)

def pbs_test_suite(name):
    """Declares the PBS helper tests as one test suite.

    Args:
      name: the test suite's name.
    """
    unittest.suite(
        name,
        host_platform_test,
        resolve_version_test,
        asset_urls_test,
        release_epoch_test,
    )
