"""How actions and `bazel run`/`bazel test` targets run the venvstacks tool.

Always on a fetched PBS interpreter started with `-I` (no PYTHONPATH, no user site, no script
directory on sys.path) and an explicit environment, so nothing from the host's Python leaks in.
The interpreter is the execution platform's runtime (`exec_runtime` of the runtime's hub), never
the target's: a Windows layer builds on Linux with Linux's CPython of the same X.Y.
"""

# Attributes every rule that runs the tool adds (private: users never set them).
TOOL_ATTRS = {
    "_tool_entry": attr.label(
        default = Label("//tools:bin/venvstacks_tool.py"),
        allow_single_file = True,
        doc = "The tool's entry script.",
    ),
    "_tool_build_sources": attr.label(
        default = Label("//tools:venvstacks_tool_build"),
        doc = "The modules build actions import: an edit elsewhere does not rebuild layers.",
    ),
    "_tool_deploy_sources": attr.label(
        default = Label("//tools:venvstacks_tool_deploy"),
        doc = "The modules `.deploy` and `.test` targets import.",
    ),
    "_tool_image_sources": attr.label(
        default = Label("//tools:venvstacks_tool_image"),
        doc = "The modules image actions import (image layers, image layouts).",
    ),
    "_tool_lock_sources": attr.label(
        default = Label("//tools:venvstacks_tool_lock"),
        doc = "The modules `.lock` and `.lock_test` targets import.",
    ),
}

# The environment of every tool process: fixed, never inherited.
TOOL_ENV = {
    "LC_ALL": "C.UTF-8",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONHASHSEED": "0",
    "PYTHONUTF8": "1",
}

def _parent(path):
    return path.rpartition("/")[0]

def tool_runtime(runtime):
    """The runtime whose interpreter runs the tool for `runtime` (its execution platform's)."""
    return runtime.exec_runtime or runtime

def tool_site_path(runtime, phase = "build", extra_zips = []):
    """Execroot-relative sys.path entries of the tool's wheels (for actions; "lock" adds the resolver's), then `extra_zips`'."""
    runtime = tool_runtime(runtime)
    zips = runtime.tool_zips + (runtime.lock_zips if phase == "lock" else []) + extra_zips
    return ":".join([_parent(runtime.tool_site_marker.dirname)] + [wheel.path for wheel in zips])

def tool_site_runfiles_path(runtime, phase):
    """Runfiles-relative sys.path entries of the tool's wheels, for run and test targets.

    Args:
      runtime: VenvstacksRuntimeInfo whose execution runtime runs the tool.
      phase: "lock" (with the resolver's wheels) or "deploy".

    Returns:
      The entries joined with ":".
    """
    runtime = tool_runtime(runtime)
    site = _parent(_parent(runtime.tool_site_marker.short_path))
    zips = runtime.tool_zips + (runtime.lock_zips if phase == "lock" else [])
    return ":".join([site] + [wheel.short_path for wheel in zips])

def tool_inputs(ctx, runtime, phase = "build"):
    """The files the tool needs on `runtime` for one phase.

    Args:
      ctx: the rule context (with TOOL_ATTRS).
      runtime: VenvstacksRuntimeInfo whose interpreter runs the tool.
      phase: "build" or "image" for build actions, "lock" or "deploy" for run and test targets: only that
        phase's modules (and, for "lock", the resolver's wheels), so an action key or a cached
        test result does not depend on the other phases' code.

    Returns:
      A depset of File.
    """
    runtime = tool_runtime(runtime)
    sources = {
        "build": ctx.attr._tool_build_sources,
        "deploy": ctx.attr._tool_deploy_sources,
        "image": ctx.attr._tool_image_sources,
        "lock": ctx.attr._tool_lock_sources,
    }[phase]
    zips = runtime.tool_zips + (runtime.lock_zips if phase == "lock" else [])
    return depset(transitive = [
        runtime.files,
        runtime.tool_site,
        sources[DefaultInfo].files,
        depset([ctx.file._tool_entry, runtime.interpreter] + zips),
    ])

def run_tool(ctx, runtime, subcommand, arguments, inputs, outputs, mnemonic, progress_message, resource_set = None, phase = "build", extra_zips = [], execution_requirements = None):
    """Registers an action that runs `venvstacks_tool SUBCOMMAND @params` on `runtime`.

    Args:
      ctx: the rule context (with TOOL_ATTRS).
      runtime: VenvstacksRuntimeInfo whose interpreter runs the tool.
      subcommand: the tool's subcommand, e.g. "pack-runtime".
      arguments: an Args object with the subcommand's arguments (passed in a params file).
      inputs: list or depset of File the subcommand reads.
      outputs: list of File it writes.
      mnemonic: the action's mnemonic.
      progress_message: the action's progress message.
      resource_set: None (Bazel's default: 1 CPU, 250 MB), or a top-level function
        `(os, inputs_size) -> {"cpu": N, "memory": MB}` telling Bazel's local scheduler what
        the action needs (`ctx.actions.run(resource_set = ...)`, Bazel 7).
      phase: whose modules the action imports: "build" (default), "image" for image layers
        and layouts, or "lock" for the stale-lock validation action that runs `check-lock`
        (lock_rules.bzl `stale_lock_validation`).
      extra_zips: list of File: pure-Python wheels of the execution runtime that this action
        alone needs (the loader check's `loader_zips`), put on sys.path after the tool's own.
      execution_requirements: None, or the action's execution requirements (e.g. `no-remote-exec`).
    """
    arguments.use_param_file("@%s", use_always = True)
    arguments.set_param_file_format("multiline")
    prefix = ctx.actions.args()
    prefix.add("-I")
    prefix.add(ctx.file._tool_entry)
    prefix.add(subcommand)
    extra = depset(extra_zips, transitive = [inputs if type(inputs) == "depset" else depset(inputs)])
    ctx.actions.run(
        executable = tool_runtime(runtime).interpreter,
        arguments = [prefix, arguments],
        inputs = depset(transitive = [extra, tool_inputs(ctx, runtime, phase)]),
        outputs = outputs,
        mnemonic = mnemonic,
        progress_message = progress_message,
        use_default_shell_env = False,
        env = dict(TOOL_ENV, VENVSTACKS_TOOL_PATH = tool_site_path(runtime, phase, extra_zips)),
        resource_set = resource_set,
        execution_requirements = execution_requirements,
    )

def tool_launcher(ctx, runtime, phase, subcommand, arguments, extra_runfiles, prelude = "", epilogue = "", tool_tree = None):
    """Writes an executable script that runs the tool from runfiles; returns DefaultInfo.

    For `bazel run` and `bazel test` targets. The script starts in the runfiles directory of
    the main repository (Bazel's convention for both), where every `short_path` resolves.

    Args:
      ctx: the rule context (with TOOL_ATTRS).
      runtime: VenvstacksRuntimeInfo whose interpreter runs the tool.
      phase: "lock" or "deploy": which of the tool's packages the target carries.
      subcommand: the tool's subcommand.
      arguments: list of strings, already runfiles-relative where they are paths and quoted for
        the shell.
      extra_runfiles: list of File the subcommand reads.
      prelude: shell lines run before the tool (may set variables used by `arguments`).
      epilogue: shell lines run after the tool succeeds, in the caller's environment (the tool's
        own is given to the tool alone); when empty the tool replaces the shell.
      tool_tree: None, or the byte-compiled tool of `lock_tool_tree`, whose entry script then
        runs (its directory first on sys.path: the tool and the wheels it holds come from there).

    Returns:
      DefaultInfo with the script as executable and its runfiles.
    """
    command = _tool_command(ctx, runtime, subcommand, arguments, tool_tree)
    body = "%s\n%s %s%s \"$@\"\n%s" % (prelude, _tool_env_assignments(runtime, phase), "" if epilogue else "exec ", command, epilogue)
    return _launcher(ctx, runtime, phase, body, extra_runfiles + ([tool_tree] if tool_tree else []))

# The pure-Python wheels that the lock process imports itself, unpacked and compiled into its tool
# tree; pip stays a zip on sys.path, as only the pip resolver's children import it.
_TREE_WHEELS = ("packaging-", "tomli-")

def _tree_source_argument(file):
    """`--source` of `lock-tool-tree` for a source file of //tools: its path below that package (its label's name), then its own."""
    return "%s=%s" % (file.owner.name, file.path)

def lock_tool_tree(ctx, runtime):
    """Registers the action that byte-compiles the lock phase's tool once; returns its directory.

    The `.lock` launchers run the tool from it (`tool_launcher`'s `tool_tree`) rather than
    compiling the tool's modules and `packaging` at every start (lock/tool_tree.py says why and
    how it stays deterministic). Only launchers get it: no build action's key depends on it.

    Args:
      ctx: the rule context (with TOOL_ATTRS).
      runtime: VenvstacksRuntimeInfo whose execution runtime runs the tool (and compiles it).

    Returns:
      The tree artifact (File).
    """
    tree = ctx.actions.declare_directory(ctx.label.name + ".tool")
    args = ctx.actions.args()
    args.add("--output", tree.path)
    args.add_all(depset([ctx.file._tool_entry], transitive = [ctx.attr._tool_lock_sources[DefaultInfo].files]), before_each = "--source", map_each = _tree_source_argument)
    args.add_all([wheel for wheel in tool_runtime(runtime).lock_zips if wheel.basename.startswith(_TREE_WHEELS)], before_each = "--wheel")
    run_tool(
        ctx,
        runtime = runtime,
        subcommand = "lock-tool-tree",
        arguments = args,
        inputs = [],
        outputs = [tree],
        mnemonic = "VenvstacksLockTool",
        progress_message = "Byte-compiling the lock tool %{label}",
        phase = "lock",
        # Locking runs on this machine (with remote execution set too): so does what it runs.
        execution_requirements = {"no-remote-exec": "1"},
    )
    return tree

def tool_shell_command(ctx, runtime, phase, subcommand, arguments):
    """One shell command running the tool from the runfiles directory, its environment on the line.

    For scripts that do more than run the tool (the run launcher): the tool's fixed environment
    is given to the tool alone, not exported to what the script runs next.

    Args:
      ctx: the rule context (with TOOL_ATTRS).
      runtime: VenvstacksRuntimeInfo whose interpreter runs the tool.
      phase: "lock" or "deploy": which of the tool's packages the target carries.
      subcommand: the tool's subcommand.
      arguments: list of strings, runfiles-relative paths, quoted for the shell.

    Returns:
      The command line (the caller's `"$@"` not included).
    """
    return "%s %s" % (_tool_env_assignments(runtime, phase), _tool_command(ctx, runtime, subcommand, arguments))

def _tool_env_assignments(runtime, phase):
    """The tool's fixed environment as assignments put before its command: the tool's alone.

    Never exported by a launcher: what a script runs after the tool (a `.test`'s application, a
    `stack_test`'s tests, a `bazel run` application) starts with the caller's environment.
    """
    env = dict(TOOL_ENV, VENVSTACKS_TOOL_PATH = tool_site_runfiles_path(runtime, phase))
    return " ".join(["%s=%s" % (key, shell_quote(value)) for key, value in sorted(env.items())])

# Characters of a URL scheme (RFC 3986), and those that end an authority in a quoted argument.
_SCHEME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-."
_AUTHORITY_END = "/?#'\" \t\n"

def _url_with_credentials(text):
    """The first URL in `text` that carries credentials, with them masked (`https://***@host/...`), or "".

    Credentials are a `user:password@` part, or any `user@` of an http(s) URL (`https://TOKEN@host`,
    `git+https://...`): a token alone is a secret too. `git+ssh://git@host` names no secret and passes.
    """
    rest = text
    for _ in range(len(text)):
        index = rest.find("://")
        if index < 0:
            return ""
        start = index
        for _ in range(index):
            if rest[start - 1] not in _SCHEME_CHARS:
                break
            start -= 1
        scheme = rest[start:index].lower()
        after = rest[index + 3:]
        end = len(after)
        for position in range(len(after)):
            if after[position] in _AUTHORITY_END:
                end = position
                break
        userinfo, at, host = after[:end].rpartition("@")
        if at and (":" in userinfo or scheme.endswith("http") or scheme.endswith("https")):
            return "%s://***@%s%s" % (scheme, host, after[end:].partition("'")[0])
        rest = after
    return ""

def check_no_credentials(ctx, arguments):
    """Fails, naming the target and the URL (masked), when an argument of a run or test target carries credentials.

    Its script and the files beside it are kept in bazel-bin, and its command line is in every
    process listing: a credential given in a BUILD file (an index URL's `user:password@`) would
    be kept and shown.

    Args:
      ctx: the rule context.
      arguments: list of strings (quoted for the shell or not).
    """
    for argument in arguments:
        masked = _url_with_credentials(argument)
        if masked:
            fail("%s: the URL %s carries credentials, which a `bazel run`/`bazel test` script would keep in bazel-bin and show in the process list; put them in ~/.netrc, which pip reads for the host (docs/locking.md, Credentials), and give the URL without them" % (ctx.label, masked))

def _tool_command(ctx, runtime, subcommand, arguments, tool_tree = None):
    check_no_credentials(ctx, arguments)
    entry = tool_tree.short_path + "/bin/venvstacks_tool.py" if tool_tree else ctx.file._tool_entry.short_path
    return "%s -I %s %s %s" % (
        shell_quote(tool_runtime(runtime).interpreter.short_path),
        shell_quote(entry),
        subcommand,
        " ".join(arguments),
    )

def _launcher(ctx, runtime, phase, body, extra_runfiles):
    script = ctx.actions.declare_file(ctx.label.name + ".sh")
    ctx.actions.write(
        output = script,
        is_executable = True,
        content = """#!/usr/bin/env bash
# Generated by rules_venvstacks for {label}.
set -euo pipefail
if [[ -d "$0.runfiles/_main" ]]; then cd "$0.runfiles/_main"; fi
{body}""".format(
            label = ctx.label,
            body = body,
        ),
    )
    runfiles = ctx.runfiles(files = extra_runfiles, transitive_files = tool_inputs(ctx, runtime, phase))
    return DefaultInfo(executable = script, files = depset([script]), runfiles = runfiles)

def shell_quote(value):
    """Quotes `value` for a POSIX shell."""
    return "'" + value.replace("'", "'\\''") + "'"
