"""`exec_file`: one file built for the execution platform, for a target in the target configuration.

The `.lock` targets choose uv by //settings:resolver in their own configuration (where the flag
is certainly set) and take the binary of the platform that runs them: the flag is read on this
side of the exec transition, the platform on the other.
"""

def _exec_file_impl(ctx):
    return [DefaultInfo(files = depset([ctx.file.src]))]

exec_file = rule(
    implementation = _exec_file_impl,
    doc = "Gives `src`, configured for the execution platform.",
    attrs = {
        "src": attr.label(mandatory = True, allow_single_file = True, cfg = "exec", doc = "The file, built for the execution platform."),
    },
)
