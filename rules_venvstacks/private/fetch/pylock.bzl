"""Reads the platforms, packages and wheels of a `pylock.toml` written by `bazel run <layer>.lock`.

Starlark has no TOML parser, so this reads the fixed, line-oriented form that the tool writes
(tools/venvstacks_tool/lock/pylock.py, whose docstring shows it). Both are held to one text,
tests/golden/pylock.golden.toml, which the writer must reproduce byte for byte
(tests/unit/test_pylock.py) and this reader reads (tests/starlark/pylock_test.bzl):

- `[[packages]]` tables with `name`, `version`, an optional `marker` and a `wheels` array holding
  one inline table per line, each followed by a `[packages.tool.venvstacks.platform-wheels]`
  table of `<triple> = "<wheel file name>"` lines: the wheel each platform installs;
- `platforms = [` in `[tool.venvstacks]`, one quoted triple a line;
- for a package built from its sdist, `sdist = { name, url, hashes }` instead of `wheels`, and a
  `[packages.tool.venvstacks]` table before its platform-wheels with `built-wheel` (the file
  name platform-wheels names) and a `build-wheels` array (its build requirements' wheels); an
  sdist with extension modules has `native = true` instead of `built-wheel`: each platform
  builds its own wheel, the one its platform-wheels line names.

A lock in the older single-platform form (`platform = "<triple>"` in `[tool.venvstacks]`, no
platform-wheels tables) still reads: its platforms are `[platform]` and each package's one wheel
installs on it, so checkouts with such locks still fetch. Any line inside a package table that is
not one of the above fails with the file and line, so a hand edit cannot be silently misread.

Every triple (in `platforms`, `platform` and the platform-wheels tables) must be one of the five
PBS triples of platforms.bzl: an unknown one fails naming the file and line, and messages name
platforms by their short names (`linux_x86_64`), as users write them.

A lock is read as strictly as the tool writes it (as `parse_lock` in lock/pylock.py): every
wheel's sha256 is 64 lowercase hex digits (an empty one would otherwise reach the downloader as "no
checksum"), and a local wheel's `path` stays inside the workspace (the extension fetches it as
`file://<lock dir>/<path>`, so `/etc/...` or `../../..` would read any file of the machine).

A lock is also read whole, by the rules `parse_lock` applies (one case table for both,
tests/golden/lock_edits.json): a key the writer does not write, at any level, fails as an unknown
key at its line; a package (normalized name and version) listed twice fails at its second table;
a `version` that is not the version of its wheels' file names fails at its table's first line.
"""

load("//rules_venvstacks/private/common:names.bzl", "normalized_project_name")
load("//rules_venvstacks/private/common:platforms.bzl", "platform_name", "platforms_problem", "triple_problem")

_PLATFORM_WHEELS_HEADER = "[packages.tool.venvstacks.platform-wheels]"
_PACKAGE_TOOL_HEADER = "[packages.tool.venvstacks]"
_TRIPLE_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"
_EDIT_HINT = "this file is written by `bazel run <layer>.lock`; re-run it instead of editing"
_HEX = "0123456789abcdef"

# The keys the writer writes, per table (keep in sync: tools/venvstacks_tool/lock/pylock.py _KEYS).
_TOP_KEYS = ["lock-version", "created-by", "requires-python", "environments"]
_PACKAGE_KEYS = ["name", "version", "marker", "sdist", "wheels"]
_PACKAGE_TOOL_KEYS = ["built-wheel", "native", "build-wheels"]
_WHEEL_KEYS = ["name", "url", "path", "hashes", "sha256"]
_TOOL_KEYS = ["layer", "kind", "inputs-hash", "lock-version", "launch-module-hash", "support-modules", "python-version", "platform", "platforms", "requirements", "provided"]
_PROVIDED_KEYS = ["name", "version", "layer"]
_SUPPORT_MODULE_KEYS = ["name", "hash"]

def _sha256_error(value):
    """Why `value` is not a lowercase hex sha256, or "" when it is one."""
    if not value:
        return "it is empty"
    if len(value) != 64:
        return "it has %d characters, not 64" % len(value)

    # What is left once the leading hex digits are stripped starts with the first bad character
    # (one builtin call, not a Starlark loop: every wheel of every lock has a sha256).
    rest = value.lstrip(_HEX)
    if rest:
        return "'%s' is not a lowercase hex digit" % rest[0]
    return ""

def lock_depth(package, name):
    """How many directories below its repository's root the lock `package`:`name` lies (a Label's parts)."""
    parts = [part for part in (package + "/" + name).split("/") if part]
    return len(parts) - 1

def _wheel_path_error(path, depth):
    """Why a local wheel's `path` (relative to the lock's directory) points outside the workspace, or "".

    `depth`: how many directories below the workspace root the lock is (`lock_depth`); None when
    unknown, then only an absolute path is refused. Stated once per language:
    tools/venvstacks_tool/lock/pylock.py `wheel_path_error`.
    """
    if not path:
        return "it is empty"

    # A drive (`C:`) or a URL scheme (`file:`) in the first part is as absolute as a leading slash.
    if path.startswith("/") or path.startswith("\\") or ":" in path.replace("\\", "/").partition("/")[0]:
        return "it is absolute"
    level = 0
    for part in path.replace("\\", "/").split("/"):
        if part == "..":
            level -= 1
            if depth != None and level < -depth:
                return "its '..' climb out of the workspace"
        elif part and part != ".":
            level += 1
    return ""

def _string_at(line, start, where):
    """Reads the TOML basic string that opens at `line[start]`; returns (value, end)."""
    if start >= len(line) or line[start] != "\"":
        fail("%s: expected a quoted string" % where)

    # Without a backslash before the next quote (every value the writer writes, but one holding a
    # quote or a backslash), the string is that slice: builtins, not a Starlark loop per character.
    # The module extension reads every lock again on each fresh Bazel server (docs/performance.md, Scale).
    close = line.find("\"", start + 1)
    if close >= 0 and line.find("\\", start + 1, close) < 0:
        return line[start + 1:close], close + 1
    chars = []
    index = start + 1
    for _ in range(len(line)):
        if index >= len(line):
            fail("%s: unterminated string" % where)
        char = line[index]
        if char == "\\":
            chars.append(line[index + 1])
            index += 2
            continue
        if char == "\"":
            return "".join(chars), index + 1
        chars.append(char)
        index += 1
    fail("%s: unterminated string" % where)

def _value(line, key, where, trailer = ""):
    """The string of a `key = "..."` line, which must end right after it (or with `trailer`)."""
    value, end = _string_at(line, len(key) + 3, where)
    if line[end:] != trailer:
        fail("%s: unexpected text after the value of '%s' (%s): %s" % (where, key, _EDIT_HINT, line))
    return value

def _field(line, key, where, required = True):
    """The string value of `key = "..."` in an inline table line ("" when optional and absent)."""
    marker = " " + key + " = \""
    start = line.find(marker)
    if start < 0:
        if required:
            fail("%s: missing '%s' in wheel entry" % (where, key))
        return ""
    value, _ = _string_at(line, start + len(marker) - 1, where)
    return value

def _is_triple(key):
    if not key:
        return False
    for char in key.elems():
        if char not in _TRIPLE_CHARS:
            return False
    return True

def _checked_triple(triple, where):
    """`triple`, read at `where` (file:line), when it names a known platform; fails otherwise."""
    problem = triple_problem(triple)
    if problem:
        fail("%s: %s (%s)" % (where, problem, _EDIT_HINT))
    return triple

def _checked_platforms(triples, wheres):
    """The lock's `triples`, each read at `wheres[i]` (file:line), checked as one list (platforms.bzl)."""
    problem = platforms_problem(triples)
    if problem:
        fail("%s: %s (%s)" % (wheres[problem.index], problem.message, _EDIT_HINT))
    return triples

def _names(triples):
    """The short names of `triples`, for messages: "linux_x86_64, windows_x86_64"."""
    return ", ".join([platform_name(triple) for triple in triples])

def _unexpected(where, table, line):
    fail("%s: unexpected line in a %s table (%s): %s" % (where, table, _EDIT_HINT, line))

def _unknown_key(where, key, table):
    fail("%s: unknown key '%s' in %s (%s)" % (where, key, table, _EDIT_HINT))

# The tables a header may open, by path (`[tool.venvstacks]`: tool, venvstacks; "" ends it), and
# the names of the tables that hold each part of the path, for messages.
_TABLE_PATHS = [
    (
        ["packages", "tool", "venvstacks", "platform-wheels", ""],
        ["the top level", "a [[packages]] table", "[packages.tool]", "[packages.tool.venvstacks]", _PLATFORM_WHEELS_HEADER],
    ),
    (["tool", "venvstacks", ""], ["the top level", "[tool]", "[tool.venvstacks]"]),
]

def _unknown_table(line, where):
    """Fails for a table header the writer does not write, naming its first unknown key and the table holding it."""
    parts = line.strip("[]").split(".")
    for path, holders in _TABLE_PATHS:
        if parts[0] != path[0] and path[0] == "packages":
            continue
        for index, part in enumerate(parts):
            if index >= len(path):
                break
            if part != path[index]:
                _unknown_key(where, part, holders[index])
    fail("%s: unexpected table (%s): %s" % (where, _EDIT_HINT, line))

def _line_key(line):
    """The key of a `key = value` line, or "" when the line is not one."""
    key, separator, _ = line.partition(" = ")
    return key if separator else ""

def _check_inline_keys(line, known, table, where):
    """Fails when an inline table line (`{ name = "...", ... },`) has a key that is not in `known`."""
    skeleton = []
    index = 0
    for _ in range(len(line)):
        if index >= len(line):
            break
        if line[index] == "\"":
            index = _string_at(line, index, where)[1]
            skeleton.append("\"\"")
        else:
            skeleton.append(line[index])
            index += 1
    words = "".join(skeleton).replace("{", " ").replace(",", " ").split(" ")
    words = [word for word in words if word]
    for position, word in enumerate(words):
        if word == "=" and position > 0 and words[position - 1] not in known:
            _unknown_key(where, words[position - 1], table)

def _comparable_version(version):
    """`version` in a form where a version and the one in its wheels' file names compare equal.

    Enough of PEP 440 normalization for what the resolvers write: case, a leading `v`, and `-` or
    `_` (the wheel spec's escape of `-`) for `.`. Stated once per language:
    tools/venvstacks_tool/lock/pylock.py `comparable_version`.
    """
    version = version.lower().removeprefix("v")
    return version.replace("-", ".").replace("_", ".")

def _wheel_version(file_name):
    """The version component of a wheel file name (`name-version-[build-]python-abi-platform.whl`), or ""."""
    parts = file_name.removesuffix(".whl").split("-")
    if not file_name.endswith(".whl") or len(parts) not in (5, 6):
        return ""
    return parts[1]

def _version_error(package):
    """Why the `version` of a package dict disagrees with its wheels' file names, or ""."""
    for wheel in package["wheels"]:
        found = _wheel_version(wheel.name)
        if found and _comparable_version(found) != _comparable_version(package["version"]):
            return "package '%s' has version '%s', but its wheel %s is version '%s'" % (package["name"], package["version"], wheel.name, found)
    return ""

def _file_entry(line, where):
    """The struct(name, url, path, sha256) of one inline file table (a wheel, a build wheel or an sdist)."""
    _check_inline_keys(line, _WHEEL_KEYS, "a wheel entry", where)

    # A local wheel has `path` (relative to the lock file, as in PEP 751) instead of `url`.
    path = _field(line, "path", where, required = False)
    return struct(
        name = _field(line, "name", where),
        url = "" if path else _field(line, "url", where),
        path = path,
        sha256 = _field(line, "sha256", where),
    )

def _file_array_line(current, array, line, where, table):
    """Reads one line of an open array of file entries (`wheels`, `build_wheels`) into `current[array]`; `]` closes it."""
    if line == "]":
        current["in_" + array] = False
    elif line.startswith("{ name = ") and line.endswith(" },"):
        current[array].append(_file_entry(line, where))
    else:
        _unexpected(where, table, line)

def _package_line(current, line, where):
    """Reads one line of a `[[packages]]` table into `current`."""
    if current["in_wheels"]:
        _file_array_line(current, "wheels", line, where, "[[packages]]")
    elif line.startswith("sdist = { name = ") and line.endswith(" }"):
        current["sdist"] = _file_entry(line.removeprefix("sdist = "), where)
    elif line.startswith("name = "):
        current["name"] = _value(line, "name", where)
    elif line.startswith("version = "):
        current["version"] = _value(line, "version", where)
    elif line.startswith("marker = "):
        _value(line, "marker", where)  # which platforms install it is in the platform-wheels table
    elif line == "wheels = [":
        current["in_wheels"] = True
    elif _line_key(line) and _line_key(line) not in _PACKAGE_KEYS:
        _unknown_key(where, _line_key(line), "a [[packages]] table")
    else:
        _unexpected(where, "[[packages]]", line)

def _package_tool_line(current, line, where):
    """Reads one line of a package's `[packages.tool.venvstacks]` table (a package built from its sdist)."""
    if current["in_build_wheels"]:
        _file_array_line(current, "build_wheels", line, where, _PACKAGE_TOOL_HEADER)
    elif line.startswith("built-wheel = "):
        current["built_wheel"] = _value(line, "built-wheel", where)
    elif line == "native = true":
        current["native"] = True
    elif line == "build-wheels = [":
        current["in_build_wheels"] = True
    elif _line_key(line) and _line_key(line) not in _PACKAGE_TOOL_KEYS:
        _unknown_key(where, _line_key(line), _PACKAGE_TOOL_HEADER)
    else:
        _unexpected(where, _PACKAGE_TOOL_HEADER, line)

def _platform_wheels_line(current, line, where):
    """Reads one `<triple> = "<wheel file name>"` line of a platform-wheels table into `current`."""
    key, separator, _ = line.partition(" = ")
    if not separator or not _is_triple(key):
        _unexpected(where, _PLATFORM_WHEELS_HEADER, line)
    _checked_triple(key, where)
    if key in current["platform_wheels"]:
        fail("%s: platform %s listed twice for package '%s'" % (where, platform_name(key), current["name"]))
    current["platform_wheels"][key] = _value(line, key, where)

def _top_line(top, line, where):
    """Checks one line before the first table: a key the writer writes, or an item of its array."""
    if top["array"]:
        if line == "]":
            top["array"] = False
        return
    key = _line_key(line)
    if not key:
        _unexpected(where, "top-level", line)
    if key not in _TOP_KEYS:
        _unknown_key(where, key, "the top level")
    top["array"] = line.endswith(" = [")

def _tool_line(tool, line, where):
    """Reads the platform(s) and lock version of the `[tool.venvstacks]` table into `tool`; its other keys are only checked."""
    if tool["array"] != None:
        if line == "]":
            tool["array"] = None
        elif tool["array"] == "platforms":
            tool["platforms"].append(_string_at(line, 0, where)[0])
            tool["platform_lines"].append(where)
        elif tool["array"] == "provided":
            _check_inline_keys(line, _PROVIDED_KEYS, "a provided entry", where)
        elif tool["array"] == "support-modules":
            _check_inline_keys(line, _SUPPORT_MODULE_KEYS, "a support-modules entry", where)
    elif _line_key(line) not in _TOOL_KEYS:
        _unknown_key(where, _line_key(line) or line, "[tool.venvstacks]")
    elif line.startswith("lock-version = "):
        # A versioned layer's lock version (lock/lock_version.py): a positive integer, unquoted.
        digits = line.removeprefix("lock-version = ")
        if not digits.isdigit() or digits.startswith("0"):
            fail("%s: 'lock-version' must be a positive integer, not %s (%s)" % (where, digits, _EDIT_HINT))
        tool["lock_version"] = int(digits)
    elif line.startswith("python-version = "):
        tool["python_version"] = _value(line, "python-version", where)
    elif line.startswith("platform = "):
        tool["platform"] = _value(line, "platform", where)
        tool["platform_line"] = where
    elif line.endswith(" = ["):
        tool["array"] = line.removesuffix(" = [")

def _wheel_error(package_name, wheel, depth):
    """Why a wheel entry of package `package_name` cannot be fetched as locked, or ""."""
    reason = _sha256_error(wheel.sha256)
    if reason:
        return "package '%s': the sha256 of %s is not 64 lowercase hex digits (%s): '%s'" % (package_name, wheel.name, reason, wheel.sha256)
    if not wheel.url:
        reason = _wheel_path_error(wheel.path, depth)
        if reason:
            return "package '%s': the path '%s' of %s points outside the workspace (%s); a local wheel must be in a find-links directory in the workspace" % (
                package_name,
                wheel.path,
                wheel.name,
                reason,
            )
    return ""

def _finish_package(package, platforms, legacy, source, depth):
    """The package's struct, its wheels checked, its platform-wheels checked against the lock's platforms and its wheels."""
    where = "%s:%d" % (source, package["line"])
    if not package["name"] or not package["version"]:
        fail("%s: a [[packages]] table without name or version" % where)
    if package["in_wheels"] or package["in_build_wheels"]:
        fail("%s: package '%s': unterminated wheels array" % (where, package["name"]))
    sdist = package["sdist"]
    if sdist != None:
        if package["wheels"]:
            fail("%s: package '%s' has both an sdist and wheels (%s)" % (where, package["name"], _EDIT_HINT))
        if package["native"] == bool(package["built_wheel"]):
            fail("%s: package '%s' has an sdist but not one of 'built-wheel' or 'native = true' in its %s table (%s)" % (where, package["name"], _PACKAGE_TOOL_HEADER, _EDIT_HINT))
    elif not package["wheels"]:
        fail("%s: package '%s' has no wheels" % (where, package["name"]))
    elif package["has_tool_table"]:
        fail("%s: package '%s' has a %s table but no sdist (%s)" % (where, package["name"], _PACKAGE_TOOL_HEADER, _EDIT_HINT))
    for wheel in package["wheels"] + package["build_wheels"] + ([sdist] if sdist else []):
        error = _wheel_error(package["name"], wheel, depth)
        if error:
            fail("%s: %s" % (where, error))
    error = _version_error(package)
    if error:
        fail("%s: %s (%s)" % (where, error, _EDIT_HINT))
    if package["native"]:
        # Each platform builds its own wheel: the names are the platform-wheels table's.
        names = package["platform_wheels"].values()
    elif sdist:
        names = [package["built_wheel"]]
    else:
        names = [wheel.name for wheel in package["wheels"]]
    platform_wheels = package["platform_wheels"]
    if not package["has_platform_wheels"]:
        if not legacy:
            fail("%s: package '%s' has no %s table (%s)" % (where, package["name"], _PLATFORM_WHEELS_HEADER, _EDIT_HINT))
        if len(names) != 1:
            fail("%s: package '%s' has several wheels but no platform-wheels table to say which one installs" % (where, package["name"]))
        platform_wheels = {platforms[0]: names[0]}
    if not platform_wheels:
        fail("%s: package '%s' has an empty platform-wheels table" % (where, package["name"]))
    for triple, file_name in platform_wheels.items():
        if triple not in platforms:
            fail("%s: package '%s': platform-wheels names %s, which is not among the lock's platforms (%s)" % (where, package["name"], platform_name(triple), _names(platforms)))
        if file_name not in names:
            fail("%s: package '%s': platform-wheels gives %s the wheel '%s', which is not in its wheels" % (where, package["name"], platform_name(triple), file_name))
    return struct(
        name = package["name"],
        version = package["version"],
        wheels = package["wheels"],
        platform_wheels = platform_wheels,
        sdist = sdist,
        built_wheel = package["built_wheel"],
        native = package["native"],
        build_wheels = package["build_wheels"],
    )

def parse_pylock(text, source, depth = None):
    """Parses the platforms and packages of a rules_venvstacks pylock.toml.

    Fails, naming the file, line and package, on a wheel whose sha256 is not 64 lowercase hex
    digits or whose `path` points outside the workspace.

    Args:
      text: the file's content.
      source: the file's label or path, for error messages.
      depth: how many directories below the workspace root the lock lies (`lock_depth`), which
        bounds how far a wheel's `path` may climb with `..`; None refuses absolute paths only.

    Returns:
      struct(platform_triples = list of target triples, lock_version = the versioned layer's lock
      version (an int) or None, python_version = the lock's `python-version` ("" in a lock
      without it), packages = list of struct(name, version,
      wheels = list of struct(name, url, path, sha256), platform_wheels = dict of triple to the
      file name of the wheel that platform installs, sdist = None or the struct of the sdist a
      package without wheels is built from, built_wheel = "" or the file name of the wheel it
      builds, native = whether each platform builds its own wheel from the sdist (extension
      modules; built_wheel is then ""), build_wheels = list of the structs of its build
      requirements' wheels)). A package
      is installed on exactly the platforms its platform_wheels names.
    """
    packages = []
    current = None
    section = "top"  # "top" (before the first table), "package", "platform_wheels", "tool"
    top = {"array": False}
    tool = {"array": None, "lock_version": None, "python_version": "", "platform": None, "platform_line": None, "platform_lines": [], "platforms": []}
    for number, raw in enumerate(text.splitlines()):
        line = raw.strip()
        where = "%s:%d" % (source, number + 1)
        if not line or line.startswith("#"):
            continue
        if line == "[[packages]]":
            current = {
                "build_wheels": [],
                "built_wheel": "",
                "has_platform_wheels": False,
                "has_tool_table": False,
                "in_build_wheels": False,
                "in_wheels": False,
                "native": False,
                "sdist": None,
                "line": number + 1,
                "name": None,
                "platform_wheels": {},
                "version": None,
                "wheels": [],
            }
            packages.append(current)
            section = "package"
        elif line == _PACKAGE_TOOL_HEADER:
            if current == None or current["has_tool_table"] or current["has_platform_wheels"] or current["in_wheels"]:
                fail("%s: %s must follow its package's table, once (%s)" % (where, line, _EDIT_HINT))
            current["has_tool_table"] = True
            section = "package_tool"
        elif line == _PLATFORM_WHEELS_HEADER:
            if current == None or current["has_platform_wheels"] or current["in_wheels"] or current["in_build_wheels"]:
                fail("%s: %s must follow its package's table, once (%s)" % (where, line, _EDIT_HINT))
            current["has_platform_wheels"] = True
            section = "platform_wheels"
        elif line == "[tool.venvstacks]":
            current = None
            section = "tool"
        elif line.startswith("[") and not (current != None and (current["in_wheels"] or current["in_build_wheels"])):
            _unknown_table(line, where)
        elif section == "top":
            _top_line(top, line, where)
        elif section == "package":
            _package_line(current, line, where)
        elif section == "package_tool":
            _package_tool_line(current, line, where)
        elif section == "platform_wheels":
            _platform_wheels_line(current, line, where)
        elif section == "tool":
            _tool_line(tool, line, where)
    if tool["platforms"]:
        platforms = _checked_platforms(tool["platforms"], tool["platform_lines"])
        legacy = False
    elif tool["platform"]:
        platforms = _checked_platforms([tool["platform"]], [tool["platform_line"]])
        legacy = True
    else:
        fail("%s: no 'platforms' in [tool.venvstacks] (%s)" % (source, _EDIT_HINT))
    _check_repeated(packages, source)
    return struct(
        platform_triples = platforms,
        lock_version = tool["lock_version"],
        python_version = tool["python_version"],
        packages = [_finish_package(package, platforms, legacy, source, depth) for package in packages],
    )

def _check_repeated(packages, source):
    """Fails at the second table of a package (normalized name and version) that the lock lists twice."""
    first = {}
    for package in packages:
        key = (normalized_project_name(package["name"] or ""), _comparable_version(package["version"] or ""))
        if key in first:
            fail("%s:%d: package '%s' %s is listed twice (first at line %d) (%s)" % (
                source,
                package["line"],
                package["name"],
                package["version"],
                first[key],
                _EDIT_HINT,
            ))
        first[key] = package["line"]

pylock_testlib = struct(
    comparable_version = _comparable_version,
    lock_depth = lock_depth,
    parse_pylock = parse_pylock,
    sha256_error = _sha256_error,
    string_at = _string_at,
    wheel_error = _wheel_error,
    wheel_path_error = _wheel_path_error,
    wheel_version = _wheel_version,
)
