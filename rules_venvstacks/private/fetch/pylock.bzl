"""Reads the platforms, packages and wheels of a `pylock.toml` written by `bazel run <layer>.lock`.

Starlark has no TOML parser, so this reads the fixed, line-oriented form that the tool writes
(tools/venvstacks_tool/lock/pylock.py, whose docstring shows it; keep the two in sync):

- `[[packages]]` tables with `name`, `version`, an optional `marker` and a `wheels` array holding
  one inline table per line, each followed by a `[packages.tool.venvstacks.platform-wheels]`
  table of `<triple> = "<wheel file name>"` lines: the wheel each platform installs;
- `platforms = [` in `[tool.venvstacks]`, one quoted triple a line.

A lock in the older single-platform form (`platform = "<triple>"` in `[tool.venvstacks]`, no
platform-wheels tables) still reads: its platforms are `[platform]` and each package's one wheel
installs on it, so checkouts with such locks still fetch. Any line inside a package table that is
not one of the above fails with the file and line, so a hand edit cannot be silently misread.
"""

_PLATFORM_WHEELS_HEADER = "[packages.tool.venvstacks.platform-wheels]"
_TRIPLE_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"
_EDIT_HINT = "this file is written by `bazel run <layer>.lock`; re-run it instead of editing"

def _string_at(line, start, where):
    """Reads the TOML basic string that opens at `line[start]`; returns (value, end)."""
    if start >= len(line) or line[start] != "\"":
        fail("%s: expected a quoted string" % where)
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

def _unexpected(where, table, line):
    fail("%s: unexpected line in a %s table (%s): %s" % (where, table, _EDIT_HINT, line))

def _package_line(current, line, where):
    """Reads one line of a `[[packages]]` table into `current`."""
    if current["in_wheels"]:
        if line == "]":
            current["in_wheels"] = False
        elif line.startswith("{ name = ") and line.endswith(" },"):
            # A local wheel has `path` (relative to the lock file, as in PEP 751) instead of `url`.
            path = _field(line, "path", where, required = False)
            current["wheels"].append(struct(
                name = _field(line, "name", where),
                url = "" if path else _field(line, "url", where),
                path = path,
                sha256 = _field(line, "sha256", where),
            ))
        else:
            _unexpected(where, "[[packages]]", line)
    elif line.startswith("name = "):
        current["name"] = _value(line, "name", where)
    elif line.startswith("version = "):
        current["version"] = _value(line, "version", where)
    elif line.startswith("marker = "):
        _value(line, "marker", where)  # which platforms install it is in the platform-wheels table
    elif line == "wheels = [":
        current["in_wheels"] = True
    else:
        _unexpected(where, "[[packages]]", line)

def _platform_wheels_line(current, line, where):
    """Reads one `<triple> = "<wheel file name>"` line of a platform-wheels table into `current`."""
    key, separator, _ = line.partition(" = ")
    if not separator or not _is_triple(key):
        _unexpected(where, _PLATFORM_WHEELS_HEADER, line)
    if key in current["platform_wheels"]:
        fail("%s: platform '%s' listed twice for package '%s'" % (where, key, current["name"]))
    current["platform_wheels"][key] = _value(line, key, where)

def _tool_line(tool, line, where):
    """Reads the platform(s) of the `[tool.venvstacks]` table into `tool`; other keys are the tool's own."""
    if tool["array"] != None:
        if line == "]":
            tool["array"] = None
        elif tool["array"] == "platforms":
            tool["platforms"].append(_string_at(line, 0, where)[0])
    elif line.startswith("platform = "):
        tool["platform"] = _value(line, "platform", where)
    elif line.endswith(" = ["):
        tool["array"] = line.removesuffix(" = [")

def _finish_package(package, platforms, legacy, source):
    """The package's struct, its platform-wheels checked against the lock's platforms and its wheels."""
    where = "%s:%d" % (source, package["line"])
    if not package["name"] or not package["version"]:
        fail("%s: a [[packages]] table without name or version" % where)
    if package["in_wheels"]:
        fail("%s: package '%s': unterminated wheels array" % (where, package["name"]))
    if not package["wheels"]:
        fail("%s: package '%s' has no wheels" % (where, package["name"]))
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
            fail("%s: package '%s': platform-wheels names '%s', which is not among the lock's platforms %s" % (where, package["name"], triple, platforms))
        if file_name not in names:
            fail("%s: package '%s': platform-wheels gives %s the wheel '%s', which is not in its wheels" % (where, package["name"], triple, file_name))
    return struct(
        name = package["name"],
        version = package["version"],
        wheels = package["wheels"],
        platform_wheels = platform_wheels,
    )

def parse_pylock(text, source):
    """Parses the platforms and packages of a rules_venvstacks pylock.toml.

    Args:
      text: the file's content.
      source: the file's label or path, for error messages.

    Returns:
      struct(platforms = list of target triples, packages = list of struct(name, version,
      wheels = list of struct(name, url, path, sha256), platform_wheels = dict of triple to the
      file name of the wheel that platform installs)). A package is installed on exactly the
      platforms its platform_wheels names.
    """
    packages = []
    current = None
    section = None  # None (top level or a table of no interest), "package", "platform_wheels", "tool"
    tool = {"array": None, "platform": None, "platforms": []}
    for number, raw in enumerate(text.splitlines()):
        line = raw.strip()
        where = "%s:%d" % (source, number + 1)
        if not line or line.startswith("#"):
            continue
        if line == "[[packages]]":
            current = {
                "has_platform_wheels": False,
                "in_wheels": False,
                "line": number + 1,
                "name": None,
                "platform_wheels": {},
                "version": None,
                "wheels": [],
            }
            packages.append(current)
            section = "package"
        elif line == _PLATFORM_WHEELS_HEADER:
            if current == None or current["has_platform_wheels"] or current["in_wheels"]:
                fail("%s: %s must follow its package's table, once (%s)" % (where, line, _EDIT_HINT))
            current["has_platform_wheels"] = True
            section = "platform_wheels"
        elif line.startswith("[packages") or line.startswith("[[packages"):
            fail("%s: unexpected table in a package (%s): %s" % (where, _EDIT_HINT, line))
        elif line.startswith("[") and not (current != None and current["in_wheels"]):
            current = None
            section = "tool" if line == "[tool.venvstacks]" else None
        elif section == "package":
            _package_line(current, line, where)
        elif section == "platform_wheels":
            _platform_wheels_line(current, line, where)
        elif section == "tool":
            _tool_line(tool, line, where)
    if tool["platforms"]:
        platforms = tool["platforms"]
        legacy = False
    elif tool["platform"]:
        platforms = [tool["platform"]]
        legacy = True
    else:
        fail("%s: no 'platforms' in [tool.venvstacks] (%s)" % (source, _EDIT_HINT))
    return struct(
        platforms = platforms,
        packages = [_finish_package(package, platforms, legacy, source) for package in packages],
    )

pylock_testlib = struct(parse_pylock = parse_pylock)
