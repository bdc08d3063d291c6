"""Public API of rules_venvstacks: layered Python environments built as archives.

`runtime_layer` packs a CPython runtime; `framework_layer` and `application_layer` are macros
that create a layer and its `.lock`, `.lock_test`, `.deploy` and `.test` targets; `layer_stack`
gathers layers and their metadata, and locks them all in one command; `stack_test` runs a team's own
tests inside a layer's deployed stack. Every layer is also an OCI image layer (`NAME.image_layer`,
`layer_image_layer`), and `stack_image` writes an OCI image layout of a stack (docs/images.md).
The providers let your own rules read layers.
"""

load("//rules_venvstacks/private:layer_macros.bzl", _application_layer = "application_layer", _framework_layer = "framework_layer", _layer_stack = "layer_stack", _runtime_layer = "runtime_layer")
load("//rules_venvstacks/private/build:runtime_layer.bzl", _runtime_layer_rule = "runtime_layer")
load("//rules_venvstacks/private/common:providers.bzl", _VenvstacksImageLayerInfo = "VenvstacksImageLayerInfo", _VenvstacksLayerInfo = "VenvstacksLayerInfo", _VenvstacksRuntimeInfo = "VenvstacksRuntimeInfo")
load("//rules_venvstacks/private/deploy:stack_test.bzl", _stack_test = "stack_test")
load("//rules_venvstacks/private/image:image_layer.bzl", _layer_image_layer = "layer_image_layer")
load("//rules_venvstacks/private/image:stack_image.bzl", _stack_image = "stack_image")

application_layer = _application_layer
framework_layer = _framework_layer
layer_stack = _layer_stack
layer_image_layer = _layer_image_layer
runtime_layer = _runtime_layer
runtime_layer_rule = _runtime_layer_rule
stack_image = _stack_image
stack_test = _stack_test
VenvstacksImageLayerInfo = _VenvstacksImageLayerInfo
VenvstacksLayerInfo = _VenvstacksLayerInfo
VenvstacksRuntimeInfo = _VenvstacksRuntimeInfo
