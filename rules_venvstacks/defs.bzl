"""Public API of rules_venvstacks: layered Python environments built as archives.

`runtime_layer` packs a CPython runtime; `framework_layer` and `application_layer` are macros
that create a layer and its `.lock`, `.lock_test`, `.deploy` and `.test` targets; `layer_stack`
gathers layers and their metadata, and locks them all in one command. The providers let your own rules read layers.
"""

load("//rules_venvstacks/private:layer_macros.bzl", _application_layer = "application_layer", _framework_layer = "framework_layer", _layer_stack = "layer_stack")
load("//rules_venvstacks/private/build:runtime_layer.bzl", _runtime_layer = "runtime_layer")
load("//rules_venvstacks/private/common:providers.bzl", _VenvstacksLayerInfo = "VenvstacksLayerInfo", _VenvstacksRuntimeInfo = "VenvstacksRuntimeInfo")

application_layer = _application_layer
framework_layer = _framework_layer
layer_stack = _layer_stack
runtime_layer = _runtime_layer
VenvstacksLayerInfo = _VenvstacksLayerInfo
VenvstacksRuntimeInfo = _VenvstacksRuntimeInfo
