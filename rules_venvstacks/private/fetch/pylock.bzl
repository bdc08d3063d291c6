"""Reads the packages and wheels of a `pylock.toml` written by `bazel run <layer>.lock`.

Starlark has no TOML parser, so this reads the fixed, line-oriented form that the tool writes
(tools/venvstacks_tool/lock/pylock.py — keep in sync): `[[packages]]` tables with `name`, `version`
and a `wheels` array holding one inline table per line. Any other line inside a package table
fails with the file and line, so a hand edit cannot be silently misread.
"""

def _string_at(line, start, where):
    """Reads the TOML basic string that opens at `line[start]`; returns (value, end)."""
    if line[start] != "\"":
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

def parse_pylock(text, source):
    """Parses the packages of a rules_venvstacks pylock.toml.

    Args:
      text: the file's content.
      source: the file's label or path, for error messages.

    Returns:
      list of struct(name, version, wheels = list of struct(name, url, path, sha256)).
    """
    packages = []
    current = None
    for number, raw in enumerate(text.splitlines()):
        line = raw.strip()
        where = "%s:%d" % (source, number + 1)
        if not line or line.startswith("#"):
            continue
        if line == "[[packages]]":
            current = {"name": None, "version": None, "wheels": []}
            packages.append(current)
        elif line.startswith("["):
            current = None
        elif current == None:
            continue
        elif line.startswith("name = "):
            current["name"] = _string_at(line, len("name = "), where)[0]
        elif line.startswith("version = "):
            current["version"] = _string_at(line, len("version = "), where)[0]
        elif line.startswith("{ name = "):
            # A local wheel has `path` (relative to the lock file, as in PEP 751) instead of `url`.
            path = _field(line, "path", where, required = False)
            current["wheels"].append(struct(
                name = _field(line, "name", where),
                url = "" if path else _field(line, "url", where),
                path = path,
                sha256 = _field(line, "sha256", where),
            ))
        elif line not in ("wheels = [", "]"):
            fail("%s: unexpected line in a [[packages]] table (this file is written by `bazel run <layer>.lock`; re-run it instead of editing): %s" % (where, line))
    result = []
    for package in packages:
        if not package["name"] or not package["version"]:
            fail("%s: a [[packages]] table without name or version" % source)
        if not package["wheels"]:
            fail("%s: package '%s' has no wheels" % (source, package["name"]))
        result.append(struct(name = package["name"], version = package["version"], wheels = package["wheels"]))
    return result

pylock_testlib = struct(parse_pylock = parse_pylock)
