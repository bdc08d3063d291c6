"""`absent_layer`: what a layer's `NAME.in_stack` is on a platform outside the layer's `platforms`.

A layer that narrows its `platforms` (layer_macros.bzl) is incompatible with the other target
platforms, and a stack that depended on it would be incompatible too. So `layer_stack` depends on
each layer's `NAME.in_stack` alias instead: the layer on its platforms, this target elsewhere,
whose `VenvstacksAbsentLayerInfo` the stack rules skip (common/stack_layers.bzl `present_layers`).
"""

load("//rules_venvstacks/private/common:providers.bzl", "VenvstacksAbsentLayerInfo")

def _absent_layer_impl(_ctx):
    return [VenvstacksAbsentLayerInfo()]

absent_layer = rule(
    implementation = _absent_layer_impl,
    doc = "A layer left out of a stack on this target platform: `NAME.in_stack` outside the layer's `platforms`.",
)
