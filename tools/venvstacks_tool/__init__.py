"""The rules_venvstacks build tool: the Python code that Bazel actions and commands run.

One module per concern; `cli` dispatches subcommands to them.
"""
