"""`stack_test`: a team's own tests (pytest files, or a script) run inside the stack that ships.

The test deploys the tested layer's stack, and the stacks of its `test_tools` layers, into its
temporary directory (the union of the stacks, each layer once: common/stack_layers.bzl), then
starts the tool's bootstrap (tools/venvstacks_tool/deploy/stack_test_runner.py) with the tested
layer's own `bin/python`, which sets up sys.path (the layer's own, then the test tools' site
directories, then the `deps`' import roots) and runs pytest or `main`.
"""

load("@platforms//host:constraints.bzl", "HOST_CONSTRAINTS")
load("@rules_python//python:defs.bzl", "PyInfo")
load("//rules_venvstacks/private/common:providers.bzl", "VenvstacksLayerInfo")
load("//rules_venvstacks/private/common:stack_layers.bzl", "stack_archives")
load("//rules_venvstacks/private/common:tool.bzl", "TOOL_ATTRS", "shell_quote", "tool_launcher")

# pytest finds these itself (conftest.py files along the path to each test file, packages by
# their __init__.py); given as test files they would be collected as test modules too.
_NOT_TEST_FILES = ("conftest.py", "__init__.py")

def _layer_of(ctx, target, attribute, kinds, expected):
    """The VenvstacksLayerInfo of `target`, failing (naming it) when it is not a layer of `kinds`."""
    info = target[VenvstacksLayerInfo] if VenvstacksLayerInfo in target else None
    if info == None or info.kind not in kinds:
        got = "a %s layer" % info.kind if info else "not a layer (no VenvstacksLayerInfo)"
        fail("%s: `%s` takes %s; %s is %s" % (ctx.label, attribute, expected, target.label, got))
    return info

def _runtime_label(layer):
    # A framework's or application's lower layers start with its runtime layer (deployment order).
    return layer.lower_layers[0].label

def _cwd_relative(ctx, runfiles_path):
    """A path below the runfiles root, relative to the main repository's runfiles directory (the test's cwd)."""
    repo, _, rest = runfiles_path.partition("/")
    if repo == ctx.workspace_name:
        return rest or "."
    return "../" + runfiles_path

def _import_roots(ctx):
    """The `deps`' sys.path entries, relative to the test's cwd, each once.

    Their `imports` roots, then the root of each repository holding one of their sources (as
    `py_binary` puts every repository's root on sys.path, so `import pkg.module` finds a library
    without `imports`).
    """
    roots = []
    repositories = []
    for dep in ctx.attr.deps:
        info = dep[PyInfo]
        roots += [_cwd_relative(ctx, entry) for entry in info.imports.to_list()]
        for source in info.transitive_sources.to_list():
            path = source.short_path
            repositories.append("../" + path[3:].partition("/")[0] if path.startswith("../") else ".")
    unique = {}
    for root in roots + repositories:
        unique[root] = True
    return unique.keys()

def _stack_test_impl(ctx):
    layer = _layer_of(ctx, ctx.attr.layer, "layer", ("application", "framework"), "an application_layer or framework_layer target")
    tools = [_layer_of(ctx, target, "test_tools", ("framework",), "framework_layer targets") for target in ctx.attr.test_tools]
    for tool in tools:
        if _runtime_label(tool) != _runtime_label(layer):
            fail("%s: test_tools layer %s is on runtime %s, but %s is on %s; test tools must share the tested layer's runtime" % (
                ctx.label,
                tool.label,
                _runtime_label(tool),
                layer.label,
                _runtime_label(layer),
            ))
    test_files = [f for f in ctx.files.srcs if f.basename not in _NOT_TEST_FILES]
    if not ctx.file.main and not test_files:
        fail("%s: no test to run: give `srcs` test files for pytest (besides conftest.py and __init__.py), or a `main` script" % ctx.label)

    arguments, files = stack_archives(ctx.label, [layer] + tools)
    command = ["\"$dest\"/%s/bin/python" % shell_quote(layer.layer_name), shell_quote(ctx.file._runner.short_path)]
    for tool in tools:
        command += ["--tools-layer", "\"$dest\"/" + shell_quote(tool.layer_name)]
    for root in _import_roots(ctx):
        command += ["--import-root", shell_quote(root)]
    if ctx.file.config:
        command += ["--config", shell_quote(ctx.file.config.short_path)]
    if ctx.file.main:
        command += ["--main", shell_quote(ctx.file.main.short_path)]
    else:
        for test_file in test_files:
            command += ["--test-file", shell_quote(test_file.short_path)]

    # The test's own arguments (`args`, `--test_arg`) go to pytest or `main`, not to the deploy.
    prelude = """\
dest="${TEST_TMPDIR:-$(mktemp -d)}/deployed"
test_args=("$@")
set -- --dest "$dest"
"""
    epilogue = """\
exec {command} -- ${{test_args[@]+"${{test_args[@]}}"}}
""".format(command = " ".join(command))
    launcher = tool_launcher(ctx, layer.runtime, "deploy", "deploy", arguments, files, prelude = prelude, epilogue = epilogue)

    runfiles = ctx.runfiles(files = ctx.files.srcs + ctx.files.data + ctx.files.main + ctx.files.config + [ctx.file._runner])
    runfiles = runfiles.merge_all(
        [launcher.default_runfiles] +
        [ctx.runfiles(transitive_files = dep[PyInfo].transitive_sources) for dep in ctx.attr.deps] +
        [target[DefaultInfo].default_runfiles for target in ctx.attr.deps + ctx.attr.data],
    )

    # The launcher's one file is its script (a DefaultInfo built here has no files_to_run yet).
    return [DefaultInfo(executable = launcher.files.to_list()[0], files = launcher.files, runfiles = runfiles)]

_stack_test = rule(
    implementation = _stack_test_impl,
    doc = "The rule behind the `stack_test` macro (which makes it host-only); see `stack_test`.",
    test = True,
    attrs = dict(TOOL_ATTRS, **{
        "config": attr.label(allow_single_file = True, doc = "pytest's configuration file (`pytest.ini`, `pyproject.toml`, `tox.ini` or `setup.cfg`), given to pytest with `-c`; without it pytest reads none (`-c /dev/null`), rather than one it would find above the runfiles."),
        "data": attr.label_list(allow_files = True, doc = "Test data, in the runfiles at their workspace paths (the test's working directory is the main repository's runfiles directory)."),
        "deps": attr.label_list(providers = [PyInfo], doc = "Test helper libraries (`py_library`, or any target with `PyInfo`): their import roots go on sys.path after the layer's and the test tools' paths, so the shipped copy of a first-party module wins over its copy in the runfiles."),
        "layer": attr.label(mandatory = True, doc = "The application_layer or framework_layer target whose deployed interpreter runs the tests."),
        "main": attr.label(allow_single_file = [".py"], doc = "A plain script run as `__main__` instead of pytest, with the test's `args`; its exit status is the test's."),
        "srcs": attr.label_list(allow_files = [".py"], doc = "The test files pytest runs (conftest.py and __init__.py files are found by pytest, not run as tests)."),
        "test_tools": attr.label_list(doc = "framework_layer targets on the tested layer's runtime whose site-packages (and the lower layers' they sit on) are appended to the tested layer's sys.path: where pytest and its plugins come from, so the shipped layer carries no test tooling."),
        "_runner": attr.label(
            default = Label("//tools:venvstacks_tool/deploy/stack_test_runner.py"),
            allow_single_file = True,
            doc = "The bootstrap the tested layer's interpreter runs.",
        ),
    }),
)

def stack_test(name, layer, srcs = [], deps = [], data = [], main = None, test_tools = [], config = None, **kwargs):
    """Runs a team's own tests (pytest files, or a script) inside the deployed stack of a layer.

    `bazel test` deploys the stack of `layer` (and of each `test_tools` layer) into the test's
    temporary directory, then runs the tests with the deployed `layer`'s own `bin/python`, from the
    main repository's runfiles directory (so `data` files are at their workspace paths). The
    first-party code the tests import is the layer's shipped copy, never the source tree's:
    sys.path is the layer's own (its site-packages, its frameworks', the runtime's), then the
    `test_tools` layers' site directories (added with `site.addsitedir`, so their `.pth` files
    run), then the `deps`' import roots; the test files' own directories are never on it.

    Without `main`, pytest runs on the `srcs` with `--import-mode=importlib` (pytest's default
    `prepend` mode would put the test files' directories first on sys.path), without its cache
    (nothing is written into the runfiles), with the runfiles directory as its rootdir and
    `config` as its configuration file (or none), then the test's `args`. pytest comes from the
    tested layer or a `test_tools` layer; with neither, the test fails saying so. A failing test
    fails `bazel test`, and its output is in the test log.

    `stack_test` is a macro around a test rule, as the layers' `.test` targets are: it makes the
    test host-only (`target_compatible_with` this machine's platform), since it runs the stack's
    interpreters, so under `--platforms` for another machine it is skipped as incompatible. The
    test runs in the tool's fixed environment (`PYTHONHASHSEED=0`, `PYTHONDONTWRITEBYTECODE=1`,
    `PYTHONUTF8=1`, `LC_ALL=C.UTF-8`) besides Bazel's test variables.

    Args:
      name: the test's name.
      layer: an application_layer or framework_layer target. Any other target (a runtime layer,
        a py_library) fails at analysis naming it.
      srcs: the test files (`.py`) pytest runs; conftest.py and __init__.py files go here too
        (pytest finds them; they are not given as test files). With `main`, only in the runfiles.
      deps: test helper `py_library` targets (anything with `PyInfo`): their `imports` roots and
        the root of each repository holding their sources (as `py_binary` has them) are
        appended to sys.path after the layer's and the test tools' paths, so the shipped copy of
        any first-party module wins over a copy in the runfiles.
      data: test data files and targets, in the runfiles.
      main: a plain `.py` script run as `__main__` instead of pytest, with `args` as its
        `sys.argv[1:]`; its exit status is the test's.
      test_tools: framework_layer targets on the tested layer's runtime, deployed beside it, whose
        site-packages (and those of the lower layers they sit on, when the tested layer does not
        have them) are appended to sys.path: where pytest comes from. A layer on another runtime
        fails at analysis naming both runtimes.
      config: pytest's configuration file (`pytest.ini`, `pyproject.toml`, `tox.ini`,
        `setup.cfg`), given with `-c`. Without it pytest reads no configuration file: the one it
        would look for in the directories above the test files could be outside the runfiles.
      **kwargs: test attributes (`args`: pytest's or the script's arguments, `size`, `tags`,
        `timeout`, `visibility`, `target_compatible_with`, ...).
    """

    # Label(): the constraints resolve in this module's repository mapping, not the caller's.
    host_only = [Label(constraint) for constraint in HOST_CONSTRAINTS]
    _stack_test(
        name = name,
        layer = layer,
        srcs = srcs,
        deps = deps,
        data = data,
        main = main,
        test_tools = test_tools,
        config = config,
        target_compatible_with = kwargs.pop("target_compatible_with", []) + host_only,
        **kwargs
    )
