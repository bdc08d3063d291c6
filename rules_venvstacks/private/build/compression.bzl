"""The archive compression setting that every layer archive action reads (`//settings:compression`)."""

load("@bazel_skylib//rules:common_settings.bzl", "BuildSettingInfo")

COMPRESSION_ATTRS = {
    "_compression": attr.label(
        default = Label("//settings:compression"),
        providers = [BuildSettingInfo],
        doc = "The build-wide compression setting (`--@rules_venvstacks//settings:compression`).",
    ),
}

def add_compression_arg(ctx, args):
    """Adds the tool's `--compression` argument from the build-wide setting.

    Args:
      ctx: the context of a rule with COMPRESSION_ATTRS.
      args: the action's Args.
    """
    args.add("--compression", ctx.attr._compression[BuildSettingInfo].value)
