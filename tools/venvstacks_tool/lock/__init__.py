"""The lock phase: `lock` (bazel run NAME.lock, the network) and `check-lock` (bazel test, offline).

Imports only from `core` and this package; pip is imported only in the resolver's child
processes (`pip_child`).
"""
