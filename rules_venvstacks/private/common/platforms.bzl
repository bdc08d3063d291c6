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

# The releases a runtime's `glibc_minimum` and `macos_minimum` may name (docs/runtimes.md,
# "Raising the glibc or macOS floor"): glibc 2.17 (PBS' own floor) to the newest glibc released
# when this was last raised (one each February and August); macOS 10.9 to 10.15, then the majors
# Apple has released (11 to 15, then 26: the year-based numbering). Raise them with each release.
# A value outside names no release ("2.99"): refused when the module extension runs.
GLIBC_MINORS = struct(oldest = 17, newest = 44)
MACOS_10_MINORS = struct(oldest = 9, newest = 15)
MACOS_MAJORS = [11, 12, 13, 14, 15, 26]

def wheel_floor_problem(attribute, value):
    """Why `value` (MAJOR.MINOR digits, e.g. "2.28", "12.0") names no known release, or "" when it names one.

    Args:
      attribute: "glibc_minimum" or "macos_minimum", which says whose releases.
      value: the attribute's value, already checked to be two dot-separated numbers.

    Returns:
      "" or a phrase naming the attribute, the value and the releases it may name.
    """
    major, minor = [int(part) for part in value.split(".")]
    if attribute == "glibc_minimum":
        if major == 2 and minor >= GLIBC_MINORS.oldest and minor <= GLIBC_MINORS.newest:
            return ""
        return "glibc_minimum = '%s' is not a glibc release rules_venvstacks knows; give one from 2.%d (PBS' floor) to 2.%d" % (
            value,
            GLIBC_MINORS.oldest,
            GLIBC_MINORS.newest,
        )
    if (major == 10 and minor >= MACOS_10_MINORS.oldest and minor <= MACOS_10_MINORS.newest) or major in MACOS_MAJORS:
        return ""
    return "macos_minimum = '%s' is not a macOS release rules_venvstacks knows; give 10.%d to 10.%d, or MAJOR.MINOR with MAJOR one of %s" % (
        value,
        MACOS_10_MINORS.oldest,
        MACOS_10_MINORS.newest,
        ", ".join([str(major) for major in MACOS_MAJORS]),
    )

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
    wheel_floor_problem = wheel_floor_problem,
)
