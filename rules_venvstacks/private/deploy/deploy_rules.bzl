"""Rules behind `<layer>.deploy` (bazel run: unpack a stack into a directory) and `<layer>.test`."""

load("//rules_venvstacks/private/common:platforms.bzl", "platform_name")
load("//rules_venvstacks/private/common:providers.bzl", "VenvstacksAbsentLayerInfo", "VenvstacksLayerInfo")
load("//rules_venvstacks/private/common:stack_layers.bzl", "present_layers", "stack_archives")
load("//rules_venvstacks/private/common:tool.bzl", "TOOL_ATTRS", "shell_quote", "tool_launcher", "tool_runtime")
load(":run.bzl", "RUN_ATTRS", "is_host_platform")

def _check_deploys_here(ctx, tops):
    """Fails at analysis when the layers are built for another platform than this machine's.

    Deploying runs each layer's `postinstall.py` with its own runtime, here: a stack of another
    platform is deployed on a machine of that platform, from its archives.
    """
    runtime = tops[0].runtime
    if runtime.unavailable:
        fail("%s: %s" % (ctx.label, runtime.unavailable))
    if not is_host_platform(ctx):
        fail("%s: the stack is built for %s, but `.deploy` unpacks and post-installs it on this machine (%s); deploy the archives of `bazel build %s` on a %s machine, or build for this one (no `--platforms`)" % (
            ctx.label,
            platform_name(runtime.platform_triple),
            platform_name(tool_runtime(runtime).platform_triple),
            " ".join([str(top.label) for top in tops]),
            platform_name(runtime.platform_triple),
        ))

def _deploy_impl(ctx):
    tops = present_layers(ctx.attr.layers)
    if not tops:
        fail("%s: every layer of the stack is narrowed by `platforms` to other platforms than the target platform; build for one of theirs (`--platforms`)" % ctx.label)
    _check_deploys_here(ctx, tops)
    arguments, files = stack_archives(ctx.label, tops)
    what = "the stack of '%s'" % tops[0].layer_name if len(tops) == 1 else "every layer of the stacks of %s" % ", ".join(["'%s'" % top.layer_name for top in tops])
    prelude = """\
if [[ $# -lt 1 ]]; then
  echo "usage: bazel run {label} -- DIR [--force]   (unpacks {what} into DIR and post-installs it;" >&2
  echo "       layers already deployed in DIR from the same archive are skipped unless --force)" >&2
  exit 2
fi
dest=$1
shift
case $dest in /*) ;; *) dest="${{BUILD_WORKING_DIRECTORY:-$PWD}}/$dest" ;; esac
set -- --dest "$dest" "$@"
""".format(label = ctx.label, what = what)
    return [tool_launcher(ctx, tops[0].runtime, "deploy", "deploy", arguments, files, prelude = prelude)]

venvstacks_deploy = rule(
    implementation = _deploy_impl,
    doc = """`bazel run <layer>.deploy -- DIR` (or `<stack>.deploy`): unpacks the layers and every layer below them into DIR.

Each archive is checked against its layer's metadata (sha256, size, layer name) first, then
unpacked beside DIR's other layers and finished by its `postinstall.py`, runtime first; a layer
replaces an earlier deployment of itself only once it is whole. A layer shared by several of the
given layers is deployed once. A layer already deployed in DIR from the same archive is skipped
(`-- DIR --force` unpacks it again). For a stack built for another platform than this machine's
(`--platforms`), analysis fails naming both platforms.
""",
    executable = True,
    attrs = dict(TOOL_ATTRS, **dict(RUN_ATTRS, **{
        "layers": attr.label_list(
            mandatory = True,
            allow_empty = False,
            providers = [[VenvstacksLayerInfo], [VenvstacksAbsentLayerInfo]],
            doc = "The top layers of the stack(s): one for a layer's `.deploy`, a `layer_stack`'s layers' `NAME.in_stack` for its `.deploy` (a layer narrowed to other platforms by `platforms` is left out).",
        ),
    })),
)

def _test_impl(ctx):
    layer = ctx.attr.layer[VenvstacksLayerInfo]
    arguments, files = stack_archives(ctx.label, [layer])
    python = "\"$dest\"/%s/bin/python" % layer.layer_name
    if ctx.file.script:
        files.append(ctx.file.script)
        command = "%s %s" % (python, shell_quote(ctx.file.script.short_path))
    elif layer.launch_module:
        command = "%s -m %s" % (python, shell_quote(layer.launch_module))
    else:
        fail("%s: %s has no launch_module; give `script`" % (ctx.label, layer.label))
    prelude = """\
dest="${TEST_TMPDIR:-$(mktemp -d)}/deployed"
set -- --dest "$dest"
"""
    epilogue = """\
echo "venvstacks test: running {command}" >&2
{command}
""".format(command = command)
    return [tool_launcher(ctx, layer.runtime, "deploy", "deploy", arguments, files, prelude = prelude, epilogue = epilogue)]

venvstacks_test = rule(
    implementation = _test_impl,
    doc = "Deploys a layer's stack into a temporary directory and runs its launch module (or `script`).",
    test = True,
    attrs = dict(TOOL_ATTRS, **{
        "layer": attr.label(mandatory = True, providers = [VenvstacksLayerInfo], doc = "The layer to test."),
        "script": attr.label(allow_single_file = [".py"], doc = "A check script run with the layer's interpreter instead of the launch module."),
    }),
)
