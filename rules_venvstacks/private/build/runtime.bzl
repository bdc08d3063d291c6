"""The `venvstacks_runtime` rule: wraps a fetched runtime repository in a provider.

Instantiated only in the BUILD files that the runtime repository rule generates.
"""

load("//rules_venvstacks/private/common:providers.bzl", "VenvstacksRuntimeInfo")

def _venvstacks_runtime_impl(ctx):
    return [
        DefaultInfo(files = depset([ctx.file.source_archive])),
        VenvstacksRuntimeInfo(
            name = ctx.attr.runtime_name,
            python_version = ctx.attr.python_version,
            platform = ctx.attr.platform,
            pbs_release = ctx.attr.pbs_release,
            source_archive = ctx.file.source_archive,
            source_urls = ctx.attr.source_urls,
            source_sha256 = ctx.attr.source_sha256,
            strip_prefix = ctx.attr.strip_prefix,
            interpreter = ctx.file.interpreter,
            files = depset(ctx.files.files),
            tool_site = depset(ctx.files.tool_site),
            lock_zips = ctx.files.lock_zips,
            tool_site_marker = ctx.file.tool_site_marker,
            tool_zips = ctx.files.tool_zips,
            source_date_epoch = ctx.attr.source_date_epoch,
        ),
    ]

venvstacks_runtime = rule(
    implementation = _venvstacks_runtime_impl,
    doc = "A python-build-standalone runtime fetched by the `venvstacks` module extension.",
    attrs = {
        "files": attr.label_list(allow_files = True, doc = "The unpacked runtime's files."),
        "interpreter": attr.label(allow_single_file = True, mandatory = True, doc = "The unpacked interpreter."),
        "pbs_release": attr.string(doc = "PBS release tag, '' for a custom build."),
        "platform": attr.string(mandatory = True, doc = "PBS target triple."),
        "python_version": attr.string(mandatory = True, doc = "Exact CPython version."),
        "runtime_name": attr.string(mandatory = True, doc = "Name given in MODULE.bazel."),
        "source_archive": attr.label(allow_single_file = True, mandatory = True, doc = "The downloaded archive."),
        "source_date_epoch": attr.int(mandatory = True, doc = "mtime for archive members."),
        "source_sha256": attr.string(mandatory = True, doc = "sha256 of the downloaded archive."),
        "source_urls": attr.string_list(doc = "Where the archive came from."),
        "strip_prefix": attr.string(mandatory = True, doc = "Installation directory inside the archive."),
        "lock_zips": attr.label_list(allow_files = [".whl"], doc = "Pure-Python wheels only locking needs (pip-tools)."),
        "tool_site": attr.label_list(allow_files = True, doc = "The tool's unpacked wheels for build actions."),
        "tool_zips": attr.label_list(allow_files = [".whl"], doc = "Pure-Python tool wheels imported from the zip."),
        "tool_site_marker": attr.label(
            allow_single_file = True,
            mandatory = True,
            doc = "A file at <tool site>/<package>/__init__.py, locating the tool site directory.",
        ),
    },
)
