"""The deploy phase: `deploy` unpacks a stack's archives and post-installs each layer.

Imports only from `core` and this package.
"""
