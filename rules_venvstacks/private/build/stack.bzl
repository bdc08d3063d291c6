"""The `venvstacks_stack` rule behind `layer_stack`: one combined metadata file for a set of layers."""

load("//rules_venvstacks/private/common:providers.bzl", "VenvstacksLayerInfo")
load("//rules_venvstacks/private/common:tool.bzl", "TOOL_ATTRS", "run_tool")

def _venvstacks_stack_impl(ctx):
    layers = {}
    for target in ctx.attr.layers:
        top = target[VenvstacksLayerInfo]
        for layer in top.lower_layers + [top]:
            other = layers.get(layer.layer_name)
            if other != None and other.label != layer.label:
                fail("%s: two layers are named '%s': %s and %s" % (ctx.label, layer.layer_name, other.label, layer.label))
            layers[layer.layer_name] = layer
    output = ctx.actions.declare_file(ctx.label.name + ".json")
    args = ctx.actions.args()
    args.add("--output", output)
    args.add_all([layers[name].metadata for name in sorted(layers)], before_each = "--layer-metadata")
    run_tool(
        ctx,
        runtime = ctx.attr.layers[0][VenvstacksLayerInfo].runtime,
        subcommand = "stack-metadata",
        arguments = args,
        inputs = [layer.metadata for layer in layers.values()],
        outputs = [output],
        mnemonic = "VenvstacksStackMetadata",
        progress_message = "Writing stack metadata %{label}",
    )
    archives = [layer.archive for layer in layers.values()]
    return [DefaultInfo(files = depset([output] + archives))]

venvstacks_stack = rule(
    implementation = _venvstacks_stack_impl,
    doc = "A set of stacks: builds every layer below the given layers, and writes `<name>.json`, all their metadata in one file keyed by layer name.",
    attrs = dict(TOOL_ATTRS, **{
        "layers": attr.label_list(mandatory = True, allow_empty = False, providers = [VenvstacksLayerInfo], doc = "Top layers (their lower layers come along)."),
    }),
)
