"""Path helpers shared by the rules."""

def normalized_path(path):
    """`path`'s components without empty, `.` and `..` ones (a `..` drops the one before it), joined by `/`.

    Args:
      path: a `/`-separated path; a leading `/` is dropped like any empty component.

    Returns:
      The relative normalised path ("" for none).
    """
    parts = []
    for part in path.split("/"):
        if part == "" or part == ".":
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return "/".join(parts)
