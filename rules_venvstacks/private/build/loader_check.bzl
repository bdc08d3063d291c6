"""The loader check of a framework or application layer: a validation action (`VenvstacksLoaderCheck`).

For the layer's target platform, whatever the build machine, the tool's `check-libraries`
(tools/venvstacks_tool/build/loader_check.py) reads every extension module and shared library
of the layer's wheels and first-party files, and looks each library they need up where the
deployed stack's loader will: the layer, the lower layers (their libraries documents, which this
action writes for the layers above), the runtime (the names of its library files: none is read)
and the platform's system libraries. It reads no archive, so it runs beside the archive action;
its report is in the `_validation` output group, so `bazel build` runs it and fails with it.

Only this action gets the binary parsers (`loader_zips`): no archive action's key depends on them.
"""

load("//rules_venvstacks/private/common:platforms.bzl", "platform_name")
load("//rules_venvstacks/private/common:tool.bzl", "run_tool", "tool_runtime")

# Attributes of `venvstacks_layer` that the check reads (users set them through the macros).
LOADER_CHECK_ATTRS = {
    "allowed_libraries": attr.string_list(
        doc = "Libraries that the layer's targets are known to provide although the loader check does not count them as the platform's (`libGL.so.1` on desktops, a GPU driver's `libcuda.so.1`): names a binary needs (a soname, a Mach-O install name or its leaf name, a DLL name), never reported. See docs/platforms.md.",
    ),
    "strict_libraries": attr.bool(
        default = False,
        doc = "Make a library that a binary of the layer needs and nothing provides on the target platform a build error instead of a warning.",
    ),
}

# The runtime's files whose names the check needs: its shared libraries. The tool's
# `BINARY_SUFFIXES` (loader_check.py); tests/golden/binary_names.txt holds both sides to one table.
_LIBRARY_SUFFIXES = (".so", ".dylib", ".pyd", ".dll")

def _may_be_library(basename):
    """Whether a file of this name may be a shared library or extension module (`libpython3.12.so.1.0` too)."""
    name = basename.lower()  # as the tool's `is_binary_name` (loader_check.py): `FOO.DLL` too
    return name.endswith(_LIBRARY_SUFFIXES) or ".so." in name

# For tests/starlark/loader_check_test.bzl, which reads the golden table.
loader_check_testlib = struct(may_be_library = _may_be_library)

def _runtime_library(file):
    """A runtime file's path when it may be a shared library, else None."""
    return file.path if _may_be_library(file.basename) else None

def _runtime_root(runtime):
    """The execroot path of the runtime's root (its `strip_prefix` directory in the unpacked archive)."""
    head = runtime.interpreter.path.partition("/unpacked/")[0]
    return head + "/unpacked" + ("/" + runtime.strip_prefix if runtime.strip_prefix else "")

def loader_check_action(ctx, runtime, wheels, app_files, stacked):
    """Registers the loader check of the layer.

    Args:
      ctx: the layer rule's context (with LOADER_CHECK_ATTRS, TOOL_ATTRS and `dynlib_exclude`).
      runtime: VenvstacksRuntimeInfo of the target platform's runtime.
      wheels: list of File: every wheel the layer installs (locked and local).
      app_files: dict of path below site-packages -> File: the layer's first-party files.
      stacked: list of VenvstacksLayerInfo of the frameworks below, in sys.path order.

    Returns:
      struct(report = File for the `_validation` output group, libraries = File for the layers above).
    """

    # Only first-party files that may be binaries: a change to the application's Python code
    # then leaves the check's key alone (an application change reruns its two actions only).
    app_files = {dest: file for dest, file in app_files.items() if _may_be_library(file.basename)}
    report = ctx.actions.declare_file("_%s.loader.txt" % ctx.label.name)
    libraries = ctx.actions.declare_file("_%s.libraries.json" % ctx.label.name)
    args = ctx.actions.args()
    args.add("--layer-name", ctx.attr.layer_name)
    args.add("--platform", runtime.platform_triple)
    args.add("--python-version", runtime.python_version)
    args.add("--glibc", runtime.wheel_floors.glibc)
    args.add_all(wheels, before_each = "--wheel")
    for dest in sorted(app_files):
        args.add("--app-file", "%s=%s" % (dest, app_files[dest].path))
    args.add("--runtime-root", _runtime_root(runtime))
    args.add_all(runtime.files, map_each = _runtime_library, before_each = "--runtime-file")
    args.add_all([layer.libraries for layer in stacked], before_each = "--lower-libraries")
    args.add_all(ctx.attr.allowed_libraries, before_each = "--allow")
    args.add_all(ctx.attr.dynlib_exclude, before_each = "--dynlib-exclude")
    if ctx.attr.strict_libraries:
        args.add("--strict")
    args.add("--output", report)
    args.add("--libraries", libraries)
    run_tool(
        ctx,
        runtime = runtime,
        subcommand = "check-libraries",
        arguments = args,
        inputs = wheels + app_files.values() + [layer.libraries for layer in stacked],
        outputs = [report, libraries],
        mnemonic = "VenvstacksLoaderCheck",
        progress_message = "Checking the libraries of layer '%s' for %s %%{label}" % (ctx.attr.layer_name, platform_name(runtime.platform_triple)),
        extra_zips = tool_runtime(runtime).loader_zips,
    )
    return struct(report = report, libraries = libraries)
