"""The tool's one base exception, mapped to a one-line message by `cli.main`."""


class VenvstacksError(Exception):
    """An error caused by the user's input; `cli.main` prints it on one line and exits 1.

    The message must name the file, target or package at fault.
    """
