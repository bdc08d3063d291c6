"""The uv binary the `.lock` targets run with the uv resolver: one repository per execution platform.

Each is declared by the `venvstacks` extension from the `uv` entry of tool_wheels.json and
fetched only when a `.lock` target is analyzed with --@rules_venvstacks//settings:resolver=uv,
and only the execution platform's (`//rules_venvstacks/private/lock:uv` selects it): the wheel,
by Bazel's downloader with its sha256, unpacked; `:uv` is the binary in its `.data/scripts`.
"""

load(":download.bzl", "download_verified")
load(":render.bzl", "render")

def _uv_repository_impl(rctx):
    what = "uv %s (%s)" % (rctx.attr.version, rctx.attr.platform)
    wheel = "wheel/uv.zip"  # a wheel is a zip; `extract` goes by the suffix
    download_verified(rctx, what, [rctx.attr.url], rctx.attr.sha256, wheel)
    rctx.extract(archive = wheel, output = "unpacked")
    rctx.delete(wheel)
    binary = "unpacked/uv-%s.data/scripts/uv%s" % (rctx.attr.version, ".exe" if "windows" in rctx.attr.platform else "")
    if not rctx.path(binary).exists:
        fail("%s: the wheel %s has no %s" % (what, rctx.attr.url, binary.removeprefix("unpacked/")))
    rctx.file("BUILD.bazel", render.call("filegroup", "uv", {"srcs": [binary], "visibility": ["//visibility:public"]}))

uv_repository = repository_rule(
    implementation = _uv_repository_impl,
    doc = "Downloads uv's wheel for one platform, verified by its sha256, and exposes the binary as `:uv`; created by the `venvstacks` extension.",
    attrs = {
        "platform": attr.string(mandatory = True, doc = "The PBS triple the binary runs on."),
        "sha256": attr.string(mandatory = True, doc = "The wheel's sha256 (tool_wheels.json)."),
        "url": attr.string(mandatory = True, doc = "The wheel's URL on PyPI (tool_wheels.json)."),
        "version": attr.string(mandatory = True, doc = "The uv release."),
    },
)
