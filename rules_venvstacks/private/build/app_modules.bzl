"""`NAME.app_modules`: a versioned application's own module files, for its lock.

venvstacks bumps a versioned application's lock version when its launch module or one of its
support modules changes (`app_launch_module_hash`, `app_support_modules`), not only when its
lock changes. The lock rules read this target's `VenvstacksAppModulesInfo` and pass the files to
`lock` and `check-lock`, which hash them as the published metadata does
(tools/venvstacks_tool/core/launch_module.py): the launch module's top-level module or package,
and every other top-level module and package (the support modules). The files are the ones the
layer build places (`srcs`, and `deps` through the same first-party placement), found without
any wheel, so locking still needs none.
"""

load("@rules_python//python:defs.bzl", "PyInfo")
load("//rules_venvstacks/private/common:providers.bzl", "VenvstacksAppModulesInfo")
load(":first_party.bzl", "first_party_aspect", "first_party_files", "srcs_destination")

def _app_modules_impl(ctx):
    srcs_files = {srcs_destination(ctx, file): file for file in ctx.files.srcs if file.extension != "whl"}

    # The frameworks below are not looked at (that would need their wheels): a first-party
    # library that a framework below also holds counts here, though the build ships it there.
    first_party = first_party_files(ctx, ctx.attr.deps, [], srcs_files)
    files = dict(srcs_files)
    files.update(first_party.files)
    return [VenvstacksAppModulesInfo(module = ctx.attr.launch_module, files = files)]

venvstacks_app_modules = rule(
    implementation = _app_modules_impl,
    doc = "An application layer's own module files, its `srcs` and `deps` (generated as `NAME.app_modules` for a versioned application).",
    attrs = {
        "deps": attr.label_list(providers = [PyInfo], aspects = [first_party_aspect], doc = "The application layer's `deps`."),
        "launch_module": attr.string(mandatory = True, doc = "The application layer's `launch_module`."),
        "srcs": attr.label_list(allow_files = True, doc = "The application layer's `srcs`."),
    },
)
