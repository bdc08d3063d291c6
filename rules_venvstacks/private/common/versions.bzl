"""The one rule of a full CPython version in Starlark: X.Y.Z, optionally a pre-release (3.13.0rc2).

The tool's pattern is tools/venvstacks_tool/core/protocol.py PYTHON_VERSION_RE; both accept
exactly the valid lines of tests/golden/python_versions.txt (tests/unit/test_constants.py and
tests/starlark/versions_test.bzl read it). Starlark has no regular expressions, hence the code.
"""

load(":constants.bzl", "PYTHON_PRE_RELEASES")

# ASCII digits only, as the tool's pattern ([0-9], not Unicode's \d).
_DIGITS = "0123456789"

def _leading_digits(text):
    """How many of the first characters of `text` are digits."""
    for index, char in enumerate(text.elems()):
        if char not in _DIGITS:
            return index
    return len(text)

def _is_number(text):
    return bool(text) and _leading_digits(text) == len(text)

def is_python_version(text):
    """Whether `text` is a full CPython version such as "3.12.7" or "3.13.0rc2".

    Args:
      text: the string to check.

    Returns:
      True when it is X.Y.Z (decimal numbers), optionally followed by a pre-release tag of
      PYTHON_PRE_RELEASES and its number.
    """
    parts = text.split(".")
    if len(parts) != 3 or not _is_number(parts[0]) or not _is_number(parts[1]):
        return False
    last = parts[2]
    digits = _leading_digits(last)
    if digits == 0:
        return False
    if digits == len(last):
        return True
    for tag in PYTHON_PRE_RELEASES:
        if last[digits:].startswith(tag) and _is_number(last[digits + len(tag):]):
            return True
    return False

versions_testlib = struct(is_python_version = is_python_version)
