"""Unit tests of the BUILD text renderer of the generated repositories (rules_venvstacks/private/fetch/render.bzl)."""

load("@bazel_skylib//lib:unittest.bzl", "asserts", "unittest")
load("//rules_venvstacks/private/fetch:render.bzl", "render")  # buildifier: disable=bzl-visibility

def _call_test(ctx):
    env = unittest.begin(ctx)
    asserts.equals(
        env,
        "\n".join([
            "# The hub.",
            "#",
            "# Second paragraph.",
            "locked_wheels(",
            "    name = \"app\",",
            "    missing = False,",
            "    platform_triples = [\"x86_64-unknown-linux-gnu\"],",
            "    wheels = select({",
            "        \"//a:is_linux\": {\"@w//:wheel\": \"ab\"},",
            "        \"//b:is_windows\": {},",
            "        \"//conditions:default\": {},",
            "    }),",
            ")",
            "",
        ]),
        render.call("locked_wheels", "app", {
            "missing": False,
            "platform_triples": ["x86_64-unknown-linux-gnu"],
            "wheels": render.select({"//b:is_windows": {}, "//a:is_linux": {"@w//:wheel": "ab"}}, {}),
        }, comment = "The hub.\n\nSecond paragraph."),
    )
    asserts.equals(env, "alias(\n    name = \"runtime\",\n    actual = \"x \\\"quoted\\\"\",\n)\n", render.call("alias", "runtime", {"actual": "x \"quoted\""}))
    return unittest.end(env)

call_test = unittest.make(_call_test)

def _load_and_file_test(ctx):
    env = unittest.begin(ctx)
    line = render.load_line(Label("//rules_venvstacks/private/build:locked_wheels.bzl"), ["locked_wheels"])
    asserts.true(env, line.startswith("load(\"@@"), line)
    asserts.true(env, line.endswith("//rules_venvstacks/private/build:locked_wheels.bzl\", \"locked_wheels\")\n"), line)
    asserts.equals(env, "load(\"x\")\n\nalias(\n    name = \"a\",\n)\n", render.build_file(["load(\"x\")\n", render.call("alias", "a", {})]))
    return unittest.end(env)

load_and_file_test = unittest.make(_load_and_file_test)

def render_test_suite(name):
    """The renderer's unit tests.

    Args:
      name: the test suite's name.
    """
    unittest.suite(name, call_test, load_and_file_test)
