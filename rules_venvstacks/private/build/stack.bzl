"""The `venvstacks_stack` rule behind `layer_stack`: one combined metadata file for a set of layers."""

load("//rules_venvstacks/private/common:providers.bzl", "VenvstacksLayerInfo")
load("//rules_venvstacks/private/common:stack_layers.bzl", "stack_layers")
load("//rules_venvstacks/private/common:tool.bzl", "TOOL_ATTRS", "run_tool")

def _venvstacks_stack_impl(ctx):
    layers = stack_layers(ctx.label, [target[VenvstacksLayerInfo] for target in ctx.attr.layers])
    output = ctx.actions.declare_file(ctx.label.name + ".json")
    args = ctx.actions.args()
    args.add("--output", output)
    args.add_all([layer.metadata for layer in sorted(layers, key = lambda layer: layer.layer_name)], before_each = "--layer-metadata")
    run_tool(
        ctx,
        runtime = ctx.attr.layers[0][VenvstacksLayerInfo].runtime,
        subcommand = "stack-metadata",
        arguments = args,
        inputs = [layer.metadata for layer in layers],
        outputs = [output],
        mnemonic = "VenvstacksStackMetadata",
        progress_message = "Writing stack metadata %{label}",
    )
    archives = [layer.archive for layer in layers]
    return [DefaultInfo(files = depset([output] + archives))]

venvstacks_stack = rule(
    implementation = _venvstacks_stack_impl,
    doc = "A set of stacks: builds every layer below the given layers, and writes `<name>.json`, all their metadata in one file keyed by layer name.",
    attrs = dict(TOOL_ATTRS, **{
        "layers": attr.label_list(mandatory = True, allow_empty = False, providers = [VenvstacksLayerInfo], doc = "Top layers (their lower layers come along)."),
    }),
)
