"""Public module extension of rules_venvstacks.

`venvstacks.runtime` declares a python-build-standalone CPython (a repository per runtime);
`venvstacks.lock` names a layer's lock file, whose wheels become one repository each, grouped in
the `@venvstacks_wheels` hub.
"""

load("//rules_venvstacks/private/fetch:extension.bzl", _venvstacks = "venvstacks")

venvstacks = _venvstacks
