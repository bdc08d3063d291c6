"""Unit tests of named-index inheritance and conflicts (rules_venvstacks/private/lock/named_indexes.bzl)."""

load("@bazel_skylib//lib:unittest.bzl", "asserts", "unittest")
load("//rules_venvstacks/private/lock:named_indexes.bzl", "named_indexes_testlib")  # buildifier: disable=bzl-visibility

_DECLARED = {"pypi": "https://pypi.org/simple", "pytorch_cpu": "https://download.pytorch.org/whl/cpu", "pytorch_cu128": "https://download.pytorch.org/whl/cu128"}

def _merge(layer, lower = [], package_indexes = {}, priority_indexes = [], index_overrides = {}):
    return named_indexes_testlib.merge(layer, lower, package_indexes, priority_indexes, index_overrides, _DECLARED)

def _framework(label, **kwargs):
    """A framework below, as `_merge` sees it: its label and its own merged named indexes."""
    return struct(label = label, named_indexes = _merge(label, **kwargs).value)

def _inheritance_test(ctx):
    env = unittest.begin(ctx)

    # A layer's own entries, normalized; priority kept in order.
    own = _merge("//s:fw", package_indexes = {"Torch_Vision": "pytorch_cpu"}, priority_indexes = ["pytorch_cu128", "pypi"])
    asserts.equals(env, None, own.error)
    asserts.equals(env, {"torch-vision": "pytorch_cpu"}, own.value.package_indexes)
    asserts.equals(env, {"torch-vision": "//s:fw"}, own.value.origins)
    asserts.equals(env, ["pytorch_cu128", "pypi"], own.value.priority)

    # Upper layers inherit package_indexes (with the layer that set each), never priority_indexes.
    fw = _framework("//s:fw", package_indexes = {"torch": "pytorch_cpu"}, priority_indexes = ["pypi"])
    app = _merge("//s:app", lower = [fw], package_indexes = {"numpy": "pypi"})
    asserts.equals(env, None, app.error)
    asserts.equals(env, {"numpy": "pypi", "torch": "pytorch_cpu"}, app.value.package_indexes)
    asserts.equals(env, {"numpy": "//s:app", "torch": "//s:fw"}, app.value.origins)
    asserts.equals(env, [], app.value.priority)

    # Through two floors: the top keeps the origin of the lowest.
    mid = struct(label = "//s:mid", named_indexes = _merge("//s:mid", lower = [fw]).value)
    top = _merge("//s:top", lower = [mid, fw])
    asserts.equals(env, {"torch": "//s:fw"}, top.value.origins)

    # Restating the inherited entry is no conflict.
    asserts.equals(env, None, _merge("//s:app", lower = [fw], package_indexes = {"torch": "pytorch_cpu"}).error)

    # The arguments `lock` gets: the used indexes with their URLs, the projects, the priority order.
    asserts.equals(env, [
        "--named-index",
        "pypi=https://pypi.org/simple",
        "--named-index",
        "pytorch_cpu=https://download.pytorch.org/whl/cpu",
        "--package-index",
        "torch=pytorch_cpu",
        "--priority-index",
        "pypi",
    ], named_indexes_testlib.arguments(fw.named_indexes, _DECLARED))
    asserts.equals(env, [], named_indexes_testlib.arguments(_merge("//s:plain").value, _DECLARED))
    return unittest.end(env)

inheritance_test = unittest.make(_inheritance_test)

def _conflicts_test(ctx):
    env = unittest.begin(ctx)
    cpu = _framework("//s:cpu", package_indexes = {"torch": "pytorch_cpu"})
    cuda = _framework("//s:cuda", package_indexes = {"torch": "pytorch_cu128"})

    # Two frameworks disagree: both named, and the override that accepts it suggested.
    error = _merge("//s:app", lower = [cuda, cpu]).error
    asserts.true(env, "//s:app: frameworks //s:cuda and //s:cpu take 'torch' from different indexes" in error, error)
    asserts.true(env, "index_overrides = {\"pytorch_cpu\": \"pytorch_cu128\"}" in error, error)

    # venvstacks' own example: the CUDA layer first, the CPU index overridden by it.
    accepted = _merge("//s:app", lower = [cuda, cpu], index_overrides = {"pytorch_cpu": "pytorch_cu128"})
    asserts.equals(env, None, accepted.error)
    asserts.equals(env, {"torch": "pytorch_cu128"}, accepted.value.package_indexes)
    asserts.equals(env, {"torch": "//s:cuda"}, accepted.value.origins)

    # The layer disagrees with a framework: both named; accepted with the override.
    error = _merge("//s:app", lower = [cpu], package_indexes = {"torch": "pytorch_cu128"}).error
    asserts.true(env, "//s:app: `package_indexes` takes 'torch' from 'pytorch_cu128', but framework //s:cpu takes it from 'pytorch_cpu'" in error, error)
    overridden = _merge("//s:app", lower = [cpu], package_indexes = {"torch": "pytorch_cu128"}, index_overrides = {"pytorch_cpu": "pytorch_cu128"})
    asserts.equals(env, {"torch": "pytorch_cu128"}, overridden.value.package_indexes)
    asserts.equals(env, {"torch": "//s:app"}, overridden.value.origins)

    # Unknown names, wherever they are written; a repeated priority index; two spellings of one project.
    for kwargs, attribute in [
        ({"package_indexes": {"torch": "cuda"}}, "package_indexes"),
        ({"priority_indexes": ["cuda"]}, "priority_indexes"),
        ({"index_overrides": {"cuda": "pypi"}}, "index_overrides"),
    ]:
        error = _merge("//s:fw", **kwargs).error
        asserts.true(env, "//s:fw: `%s` names index 'cuda', which is not declared (known: pypi, pytorch_cpu, pytorch_cu128)" % attribute in error, error)
    error = _merge("//s:fw", priority_indexes = ["pypi", "pypi"]).error
    asserts.true(env, "names an index twice" in error, error)
    error = _merge("//s:fw", package_indexes = {"Torch": "pypi", "torch": "pypi"}).error
    asserts.true(env, "names 'torch' twice" in error, error)
    error = named_indexes_testlib.merge("//s:fw", [], {"torch": "x"}, [], {}, {}).error
    asserts.true(env, "declare them with venvstacks.index(name, url) in MODULE.bazel" in error, error)
    return unittest.end(env)

conflicts_test = unittest.make(_conflicts_test)

def named_indexes_test_suite(name):
    """The named-index merge tests.

    Args:
      name: the test suite's name.
    """
    unittest.suite(name, inheritance_test, conflicts_test)
