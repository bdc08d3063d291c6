"""The `sdist_wheel` and `native_sdist_wheel` rules: a wheel built from a locked sdist, as generated in the wheels hub.

`sdist_wheel`: one target per pure-Python sdist (named by the package and the sdist's sha256),
reached from a lock's `locked_wheels` through an attribute in the execution configuration: its
action (`build-sdist`, tools/venvstacks_tool/build/sdist_build.py) has the same key for every
target platform, so a pure-Python sdist is built once and its wheel shared (and cached remotely)
by every layer and platform that installs it. Only this action gets pyproject-hooks (`sdist_zips`).

`native_sdist_wheel`: one target per (sdist with extension modules, platform), reached in the
target configuration (`locked_wheels`' `built_native_wheels`). It asks for the C/C++ toolchain
as an optional toolchain, so Bazel picks an execution platform that has a C compiler for the
target; with none (a foreign target: the autodetected `@local_config_cc` targets the host only)
analysis fails, naming the package, the lock and the platform. The same `build-sdist` action
gets the toolchain's C compiler and its files.
"""

load("@rules_cc//cc:action_names.bzl", "ACTION_NAMES")
load("@rules_cc//cc:find_cc_toolchain.bzl", "find_cc_toolchain", "use_cc_toolchain")
load("@rules_cc//cc/common:cc_common.bzl", "cc_common")
load("//rules_venvstacks/private/common:platforms.bzl", "platform_name")
load("//rules_venvstacks/private/common:providers.bzl", "VenvstacksRuntimeInfo")
load("//rules_venvstacks/private/common:tool.bzl", "TOOL_ATTRS", "run_tool", "tool_runtime")

def _build_sdist(ctx, compiler = None):
    """Registers the `build-sdist` action of `ctx`'s sdist; returns the providers.

    `compiler`: None (pure Python), or struct(path, files) of the target's C compiler (a native
    sdist), whose arguments come after the others: a pure sdist's action is unchanged.
    """
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
    if compiler:
        args.add("--platform-triple", ctx.attr.platform_triple)
        args.add("--cc", compiler.path)
    run_tool(
        ctx,
        runtime,
        "build-sdist",
        args,
        inputs = depset([ctx.file.sdist] + build_wheels, transitive = [compiler.files] if compiler else []),
        outputs = [wheel],
        mnemonic = "VenvstacksBuildSdist",
        progress_message = "Building %s from its sdist %%{label}" % ctx.attr.package,
        extra_zips = runtime.sdist_zips,
    )
    return [DefaultInfo(files = depset([wheel]))]

def _sdist_wheel_impl(ctx):
    return _build_sdist(ctx)

_SDIST_ATTRS = dict(TOOL_ATTRS, **{
    "build_wheels": attr.label_keyed_string_dict(allow_files = [".whl"], doc = "Build requirement wheel repository target -> sha256."),
    "lock": attr.string(mandatory = True, doc = "Label of the lock that pins the sdist (for messages)."),
    "package": attr.string(mandatory = True, doc = "'name version' (for messages)."),
    "runtime": attr.label(providers = [VenvstacksRuntimeInfo], doc = "A runtime hub of the lock's Python (`@NAME`): its execution platform's interpreter builds."),
    "sdist": attr.label(allow_single_file = [".tar.gz"], mandatory = True, doc = "The sdist's repository target."),
    "sdist_sha256": attr.string(mandatory = True, doc = "The sdist's sha256, as locked."),
    "wheel_name": attr.string(mandatory = True, doc = "The file name of the wheel the lock expects."),
})

sdist_wheel = rule(
    implementation = _sdist_wheel_impl,
    doc = "The wheel of one locked pure-Python sdist, built offline by `build-sdist` on the execution platform's runtime.",
    attrs = _SDIST_ATTRS,
)

def _no_toolchain_message(ctx):
    platform = platform_name(ctx.attr.platform_triple)
    name = ctx.attr.package.partition(" ")[0]
    return (
        "%s: cannot build %s for %s: lock %s builds it from its sdist, which has extension modules, and a" +
        " compiled sdist builds only where the target is the execution platform (or where a C toolchain for" +
        " the target is registered): no C toolchain targets %s here. Build %s's archives on a %s machine" +
        " (`bazel build --platforms=@rules_venvstacks//platforms:%s` there), or install wheels of '%s' on %s" +
        " (an index or find_links that has them, and '%s' out of build_from_sdist)"
    ) % (ctx.label, ctx.attr.package, platform, ctx.attr.lock, platform, platform, platform, platform, name, platform, name)

def _native_sdist_wheel_impl(ctx):
    cc_toolchain = find_cc_toolchain(ctx, mandatory = False)
    if cc_toolchain == None:
        fail(_no_toolchain_message(ctx))
    features = cc_common.configure_features(
        ctx = ctx,
        cc_toolchain = cc_toolchain,
        requested_features = ctx.features,
        unsupported_features = ctx.disabled_features,
    )
    path = cc_common.get_tool_for_action(feature_configuration = features, action_name = ACTION_NAMES.c_compile)
    return _build_sdist(ctx, struct(path = path, files = cc_toolchain.all_files))

native_sdist_wheel = rule(
    implementation = _native_sdist_wheel_impl,
    doc = "The wheel of one locked sdist with extension modules for one platform, built by `build-sdist` with the target's C toolchain; analysis fails where there is none.",
    attrs = dict(_SDIST_ATTRS, **{
        "platform_triple": attr.string(mandatory = True, doc = "The PBS triple of the platform the wheel is for (the target's)."),
    }),
    fragments = ["cpp"],
    toolchains = use_cc_toolchain(mandatory = False),
)
