"""Public API of rules_venvstacks: the rules and providers for layered Python environments."""

load("//rules_venvstacks/private:providers.bzl", _VenvstacksLayerInfo = "VenvstacksLayerInfo", _VenvstacksRuntimeInfo = "VenvstacksRuntimeInfo")
load("//rules_venvstacks/private:runtime_layer.bzl", _runtime_layer = "runtime_layer")

runtime_layer = _runtime_layer
VenvstacksLayerInfo = _VenvstacksLayerInfo
VenvstacksRuntimeInfo = _VenvstacksRuntimeInfo
