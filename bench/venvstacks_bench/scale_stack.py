"""The scale bench's generated stack: N applications over three frameworks, as files.

    cpython3_11                         runtime (the host's CPython, served on 127.0.0.1)
    fw_core    packaging, typing-extensions      on the runtime
    fw_data    tabulate, more-itertools          on fw_core
    fw_text    pygments, wcwidth                 on the runtime
    app_NNN    its own py_library (`deps`) and one or two small pure-Python packages of its own,
               on fw_data (so fw_core too), on fw_text, or on both, in turn

Each application's packages come from `APP_PACKAGES`: real, small, pure-Python wheels from PyPI
without dependencies of their own, none of them in a framework. Application i takes package i
and, every third application, package i + 1 as well, so the applications' wheels grow with N up
to the pool's size (`len(APP_PACKAGES)`); beyond it they repeat (wheel repositories are shared).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from venvstacks_bench.workspace import (
    RUNTIME,
    STACK_BUILD_HEADER,
    RuntimeArchive,
    call,
    platforms_module_text,
    runtime_tag,
    stack_module,
    write_stack,
)

FRAMEWORKS: dict[str, tuple[list[str], list[str]]] = {
    # name: (requirements, frameworks it sits on)
    "fw_core": (["packaging", "typing-extensions"], []),
    "fw_data": (["tabulate", "more-itertools"], ["fw_core"]),
    "fw_text": (["pygments", "wcwidth"], []),
}
# The frameworks an application sits on, by its index modulo 3.
APP_FRAMEWORKS = (["fw_data"], ["fw_text"], ["fw_data", "fw_text"])
APP_PACKAGES = (
    "six",
    "attrs",
    "idna",
    "certifi",
    "toolz",
    "pyparsing",
    "pytz",
    "colorama",
    "termcolor",
    "humanize",
    "decorator",
    "cachetools",
    "itsdangerous",
    "blinker",
    "sortedcontainers",
    "toml",
    "tomli",
    "tomli-w",
    "zipp",
    "mdurl",
    "inflection",
    "jmespath",
    "pycparser",
    "soupsieve",
    "sniffio",
    "h11",
    "pyasn1",
    "text-unidecode",
    "unidecode",
    "semver",
    "jsonpointer",
    "ply",
    "pycodestyle",
    "pyflakes",
    "mccabe",
    "tomlkit",
    "shellingham",
    "pathspec",
    "mypy-extensions",
    "appdirs",
    "backoff",
    "xmltodict",
    "natsort",
    "ordered-set",
    "bidict",
    "munch",
    "addict",
    "iniconfig",
    "platformdirs",
    "filelock",
    "distlib",
    "pluggy",
    "asn1crypto",
    "python-dotenv",
    "webencodings",
    "defusedxml",
    "chardet",
    "urllib3",
    "et-xmlfile",
    "lark",
    "parso",
    "ptyprocess",
    "executing",
    "pure-eval",
    "tenacity",
    "structlog",
    "pyjwt",
    "funcy",
    "boltons",
    "parse",
    "dnspython",
    "markdown",
    "mistune",
    "rfc3986",
    "uritemplate",
    "texttable",
    "joblib",
    "threadpoolctl",
    "cloudpickle",
    "mpmath",
)
# The application the "application-only change" edits.
CHANGED_APP = "app_000"
TARGET = "//stacks:stack"


def app_name(index: int) -> str:
    """The name of application `index` (zero-padded, so that the names sort as the indexes do)."""
    return f"app_{index:03d}"


def app_requirements(index: int) -> list[str]:
    """Application `index`'s own packages: one, and a second one every third application."""
    count = len(APP_PACKAGES)
    own = [APP_PACKAGES[index % count]]
    if index % 3 == 2:
        own.append(APP_PACKAGES[(index + 1) % count])
    return own


def layer_names(apps: int) -> list[str]:
    """Every framework and application layer (those with a lock) of the stack with `apps` applications."""
    return [*FRAMEWORKS, *(app_name(i) for i in range(apps))]


def build_text(apps: int) -> str:
    """stacks/BUILD.bazel: the runtime, the three frameworks, the applications and one `layer_stack`."""
    parts = [STACK_BUILD_HEADER]
    for name, (requirements, below) in FRAMEWORKS.items():
        on = {"frameworks": [f":{f}" for f in below]} if below else {}
        parts.append(call("framework_layer", name=name, requirements=requirements, runtime=f":{RUNTIME}", **on))
    for i in range(apps):
        name = app_name(i)
        parts.append(
            call(
                "application_layer",
                name=name,
                deps=[f"//apps/{name}"],
                frameworks=[f":{f}" for f in APP_FRAMEWORKS[i % 3]],
                launch_module=name,
                requirements=app_requirements(i),
                runtime=f":{RUNTIME}",
            )
        )
    parts.append(call("layer_stack", name="stack", layers=[f":{app_name(i)}" for i in range(apps)]))
    return "\n".join(parts)


def app_sources(index: int, marker: str = "") -> dict[str, str]:
    """Application `index`'s first-party `py_library` (apps/<name>/, paths relative to the workspace)."""
    name = app_name(index)
    module = APP_PACKAGES[index % len(APP_PACKAGES)].replace("-", "_")
    library = call(
        "py_library",
        name=name,
        srcs=[f"src/{name}/__init__.py", f"src/{name}/__main__.py"],
        imports=["src"],
        visibility=["//visibility:public"],
    )
    return {
        f"apps/{name}/BUILD.bazel": call("load", "@rules_python//python:defs.bzl", "py_library") + "\n" + library,
        f"apps/{name}/src/{name}/__init__.py": f'"""Application {index}."""\n\nINDEX = {index}\n{marker}',
        f"apps/{name}/src/{name}/__main__.py": (
            f"import {_import_name(module)}\n\nfrom {name} import INDEX\n\nprint(INDEX)\n"
        ),
    }


def _import_name(project: str) -> str:
    """The import name of a project of APP_PACKAGES, where it is not the project name."""
    return {"attrs": "attr", "python_dotenv": "dotenv", "pyjwt": "jwt", "dnspython": "dns"}.get(project, project)


def module_text(rules: Path, runtime_url: str, runtime: Any, apps: int, archives: Sequence[RuntimeArchive] = ()) -> str:
    """MODULE.bazel: the host's runtime (or, given `archives`, a runtime for each of their
    platforms), every layer's lock, and rules_python for `py_library`."""
    if archives:
        text = platforms_module_text(rules, archives, locked=layer_names(apps))
    else:
        text = stack_module(rules, runtime_tag(runtime_url, runtime), locked=layer_names(apps))
    # Debian's bazelrc maps rules_python to its local copy (docs/monorepo.md: 0.22 and later).
    return text + 'bazel_dep(name = "rules_python", version = "0.22.1")\n'


def write_scale_stack(root: Path, rules: Path, module: str, apps: int) -> None:
    """The generated stack with `apps` applications in `root` (no locks yet)."""
    write_stack(root, rules, module, build_text(apps), {})
    for i in range(apps):
        for path, text in app_sources(i).items():
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_text(text)


def lock_key(apps: int, python_version: str, platforms: Sequence[str]) -> str:
    """What the locks of a generated stack depend on: its BUILD text, the runtime's X.Y, the platforms."""
    xy = ".".join(python_version.split(".")[:2])
    return hashlib.sha256(f"{xy}\n{' '.join(platforms)}\n{build_text(apps)}".encode()).hexdigest()[:16]
