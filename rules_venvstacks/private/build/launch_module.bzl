"""`NAME.launch_module`: the files of a versioned application's launch module, for its lock.

venvstacks bumps a versioned application's lock version when its launch module changes (its
`app_launch_module_hash`), not only when its lock changes. The lock rules read this target's
`VenvstacksLaunchModuleInfo` and pass the files to `lock` and `check-lock`, which hash them as
the published metadata does (tools/venvstacks_tool/core/launch_module.py). The files are the
ones the layer build places (`srcs`, and `deps` through the same first-party placement), found
without any wheel, so locking still needs none.
"""

load("@rules_python//python:defs.bzl", "PyInfo")
load("//rules_venvstacks/private/common:providers.bzl", "VenvstacksLaunchModuleInfo")
load(":first_party.bzl", "first_party_aspect", "first_party_files", "srcs_destination")

def _launch_module_files_impl(ctx):
    srcs_files = {srcs_destination(ctx, file): file for file in ctx.files.srcs if file.extension != "whl"}

    # Files a framework below holds are not looked at: a launch module lives in its application.
    first_party = first_party_files(ctx, ctx.attr.deps, [], srcs_files)
    top = ctx.attr.launch_module.partition(".")[0]
    files = {}
    for dest, file in srcs_files.items() + first_party.files.items():
        if dest == top + ".py" or dest.startswith(top + "/"):
            files[dest] = file
    return [VenvstacksLaunchModuleInfo(module = ctx.attr.launch_module, files = files)]

venvstacks_launch_module_files = rule(
    implementation = _launch_module_files_impl,
    doc = "The files of an application layer's launch module among its `srcs` and `deps` (generated as `NAME.launch_module` for a versioned application).",
    attrs = {
        "deps": attr.label_list(providers = [PyInfo], aspects = [first_party_aspect], doc = "The application layer's `deps`."),
        "launch_module": attr.string(mandatory = True, doc = "The application layer's `launch_module`."),
        "srcs": attr.label_list(allow_files = True, doc = "The application layer's `srcs`."),
    },
)
