"""The `stack_image` rule: an OCI image layout of a stack, on a base image, for users without an image rule set."""

load("//rules_venvstacks/private/common:providers.bzl", "VenvstacksImageLayerInfo")
load("//rules_venvstacks/private/common:tool.bzl", "TOOL_ATTRS", "run_tool")
load(":prefix.bzl", "check_image_platform")

def _base_layout(ctx):
    """The base layout's root: a directory artifact, or the directory of its `oci-layout` file. None without a base."""
    if not ctx.attr.base:
        return None, []
    files = ctx.files.base
    if len(files) == 1 and files[0].is_directory:
        return files[0].path, files
    markers = [f for f in files if f.basename == "oci-layout"]
    if len(markers) != 1:
        fail("%s: base %s is not an OCI image layout: %s" % (
            ctx.label,
            ctx.attr.base.label,
            "no `oci-layout` file among its files" if not markers else "several `oci-layout` files among its files",
        ))
    return markers[0].dirname, files

def _entrypoint(image_layer):
    layer = image_layer.layer
    home = "%s/%s" % (image_layer.prefix, layer.layer_name)
    if layer.kind == "runtime":
        return home + "/bin", [home + "/bin/python3"]
    if layer.launch_module:
        return home + "/bin", [home + "/bin/python", "-m", layer.launch_module]
    return home + "/bin", [home + "/bin/python"]

def _stack_image_impl(ctx):
    top = ctx.attr.image_layer[VenvstacksImageLayerInfo]
    check_image_platform(ctx.label, top.layer)
    base_root, base_files = _base_layout(ctx)
    output = ctx.actions.declare_directory(ctx.label.name)
    app_bin, entrypoint = _entrypoint(top)
    stack = top.lower + [top]
    args = ctx.actions.args()
    if base_root:
        args.add("--base", base_root)
    for image_layer in stack:
        args.add("--layer", image_layer.descriptor)
        args.add("--blob", image_layer.blob)
    args.add("--platform", top.layer.runtime.platform_triple)

    # `--entrypoint=-m`: the `=` form, so that an argument starting with `-` stays a value.
    args.add_all(ctx.attr.entrypoint or entrypoint, format_each = "--entrypoint=%s")
    args.add("--app-bin", app_bin)
    args.add_all(["%s=%s" % item for item in sorted(ctx.attr.env.items())], format_each = "--env=%s")
    args.add("--tag", ctx.attr.tag)
    args.add_all([output], expand_directories = False, before_each = "--output")
    run_tool(
        ctx,
        runtime = top.layer.runtime,
        subcommand = "image",
        arguments = args,
        inputs = base_files + [layer.descriptor for layer in stack] + [layer.blob for layer in stack],
        outputs = [output],
        mnemonic = "VenvstacksImage",
        progress_message = "Writing OCI image layout %{label}",
        phase = "image",
    )
    return [DefaultInfo(files = depset([output]))]

stack_image = rule(
    implementation = _stack_image_impl,
    doc = """An OCI image layout directory of a stack: the base image's layers, then one layer per stack layer.

Output: the directory `<name>` (`oci-layout`, `index.json`, `blobs/sha256/`), which
`skopeo copy oci:bazel-bin/PKG/<name>:latest ...`, `podman load`/`podman pull oci:...` and
`umoci unpack` take as it is. The image's layers are the base's, then the runtime's, the
frameworks' (each after those it sits on) and the application's image layers, by the same
blobs as `NAME.image_layer`, so two images on one framework share its layer by digest. The
config keeps the base's (user, working directory, labels), names the target platform
(`linux/amd64` or `linux/arm64`), puts the application's `bin` first on `PATH` and sets the
entry point to `<prefix>/<app>/bin/python -m <launch_module>` (the layer's `bin/python` for a
framework or runtime layer). No timestamp is written. Every blob of the base is checked against
its digest; a base that is not an OCI layout, or is for another architecture, fails naming it.
""",
    attrs = dict(TOOL_ATTRS, **{
        "base": attr.label(
            allow_files = True,
            doc = "The base image: an OCI image layout directory (a directory output, or the files of a checked-in layout, `oci-layout` among them). It must provide what the runtime needs of the system (glibc). None: an image of the stack alone.",
        ),
        "entrypoint": attr.string_list(
            doc = "Overrides the entry point (default: the application's `bin/python -m <launch_module>`).",
        ),
        "env": attr.string_dict(
            doc = "Environment variables of the image, over the base's and `PATH`.",
        ),
        "image_layer": attr.label(
            mandatory = True,
            providers = [VenvstacksImageLayerInfo],
            doc = "The top layer's image layer, e.g. `:app.image_layer`; the layers below it come along.",
        ),
        "tag": attr.string(
            default = "latest",
            doc = "The image's reference name in `index.json` (`oci:DIR:<tag>`).",
        ),
    }),
)
