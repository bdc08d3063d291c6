"""The build phase: what Bazel's sandboxed, network-free layer actions run.

`pack-runtime` (runtime), `build-layer` (layer), `layer-metadata` and `stack-metadata`
(metadata). A build action's inputs are this package and `core` (a glob in tools/BUILD.bazel), so
modules here import only from `core`, this package and the wheels of the tool site.
"""
