"""The runtime rules that the generated runtime repositories instantiate.

* `venvstacks_runtime`: one fetched PBS runtime of one platform (repository `NAME_PLATFORM`);
* `venvstacks_platform_runtime`: the runtime's hub target `@NAME`, which selects the target
  platform's runtime (`--platforms`) and the execution platform's runtime (`cfg = "exec"`), so a
  layer for Windows builds on Linux with Linux's interpreter running the tool;
* `venvstacks_runtime_unavailable`: what the hub selects for a platform the runtime has no build
  for; analysis of the targets that need it fails naming the runtime, the platform and the
  declared ones.
"""

load("//rules_venvstacks/private/common:constants.bzl", "DEFAULT_GLIBC_MINIMUM", "DEFAULT_MACOS_MINIMUM")
load("//rules_venvstacks/private/common:platforms.bzl", "platform_name")
load("//rules_venvstacks/private/common:providers.bzl", "VenvstacksRuntimeInfo")

_UnavailableRuntimeInfo = provider(
    doc = "A runtime has no build for the platform in the configuration.",
    fields = {"message": "Why, naming the runtime, the platform and what is declared."},
)

def _venvstacks_runtime_impl(ctx):
    launchers = [
        struct(name = name, file = file)
        for name, file in zip(ctx.attr.venv_launcher_names, ctx.files.venv_launchers)
    ]
    return [
        DefaultInfo(files = depset([ctx.file.source_archive])),
        VenvstacksRuntimeInfo(
            name = ctx.attr.runtime_name,
            python_version = ctx.attr.python_version,
            platform_triple = ctx.attr.platform_triple,
            venv_launchers = launchers,
            pbs_release = ctx.attr.pbs_release,
            source_archive = ctx.file.source_archive,
            source_urls = ctx.attr.source_urls,
            source_sha256 = ctx.attr.source_sha256,
            strip_prefix = ctx.attr.strip_prefix,
            interpreter = ctx.file.interpreter,
            files = depset(ctx.files.files),
            tool_site = depset(ctx.files.tool_site),
            lock_zips = ctx.files.lock_zips,
            loader_zips = ctx.files.loader_zips,
            sdist_zips = ctx.files.sdist_zips,
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
        "platform_triple": attr.string(mandatory = True, doc = "PBS target triple."),
        "python_version": attr.string(mandatory = True, doc = "Exact CPython version."),
        "runtime_name": attr.string(mandatory = True, doc = "Name given in MODULE.bazel."),
        "source_archive": attr.label(allow_single_file = True, mandatory = True, doc = "The downloaded archive."),
        "source_date_epoch": attr.int(mandatory = True, doc = "mtime for archive members."),
        "source_sha256": attr.string(mandatory = True, doc = "sha256 of the downloaded archive."),
        "source_urls": attr.string_list(doc = "Where the archive came from."),
        "strip_prefix": attr.string(mandatory = True, doc = "Installation directory inside the archive."),
        "loader_zips": attr.label_list(allow_files = [".whl"], doc = "Pure-Python wheels only the loader check needs (the binary parsers)."),
        "lock_zips": attr.label_list(allow_files = [".whl"], doc = "Pure-Python wheels only locking needs (pip and what it needs)."),
        "sdist_zips": attr.label_list(allow_files = [".whl"], doc = "Pure-Python wheels only the action building a wheel from an sdist needs (pyproject-hooks)."),
        "tool_site": attr.label_list(allow_files = True, doc = "The tool's unpacked wheels for build actions."),
        "tool_zips": attr.label_list(allow_files = [".whl"], doc = "Pure-Python tool wheels imported from the zip."),
        "tool_site_marker": attr.label(
            allow_single_file = True,
            doc = "A file at <tool site>/<package>/__init__.py, locating the tool site directory (None when the platform has no tool wheels).",
        ),
        "venv_launcher_names": attr.string_list(doc = "Names in a venv's `Scripts/` of `venv_launchers`, in order (Windows)."),
        "venv_launchers": attr.label_list(allow_files = [".exe"], doc = "The runtime's venv launchers (Windows: Lib/venv/scripts/nt)."),
    },
)

def _runtime_unavailable_impl(ctx):
    return [_UnavailableRuntimeInfo(message = "runtime '%s' has no build for the target platform %s; it is declared for: %s (the `platforms` of `venvstacks.runtime`, or pass `--platforms=@rules_venvstacks//platforms:NAME`)" % (
        ctx.attr.runtime_name,
        ctx.attr.platform_name,
        ", ".join([platform_name(triple) for triple in ctx.attr.declared_triples]) or "(none)",
    ))]

venvstacks_runtime_unavailable = rule(
    implementation = _runtime_unavailable_impl,
    doc = "Stands for a runtime on a platform it has no build for.",
    attrs = {
        "declared_triples": attr.string_list(doc = "The PBS triples the runtime is declared for."),
        "platform_name": attr.string(mandatory = True, doc = "The platform of the configuration (a select)."),
        "runtime_name": attr.string(mandatory = True, doc = "Name given in MODULE.bazel."),
    },
)

def _platform_runtime_impl(ctx):
    target = ctx.attr.target
    exec_target = ctx.attr.exec_runtime
    if _UnavailableRuntimeInfo in exec_target:
        fail("%s: the tool cannot run on this execution platform: %s" % (ctx.label, exec_target[_UnavailableRuntimeInfo].message))
    tool = exec_target[VenvstacksRuntimeInfo]
    if tool.tool_site_marker == None:
        fail("%s: rules_venvstacks has no tool wheels for Python %s on %s, the execution platform" % (ctx.label, tool.python_version, platform_name(tool.platform_triple)))
    hub = dict(
        name = ctx.attr.runtime_name,
        platform_triples = ctx.attr.platform_triples,
        lock_python_version = ctx.attr.lock_python_version,
        wheel_floors = struct(glibc = ctx.attr.glibc_minimum, macos = ctx.attr.macos_minimum),
        exec_runtime = tool,
    )
    if _UnavailableRuntimeInfo in target:
        # Analysis goes on (locking needs only the declared platforms and the tool); what needs
        # the target's files fails with this message.
        return [DefaultInfo(), VenvstacksRuntimeInfo(
            python_version = ctx.attr.lock_python_version,
            unavailable = target[_UnavailableRuntimeInfo].message,
            **hub
        )]
    info = target[VenvstacksRuntimeInfo]
    if info.python_version.rpartition(".")[0] != tool.python_version.rpartition(".")[0]:
        fail("%s: the target's Python %s and the execution platform's Python %s differ in X.Y; the tool must run on the target's Python X.Y" % (
            ctx.label,
            info.python_version,
            tool.python_version,
        ))
    return [target[DefaultInfo], VenvstacksRuntimeInfo(build = info, **hub)]

venvstacks_platform_runtime = rule(
    implementation = _platform_runtime_impl,
    doc = "A runtime's hub target: the target platform's runtime and the execution platform's, which runs the tool.",
    attrs = {
        "exec_runtime": attr.label(
            mandatory = True,
            cfg = "exec",
            doc = "The runtime of the execution platform (a select over the per-platform runtimes, resolved in the exec configuration).",
        ),
        "glibc_minimum": attr.string(doc = "Linux wheels of the locks must run on this glibc ('' = the default, " + DEFAULT_GLIBC_MINIMUM + ")."),
        "lock_python_version": attr.string(mandatory = True, doc = "The version locks resolve for."),
        "macos_minimum": attr.string(doc = "macOS wheels of the locks must run on this release ('' = the default, " + DEFAULT_MACOS_MINIMUM + ")."),
        "platform_triples": attr.string_list(mandatory = True, doc = "The PBS triples the stacks target."),
        "runtime_name": attr.string(mandatory = True, doc = "Name given in MODULE.bazel."),
        "target": attr.label(mandatory = True, doc = "The target platform's runtime (a select), or an unavailable marker."),
    },
)
