"""The `layer_image_layer` rule: one stack layer as one OCI image layer under a fixed prefix."""

load("//rules_venvstacks/private/common:providers.bzl", "VenvstacksImageLayerInfo", "VenvstacksLayerInfo")
load("//rules_venvstacks/private/common:tool.bzl", "TOOL_ATTRS", "run_tool")
load(":prefix.bzl", "DEFAULT_IMAGE_COMPRESSION", "DEFAULT_IMAGE_PREFIX", "IMAGE_COMPRESSIONS", "check_image_platform", "check_image_prefix")

_BLOB_EXTENSIONS = {"gzip": "tar.gz", "zstd": "tar.zst"}

def _stack_of(ctx, layer):
    """The lower image layers in `layer`'s deployment order, checked against `lower`; fails naming what is missing."""
    by_label = {}
    for lower in ctx.attr.lower:
        info = lower[VenvstacksImageLayerInfo]
        if info.prefix != ctx.attr.prefix:
            fail("%s: prefix '%s' differs from the prefix '%s' of %s: a stack's image layers share one prefix" % (
                ctx.label,
                ctx.attr.prefix,
                info.prefix,
                info.label,
            ))
        for member in info.lower + [info]:
            by_label[member.layer.label] = member
    stack = []
    for lower_layer in layer.lower_layers:
        if lower_layer.label not in by_label:
            fail("%s: no image layer of %s (layer '%s') among `lower`: give the image layer of every layer %s sits on" % (
                ctx.label,
                lower_layer.label,
                lower_layer.layer_name,
                layer.label,
            ))
        stack.append(by_label[lower_layer.label])
    return stack

def _layer_image_layer_impl(ctx):
    layer = ctx.attr.layer[VenvstacksLayerInfo]
    check_image_prefix(ctx.label, ctx.attr.prefix, layer.layer_name)
    check_image_platform(ctx.label, layer)
    stack = _stack_of(ctx, layer)
    blob = ctx.actions.declare_file("%s.%s" % (ctx.label.name, _BLOB_EXTENSIONS[ctx.attr.compression]))
    descriptor = ctx.actions.declare_file(ctx.label.name + ".json")
    args = ctx.actions.args()
    args.add("--archive", layer.archive)
    args.add("--layer-name", layer.layer_name)
    args.add("--prefix", ctx.attr.prefix)
    args.add("--compression", ctx.attr.compression)
    args.add("--platform", layer.runtime.platform_triple)
    args.add("--output", blob)
    args.add("--descriptor", descriptor)
    run_tool(
        ctx,
        runtime = layer.runtime,
        subcommand = "image-layer",
        arguments = args,
        inputs = [layer.archive],
        outputs = [blob, descriptor],
        mnemonic = "VenvstacksImageLayer",
        progress_message = "Writing image layer %{label} (" + ctx.attr.compression + ")",
        phase = "image",
    )
    return [
        # The blob alone: what `oci_image(tars = [...])` takes.
        DefaultInfo(files = depset([blob])),
        OutputGroupInfo(descriptor = depset([descriptor])),
        VenvstacksImageLayerInfo(
            label = ctx.label,
            layer = layer,
            prefix = ctx.attr.prefix,
            blob = blob,
            descriptor = descriptor,
            lower = stack,
        ),
    ]

layer_image_layer = rule(
    implementation = _layer_image_layer_impl,
    doc = """One layer of a stack as one OCI image layer: the layer deployed and post-installed under `prefix`.

Outputs `<name>.tar.gz` (or `.tar.zst`): a tar whose members are `<prefix>/<layer_name>/...`,
exactly what `NAME.deploy -- <prefix>` leaves in `<prefix>/<layer_name>` (post-install done at
build time, so a container writes nothing at start), with the archive's deterministic owners,
modes, mtimes and order; and `<name>.json` (output group `descriptor`): the blob's digest, size,
media type and diff_id. It depends on its layer's archive and the prefix only, so an
application's change leaves every framework's image layer, and its digest, as it was.
`framework_layer`, `application_layer` and `runtime_layer` make one as `NAME.image_layer`.
""",
    attrs = dict(TOOL_ATTRS, **{
        "compression": attr.string(
            default = DEFAULT_IMAGE_COMPRESSION,
            values = IMAGE_COMPRESSIONS,
            doc = "'gzip' (default: every image tool pulls it) or 'zstd' (smaller and faster to unpack; Docker 23+, containerd 1.5+, podman 3+).",
        ),
        "layer": attr.label(
            mandatory = True,
            providers = [VenvstacksLayerInfo],
            doc = "The runtime, framework or application layer.",
        ),
        "lower": attr.label_list(
            providers = [VenvstacksImageLayerInfo],
            doc = "The image layers of the layers it sits on directly (its runtime's and frameworks'), with the same prefix.",
        ),
        "prefix": attr.string(
            default = DEFAULT_IMAGE_PREFIX,
            doc = "Absolute, normalised directory the stack's layers are deployed to in the image: each layer goes to `<prefix>/<layer_name>`.",
        ),
    }),
)
