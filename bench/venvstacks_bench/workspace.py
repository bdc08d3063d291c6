"""The bench's stack as files: its layers, the MODULE.bazel and BUILD texts, copies of workspaces.

The texts go through `call()`, one Starlark call a helper renders, rather than literal blocks.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from venvstacks_bench.bazel import CHECKOUT
from venvstacks_testing import stack_workspace
from venvstacks_testing.stack_workspace import copy_checkout

# The measuring script the tool's phases, deploy and the floor run through.
TOOL_PHASES = CHECKOUT / "bench" / "tool_phases.py"

RUNTIME = "cpython3_11"
FRAMEWORK = "sci_framework"
FRAMEWORK_REQUIREMENTS = ["numpy", "scipy", "scikit-learn"]
APPS = ("app_report", "app_stats")
# app_report's requirements, switched between these for the incremental rebuild.
APP_REPORT_VARIANTS = (["tabulate"], ["tabulate<0.9"])
LAYERS = (RUNTIME, FRAMEWORK, *APPS)
TARGET = "//stacks:stack"


APP_REPORT_MAIN = """\
import numpy
import tabulate

rows = [[name, float(f(numpy.arange(10.0)))] for name, f in (("sum", numpy.sum), ("mean", numpy.mean))]
print(tabulate.tabulate(rows, headers=["stat", "value"]))
"""
APP_STATS_MAIN = """\
import numpy
import scipy.stats
import sklearn.linear_model

x = numpy.arange(20.0).reshape(-1, 1)
model = sklearn.linear_model.LinearRegression().fit(x, 3 * x.ravel() + 1)
print(round(float(model.coef_[0]), 3), round(float(scipy.stats.norm.cdf(0.0)), 3))
"""


def snapshot_rules(destination: Path) -> dict[str, Any]:
    """Copies the checkout's files (tracked, and untracked but not ignored) to `destination`.

    The bench builds against this copy, so edits made to the checkout while it runs (other people
    work in it) cannot change the code being measured half-way. Returns the git state it copied.
    """
    if stack_workspace.CHECKOUT.resolve() != CHECKOUT.resolve():
        # copy_checkout copies the checkout that venvstacks_testing was installed from.
        raise SystemExit(
            f"venvstacks_testing is {stack_workspace.CHECKOUT}'s, not this checkout's ({CHECKOUT}): the bench would"
            " measure the other one; run it with a Python where this checkout is installed (pip install -e .)"
        )
    git = ["git", "-C", str(CHECKOUT)]
    if subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True).returncode != 0:
        shutil.copytree(CHECKOUT, destination, symlinks=True, ignore=shutil.ignore_patterns("bazel-*", ".git"))
        return {"git": None}
    copy_checkout(destination)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    status = subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True).stdout
    return {"git": head, "modified_files": len(status.splitlines())}


def copy_other_rules(source: Path, destination: Path) -> dict[str, Any]:
    """Copies another tree of the rules (`--before`: e.g. `git archive` of main) to `destination`.

    Without its `bazel-*` links, `.git` and bytecode, as a release archive would hold it.
    Returns what it copied, for the report.
    """
    if not (source / "MODULE.bazel").is_file() or not (source / "tools" / "venvstacks_tool").is_dir():
        raise SystemExit(f"{source} is not a tree of rules_venvstacks (no MODULE.bazel or tools/venvstacks_tool)")
    shutil.copytree(source, destination, symlinks=True, ignore=shutil.ignore_patterns("bazel-*", ".git", "__pycache__"))
    return {"tree": str(source)}


@dataclass(frozen=True)
class RuntimeArchive:
    """One platform's PBS archive of the runtime, as a `venvstacks.runtime_archive` tag gives it."""

    platform: str
    url: str
    sha256: str
    python_version: str


def call(function: str, *args: str, **attrs: str | Sequence[str]) -> str:
    """A Starlark call, one argument a line as buildifier writes a long one; strings and lists of them."""
    lines = [f"{function}(", *(f"    {json.dumps(arg)}," for arg in args)]
    lines += [f"    {key} = {json.dumps(value)}," for key, value in attrs.items()]
    return "\n".join(lines) + "\n)\n"


def stack_module(
    rules: Path, runtime_tags: str, name: str = "venvstacks_bench", locked: Sequence[str] = (FRAMEWORK, *APPS)
) -> str:
    """A bench MODULE.bazel around `runtime_tags` (the runtime's extension tags): deps, the locks of
    the `locked` layers, repos."""
    locks = "".join(f'venvstacks.lock(name = "{layer}", file = "//stacks:pylock.{layer}.toml")\n' for layer in locked)
    return f"""\
module(name = "{name}")

bazel_dep(name = "rules_venvstacks")
local_path_override(module_name = "rules_venvstacks", path = "{rules}")

venvstacks = use_extension("@rules_venvstacks//rules_venvstacks:extensions.bzl", "venvstacks")
{runtime_tags}{locks}use_repo(venvstacks, "{RUNTIME}", "venvstacks_wheels")
"""


def runtime_tag(runtime_url: str, runtime: Any, **extra: str) -> str:
    """The `venvstacks.runtime` tag of the host's runtime (a LocalRuntime served under `runtime_url`)."""
    return call(
        "venvstacks.runtime",
        name=RUNTIME,
        python_version=runtime.python_version,
        urls=[f"{runtime_url}/{runtime.path.name}"],
        sha256=runtime.sha256,
        **extra,
    )


def module_text(rules: Path, runtime_url: str, runtime: Any) -> str:
    """The main workspace's module: one runtime archive, for the host."""
    return stack_module(rules, runtime_tag(runtime_url, runtime))


def platforms_module_text(
    rules: Path, archives: Sequence[RuntimeArchive], locked: Sequence[str] = (FRAMEWORK, *APPS)
) -> str:
    """A module whose runtime targets the platforms of `archives`, each given as a `runtime_archive`;
    the locks of the `locked` layers."""
    xy = ".".join(archives[0].python_version.split(".")[:2])
    tags = [call("venvstacks.runtime", name=RUNTIME, python_version=xy, platforms=[a.platform for a in archives])]
    tags += [
        call(
            "venvstacks.runtime_archive",
            runtime=RUNTIME,
            platform=a.platform,
            python_version=a.python_version,
            urls=[a.url],
            sha256=a.sha256,
        )
        for a in archives
    ]
    return stack_module(rules, "".join(tags), locked=locked)


# The start of both stacks' stacks/BUILD.bazel: the rules and the runtime layer.
STACK_BUILD_HEADER = (
    call(
        "load",
        "@rules_venvstacks//rules_venvstacks:defs.bzl",
        "application_layer",
        "framework_layer",
        "layer_stack",
        "runtime_layer",
    )
    + f'\nruntime_layer(name = "{RUNTIME}", runtime = "@{RUNTIME}")\n'
)


def application_layer(name: str, framework: str, **more: str | Sequence[str]) -> str:
    """An `application_layer` on `framework` and the runtime, its one source `<name>/__main__.py`."""
    return call(
        "application_layer",
        name=name,
        srcs=[f"{name}/__main__.py"],
        frameworks=[f":{framework}"],
        launch_module=name,
        **more,
        runtime=f":{RUNTIME}",
    )


def build_text(app_report_requirements: Sequence[str]) -> str:
    """The main stack's stacks/BUILD.bazel, app_report requiring `app_report_requirements`."""
    apps = [
        application_layer("app_report", FRAMEWORK, requirements=list(app_report_requirements)),
        application_layer("app_stats", FRAMEWORK),
    ]
    return "\n".join(
        [
            STACK_BUILD_HEADER,
            call("framework_layer", name=FRAMEWORK, requirements=FRAMEWORK_REQUIREMENTS, runtime=f":{RUNTIME}"),
            *apps,
            'layer_stack(name = "stack", layers = [":app_report", ":app_stats"])\n',
        ]
    )


def write_stack(root: Path, rules: Path, module: str, build: str, sources: Mapping[str, str]) -> None:
    """A stack in `root`: `module` as its MODULE.bazel, the .bazelrc of `rules`, `build` as
    stacks/BUILD.bazel and `sources` (path under stacks/ -> text); no locks yet."""
    (root / "stacks").mkdir(parents=True, exist_ok=True)
    (root / "MODULE.bazel").write_text(module)
    (root / ".bazelrc").write_text((rules / ".bazelrc").read_text())
    (root / "stacks" / "BUILD.bazel").write_text(build)
    for name, text in sources.items():
        (root / "stacks" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "stacks" / name).write_text(text)


def write_workspace(root: Path, rules: Path, module: str) -> None:
    """The bench's stack in `root` with `module` as its MODULE.bazel (no locks yet)."""
    sources = {"app_report/__main__.py": APP_REPORT_MAIN, "app_stats/__main__.py": APP_STATS_MAIN}
    write_stack(root, rules, module, build_text(APP_REPORT_VARIANTS[0]), sources)


def copy_workspace(source: Path, destination: Path) -> None:
    """A fresh checkout: the sources (locks included), none of the bazel-* symlinks."""
    shutil.copytree(
        source, destination, symlinks=True, ignore=lambda d, names: [n for n in names if n.startswith("bazel-")]
    )


def link_tree(source: Path, destination: Path) -> None:
    """A fresh checkout of `source` whose files are hard links (the 192 MB wheel is not copied)."""

    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(
        source,
        destination,
        symlinks=True,
        copy_function=link,
        ignore=lambda d, names: [n for n in names if n.startswith("bazel-")],
    )


def lock_packages(lock: Path) -> list[str]:
    """The `name==version` of each package of a pylock.toml."""
    import tomllib

    data = tomllib.loads(lock.read_text())
    return [f"{p['name']}=={p['version']}" for p in data.get("packages", [])]
