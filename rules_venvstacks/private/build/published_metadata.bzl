"""Where a layer's metadata in venvstacks' published schema goes (tools' build/published_metadata.py)."""

# The platform names venvstacks uses, by PBS triple: core/platforms.py `venvstacks_name` derives
# the same names (tests/unit/test_published_metadata.py fails when they differ).
VENVSTACKS_PLATFORM_NAMES = {
    "aarch64-apple-darwin": "macosx_arm64",
    "aarch64-unknown-linux-gnu": "linux_aarch64",
    "x86_64-apple-darwin": "macosx_x86_64",
    "x86_64-pc-windows-msvc": "win_amd64",
    "x86_64-unknown-linux-gnu": "linux_x86_64",
}

def declare_published_metadata(ctx, platform_triple):
    """Declares `__venvstacks__/<platform>/env_metadata/<target name>.json`, venvstacks' own layout.

    Args:
      ctx: the layer rule's context.
      platform_triple: the PBS triple of the layer's target platform.

    Returns:
      The declared File, beside the layer's archive as venvstacks publishes it.
    """
    return ctx.actions.declare_file("__venvstacks__/%s/env_metadata/%s.json" % (
        VENVSTACKS_PLATFORM_NAMES[platform_triple],
        ctx.label.name,
    ))
