"""Renders the BUILD files of the repositories the `venvstacks` extension generates.

One target a call (`render.call`), one attribute a line in the order given, values by `repr`,
and `render.select` for a `select()` over config settings; the repository rules only say which
targets and values, never how Starlark is spelled. Pure: tests/starlark/render_test.bzl tests it.
"""

_DEFAULT = "//conditions:default"

def _select(branches, default):
    """A `select()` for `render.call`: {config setting label (string): value}, and the default value."""
    return struct(branches = branches, default = default)

def _value(value):
    """The Starlark text of an attribute value: `repr`, or a `select()` made by `render.select`."""
    if type(value) != "struct":
        return repr(value)
    lines = ["select({"]
    lines += ["        %s: %s," % (repr(key), repr(branch)) for key, branch in sorted(value.branches.items())]
    lines += ["        %s: %s," % (repr(_DEFAULT), repr(value.default)), "    })"]
    return "\n".join(lines)

def _call(kind, name, attrs, comment = ""):
    """The text of one target `kind(name = name, ...)`, with `attrs` in their order and `comment` above it.

    Args:
      kind: the rule or macro, e.g. "alias".
      name: the target's name.
      attrs: dict of attribute name to value (a string, bool, int, list, dict or `render.select`).
      comment: lines of comment put above the target, without their "# ".

    Returns:
      The target's text, ending with a newline.
    """
    lines = ["# " + line if line else "#" for line in comment.splitlines()]
    lines.append("%s(" % kind)
    lines.append("    name = %s," % repr(name))
    lines += ["    %s = %s," % (key, _value(value)) for key, value in attrs.items()]
    lines.append(")")
    return "\n".join(lines) + "\n"

def _load_line(label, symbols):
    """The `load()` line of `symbols` from the .bzl file `label` (a Label of this module)."""
    return "load(%s)\n" % ", ".join([repr(str(label))] + [repr(symbol) for symbol in symbols])

def _build_file(parts):
    """A BUILD file of `parts` (a load line, then targets), one blank line between them."""
    return "\n".join(parts)

render = struct(build_file = _build_file, call = _call, load_line = _load_line, select = _select)
