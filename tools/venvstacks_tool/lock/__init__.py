"""The lock phase: `lock` (bazel run NAME.lock, the network) and `check-lock` (bazel test, offline).

Imports only from `core` and this package; pip and pip-tools are imported inside functions.
"""
