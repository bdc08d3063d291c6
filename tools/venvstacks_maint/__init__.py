"""Maintainer tools of rules_venvstacks: never an input of a Bazel action, run or test target.

PYTHONPATH=tools python -m venvstacks_maint pbs-table ...
PYTHONPATH=tools python -m venvstacks_maint diff-archives A B
PYTHONPATH=tools python -m venvstacks_maint local-runtime --runtime NAME --output-dir DIR
PYTHONPATH=tools python -m venvstacks_maint release --version X.Y.Z --output DIR
PYTHONPATH=tools python -m venvstacks_maint uv-wheels [--version X.Y.Z]   (the uv pin of tool_wheels.json)
"""
