"""Rules behind `<layer>.lock` (bazel run: re-resolve) and `<layer>.lock_test` (bazel test: fresh?).

Both read a `VenvstacksLockInfo` from `<layer>.lock_inputs`, which depends on the runtime layer
and on the framework layers below, as the user wrote them, in the lock-only configuration (where
a layer returns its own lock inputs), never on wheels: locking must work before any wheel exists.
The stack's structure is checked there too, so a bad stack fails at analysis before anything
else of the layer is looked at.
"""

load("@bazel_skylib//rules:common_settings.bzl", "BuildSettingInfo")
load("//rules_venvstacks/private/common:c3.bzl", "c3_conflict_message", "c3_linearize", "duplicates")
load("//rules_venvstacks/private/common:constants.bzl", "DEFAULT_INDEX_URL", "LAYER_KINDS")
load("//rules_venvstacks/private/common:names.bzl", "check_layer_name")
load("//rules_venvstacks/private/common:platforms.bzl", "PLATFORMS", "platform_name", "platforms_problem")
load("//rules_venvstacks/private/common:providers.bzl", "VenvstacksAppModulesInfo", "VenvstacksIndexesInfo", "VenvstacksLayerInfo", "VenvstacksLockInfo")
load("//rules_venvstacks/private/common:tool.bzl", "TOOL_ATTRS", "check_no_credentials", "lock_tool_tree", "run_tool", "shell_quote", "tool_launcher")
load(":named_indexes.bzl", "merge_named_indexes", "named_index_arguments")

def _check_stack(ctx, runtime_layer, declared):
    """Analysis-time stack checks; returns every framework below the layer, in sys.path order.

    The layer lists the frameworks it uses directly (`declared`); the full order is the C3
    linearization of the framework graph (private/common/c3.bzl), as venvstacks derives it. A
    listed order that contradicts a framework's own, or a repeated framework, fails here naming
    the frameworks; so do non-framework layers below, other runtimes and repeated layer names.
    """
    check_layer_name(ctx.attr.layer, ctx.attr.layer_name)
    check_layer_name(runtime_layer.label, runtime_layer.layer_name, "runtime layer name")
    for info in declared:
        if info.kind != "framework":
            fail("%s: %s is an %s layer; only framework layers can be stacked under another layer" % (ctx.attr.layer, info.label, info.kind))
    for label in duplicates([info.label for info in declared]):
        fail("%s: `frameworks` lists %s twice" % (ctx.attr.layer, label))
    by_label = {}
    for info in declared:
        for layer in [info] + info.lower:
            by_label[layer.label] = layer
    linearized = c3_linearize(
        [info.label for info in declared],
        {info.label: [below.label for below in info.lower] for info in declared},
    )
    if linearized.conflict != None:
        fail("%s: the order of `frameworks` contradicts the frameworks' own: %s" % (ctx.attr.layer, c3_conflict_message(linearized.conflict)))
    lower = [by_label[label] for label in linearized.order]
    names = {runtime_layer.layer_name: str(runtime_layer.label), ctx.attr.layer_name: ctx.attr.layer}
    for info in lower:
        if info.runtime_layer.label != runtime_layer.label:
            fail("%s: framework %s is built on runtime %s, but this layer is on %s; all layers of a stack share one runtime" % (
                ctx.attr.layer,
                info.label,
                info.runtime_layer.label,
                runtime_layer.label,
            ))
        if info.layer_name in names:
            fail("%s: two layers of the stack are named '%s': %s and %s" % (ctx.attr.layer, info.layer_name, names[info.layer_name], info.label))
        names[info.layer_name] = info.label
    return lower

def _names(triples):
    """The short names of `triples`, comma-separated, for messages."""
    return ", ".join([platform_name(triple) for triple in triples])

def _layer_platform_triples(ctx, runtime_layer, lower):
    """The PBS triples the layer is locked and built for, in its runtime's order.

    With no `platforms`, the runtime's: the layer's lock and its arguments are exactly what they
    were before layers could narrow their platforms. Otherwise each named platform must be one
    of the runtime's and of every framework's below (venvstacks' rule: a layer's platforms are
    among those of every layer it sits on); the first that is not fails here, at analysis,
    naming the layer, the platform and the layer that lacks it.
    """
    runtime_triples = runtime_layer.runtime.platform_triples
    if not ctx.attr.platforms:
        return runtime_triples
    problem = platforms_problem(ctx.attr.platforms, short_names = True)
    if problem:
        fail("%s: `platforms`: %s" % (ctx.attr.layer, problem.message))
    wanted = [PLATFORMS[name].triple for name in ctx.attr.platforms]

    # The runtime's label as the user writes it ("//:rt", not Bazel 7's "@@//:rt").
    runtime_label = str(runtime_layer.label).removeprefix("@@//").removeprefix("@//")
    runtime_label = runtime_label if runtime_label.startswith("@") else "//" + runtime_label
    below = [(runtime_label, "runtime", runtime_triples)] + [(info.label, "framework", info.platform_triples) for info in lower]
    for triple in wanted:
        for label, kind, triples in below:
            if triple not in triples:
                fail("%s: `platforms` names %s, but the %s %s it sits on is not built for it (its platforms: %s); a layer's platforms must be among those of every layer below it" % (
                    ctx.attr.layer,
                    platform_name(triple),
                    kind,
                    label,
                    _names(triples),
                ))
    return [triple for triple in runtime_triples if triple in wanted]

# The private build setting of the "lock only" configuration (BUILD.bazel here says what it is).
# str(Label()): a transition names the setting by its canonical label, in and out alike.
_LOCK_ONLY = str(Label("//rules_venvstacks/private/lock:lock_only"))

def _lock_only_transition_impl(_settings, _attr):
    return {_LOCK_ONLY: True}

# On `.lock_inputs`' `frameworks`: the framework layers, as the user wrote them, analysed in the
# lock-only configuration, where they reach no wheel and return only their VenvstacksLockInfo.
lock_only_transition = transition(
    implementation = _lock_only_transition_impl,
    inputs = [],
    outputs = [_LOCK_ONLY],
)

# The attribute of the layer rule that says whether it is analysed for a lock only.
LOCK_ONLY_ATTRS = {
    "_lock_only": attr.label(
        default = Label("//rules_venvstacks/private/lock:lock_only"),
        providers = [BuildSettingInfo],
        doc = "Set by `.lock_inputs`' transition: the layer then returns only its lock inputs' VenvstacksLockInfo.",
    ),
}

def lock_only_providers(ctx):
    """What a layer target returns in the lock-only configuration; None in any other.

    Its lock inputs' VenvstacksLockInfo, and, the layer rule being executable, an empty
    executable: the macros selected away everything else (`frameworks`, `wheels`, `srcs`, `deps`).

    Args:
      ctx: the layer rule's context (with LOCK_ONLY_ATTRS and `lock_inputs`).

    Returns:
      A list of providers, or None when the layer is analysed for a build.
    """
    if not ctx.attr._lock_only[BuildSettingInfo].value:
        return None
    executable = ctx.actions.declare_file(ctx.label.name + ".lock_only")
    ctx.actions.write(executable, "", is_executable = True)
    return [DefaultInfo(executable = executable), ctx.attr.lock_inputs[VenvstacksLockInfo]]

def _lock_inputs_impl(ctx):
    runtime_layer = ctx.attr.runtime[VenvstacksLayerInfo]
    if runtime_layer.kind != "runtime":
        fail("%s: `runtime` must be a runtime_layer target, got %s layer %s" % (ctx.attr.layer, runtime_layer.kind, ctx.attr.runtime.label))
    lower = _check_stack(ctx, runtime_layer, [framework[VenvstacksLockInfo] for framework in ctx.attr.frameworks])
    index_urls = ctx.attr._named_indexes[VenvstacksIndexesInfo].urls
    named_indexes = merge_named_indexes(
        ctx.attr.layer,
        lower,
        ctx.attr.package_indexes,
        ctx.attr.priority_indexes,
        ctx.attr.index_overrides,
        index_urls,
    )
    return [VenvstacksLockInfo(
        label = ctx.attr.layer,
        layer_name = ctx.attr.layer_name,
        kind = ctx.attr.kind,
        runtime_layer = runtime_layer,
        lock = ctx.file.lock,
        lock_path = ctx.attr.lock_path,
        platform_triples = _layer_platform_triples(ctx, runtime_layer, lower),
        requirements = ctx.attr.requirements,
        requirements_in = ctx.files.requirements_in,
        lower = lower,
        index = struct(
            index_url = ctx.attr.index_url,
            extra_index_urls = ctx.attr.extra_index_urls,
            find_links = ctx.attr.find_links,
            build_from_sdist = ctx.attr.build_from_sdist,
        ),
        named_indexes = named_indexes,
        index_urls = index_urls,
        versioned = ctx.attr.versioned,
        app_modules = ctx.attr.app_modules[VenvstacksAppModulesInfo] if ctx.attr.app_modules else None,
    )]

venvstacks_lock_inputs = rule(
    implementation = _lock_inputs_impl,
    doc = "What a layer's lock is resolved from (generated by the layer macros as `<layer>.lock_inputs`).",
    attrs = {
        "app_modules": attr.label(
            providers = [VenvstacksAppModulesInfo],
            doc = "A versioned application's `NAME.app_modules`: its lock records its launch and support modules' hashes, so a change of one bumps the lock version.",
        ),
        "build_from_sdist": attr.string_list(doc = "Packages installed from wheels built from their sdists."),
        "extra_index_urls": attr.string_list(doc = "Extra package indexes."),
        "find_links": attr.string_list(doc = "Local wheel directories (workspace-relative) or URLs."),
        "frameworks": attr.label_list(
            providers = [VenvstacksLockInfo],
            cfg = lock_only_transition,
            doc = "The framework layers the layer uses directly, as written (the rest of the stack's order is derived); analysed in the lock-only configuration, where they give their lock inputs and reach no wheel.",
        ),
        "index_overrides": attr.string_dict(doc = "Inherited index name -> the index name it stands for here: accepted `package_indexes` conflicts."),
        "index_url": attr.string(default = DEFAULT_INDEX_URL, doc = "The package index."),
        "kind": attr.string(mandatory = True, values = LAYER_KINDS, doc = "Layer kind."),
        "layer": attr.string(mandatory = True, doc = "The layer's label, e.g. '//stacks:app' (for messages and hints); not a dependency."),
        "layer_name": attr.string(mandatory = True, doc = "The layer's name."),
        "lock": attr.label(allow_single_file = True, doc = "The lock file, when it exists."),
        "lock_path": attr.string(mandatory = True, doc = "Workspace-relative path of the lock file."),
        "package_indexes": attr.string_dict(doc = "Project -> named index it comes from, only (inherited by the layers above)."),
        "platforms": attr.string_list(doc = "The short names of the platforms the layer is locked for, among its runtime's and every framework's below; empty: the runtime's."),
        "priority_indexes": attr.string_list(doc = "Named indexes searched first for every project, in order (not inherited)."),
        "requirements": attr.string_list(doc = "Top-level requirements."),
        "requirements_in": attr.label_list(allow_files = True, doc = "requirements.in files."),
        "runtime": attr.label(mandatory = True, providers = [VenvstacksLayerInfo], doc = "The runtime layer."),
        "_named_indexes": attr.label(
            default = Label("@venvstacks_indexes//:indexes"),
            providers = [VenvstacksIndexesInfo],
            doc = "The named indexes of MODULE.bazel's `venvstacks.index` tags.",
        ),
        "versioned": attr.bool(doc = "The layer is versioned: its lock carries a lock version (lock/lock_version.py)."),
    },
)

def _input_arguments(info, in_action):
    """The arguments naming a layer's inputs that `lock` and `check-lock` share, but the lower locks.

    Unquoted. A requirements file is named by its `path` in an action (`in_action`), by its
    runfiles-relative `short_path` in a launcher. Returns the arguments and the files they name.
    """
    arguments = [
        "--layer-name",
        info.layer_name,
        "--layer-kind",
        info.kind,
        "--python-version",
        info.runtime_layer.runtime.lock_python_version,
        "--index-url",
        info.index.index_url,
    ]
    for triple in info.platform_triples:
        arguments += ["--platform", triple]
    floors = info.runtime_layer.runtime.wheel_floors
    if floors.glibc:
        arguments += ["--glibc-minimum", floors.glibc]
    if floors.macos:
        arguments += ["--macos-minimum", floors.macos]
    for requirement in info.requirements:
        arguments += ["--requirement", requirement]
    for file in info.requirements_in:
        arguments += ["--requirements-in", file.path if in_action else file.short_path]
    for url in info.index.extra_index_urls:
        arguments += ["--extra-index-url", url]
    for link in info.index.find_links:
        arguments += ["--find-links", link]
    arguments += named_index_arguments(info.named_indexes, info.index_urls)
    if info.versioned:
        arguments.append("--versioned")
    for name in info.index.build_from_sdist:
        arguments += ["--build-from-sdist", name]
    files = list(info.requirements_in)
    if info.app_modules != None:
        arguments += ["--launch-module", info.app_modules.module]
        for dest, file in sorted(info.app_modules.files.items()):
            arguments += ["--app-module-file", "%s=%s" % (dest, file.path if in_action else file.short_path)]
            files.append(file)
    return arguments, files

def _lower_lock_file(info, lower):
    """The checked-in lock of `lower`, a framework below `info`'s layer; fails when it does not exist yet."""
    if lower.lock == None:
        fail("%s: the lock of framework %s does not exist yet; run `bazel run %s.lock` first" % (info.label, lower.label, lower.label))
    return lower.lock

def _lock_arguments(info):
    """Arguments shared by `lock` and `check-lock`, quoted for the shell, and the files they read.

    Paths are runfiles-relative: the lower layers' locks are the checked-in ones.
    """
    arguments, files = _input_arguments(info, in_action = False)
    quoted = [shell_quote(argument) for argument in arguments]
    for lower in info.lower:
        lock = _lower_lock_file(info, lower)
        files.append(lock)
        quoted += ["--lower-lock", shell_quote("%s=%s" % (lower.layer_name, lock.short_path))]
    return quoted, files

# The attribute of a layer rule that reads //settings:stale_lock (see `stale_lock_validation`).
STALE_LOCK_ATTRS = {
    "_stale_lock": attr.label(
        default = Label("//settings:stale_lock"),
        providers = [BuildSettingInfo],
        doc = "What `bazel build` does with a stale lock: 'warn', 'error' or 'off' (//settings:stale_lock).",
    ),
}

def stale_lock_validation(ctx, info, runtime):
    """Registers the validation action that checks a layer's lock is fresh; returns its output, or None.

    The action is `check-lock`, the very command of `<layer>.lock_test`, on the same inputs (the
    lock, the requirements files, the lower layers' locks, the arguments): one definition of a
    fresh lock, so `bazel build` says what `bazel test` would. By default a stale lock is a
    warning naming the `.lock` command; `--@rules_venvstacks//settings:stale_lock=error` makes it
    fail the build, `off` registers no action. No layer action reads its output, so the archive
    and metadata actions keep their keys.

    Args:
      ctx: the layer rule's context (with TOOL_ATTRS and STALE_LOCK_ATTRS).
      info: the layer's VenvstacksLockInfo (its lock exists: the layer rule checked).
      runtime: VenvstacksRuntimeInfo whose execution runtime runs the tool.

    Returns:
      The action's report file (for the `_validation` output group), or None when `off`.
    """
    setting = ctx.attr._stale_lock[BuildSettingInfo].value
    if setting == "off":
        return None
    arguments, files = _input_arguments(info, in_action = True)
    for lower in info.lower:
        lock = _lower_lock_file(info, lower)
        arguments += ["--lower-lock", "%s=%s" % (lower.layer_name, lock.path)]
        files.append(lock)
    report = ctx.actions.declare_file("_%s.lock_check.txt" % ctx.label.name)
    args = ctx.actions.args()
    args.add_all(arguments)
    args.add("--lock-target", _lock_target(info))
    args.add("--lock", info.lock)
    args.add("--stale", "fail" if setting == "error" else "warn")
    args.add("--report", report)
    run_tool(
        ctx,
        runtime = runtime,
        subcommand = "check-lock",
        arguments = args,
        inputs = files + [info.lock],
        outputs = [report],
        mnemonic = "VenvstacksLockCheck",
        progress_message = "Checking that the lock of layer '%s' is fresh %%{label}" % info.layer_name,
        phase = "lock",
    )
    return report

# The `.lock` launchers' first line when the remote execution setting is on (see
# //settings:remote_execution): locking never runs on a remote worker.
_RUNS_LOCALLY = "%s: locking runs on this machine, not on the remote executor: the resolver needs the network to reach the package index, which remote workers do not have; the layers themselves build remotely"

# The attribute of the rules behind `bazel run` lock targets that reads the setting.
_REMOTE_EXECUTION_ATTR = {
    "_remote_execution": attr.label(
        default = Label("//settings:remote_execution"),
        providers = [BuildSettingInfo],
        doc = "Whether the build runs with remote execution (the launcher then says locking stays local).",
    ),
}

# The attributes of the rules that resolve (`.lock`, `stack.lock`; not `.lock_test`, which
# neither runs nor fetches a resolver).
_RESOLVER_ATTRS = {
    "_resolver": attr.label(
        default = Label("//settings:resolver"),
        providers = [BuildSettingInfo],
        doc = "Which resolver `lock` runs: 'pip' or 'uv' (//settings:resolver).",
    ),
    "_uv": attr.label(
        default = Label("//rules_venvstacks/private/lock:uv"),
        allow_files = True,
        doc = "The execution platform's uv binary with the uv resolver, else nothing.",
    ),
}

def _resolver_arguments(ctx):
    """`lock`'s arguments choosing the resolver (unquoted), and the files they need.

    With uv, `_uv` is the execution platform's uv binary (its own repository, fetched only then);
    the tool checks that it can run it and says what to do otherwise.
    """
    if ctx.attr._resolver[BuildSettingInfo].value != "uv":
        return [], []
    uv = ctx.files._uv[0]
    return ["--resolver", "uv", "--uv", uv.short_path], [uv]

def _runs_locally_prelude(ctx):
    """Shell lines that print `_RUNS_LOCALLY` to stderr when remote execution is set, else ""."""
    if not ctx.attr._remote_execution[BuildSettingInfo].value:
        return ""
    shown = str(ctx.label)
    if shown.startswith("@@//"):  # the main repository, as the user types it
        shown = shown[2:]
    return "echo %s >&2\n" % shell_quote(_RUNS_LOCALLY % shown)

def _lock_target(info):
    return info.label + ".lock"

def _output_arguments(info):
    """`lock`'s arguments naming what it writes (unquoted)."""
    lock_dir, _, lock_name = info.lock_path.rpartition("/")
    stem = lock_name.removesuffix(".toml").removesuffix(".pylock").removeprefix("pylock.")
    return [
        "--lock-target",
        _lock_target(info),
        "--output-lock",
        info.lock_path,
        "--output-requirements",
        (lock_dir + "/" if lock_dir else "") + stem + ".requirements.txt",
    ]

def _lock_impl(ctx):
    """Shared by `.lock` (re-resolve and write the lock) and `.lock_test` (check it is fresh)."""
    info = ctx.attr.inputs[VenvstacksLockInfo]
    arguments, files = _lock_arguments(info)
    if ctx.attr._subcommand == "check-lock":
        if info.lock != None:
            files.append(info.lock)
        lock = info.lock.short_path if info.lock != None else info.lock_path
        arguments += [shell_quote(a) for a in ["--lock-target", _lock_target(info), "--lock", lock]]
    else:
        resolver_arguments, resolver_files = _resolver_arguments(ctx)
        arguments += [shell_quote(a) for a in _output_arguments(info) + resolver_arguments]
        files += resolver_files
    resolves = ctx.attr._subcommand == "lock"
    return [tool_launcher(
        ctx,
        runtime = info.runtime_layer.runtime,
        phase = "lock",
        subcommand = ctx.attr._subcommand,
        arguments = arguments,
        extra_runfiles = files,
        prelude = _runs_locally_prelude(ctx) if resolves else "",
        tool_tree = lock_tool_tree(ctx, info.runtime_layer.runtime) if resolves else None,
    )]

def _lock_attrs(subcommand):
    attrs = dict(TOOL_ATTRS, **dict(_REMOTE_EXECUTION_ATTR, **{
        "inputs": attr.label(mandatory = True, providers = [VenvstacksLockInfo], doc = "The layer's lock inputs."),
        "_subcommand": attr.string(default = subcommand),
    }))
    if subcommand == "lock":
        attrs.update(_RESOLVER_ATTRS)
    return attrs

venvstacks_lock = rule(
    implementation = _lock_impl,
    doc = "`bazel run` target that re-resolves a layer's requirements into its lock, in the source tree.",
    executable = True,
    attrs = _lock_attrs("lock"),
)

venvstacks_lock_test = rule(
    implementation = _lock_impl,
    doc = "Test that fails, with the command to run, when a layer's lock is stale against its inputs.",
    test = True,
    attrs = _lock_attrs("check-lock"),
)

def _lower_first(info):
    """`info`'s frameworks and itself, each after the frameworks it sits on.

    `info.lower` is the C3 linearization of the layer's frameworks (see `_check_stack`): each
    framework before every framework it sits on. Reversed, it is an order in which every lower
    lock is written before the locks that read it.
    """
    return list(reversed(info.lower)) + [info]

def _lock_all_impl(ctx):
    ordered = []
    seen = {}
    for info in [target[VenvstacksLockInfo] for target in ctx.attr.layers]:
        for layer in _lower_first(info):
            if layer.label not in seen:
                seen[layer.label] = True
                ordered.append(layer)

    # One tool process locks every layer (`lock-stack`, lock/lock_stack.py), each as soon as the
    # layers below it are locked, from this plan. A layer's arguments are its `.lock` target's;
    # its lower locks are named by their path in the source tree, where the command writes them
    # before it reads them, so they need not exist when the target is analyzed.
    resolver_arguments, files = _resolver_arguments(ctx)
    layers = []
    for info in ordered:
        arguments, read = _input_arguments(info, in_action = False)
        arguments += _output_arguments(info) + resolver_arguments
        check_no_credentials(ctx, arguments)
        files += read
        layers.append({
            # keep the field names in sync with lock_stack.py
            "arguments": arguments,
            "layer": info.layer_name,
            "lower_locks": [[lower.layer_name, lower.lock_path] for lower in info.lower],
        })
    plan = ctx.actions.declare_file(ctx.label.name + ".plan.json")
    ctx.actions.write(plan, json.encode_indent({"layers": layers}, indent = "  ") + "\n")
    runtime = ordered[0].runtime_layer.runtime
    return [tool_launcher(
        ctx,
        runtime = runtime,
        phase = "lock",
        subcommand = "lock-stack",
        arguments = [shell_quote(a) for a in ["--plan", plan.short_path]],
        extra_runfiles = files + [plan],
        prelude = _runs_locally_prelude(ctx),
        tool_tree = lock_tool_tree(ctx, runtime),
    )]

venvstacks_lock_all = rule(
    implementation = _lock_all_impl,
    doc = "`bazel run` target that locks every layer of a stack in one tool process, each layer as soon as the layers below it are locked (`layer_stack`'s `NAME.lock`).",
    executable = True,
    attrs = dict(TOOL_ATTRS, **dict(_REMOTE_EXECUTION_ATTR, **dict(_RESOLVER_ATTRS, **{
        "layers": attr.label_list(
            mandatory = True,
            providers = [VenvstacksLockInfo],
            cfg = lock_only_transition,
            doc = "The top layers, as the user wrote them (a typo is named as written), analysed in the lock-only configuration, where each gives its lock inputs and reaches no wheel.",
        ),
    }))),
)
