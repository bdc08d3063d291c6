"""The layer name rule, checked at analysis by every rule that names a layer; PEP 503 project names.

A layer name is its deployed directory's name: 1 to LAYER_NAME_MAX_LENGTH letters, digits, '_',
'.', '-' and '@', not starting with '.', '-' or '@' (a versioned layer deploys as `NAME@N`, and
venvstacks allows `@` in names, as in `layerF@1`). The tool checks the same rule
(tools/venvstacks_tool/core/protocol.py LAYER_NAME_RE), so a name `.lock` accepts is one the build
accepts, and a bad one fails at analysis naming the target instead of deep in an action.
"""

load(":constants.bzl", "LAYER_NAME_FIRST", "LAYER_NAME_MAX_LENGTH", "LAYER_NAME_REST")

def layer_name_problem(name):
    """Why `name` is not a valid layer name, or "" when it is.

    Args:
      name: the proposed layer name.

    Returns:
      "" or a phrase to follow the name in a message, e.g. "is longer than 100 characters".
    """
    if not name:
        return "is empty"
    if len(name) > LAYER_NAME_MAX_LENGTH:
        return "is %d characters long; a layer name has at most %d" % (len(name), LAYER_NAME_MAX_LENGTH)
    if name[0] not in LAYER_NAME_FIRST:
        return "starts with %r; a layer name starts with a letter, a digit or '_'" % name[0]
    for char in name.elems():
        if char not in LAYER_NAME_REST:
            return "holds %r; a layer name is letters, digits, '_', '.', '-' and '@'" % char
    return ""

def normalized_project_name(name):
    """`name` normalized as PEP 503 says: lower case, each run of `-`, `_` and `.` one `-`.

    Args:
      name: a project (distribution) name as written.

    Returns:
      The normalized name, as indexes, locks and `package_indexes` compare them.
    """
    chars = []
    for char in name.lower().elems():
        if char in "-_.":
            if not chars or chars[-1] != "-":
                chars.append("-")
        else:
            chars.append(char)
    return "".join(chars)

def check_layer_name(target, name, what = "layer name"):
    """Fail naming `target` unless `name` is a valid layer name.

    Args:
      target: the label (or its string) the message names.
      name: the layer name to check.
      what: what the name is, for the message (e.g. "runtime layer name").
    """
    problem = layer_name_problem(name)
    if problem:
        shown = name if len(name) <= 40 else name[:40] + "..."
        fail("%s: the %s '%s' %s" % (target, what, shown, problem))

names_testlib = struct(
    layer_name_problem = layer_name_problem,
)
