"""The `venvstacks_layer` rule: builds a framework or application layer archive and its metadata.

Two actions per layer (three with the stack check below; the metadata action also writes the
`bazel run` key, deploy/run.bzl). The archive action (`VenvstacksLayer`) reads only the layer's
own wheels and sources and the runtime's files, never a lower layer's output, so every layer of a stack
builds in parallel with the layers below it, and a change to a framework does not rebuild the
applications on it. Besides the archive it writes a small record of it (name, format, sha256,
size). The metadata action (`VenvstacksLayerMetadata`) then writes the metadata JSON from that
record, the lock and the records of the layers below: it never reads an archive, so with a
remote cache it runs without downloading one, and it runs beside the lower layers' own metadata
actions, not after them.

The archive action also writes the layer's contents (`_NAME.contents.json`: its top-level import
names and the shared libraries it links for the layers above, a few kilobytes). On a layer with
frameworks below it (or whose `deps` need pip-hub wheels: first_party.bzl), a validation action
(`VenvstacksLayerChecks`, in the `_validation` output group, so `bazel build` runs it and fails
with it) reads the contents of the layer and of those frameworks, and reports what shadows what
across the stack: warnings, and errors for an application's launch module that a lower layer
also provides, for first-party code sharing a name with another layer, and for a hub wheel's
import name that no lock of the stack provides. It reads no archive either, and runs beside the
other actions. Every layer also has the stale-lock validation action (`VenvstacksLockCheck`,
lock/lock_rules.bzl `stale_lock_validation`): `.lock_test`'s check, a warning by default; and the
loader check (`VenvstacksLoaderCheck`, loader_check.bzl), another validation action: do its
binaries find their libraries on the target?
"""

load("@rules_python//python:defs.bzl", "PyInfo")
load("//rules_venvstacks/private/common:c3.bzl", "c3_conflict_message", "c3_linearize")
load("//rules_venvstacks/private/common:constants.bzl", "ARCHIVE_FORMATS", "BYTECODE_MODES", "DEFAULT_ARCHIVE_FORMAT", "DEFAULT_BYTECODE", "LAYER_KINDS")
load("//rules_venvstacks/private/common:names.bzl", "check_layer_name")
load("//rules_venvstacks/private/common:platforms.bzl", "platform_name")
load("//rules_venvstacks/private/common:providers.bzl", "VenvstacksLayerInfo", "VenvstacksLockInfo", "VenvstacksWheelsInfo")
load("//rules_venvstacks/private/common:tool.bzl", "TOOL_ATTRS", "run_tool")
load("//rules_venvstacks/private/deploy:run.bzl", "RUN_ATTRS", "layer_run_info")
load("//rules_venvstacks/private/lock:lock_rules.bzl", "LOCK_ONLY_ATTRS", "STALE_LOCK_ATTRS", "lock_only_providers", "stale_lock_validation")
load(":compression.bzl", "COMPRESSION_ATTRS", "add_compression_arg")
load(":dynlib_exclude.bzl", "dynlib_exclude_problem")
load(":first_party.bzl", "first_party_aspect", "first_party_files", "first_party_owners", "srcs_destination")
load(":loader_check.bzl", "LOADER_CHECK_ATTRS", "loader_check_action")
load(":published_metadata.bzl", "declare_published_metadata")

# The memory one `VenvstacksLayer` action may take, in MB, declared to Bazel's local scheduler
# (`--local_ram_resources`, two thirds of the RAM by default) instead of its default 250 MB. A
# layer's peak does not grow with its wheels: `build-layer` streams each wheel into the tree and
# the tree into the archive. Measured (docs/performance.md, "Memory"; RSS of the action's process
# tree, 2 cores): torch framework 0.20 GB (865 MB installed), numpy/scipy/scikit-learn 0.16 GB,
# runtime layer 0.13 GB, an application 0.05 GB. What grows with the machine is the compilers, one
# per core at up to 90 MB each (torch's largest sources); 512 MB covers the archive phase (about
# 0.2 GB with zstd's threads) and the compile phase of a machine of up to about 4 cores, 2.5 times
# what was measured here.
LAYER_MEMORY_MB = 512

def _layer_resource_set(_os, _inputs_size):
    """The resource set of a layer archive action: the OS and the input count do not change it.

    Bazel calls this with the OS and the number of inputs only; the inputs are mostly the
    runtime's standard library (about 725 files), not the wheels, so their count says nothing
    about the layer's size, and the peak does not depend on the size anyway. CPU stays 1 so that
    the layers of a stack still build side by side on a small machine.
    """
    return {"cpu": 1, "memory": LAYER_MEMORY_MB}

def _lower_layers(ctx, runtime_layer, frameworks):
    """The frameworks below in sys.path order, and every layer below in deployment order.

    The sys.path order is the C3 linearization of the layer's `frameworks` and their own
    (private/common/c3.bzl), the same the lock inputs derive and check (lock_rules.bzl
    `_check_stack`, which runs first, so a conflict fails there with its message). Deployment
    order is the runtime, then that order reversed: each layer after the layers it needs.
    """
    by_name = {}
    for framework in frameworks:
        for layer in framework.lower_layers + [framework]:
            by_name[layer.layer_name] = layer
    linearized = c3_linearize(
        [f.layer_name for f in frameworks],
        {f.layer_name: f.frameworks for f in frameworks},
    )
    if linearized.conflict != None:
        fail("%s: %s" % (ctx.label, c3_conflict_message(linearized.conflict)))
    ordered = [by_name[name] for name in linearized.order]
    return ordered, [runtime_layer] + list(reversed(ordered))

def _install_target(ctx, wheels, lock, lock_target):
    """The layer's deployed name: `layer_name`, or `layer_name@N` when `versioned` (N: the lock's version).

    N comes from the checked-in lock, read by the `venvstacks` extension into the hub's target
    (`VenvstacksWheelsInfo.lock_version`), so every name derived from it is known at analysis.
    """
    if not ctx.attr.versioned:
        return ctx.attr.layer_name
    if not wheels.lock_version:
        fail("%s: versioned = True, but %s has no lock version (locked before the layer was versioned); run `bazel run %s`" % (
            ctx.label,
            lock.lock_path,
            lock_target,
        ))
    install_target = "%s@%d" % (ctx.attr.layer_name, wheels.lock_version)
    check_layer_name(ctx.label, install_target, "install target")
    return install_target

def _identity_args(ctx, runtime, layer_name):
    """Arguments both actions take: what the layer's metadata records about it (`layer_name`: its install target)."""
    args = ctx.actions.args()
    args.add("--layer-name", layer_name)
    args.add("--layer-kind", ctx.attr.kind)
    args.add("--python-version", runtime.python_version)
    args.add("--platform", runtime.platform_triple)
    args.add("--archive-format", ctx.attr.archive_format)
    if ctx.attr.launch_module:
        args.add("--launch-module", ctx.attr.launch_module)
    return args

def _stack_check_action(ctx, runtime, layer_name, contents, stacked, hubs):
    """Registers the validation action comparing the layer's contents with its frameworks'; returns its report."""
    checks = ctx.actions.declare_file("_%s.checks.txt" % ctx.label.name)
    args = ctx.actions.args()
    args.add("--layer-name", layer_name)
    args.add("--contents", contents)
    args.add_all([f.contents for f in stacked], before_each = "--lower-contents")
    if ctx.attr.launch_module:
        args.add("--launch-module", ctx.attr.launch_module)
    for hub in hubs:
        for name in hub.names:
            args.add("--hub-import", "%s=%s" % (name, " -> ".join(hub.path)))
    if hubs:
        args.add("--lock-target", "//%s:%s.lock" % (ctx.label.package, ctx.label.name))
    args.add("--output", checks)
    run_tool(
        ctx,
        runtime = runtime,
        subcommand = "check-layer-stack",
        arguments = args,
        inputs = [contents] + [f.contents for f in stacked],
        outputs = [checks],
        mnemonic = "VenvstacksLayerChecks",
        progress_message = "Checking layer '%s' against the layers below it %%{label}" % layer_name,
    )
    return checks

def _venvstacks_layer_impl(ctx):
    # Reached from a `.lock_inputs` target: the lock inputs only (lock_rules.bzl).
    lock_only = lock_only_providers(ctx)
    if lock_only != None:
        return lock_only

    # The stack's structure was checked by the lock inputs target (see lock_rules.bzl).
    runtime_layer = ctx.attr.runtime[VenvstacksLayerInfo]
    frameworks = [f[VenvstacksLayerInfo] for f in ctx.attr.frameworks]
    wheels = ctx.attr.wheels[VenvstacksWheelsInfo]
    lock = ctx.attr.lock_inputs[VenvstacksLockInfo]

    # Before the lock: a bad pattern is an error of the BUILD file, whatever the lock's state.
    for pattern in ctx.attr.dynlib_exclude:
        problem = dynlib_exclude_problem(pattern)
        if problem:
            fail("%s: dynlib_exclude pattern %r %s" % (ctx.label, pattern, problem))
    lock_target = "//%s:%s.lock" % (ctx.label.package, ctx.label.name)
    if wheels.missing or lock.lock == None:
        fail("%s: the lock %s does not exist yet; run `bazel run %s`" % (ctx.label, lock.lock_path, lock_target))
    if ctx.attr.kind == "application" and not ctx.attr.launch_module:
        fail("%s: an application layer needs a `launch_module`" % ctx.label)
    runtime = runtime_layer.runtime
    if runtime.unavailable:
        fail("%s: %s" % (ctx.label, runtime.unavailable))
    if runtime.platform_triple not in wheels.platform_triples:
        fail("%s: %s has no wheels for %s (it covers: %s); run `bazel run %s`" % (
            ctx.label,
            lock.lock_path.rpartition("/")[2],
            platform_name(runtime.platform_triple),
            ", ".join([platform_name(triple) for triple in wheels.platform_triples]) or "no platform",
            lock_target,
        ))
    check_layer_name(ctx.label, ctx.attr.layer_name)
    layer_name = _install_target(ctx, wheels, lock, lock_target)
    stacked, lower_layers = _lower_layers(ctx, runtime_layer, frameworks)

    # A versioned layer's archive is named for its install target, as venvstacks names it.
    version = "@%d" % wheels.lock_version if ctx.attr.versioned else ""
    archive = ctx.actions.declare_file("%s%s.%s" % (ctx.label.name, version, ctx.attr.archive_format))
    archive_record = ctx.actions.declare_file("_%s.archive.json" % ctx.label.name)
    contents = ctx.actions.declare_file("_%s.contents.json" % ctx.label.name)
    metadata = ctx.actions.declare_file("%s.json" % ctx.label.name)
    published_metadata = declare_published_metadata(ctx, runtime.platform_triple)
    args = _identity_args(ctx, runtime, layer_name)
    args.add("--runtime-layer", runtime_layer.layer_name)
    args.add_all([f.layer_name for f in stacked], before_each = "--lower-layer")
    for wheel in sorted(wheels.wheels, key = lambda w: w.file.basename):
        args.add("--wheel", "%s=%s" % (wheel.file.path, wheel.sha256))
    for built in sorted(wheels.built, key = lambda w: w.file.basename):
        # Built from its sdist by the hub's `sdist_wheel` (once, in the execution configuration):
        # installed as a wheel built in this build, its files scanned for build paths.
        args.add("--local-wheel", built.file.path)
    srcs_files = {}
    app_files = []
    for file in sorted(ctx.files.srcs, key = lambda f: f.short_path):
        if file.extension == "whl":
            # A wheel built by another rule: installed with the locked wheels, not copied.
            args.add("--local-wheel", file.path)
        else:
            srcs_files[srcs_destination(ctx, file)] = file
            app_files.append("%s=%s" % (srcs_destination(ctx, file), file.path))
    first_party = first_party_files(ctx, ctx.attr.deps, [f.first_party for f in stacked], srcs_files)
    for dest in sorted(first_party.files):
        app_files.append("%s=%s" % (dest, first_party.files[dest].path))
    args.add_all(app_files, before_each = "--app-file")
    for entry, owner in first_party_owners(first_party):
        args.add("--app-owner", "%s=%s" % (entry, owner))
    for launcher in runtime.venv_launchers:
        args.add("--venv-launcher", "%s=%s" % (launcher.name, launcher.file.path))
    args.add_all(ctx.attr.dynlib_exclude, before_each = "--dynlib-exclude")
    args.add("--bytecode", ctx.attr.bytecode)
    add_compression_arg(ctx, args)
    args.add("--mtime", str(runtime.source_date_epoch))
    args.add("--output", archive)
    args.add("--archive-record", archive_record)
    args.add("--contents", contents)
    run_tool(
        ctx,
        runtime = runtime,
        subcommand = "build-layer",
        arguments = args,
        inputs = [w.file for w in wheels.wheels] + [w.file for w in wheels.built] + ctx.files.srcs + first_party.files.values() + [launcher.file for launcher in runtime.venv_launchers],
        outputs = [archive, archive_record, contents],
        mnemonic = "VenvstacksLayer",
        resource_set = _layer_resource_set,
        progress_message = "Building %s layer '%s' %%{label} (%d wheels)" % (ctx.attr.kind, layer_name, len(wheels.wheels)),
    )

    metadata_args = _identity_args(ctx, runtime, layer_name)
    metadata_args.add("--lock-file", lock.lock)
    if ctx.attr.versioned:
        metadata_args.add("--lock-version", str(wheels.lock_version))
    metadata_args.add_all([layer.archive_record for layer in lower_layers], before_each = "--lower-record")
    metadata_args.add("--archive-record", archive_record)
    for built in sorted(wheels.built, key = lambda w: w.file.basename):
        metadata_args.add("--built-from-sdist", "%s=%s" % (built.file.basename.partition("-")[0], built.sdist_sha256))
    metadata_args.add("--output", metadata)

    # venvstacks' schema too: its launch module hash needs the application's own files.
    metadata_args.add("--published-metadata", published_metadata)
    metadata_args.add("--runtime-layer", runtime_layer.layer_name)
    metadata_args.add("--source-date-epoch", str(runtime.source_date_epoch))
    hashed_files = []
    if ctx.attr.kind == "application":
        metadata_args.add_all(app_files, before_each = "--app-file")
        hashed_files = [f for f in ctx.files.srcs if f.extension != "whl"] + first_party.files.values()

    # The `bazel run` key comes from the same records (deploy/run.bzl): no action of its own.
    run_key = ctx.actions.declare_file("_%s.run_key" % ctx.label.name)
    metadata_args.add("--run-key-output", run_key)
    run_tool(
        ctx,
        runtime = runtime,
        subcommand = "layer-metadata",
        arguments = metadata_args,
        inputs = [archive_record, lock.lock] + [layer.archive_record for layer in lower_layers] + hashed_files,
        outputs = [metadata, published_metadata, run_key],
        mnemonic = "VenvstacksLayerMetadata",
        progress_message = "Writing the metadata of layer '%s' %%{label}" % layer_name,
    )

    # A layer directly on its runtime has nothing to be checked against (the runtime has no
    # wheels), unless its libraries need hub wheels: its own lock must provide them.
    validations = [_stack_check_action(ctx, runtime, layer_name, contents, stacked, first_party.hubs)] if stacked or first_party.hubs else []
    loader = loader_check_action(
        ctx,
        runtime,
        [w.file for w in wheels.wheels] + [f for f in ctx.files.srcs if f.extension == "whl"],
        dict(srcs_files, **first_party.files),
        stacked,
    )
    validations.append(loader.report)

    # The lock checked against its inputs, as `.lock_test` checks it (lock_rules.bzl).
    lock_check = stale_lock_validation(ctx, lock, runtime)
    if lock_check:
        validations.append(lock_check)
    providers = [
        OutputGroupInfo(_validation = depset(validations)),
        VenvstacksLayerInfo(
            label = ctx.label,
            layer_name = layer_name,
            kind = ctx.attr.kind,
            archive = archive,
            metadata = metadata,
            published_metadata = published_metadata,
            archive_record = archive_record,
            contents = contents,
            python_version = runtime.python_version,
            runtime = runtime,
            runtime_layer_name = runtime_layer.layer_name,
            lower_layers = lower_layers,
            frameworks = [f.layer_name for f in stacked],
            launch_module = ctx.attr.launch_module,
            first_party = first_party.held,
            libraries = loader.libraries,
        ),
    ]

    # DefaultInfo: the stack's archives and metadata; `bazel run` runs the layer (deploy/run.bzl).
    interpreter_args = ["-m", ctx.attr.launch_module] if ctx.attr.launch_module else []
    return [layer_run_info(ctx, providers[-1], interpreter_args, key = run_key)] + providers

venvstacks_layer = rule(
    implementation = _venvstacks_layer_impl,
    doc = "A framework or application layer archive; use the `framework_layer`/`application_layer` macros. `bazel run` runs the application (or the framework's interpreter) from the stack deployed in a per-user cache.",
    executable = True,
    attrs = dict(TOOL_ATTRS, **dict(COMPRESSION_ATTRS, **dict(RUN_ATTRS, **dict(STALE_LOCK_ATTRS, **dict(LOCK_ONLY_ATTRS, **dict(LOADER_CHECK_ATTRS, **{
        "archive_format": attr.string(default = DEFAULT_ARCHIVE_FORMAT, values = ARCHIVE_FORMATS, doc = "Archive format."),
        "bytecode": attr.string(default = DEFAULT_BYTECODE, values = BYTECODE_MODES, doc = "Compile .pyc files (deterministically) or not."),
        "deps": attr.label_list(providers = [PyInfo], aspects = [first_party_aspect], doc = "First-party Python libraries (`PyInfo`): their transitive sources land at their import roots (private/build/first_party.bzl); pip-hub wheels among them must be provided by the lock or a layer below."),
        "dynlib_exclude": attr.string_list(doc = "Glob patterns of shared libraries to keep out of the layer's `share/venv/dynlib` (Linux and macOS targets), venvstacks' `dynlib_exclude`: each is matched against the end of a library's path below the layer root, at a `/` boundary (`libfoo.so`, `pkg.libs/*.so`, `**/libcuda*.so`); `*` and `?` stay within one path component, `**` spans any number. Two libraries of one name are an error unless all but one are excluded."),
        "frameworks": attr.label_list(providers = [VenvstacksLayerInfo], doc = "The framework layers this layer uses directly, in sys.path order; the frameworks below them follow in the order C3 linearization derives."),
        "kind": attr.string(mandatory = True, values = LAYER_KINDS, doc = "Layer kind."),
        "launch_module": attr.string(doc = "Application layers: the module `python -m` runs."),
        "layer_name": attr.string(mandatory = True, doc = "Directory name of the layer when deployed (with `@N` appended when `versioned`)."),
        "lock_inputs": attr.label(mandatory = True, providers = [VenvstacksLockInfo], doc = "The layer's lock inputs."),
        "runtime": attr.label(mandatory = True, providers = [VenvstacksLayerInfo], doc = "The runtime layer."),
        "srcs": attr.label_list(allow_files = True, doc = "Application code placed in site-packages; `.whl` files (e.g. built by another rule) are installed instead, their dependencies coming from the lock."),
        "versioned": attr.bool(doc = "venvstacks' `versioned`: the lock carries a lock version N, bumped by a relock that changes the lock, and the layer deploys as `layer_name@N` (docs/layers.md, \"Versioned layers\")."),
        "wheels": attr.label(mandatory = True, providers = [VenvstacksWheelsInfo], doc = "The lock's wheels (hub target)."),
    })))))),
)
