"""The `locked_wheels` rule: the wheels of one lock, as generated in the hub repository."""

load("//rules_venvstacks/private/common:providers.bzl", "VenvstacksWheelsInfo")

def _locked_wheels_impl(ctx):
    wheels = []
    for target, sha256 in ctx.attr.wheels.items():
        for file in target.files.to_list():
            wheels.append(struct(file = file, sha256 = sha256))
    built = []
    for target, sdist_sha256 in ctx.attr.built_wheels.items() + ctx.attr.built_native_wheels.items():
        for file in target.files.to_list():
            built.append(struct(file = file, sdist_sha256 = sdist_sha256))
    return [
        DefaultInfo(files = depset([wheel.file for wheel in wheels] + [wheel.file for wheel in built])),
        VenvstacksWheelsInfo(lock = ctx.attr.lock, lock_version = ctx.attr.lock_version, missing = ctx.attr.missing, platform_triples = ctx.attr.platform_triples, wheels = wheels, built = built),
    ]

locked_wheels = rule(
    implementation = _locked_wheels_impl,
    doc = "The wheel files one lock pins, each with its sha256.",
    attrs = {
        "lock": attr.string(mandatory = True, doc = "Label of the lock file."),
        "lock_version": attr.int(doc = "The lock's `lock-version` (a versioned layer's lock version), 0 when it has none."),
        "missing": attr.bool(doc = "The lock file does not exist yet."),
        "platform_triples": attr.string_list(doc = "The PBS triples the lock covers."),
        "wheels": attr.label_keyed_string_dict(allow_files = [".whl"], doc = "Wheel repository target -> sha256, of the target platform (a select)."),
        "built_wheels": attr.label_keyed_string_dict(
            allow_files = [".whl"],
            # The execution configuration is the same for every target platform: one build of a
            # pure-Python sdist serves them all (one action key, one remote cache entry).
            cfg = "exec",
            doc = "`sdist_wheel` target -> the sha256 of its sdist, of the target platform (a select): wheels built from sdists.",
        ),
        "built_native_wheels": attr.label_keyed_string_dict(
            allow_files = [".whl"],
            # The target configuration: a wheel with extension modules is the target's, built
            # with a C toolchain for it, where the target is the execution platform.
            doc = "`native_sdist_wheel` target -> the sha256 of its sdist, of the target platform (a select): wheels built from sdists with extension modules.",
        ),
    },
)
