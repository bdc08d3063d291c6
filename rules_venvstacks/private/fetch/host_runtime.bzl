"""`@venvstacks_host_runtime`: the runtime whose interpreter runs rules_venvstacks' own `bazel run` tools.

The importer (`@rules_venvstacks//tools:import_venvstacks`) belongs to no layer, so no layer names
its runtime. It runs on the hub of the first `venvstacks.runtime` that can run the tool on this
machine, the root module's first (`pick_host_runtime`); its hub gives the execution platform's
interpreter, as for every `.lock` launcher.
"""

load(":render.bzl", "render")

def pick_host_runtime(candidates):
    """The name of the runtime to run tools on, or "" when there is none.

    Args:
      candidates: list of (is_root, runtime name) in declaration order, for the runtimes that have
        a build able to run the tool on the host.

    Returns:
      The root module's first such runtime, else the first of any module's, else "".
    """
    for is_root, name in candidates:
        if is_root:
            return name
    return candidates[0][1] if candidates else ""

def _host_runtime_repository_impl(rctx):
    if rctx.attr.runtime:
        target = render.call("alias", "runtime", {
            "actual": "@%s//:runtime" % rctx.attr.runtime,
            "visibility": ["//visibility:public"],
        }, comment = "The hub of runtime '%s': its execution platform's interpreter runs the tools." % rctx.attr.runtime)
    else:
        target = render.call("filegroup", "runtime", {
            "srcs": [],
            "visibility": ["//visibility:public"],
        }, comment = "No module declares a `venvstacks.runtime` that runs on this machine: the tools say so.")
    rctx.file("BUILD.bazel", render.build_file([target]))

host_runtime_repository = repository_rule(
    implementation = _host_runtime_repository_impl,
    doc = "`@venvstacks_host_runtime//:runtime`: the hub of the runtime that runs rules_venvstacks' `bazel run` tools; created by the `venvstacks` extension.",
    attrs = {
        "runtime": attr.string(doc = "The runtime's name (its hub repository), or '' when none can run the tool here."),
    },
)
