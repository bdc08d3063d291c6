"""Public API of rules_venvstacks: layered Python environments built as archives.

`runtime_layer` packs a CPython runtime; `framework_layer` and `application_layer` are macros
that create a layer and its `.lock`, `.lock_test`, `.deploy` and `.test` targets; `layer_stack`
gathers layers and their metadata, and locks them all in one command; `stack_test` runs a team's own
tests inside a layer's deployed stack. The providers let your own rules read layers.
"""

load("//rules_venvstacks/private:layer_macros.bzl", _application_layer = "application_layer", _framework_layer = "framework_layer", _layer_stack = "layer_stack")
load("//rules_venvstacks/private/build:runtime_layer.bzl", _runtime_layer = "runtime_layer")
load("//rules_venvstacks/private/common:providers.bzl", _VenvstacksLayerInfo = "VenvstacksLayerInfo", _VenvstacksRuntimeInfo = "VenvstacksRuntimeInfo")
load("//rules_venvstacks/private/deploy:stack_test.bzl", _stack_test = "stack_test")

application_layer = _application_layer
framework_layer = _framework_layer
layer_stack = _layer_stack
runtime_layer = _runtime_layer
stack_test = _stack_test
VenvstacksLayerInfo = _VenvstacksLayerInfo
VenvstacksRuntimeInfo = _VenvstacksRuntimeInfo
