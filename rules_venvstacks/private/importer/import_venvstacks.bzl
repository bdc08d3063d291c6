"""`@rules_venvstacks//tools:import_venvstacks`: the venvstacks.toml importer as a `bazel run` target.

The importer (tools/venvstacks_maint/import_venvstacks.py) runs as the `.lock` launchers run the
tool: on a fetched PBS interpreter started with `-I`, never the host's Python. The interpreter is
the host runtime the `venvstacks` extension picks (fetch/host_runtime.bzl): the execution
platform's build of the root module's first `venvstacks.runtime`.
"""

load("//rules_venvstacks/private/common:providers.bzl", "VenvstacksRuntimeInfo")
load("//rules_venvstacks/private/common:tool.bzl", "TOOL_ATTRS", "tool_launcher")

def _import_venvstacks_impl(ctx):
    if VenvstacksRuntimeInfo not in ctx.attr.runtime:
        fail("%s: the importer runs on a runtime of the `venvstacks` extension, and no module declares one; add `venvstacks.runtime(name = \"python\", python_version = \"3.12\")` to MODULE.bazel (docs/runtimes.md), or run it with a Python of your own: `PYTHONPATH=RULES/tools python3 -m venvstacks_maint import-venvstacks` (docs/migrating-from-venvstacks.md)" % ctx.label)

    # "lock": the launcher puts the lock phase's wheels on sys.path (tomli, which the importer
    # needs on Python 3.10) and takes `_tool_lock_sources`, here the importer's modules.
    return [tool_launcher(ctx, ctx.attr.runtime[VenvstacksRuntimeInfo], "lock", "import-venvstacks", [], [])]

import_venvstacks = rule(
    implementation = _import_venvstacks_impl,
    doc = """`bazel run` target: `import-venvstacks` in the user's workspace.

`bazel run @rules_venvstacks//tools:import_venvstacks -- path/to/venvstacks.toml [--package PKG]
[--output-dir DIR] [--strict] [--force]`: relative paths are relative to the directory the command
is typed in; the package defaults to the output folder's (tools/venvstacks_maint/bazel_run.py).""",
    executable = True,
    # TOOL_ATTRS, with the entry script and the "lock" sources replaced by the importer's.
    attrs = dict(TOOL_ATTRS, **{
        "runtime": attr.label(
            default = Label("@venvstacks_host_runtime//:runtime"),
            doc = "The runtime whose execution-platform interpreter runs the importer (a runtime hub, or an empty target when none is declared).",
        ),
        "_tool_entry": attr.label(
            default = Label("//tools:bin/import_venvstacks.py"),
            allow_single_file = True,
            doc = "The importer's entry script.",
        ),
        "_tool_lock_sources": attr.label(
            default = Label("//tools:import_venvstacks_sources"),
            doc = "The importer's modules, the ground floor and the lock file reader they import, and the PBS table.",
        ),
    }),
)
