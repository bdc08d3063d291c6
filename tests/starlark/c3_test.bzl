"""Unit tests of the framework order (rules_venvstacks/private/common/c3.bzl) and the layer name rule (names.bzl)."""

load("@bazel_skylib//lib:unittest.bzl", "asserts", "unittest")
load("//rules_venvstacks/private/common:c3.bzl", "c3_testlib")  # buildifier: disable=bzl-visibility
load("//rules_venvstacks/private/common:names.bzl", "names_testlib")  # buildifier: disable=bzl-visibility

def _order(declared, linearizations):
    result = c3_testlib.linearize(declared, linearizations)
    return result.order

def _linear_orders_test(ctx):
    env = unittest.begin(ctx)

    # No frameworks, one, and a chain named only by its top.
    asserts.equals(env, [], _order([], {}))
    asserts.equals(env, ["a"], _order(["a"], {"a": []}))
    asserts.equals(env, ["c", "b", "a"], _order(["c"], {"c": ["b", "a"]}))

    # Listing the frameworks below too, in an order that agrees, changes nothing.
    asserts.equals(env, ["c", "b", "a"], _order(["c", "a"], {"c": ["b", "a"], "a": []}))
    asserts.equals(env, ["c", "b", "a"], _order(["c", "b", "a"], {"c": ["b", "a"], "b": ["a"], "a": []}))

    # Independent frameworks keep the listed order.
    asserts.equals(env, ["x", "y"], _order(["x", "y"], {"x": [], "y": []}))
    asserts.equals(env, ["y", "x"], _order(["y", "x"], {"x": [], "y": []}))
    return unittest.end(env)

linear_orders_test = unittest.make(_linear_orders_test)

def _diamond_test(ctx):
    env = unittest.begin(ctx)

    # A diamond: left and right both sit on base; base comes once, after both.
    graph = {"left": ["base"], "right": ["base"]}
    asserts.equals(env, ["left", "right", "base"], _order(["left", "right"], graph))
    asserts.equals(env, ["right", "left", "base"], _order(["right", "left"], graph))

    # Python's own example (https://www.python.org/download/releases/2.3/mro/): class A(B, C),
    # B(D, E), C(D, F), D(O), E(O), F(O): A's MRO without A is B C D E F O.
    graph = {"b": ["d", "e", "o"], "c": ["d", "f", "o"]}
    asserts.equals(env, ["b", "c", "d", "e", "f", "o"], _order(["b", "c"], graph))
    return unittest.end(env)

diamond_test = unittest.make(_diamond_test)

def _conflicts_test(ctx):
    env = unittest.begin(ctx)

    # The layer lists base before top, but top sits on base.
    result = c3_testlib.linearize(["base", "top"], {"base": [], "top": ["base"]})
    asserts.equals(env, None, result.order)
    asserts.equals(env, ["base", "top"], result.conflict.frameworks)
    message = c3_testlib.conflict_message(result.conflict)
    asserts.true(env, "base, top conflict" in message, message)
    asserts.true(env, "this layer lists [base, top]" in message, message)
    asserts.true(env, "top sits on [base]" in message, message)

    # Two frameworks that order x and y oppositely: no order satisfies both.
    result = c3_testlib.linearize(["p", "q"], {"p": ["x", "y"], "q": ["y", "x"]})
    asserts.equals(env, None, result.order)
    asserts.equals(env, ["x", "y"], sorted(result.conflict.frameworks))
    message = c3_testlib.conflict_message(result.conflict)
    asserts.true(env, "p's remaining order is [x, y]" in message, message)
    asserts.true(env, "q's remaining order is [y, x]" in message, message)

    asserts.equals(env, ["a", "b"], c3_testlib.duplicates(["a", "b", "a", "c", "b", "a"]))
    asserts.equals(env, [], c3_testlib.duplicates(["a", "b"]))
    return unittest.end(env)

conflicts_test = unittest.make(_conflicts_test)

def _layer_names_test(ctx):
    env = unittest.begin(ctx)
    for good in ["app", "numpy_framework", "_x", "9lives", "a.b-c", "layerF@1", "framework@12", "a" * 100]:
        asserts.equals(env, "", names_testlib.layer_name_problem(good), good)
    asserts.equals(env, "is empty", names_testlib.layer_name_problem(""))
    asserts.equals(env, "is 101 characters long; a layer name has at most 100", names_testlib.layer_name_problem("a" * 101))
    asserts.true(env, names_testlib.layer_name_problem(".hidden").startswith("starts with \".\""))
    asserts.true(env, names_testlib.layer_name_problem("-x").startswith("starts with \"-\""))
    asserts.true(env, names_testlib.layer_name_problem("@1").startswith("starts with \"@\""))
    asserts.true(env, names_testlib.layer_name_problem("a/b").startswith("holds \"/\""))
    asserts.true(env, names_testlib.layer_name_problem("a b").startswith("holds \" \""))
    return unittest.end(env)

layer_names_test = unittest.make(_layer_names_test)

def c3_test_suite(name):
    """The framework order's and the layer name rule's unit tests.

    Args:
      name: the test suite's name.
    """
    unittest.suite(name, linear_orders_test, diamond_test, conflicts_test, layer_names_test)
