"""The image phase: stack layers as OCI image layers, and an OCI image layout of a stack (docs/images.md)."""
