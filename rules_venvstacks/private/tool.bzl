"""How actions run the venvstacks tool: on a fetched PBS interpreter, isolated from the host."""

# Attributes every rule that runs the tool adds (private: users never set them).
TOOL_ATTRS = {
    "_tool_entry": attr.label(
        default = Label("//tools:bin/venvstacks_tool.py"),
        allow_single_file = True,
        doc = "The tool's entry script.",
    ),
    "_tool_sources": attr.label(
        default = Label("//tools:venvstacks_tool"),
        doc = "The tool's Python package.",
    ),
}

def run_tool(ctx, runtime, subcommand, arguments, inputs, outputs, mnemonic, progress_message):
    """Registers an action that runs `venvstacks_tool SUBCOMMAND @params` on `runtime`.

    The interpreter starts with `-I` (no PYTHONPATH, no user site, no script directory on
    sys.path) and an explicit environment, so nothing from the host leaks in; the action's
    arguments go through a params file.

    Args:
      ctx: the rule context (with TOOL_ATTRS).
      runtime: VenvstacksRuntimeInfo whose interpreter runs the tool.
      subcommand: the tool's subcommand, e.g. "pack-runtime".
      arguments: an Args object with the subcommand's arguments.
      inputs: list of File the subcommand reads.
      outputs: list of File it writes.
      mnemonic: the action's mnemonic.
      progress_message: the action's progress message.
    """
    arguments.use_param_file("@%s", use_always = True)
    arguments.set_param_file_format("multiline")
    prefix = ctx.actions.args()
    prefix.add("-I")
    prefix.add(ctx.file._tool_entry)
    prefix.add(subcommand)
    ctx.actions.run(
        executable = runtime.interpreter,
        arguments = [prefix, arguments],
        inputs = depset(inputs, transitive = [
            runtime.files,
            runtime.tool_site,
            ctx.attr._tool_sources[DefaultInfo].files,
            depset([ctx.file._tool_entry]),
        ]),
        outputs = outputs,
        mnemonic = mnemonic,
        progress_message = progress_message,
        use_default_shell_env = False,
        env = {
            "LC_ALL": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONHASHSEED": "0",
            "PYTHONUTF8": "1",
            "VENVSTACKS_TOOL_PATH": runtime.tool_site_path,
        },
    )
