"""Public module extensions of rules_venvstacks: `venvstacks` declares runtimes."""

load("//rules_venvstacks/private:extension.bzl", _venvstacks = "venvstacks")

venvstacks = _venvstacks
