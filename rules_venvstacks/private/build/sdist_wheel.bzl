"""The `sdist_wheel` rule: a wheel built from a locked sdist, as generated in the wheels hub.

One target per sdist (named by the package and the sdist's sha256), reached from a lock's
`locked_wheels` through an attribute in the execution configuration: its action (`build-sdist`,
tools/venvstacks_tool/build/sdist_build.py) has the same key for every target platform, so a
pure-Python sdist is built once and its wheel shared (and cached remotely) by every layer and
platform that installs it. Only this action gets pyproject-hooks (`sdist_zips`).
"""

load("//rules_venvstacks/private/common:providers.bzl", "VenvstacksRuntimeInfo")
load("//rules_venvstacks/private/common:tool.bzl", "TOOL_ATTRS", "run_tool", "tool_runtime")

def _sdist_wheel_impl(ctx):
    if ctx.attr.runtime == None:
        fail("%s: %s is built from its sdist, but no `venvstacks.runtime` has the Python of %s to build it with" % (
            ctx.label,
            ctx.attr.package,
            ctx.attr.lock,
        ))
    runtime = tool_runtime(ctx.attr.runtime[VenvstacksRuntimeInfo])
    if runtime.unavailable or runtime.interpreter == None:
        fail("%s: cannot build %s from its sdist: %s" % (ctx.label, ctx.attr.package, runtime.unavailable or "the runtime has no interpreter for the execution platform"))
    wheel = ctx.actions.declare_file("%s/%s" % (ctx.label.name, ctx.attr.wheel_name))
    args = ctx.actions.args()
    args.add("--sdist", ctx.file.sdist)
    args.add("--sdist-sha256", ctx.attr.sdist_sha256)
    build_wheels = []
    for target, sha256 in sorted(ctx.attr.build_wheels.items(), key = lambda item: item[1]):
        for file in target.files.to_list():
            args.add("--build-wheel", "%s=%s" % (file.path, sha256))
            build_wheels.append(file)
    args.add("--wheel-name", ctx.attr.wheel_name)
    args.add("--package", ctx.attr.package)

    # In the `--lock=` form: a value starting with `@` would be read as a params file.
    args.add(ctx.attr.lock, format = "--lock=%s")
    args.add("--output", wheel)
    run_tool(
        ctx,
        runtime,
        "build-sdist",
        args,
        inputs = [ctx.file.sdist] + build_wheels,
        outputs = [wheel],
        mnemonic = "VenvstacksBuildSdist",
        progress_message = "Building %s from its sdist %%{label}" % ctx.attr.package,
        extra_zips = runtime.sdist_zips,
    )
    return [DefaultInfo(files = depset([wheel]))]

sdist_wheel = rule(
    implementation = _sdist_wheel_impl,
    doc = "The wheel of one locked sdist, built offline by `build-sdist` on the execution platform's runtime.",
    attrs = dict(TOOL_ATTRS, **{
        "build_wheels": attr.label_keyed_string_dict(allow_files = [".whl"], doc = "Build requirement wheel repository target -> sha256."),
        "lock": attr.string(mandatory = True, doc = "Label of the lock that pins the sdist (for messages)."),
        "package": attr.string(mandatory = True, doc = "'name version' (for messages)."),
        "runtime": attr.label(providers = [VenvstacksRuntimeInfo], doc = "A runtime hub of the lock's Python (`@NAME`): its execution platform's interpreter builds."),
        "sdist": attr.label(allow_single_file = [".tar.gz"], mandatory = True, doc = "The sdist's repository target."),
        "sdist_sha256": attr.string(mandatory = True, doc = "The sdist's sha256, as locked."),
        "wheel_name": attr.string(mandatory = True, doc = "The file name of the wheel the lock expects."),
    }),
)
