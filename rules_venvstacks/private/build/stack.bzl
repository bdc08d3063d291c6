"""The `venvstacks_stack` rule behind `layer_stack`: the stack's combined metadata, and venvstacks' summary of it."""

load("//rules_venvstacks/private/common:providers.bzl", "VenvstacksAbsentLayerInfo", "VenvstacksLayerInfo", "VenvstacksLockInfo")
load("//rules_venvstacks/private/common:stack_layers.bzl", "present_layers", "stack_layers")
load("//rules_venvstacks/private/common:tool.bzl", "TOOL_ATTRS", "run_tool")
load("//rules_venvstacks/private/lock:lock_rules.bzl", "lock_only_transition")
load(":published_metadata.bzl", "VENVSTACKS_PLATFORM_NAMES")

# The file name venvstacks gives its stack summary (tools' build/published_metadata.py
# `SUMMARY_NAME`; keep in sync).
DEFAULT_PUBLISHED_SUMMARY = "venvstacks.json"

def _venvstacks_stack_impl(ctx):
    tops = present_layers(ctx.attr.stacked)
    if not tops:
        # Every layer is narrowed to other platforms (`platforms`): nothing of the stack exists here.
        return [DefaultInfo(files = depset())]
    layers = stack_layers(ctx.label, tops)
    output = ctx.actions.declare_file(ctx.label.name + ".json")
    platform_triple = tops[0].runtime.platform_triple
    summary = ctx.actions.declare_file("__venvstacks__/%s/%s" % (VENVSTACKS_PLATFORM_NAMES[platform_triple], ctx.attr.published_summary))
    args = ctx.actions.args()
    args.add("--output", output)
    args.add_all([layer.metadata for layer in sorted(layers, key = lambda layer: layer.layer_name)], before_each = "--layer-metadata")
    args.add("--published-summary", summary)

    # Stack order (each layer after those it needs), which venvstacks' summary keeps per category.
    args.add_all(["%s=%s" % (layer.kind, layer.published_metadata.path) for layer in layers], before_each = "--published-layer")
    run_tool(
        ctx,
        runtime = tops[0].runtime,
        subcommand = "stack-metadata",
        arguments = args,
        inputs = [layer.metadata for layer in layers] + [layer.published_metadata for layer in layers],
        outputs = [output, summary],
        mnemonic = "VenvstacksStackMetadata",
        progress_message = "Writing stack metadata %{label}",
    )
    archives = [layer.archive for layer in layers]
    return [DefaultInfo(files = depset([output, summary] + archives + [layer.published_metadata for layer in layers]))]

def _check_summary_name(value):
    """Refuses a summary name that is not a plain `.json` file name."""
    if not value.endswith(".json") or "/" in value or "\\" in value or value.startswith("."):
        fail("`published_summary` must be a plain file name ending in .json, got '%s'" % value)

venvstacks_stack = rule(
    implementation = _venvstacks_stack_impl,
    doc = """A set of stacks: builds every layer below the given layers, and writes `<name>.json`, all their metadata in one file keyed by layer name.

Also writes venvstacks' stack summary, `__venvstacks__/<platform>/venvstacks.json` in the
target's package (`published_summary` names it otherwise), beside the layers' own published
metadata when they are in the same package (docs/migrating-from-venvstacks.md).

A layer narrowed by `platforms` to other platforms than the target's is left out, with the
layers only it brings (docs/layers.md, "Narrower platforms"); when every layer is, the stack
builds nothing.""",
    attrs = dict(TOOL_ATTRS, **{
        "layers": attr.label_list(
            mandatory = True,
            allow_empty = False,
            providers = [VenvstacksLockInfo],
            cfg = lock_only_transition,
            doc = "Top layers as the user wrote them (a typo is named as written), analysed in the lock-only configuration, where they reach no wheel; what the stack builds is `stacked`.",
        ),
        "published_summary": attr.string(
            default = DEFAULT_PUBLISHED_SUMMARY,
            doc = "File name of venvstacks' stack summary in `__venvstacks__/<platform>/`; two stacks in one package need two names.",
        ),
        "stacked": attr.label_list(
            mandatory = True,
            providers = [[VenvstacksLayerInfo], [VenvstacksAbsentLayerInfo]],
            doc = "Each top layer's `NAME.in_stack`: the layer on the platforms it is built for, left out (an `absent_layer`) on the others; the lower layers come along.",
        ),
    }),
)

def check_published_summary(name, published_summary):
    """Fails at loading when an earlier `layer_stack` of the package writes the same summary file.

    Args:
      name: the new stack's target name.
      published_summary: its summary's file name.
    """
    _check_summary_name(published_summary)
    for other in native.existing_rules().values():
        if other["kind"] == "venvstacks_stack" and other.get("published_summary", DEFAULT_PUBLISHED_SUMMARY) == published_summary:
            fail("layer_stack '%s': layer_stack '%s' of this package already writes __venvstacks__/<platform>/%s; give one of them another `published_summary` (for example \"venvstacks-%s.json\")" % (
                name,
                other["name"],
                published_summary,
                name,
            ))
