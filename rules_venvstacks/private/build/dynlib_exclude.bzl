"""The analysis-time check of a layer's `dynlib_exclude` patterns (the tool's build/dynlib_exclude.py matches them)."""

def dynlib_exclude_problem(pattern):
    """Why `pattern` is not a usable `dynlib_exclude` pattern, or "" when it is one.

    Stated once per language, with the same words: tools/venvstacks_tool/build/dynlib_exclude.py
    `pattern_problem` (tests/unit/test_dynlib_exclude.py compares them).

    Args:
      pattern: one glob pattern, matched against the end of a shared library's path.

    Returns:
      A phrase completing "dynlib_exclude pattern 'P' ...", or "".
    """
    if not pattern:
        return "is empty"
    if pattern.startswith("/"):
        return "starts with '/' (patterns match the end of a path: drop the leading '/')"
    if "\\" in pattern:
        return "holds a '\\' (use '/' between path components)"
    return ""
