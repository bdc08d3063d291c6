"""Helpers shared by the integration tests and the example script: real servers, real Bazel."""
