"""The repository of the named indexes (`venvstacks.index` tags): `@venvstacks_indexes//:indexes`."""

load(":render.bzl", "render")

def _indexes_repository_impl(rctx):
    rctx.file("BUILD.bazel", render.build_file([
        render.load_line(Label("//rules_venvstacks/private/lock:named_indexes.bzl"), ["venvstacks_named_indexes"]),
        render.call("venvstacks_named_indexes", "indexes", {
            "urls": json.decode(rctx.attr.urls),
            "visibility": ["//visibility:public"],
        }),
    ]))

indexes_repository = repository_rule(
    implementation = _indexes_repository_impl,
    doc = "One `venvstacks_named_indexes` target, `indexes`, that every layer's `.lock_inputs` reads; created by the `venvstacks` extension.",
    attrs = {"urls": attr.string(mandatory = True, doc = "JSON: index name -> URL.")},
)
