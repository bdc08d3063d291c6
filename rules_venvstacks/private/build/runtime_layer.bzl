"""The `runtime_layer` rule: a PBS runtime packed as a deterministic layer archive."""

load("//rules_venvstacks/private/common:constants.bzl", "ARCHIVE_FORMATS", "BYTECODE_MODES", "DEFAULT_ARCHIVE_FORMAT", "DEFAULT_BYTECODE")
load("//rules_venvstacks/private/common:names.bzl", "check_layer_name")
load("//rules_venvstacks/private/common:providers.bzl", "VenvstacksLayerInfo", "VenvstacksRuntimeInfo")
load("//rules_venvstacks/private/common:tool.bzl", "TOOL_ATTRS", "run_tool", "tool_runtime")
load("//rules_venvstacks/private/deploy:run.bzl", "RUN_ATTRS", "layer_run_info")
load(":compression.bzl", "COMPRESSION_ATTRS", "add_compression_arg")
load(":published_metadata.bzl", "declare_published_metadata")

def _fail_when_built(ctx, runtime, outputs):
    """Outputs that fail to build with `runtime.unavailable`.

    The target itself stays analyzable: a layer's `.lock` needs the runtime's declared platforms
    and its tool, not the target's files, so locking works from a host that is not a target.
    """
    ctx.actions.run(
        executable = tool_runtime(runtime).interpreter,
        arguments = ["-I", "-c", "import sys; sys.exit(sys.argv[1])", "%s: %s" % (ctx.label, runtime.unavailable)],
        outputs = outputs,
        mnemonic = "VenvstacksRuntimeUnavailable",
        progress_message = "Runtime layer %{label} has no build for the target platform",
    )

def _runtime_layer_impl(ctx):
    runtime = ctx.attr.runtime[VenvstacksRuntimeInfo]
    layer_name = ctx.attr.layer_name or ctx.label.name
    check_layer_name(ctx.label, layer_name, "runtime layer name")
    archive = ctx.actions.declare_file("%s.%s" % (ctx.label.name, ctx.attr.archive_format))
    metadata = ctx.actions.declare_file("%s.json" % ctx.label.name)
    published_metadata = declare_published_metadata(ctx, runtime.platform_triple)
    if runtime.unavailable:
        _fail_when_built(ctx, runtime, [archive, metadata, published_metadata])
    else:
        _pack_runtime(ctx, runtime, layer_name, archive, metadata, published_metadata)
    layer = VenvstacksLayerInfo(
        label = ctx.label,
        layer_name = layer_name,
        kind = "runtime",
        archive = archive,
        metadata = metadata,
        published_metadata = published_metadata,
        archive_record = metadata,
        # A runtime layer carries no wheels: nothing of it to check for shadowing.
        contents = None,
        libraries = None,
        python_version = runtime.python_version,
        runtime = runtime,
        runtime_layer_name = layer_name,
        lower_layers = [],
        frameworks = [],
        launch_module = "",
        first_party = depset(),
    )

    # `bazel run`: the runtime's interpreter, from the layer deployed in a per-user cache (deploy/run.bzl).
    return [layer_run_info(ctx, layer), layer]

def _pack_runtime(ctx, runtime, layer_name, archive, metadata, published_metadata):
    """Registers the `pack-runtime` action of the target platform's runtime."""
    epoch = ctx.attr.source_date_epoch if ctx.attr.source_date_epoch >= 0 else runtime.source_date_epoch

    args = ctx.actions.args()
    args.add("--source-archive", runtime.source_archive)
    args.add("--strip-prefix", runtime.strip_prefix)
    args.add("--layer-name", layer_name)
    args.add("--python-version", runtime.python_version)
    args.add("--pbs-release", runtime.pbs_release)
    args.add("--source-sha256", runtime.source_sha256)
    args.add("--platform", runtime.platform_triple)
    args.add("--archive-format", ctx.attr.archive_format)
    args.add("--mtime", str(epoch))
    args.add("--bytecode", ctx.attr.bytecode)
    add_compression_arg(ctx, args)
    args.add("--output", archive)
    args.add("--metadata", metadata)
    args.add("--published-metadata", published_metadata)
    run_tool(
        ctx,
        runtime = runtime,
        subcommand = "pack-runtime",
        arguments = args,
        inputs = [runtime.source_archive],
        outputs = [archive, metadata, published_metadata],
        mnemonic = "VenvstacksRuntimeLayer",
        progress_message = "Packing runtime layer %{label} (CPython " + runtime.python_version + ")",
    )

runtime_layer = rule(
    implementation = _runtime_layer_impl,
    doc = """A runtime layer: a python-build-standalone CPython packed as a deployable archive.

Outputs `<name>.<archive_format>` (every member under `<layer_name>/`), `<name>.json`
(layer name, python version, PBS release, archive sha256 and size, and the sha256 of the PBS
archive it was built from; not its URL, so mirrors share action keys) and the same in
venvstacks' published schema, `__venvstacks__/<platform>/env_metadata/<name>.json`
(docs/migrating-from-venvstacks.md, "Published metadata"). The archive is byte-reproducible: sorted members, normalized modes, uid/gid 0, and every
mtime set to the PBS release date (never the clock).

`bazel run` of it runs its interpreter (`bin/python3`) with the arguments given, from the layer
deployed in the per-user run cache (docs/monorepo.md).
""",
    executable = True,
    attrs = dict(TOOL_ATTRS, **dict(COMPRESSION_ATTRS, **dict(RUN_ATTRS, **{
        "archive_format": attr.string(
            default = DEFAULT_ARCHIVE_FORMAT,
            values = ARCHIVE_FORMATS,
            doc = "Archive format: 'tar.zst' (default), 'tar.xz' or 'zip'.",
        ),
        "bytecode": attr.string(
            default = DEFAULT_BYTECODE,
            values = BYTECODE_MODES,
            doc = "'compiled' (default): add the `.pyc` files the archive lacks for the standard library (deterministic, unchecked-hash, compiled by the execution platform's interpreter of the same X.Y), so no interpreter start recompiles the stdlib; 'none': ship the archive's as they are.",
        ),
        "layer_name": attr.string(
            doc = "Directory name of the layer in the archive and when deployed; defaults to the target name.",
        ),
        "runtime": attr.label(
            mandatory = True,
            providers = [VenvstacksRuntimeInfo],
            doc = "The runtime, e.g. `@cpython3_12` as declared with `venvstacks.runtime`.",
        ),
        "source_date_epoch": attr.int(
            default = -1,
            doc = "mtime of every archive member in seconds since the epoch; -1 (default) takes the PBS release date (1980-01-01 for custom builds).",
        ),
    }))),
)
