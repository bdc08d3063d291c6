"""The target platforms rules_venvstacks builds for: python-build-standalone's five triples.

Keep in sync with tools/venvstacks_tool/core/platforms.py (the same names and triples).
Exported as `platforms_testlib` for the Starlark unit tests.
"""

# Short name (as users write it, and as the `//platforms` targets are named) -> the PBS triple
# and the Bazel constraints of the platform.
PLATFORMS = {
    "linux_aarch64": struct(triple = "aarch64-unknown-linux-gnu", os = "linux", cpu = "aarch64"),
    "linux_x86_64": struct(triple = "x86_64-unknown-linux-gnu", os = "linux", cpu = "x86_64"),
    "macos_arm64": struct(triple = "aarch64-apple-darwin", os = "macos", cpu = "aarch64"),
    "macos_x86_64": struct(triple = "x86_64-apple-darwin", os = "macos", cpu = "x86_64"),
    "windows_x86_64": struct(triple = "x86_64-pc-windows-msvc", os = "windows", cpu = "x86_64"),
}

_NAME_BY_TRIPLE = {entry.triple: name for name, entry in PLATFORMS.items()}

def platform_name(triple):
    """The short name of a PBS triple ("x86_64-pc-windows-msvc" -> "windows_x86_64"), or the triple itself."""
    return _NAME_BY_TRIPLE.get(triple, triple)

def triple_problem(triple):
    """Why `triple` is not the PBS triple of a platform rules_venvstacks builds for, or "" when it is one.

    Args:
      triple: a string read where a PBS triple belongs (a lock file's platforms).

    Returns:
      "" or a phrase that names the known platforms by their short names, each with its triple.
    """
    if triple in _NAME_BY_TRIPLE:
        return ""
    known = ["%s (%s)" % (name, entry.triple) for name, entry in sorted(PLATFORMS.items())]
    return "'%s' is not the triple of a platform rules_venvstacks builds for; known: %s" % (triple, ", ".join(known))

def platforms_problem(values, short_names = False):
    """The first value of a platform list that is unknown or repeated, and why; None when all are fine.

    The one check of a list of platforms on the Starlark side (a runtime's `platforms`, a
    `runtime_archive`'s platform, a lock's triples); tools/venvstacks_tool/core/platforms.py
    `platforms_problem` is the same check, with the same messages, in the tool.

    Args:
      values: PBS triples, or short names (`linux_x86_64`) with `short_names`.
      short_names: whether `values` are short names rather than triples.

    Returns:
      None, or struct(index, message): the offending value's index in `values` and a phrase that
      names platforms by their short names, for the caller to prefix with where the list is.
    """
    seen = {}
    for index, value in enumerate(values):
        if short_names:
            message = "" if value in PLATFORMS else "unknown platform '%s'; known platforms: %s" % (value, ", ".join(sorted(PLATFORMS)))
            name = value
        else:
            message = triple_problem(value)
            name = platform_name(value)
        if not message and name in seen:
            message = "platform %s is listed twice" % name
        if message:
            return struct(index = index, message = message)
        seen[name] = True
    return None

def platform_triples(names, what):
    """The PBS triples of short platform names, in order; fails naming an unknown or repeated one.

    Args:
      names: short names, e.g. ["linux_x86_64", "macos_arm64"].
      what: what declares them, for the error message.

    Returns:
      A list of triples.
    """
    problem = platforms_problem(names, short_names = True)
    if problem:
        fail("%s: %s" % (what, problem.message))
    return [PLATFORMS[name].triple for name in names]

def config_setting_label(name):
    """The label of the config_setting that matches platform `name` (for select())."""
    return Label("//platforms:is_" + name)

def define_platforms(name = "platforms"):
    """Declares, for each platform, `platform(NAME)` and `config_setting(is_NAME)` in the calling package.

    Args:
      name: unused (macros take a name by convention); the targets are named after the platforms.
    """
    for platform, entry in sorted(PLATFORMS.items()):
        constraints = ["@platforms//os:" + entry.os, "@platforms//cpu:" + entry.cpu]
        native.platform(
            name = platform,
            constraint_values = constraints,
            visibility = ["//visibility:public"],
        )
        native.config_setting(
            name = "is_" + platform,
            constraint_values = constraints,
            visibility = ["//visibility:public"],
        )

platforms_testlib = struct(
    platform_name = platform_name,
    platform_triples = platform_triples,
    platforms_problem = platforms_problem,
    triple_problem = triple_problem,
)
