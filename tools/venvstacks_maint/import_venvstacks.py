"""`import-venvstacks`: a venvstacks stack specification turned into Bazel targets.

    python3 -m venvstacks_maint import-venvstacks path/to/venvstacks.toml [--package stacks] [--strict] [--force]
    bazel run @rules_venvstacks//tools:import_venvstacks -- path/to/venvstacks.toml   (venvstacks_maint/bazel_run.py)

Writes, beside the specification (or in `--output-dir`), `BUILD.bazel` (a `runtime_layer` per
runtime, a `framework_layer`/`application_layer` per layer, a `layer_stack` named `stack` of
them all) and `MODULE.bazel.venvstacks` (the `venvstacks` extension's runtime and lock tags, to
paste into MODULE.bazel). Then `bazel run //PKG:stack.lock` locks every layer and `bazel build
//PKG:stack` builds them.

Layer names become venvstacks' deployed names (`cpython-3.11`, `framework-NAME`, `app-NAME`), so
the deployed directories are the ones venvstacks deploys. A specification venvstacks refuses is
refused (venvstacks_spec.py), and nothing is written. What venvstacks accepts but these rules
cannot say yet is never dropped silently: each item is printed, and written at the top of
BUILD.bazel; `--strict` refuses to write anything then. An existing BUILD file is kept unless
`--force`. The mapping of every field is docs/migrating-from-venvstacks.md's table.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from venvstacks_maint.venvstacks_spec import LayerSpec, StackSpec, module_name, read_stack_spec
from venvstacks_tool.core.cli import subcommand_parser
from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.core.fsutil import write_bytes_atomic
from venvstacks_tool.core.platforms import by_venvstacks_name
from venvstacks_tool.core.protocol import is_layer_name

BUILD_NAME = "BUILD.bazel"
MODULE_FRAGMENT_NAME = "MODULE.bazel.venvstacks"
# venvstacks' defaults where a layer sets no target (its docs/file-formats.rst): wheels for
# manylinux_2_28 and macOS 13.0; the runtime here is told the same floors.
DEFAULT_GLIBC = "2.28"
DEFAULT_MACOS = "13.0"
_PREFIX = {"runtime": "", "framework": "framework-", "application": "app-"}
# The CPython versions the `venvstacks.runtime` tag knows without a custom archive.
PBS_TABLE = Path(__file__).resolve().parents[2] / "rules_venvstacks/private/fetch/pbs_releases.json"
# Fields handled by the conversion; any other key of a layer table is listed as not converted.
_CONVERTED_FIELDS = {
    "name",
    "requirements",
    "platforms",
    "linux_target",
    "macosx_target",
    "dynlib_exclude",
    "python_implementation",
    "fully_versioned_name",
    "runtime",
    "frameworks",
    "launch_module",
    "support_modules",
    "package_indexes",
    "priority_indexes",
    "index_overrides",
    "versioned",  # on a framework or an application; a runtime's is listed (`_RUNTIME_NOT_VERSIONED`)
}
# A runtime layer here has no lock of its own, so no lock version to count.
_RUNTIME_NOT_VERSIONED = "a runtime layer is not versioned here (it has no lock to count versions of)"

# Why a field venvstacks accepts is not converted yet (any other unknown field: "no equivalent").
_NOT_YET = {
    "build_requirements": "deprecated; venvstacks ignores it too",
}


@dataclass
class Conversion:
    """What the specification becomes: BUILD text pieces, MODULE tags, and what was not converted."""

    spec: StackSpec
    package: str
    not_converted: list[str] = field(default_factory=list)
    targets: dict[str, str] = field(default_factory=dict)  # venvstacks layer name -> target name
    build_blocks: list[str] = field(default_factory=list)
    module_tags: list[str] = field(default_factory=list)
    locks: list[str] = field(default_factory=list)
    repos: list[str] = field(default_factory=list)
    libraries: set[str] = field(default_factory=set)  # py_library targets of launch and support modules

    def skip(self, what: str, why: str) -> None:
        """List `what` as not converted, saying `why`."""
        self.not_converted.append(f"{what}: {why}")

    def skip_unconverted_fields(self, what: str, layer: LayerSpec) -> None:
        """List the fields of `layer` that the conversion does not carry over (a runtime's `versioned = true`, too)."""
        for key in sorted(set(layer.table) - _CONVERTED_FIELDS):
            self.skip(what, f"{key} = {layer.get(key)!r}: {_NOT_YET.get(key, 'no equivalent here')}")
        if layer.kind == "runtime" and layer.get("versioned") is True:
            self.skip(what, f"versioned = True: {_RUNTIME_NOT_VERSIONED}")

    def spec_layer(self, name: str) -> LayerSpec:
        """The specification of layer `name`."""
        return next(layer for layer in self.spec.layers if layer.name == name)


def _starlark(value: object, indent: str = "") -> str:
    """A Starlark literal of a string, bool, list or dict of strings, laid out as buildifier lays it out.

    A list of two or more items takes one line per item, as buildifier formats it.
    """
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, dict):
        entries = [f"{json.dumps(key)}: {json.dumps(item)}" for key, item in sorted(value.items())]
        if len(entries) < 2:
            return "{" + "".join(entries) + "}"
        return "{\n" + "".join(f"{indent}    {entry},\n" for entry in entries) + indent + "}"
    if isinstance(value, list) and len(value) > 1:
        items = "".join(f"{indent}    {json.dumps(item)},\n" for item in value)
        return f"[\n{items}{indent}]"
    return value if isinstance(value, Expression) else json.dumps(value)


# buildifier's order of a call's arguments: these first or last, the others sorted between.
_ARGUMENT_PRIORITY = {"name": -99, "srcs": -90, "deps": 4}


class Expression(str):
    """Starlark text written as it is (a `glob(...)` call), not as a string literal."""


def _call(function: str, arguments: Iterable[tuple[str, object]]) -> str:
    """`function(name = ..., key = value, ...)`, one argument a line, `name` first, then sorted (buildifier's order)."""
    ordered = sorted(arguments, key=lambda pair: (_ARGUMENT_PRIORITY.get(pair[0], 0), pair[0]))
    lines = [f"{function}("] + [f"    {key} = {_starlark(value, '    ')}," for key, value in ordered] + [")"]
    return "\n".join(lines)


def _repo_name(runtime: str) -> str:
    """The `venvstacks.runtime` repository of a runtime layer: `cpython-3.11` -> `cpython_3_11`."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", runtime)
    return name if name[:1].isalpha() else "runtime_" + name


def _label(conversion: Conversion, target: str) -> str:
    return f"//{conversion.package}:{target}"


def _platforms(conversion: Conversion, layer: LayerSpec) -> list[str]:
    """The runtime's platforms in this project's names; win_arm64 has no PBS target here."""
    names = []
    for platform in layer.platforms:
        ours = by_venvstacks_name(platform)
        if ours is None:
            conversion.skip(f"runtime {layer.name!r}", f"platform {platform!r} is not supported by rules_venvstacks")
        else:
            names.append(ours.name)
    return sorted(names)


def _narrowed_platforms(layer: LayerSpec, runtime: LayerSpec) -> list[str] | None:
    """A layer's `platforms` when narrower than its runtime's, in this project's names; None when not.

    The specification was checked to list only platforms of the layers below (venvstacks'
    rule), so the names are among the runtime's. A platform with no PBS target here
    (`win_arm64`) is left out: the runtime's conversion lists it. `[]` means the layer names
    none that rules_venvstacks builds for.
    """
    ours = sorted({found.name for found in map(by_venvstacks_name, layer.platforms) if found is not None})
    if ours == sorted({found.name for found in map(by_venvstacks_name, runtime.platforms) if found is not None}):
        return None
    return ours


def _floor(conversion: Conversion, runtime: LayerSpec, layers: Sequence[LayerSpec], key: str) -> str:
    """The runtime's glibc (`linux_target`) or macOS (`macosx_target`) floor: one value for all its layers."""

    def floor_of(layer: LayerSpec) -> str:
        value = layer.get(key)
        if key == "linux_target":
            # "glibc@2.31" -> "2.31"; "glibc" or unset: venvstacks' default.
            return value.partition("@")[2] if value and "@" in value else DEFAULT_GLIBC
        return str(value) if value else DEFAULT_MACOS

    chosen = floor_of(runtime)
    for layer in layers:
        if floor_of(layer) != chosen:
            conversion.skip(
                f"{layer.kind} layer {layer.name!r}",
                f"{key} {layer.get(key)!r} differs from its runtime's ({chosen}): floors are per runtime here",
            )
    return chosen


def _python_version(conversion: Conversion, runtime: LayerSpec) -> str:
    """The runtime's `python_version`: venvstacks' exact pin when the PBS table has it, else its X.Y."""
    version = runtime.python_implementation.removeprefix("cpython@")
    known = json.loads(PBS_TABLE.read_text(encoding="utf-8"))["versions"]
    if version in known:
        return version
    x_y = ".".join(version.split(".")[:2])
    conversion.skip(
        f"runtime {runtime.name!r}",
        f"CPython {version} is not in the built-in PBS table: python_version = {x_y!r} takes its newest"
        f" {x_y} (pin {version} with venvstacks.runtime_archive tags, docs/runtimes.md)",
    )
    return x_y


def _convert_runtime(conversion: Conversion, runtime: LayerSpec, layers: Sequence[LayerSpec]) -> None:
    target = runtime.name
    repo = _repo_name(runtime.name)
    conversion.targets[runtime.name] = target
    platforms = _platforms(conversion, runtime)
    tag: list[tuple[str, object]] = [("name", repo), ("python_version", _python_version(conversion, runtime))]
    tag.append(("platforms", platforms))
    if any(name.startswith("linux") for name in platforms):
        tag.append(("glibc_minimum", _floor(conversion, runtime, layers, "linux_target")))
    if any(name.startswith("macos") for name in platforms):
        tag.append(("macos_minimum", _floor(conversion, runtime, layers, "macosx_target")))
    conversion.module_tags.append(_call("venvstacks.runtime", tag))
    conversion.repos.append(repo)
    conversion.build_blocks.append(_call("runtime_layer", [("name", target), ("runtime", f"@{repo}")]))
    if runtime.get("requirements"):
        conversion.skip(
            f"runtime {runtime.name!r}",
            f"requirements {runtime.get('requirements')} (a runtime layer carries no packages here)",
        )


def _module_sources(conversion: Conversion, relative: str) -> tuple[list[str], list[str]]:
    """(srcs, deps) placing the module at `relative` (from the spec's folder) at the top of site-packages.

    A file at the package's root goes in `srcs`; anything below a folder becomes a `py_library`
    (one per module, shared by the applications that use it) whose `imports` is that folder, so
    the module lands at the top of site-packages as in venvstacks.
    """
    path = conversion.spec.directory / relative
    relative = relative.rstrip("/")
    folder = relative.rpartition("/")[0]
    if not folder and path.is_file():
        return [relative], []
    library = "module." + re.sub(r"[^A-Za-z0-9_]", "_", relative.removesuffix(".py"))
    if library not in conversion.libraries:
        conversion.libraries.add(library)
        arguments: list[tuple[str, object]] = [("name", library), ("imports", [folder or "."])]
        if path.is_dir():
            arguments.append(("srcs", Expression(f'glob(["{relative}/**/*.py"])')))
            data = (
                f'glob(\n        ["{relative}/**"],\n        exclude = [\n            "**/*.py",\n'
                '            "**/__pycache__/**",\n        ],\n    )'
            )
            arguments.append(("data", Expression(data)))
        else:
            arguments.append(("srcs", [relative]))
        conversion.build_blocks.append(_call("py_library", arguments))
    return [], [f":{library}"]


def _convert_layer(conversion: Conversion, layer: LayerSpec) -> None:
    what = f"{layer.kind} layer {layer.name!r}"
    missing = [name for name in (layer.runtime, *layer.frameworks) if name not in conversion.targets]
    if missing:
        conversion.skip(what, f"not converted, as the layers it needs were not: {', '.join(missing)}")
        return
    if not layer.platforms:
        conversion.skip(what, "`platforms = []` disables it in venvstacks: no target")
        return
    target = _PREFIX[layer.kind] + layer.name
    if not is_layer_name(target):
        conversion.skip(what, f"the name {target!r} is not a layer name here (docs/layers.md, layer names)")
        return
    modules = [layer.get("launch_module"), *layer.get("support_modules", [])] if layer.kind == "application" else []
    outside = [relative for relative in modules if relative.startswith("../") or "/../" in relative]
    if outside:
        conversion.skip(what, f"modules {outside} are outside the specification's folder (its Bazel package)")
        return
    narrowed = _narrowed_platforms(layer, conversion.spec_layer(layer.runtime))
    if narrowed == []:
        conversion.skip(what, f"platforms {list(layer.platforms)}: none is a platform rules_venvstacks builds for")
        return
    conversion.skip_unconverted_fields(what, layer)
    conversion.targets[layer.name] = target
    arguments: list[tuple[str, object]] = [("name", target), ("runtime", f":{conversion.targets[layer.runtime]}")]
    if layer.frameworks or layer.kind == "application":  # application_layer always takes its frameworks
        arguments.append(("frameworks", [f":{conversion.targets[name]}" for name in layer.frameworks]))
    arguments.append(("requirements", list(layer.get("requirements", []))))
    arguments += _index_arguments(conversion, layer)
    if narrowed:
        arguments.append(("platforms", narrowed))
    if layer.get("dynlib_exclude"):
        arguments.append(("dynlib_exclude", list(layer.get("dynlib_exclude"))))
    if layer.get("versioned") is True:
        arguments.append(("versioned", True))
    if layer.kind == "application":
        srcs: list[str] = []
        deps: list[str] = []
        for relative in modules:
            more_srcs, more_deps = _module_sources(conversion, relative)
            srcs += more_srcs
            deps += more_deps
        arguments.append(("launch_module", module_name(layer.get("launch_module"))))
        arguments += [(key, value) for key, value in (("srcs", srcs), ("deps", deps)) if value]
    conversion.build_blocks.append(_call(f"{layer.kind}_layer", arguments))
    conversion.locks.append(target)


def _index_arguments(conversion: Conversion, layer: LayerSpec) -> list[tuple[str, object]]:
    """A layer's index attributes: venvstacks' per-layer settings and what `[[tool.uv.index]]` implies.

    The runtime's `package_indexes` go on the layers right on it (the layers above inherit them
    here as there); uv's `default = true` index is the `index_url`; uv searches every other index
    that is not `explicit` first, in order, for every package: `priority_indexes` after the
    layer's own.
    """
    indexes = conversion.spec.indexes
    own: dict[str, str] = {}
    if not layer.frameworks:
        own.update(conversion.spec_layer(layer.runtime).get("package_indexes", {}))
    own.update(layer.get("package_indexes", {}))
    priority = list(layer.get("priority_indexes", []))
    priority += [
        name
        for name, index in indexes.items()
        if not index.get("explicit") and not index.get("default") and name not in priority
    ]
    arguments: list[tuple[str, object]] = []
    default = [index for index in indexes.values() if index.get("default")]
    if default:
        arguments.append(("index_url", str(default[0].get("url"))))
    if own:
        arguments.append(("package_indexes", own))
    if priority:
        arguments.append(("priority_indexes", priority))
    if layer.get("index_overrides"):
        arguments.append(("index_overrides", dict(layer.get("index_overrides"))))
    return arguments


def convert(spec: StackSpec, package: str) -> Conversion:
    """Convert every layer that can be converted; the rest are listed in `not_converted`."""
    conversion = Conversion(spec, package)
    for name in sorted(spec.uv):
        if name != "index":
            conversion.skip("[tool.uv]", f"{name} = {spec.uv[name]!r} has no equivalent yet")
    uv_file = spec.directory / "venvstacks.uv.toml"
    if uv_file.exists():
        # venvstacks reads it only when the specification has no [tool.uv] table.
        why = "ignored, as venvstacks ignores it beside [tool.uv]" if spec.uv else "uv settings have no equivalent yet"
        conversion.skip(uv_file.name, why)
    for name, index in sorted(spec.indexes.items()):
        conversion.module_tags.append(_call("venvstacks.index", [("name", name), ("url", str(index.get("url")))]))
    for layer in spec.layers:
        if layer.kind != "runtime":
            _convert_layer(conversion, layer)
            continue
        if not is_layer_name(layer.name):
            conversion.skip(
                f"runtime {layer.name!r}", "the name is not a layer name here (docs/layers.md, layer names)"
            )
            continue
        on_it = [other for other in spec.layers if other.kind != "runtime" and other.runtime == layer.name]
        conversion.skip_unconverted_fields(f"runtime {layer.name!r}", layer)
        _convert_runtime(conversion, layer, on_it)
    return conversion


def render_build(conversion: Conversion, source: str) -> str:
    """The BUILD.bazel text."""
    lines = [f"# Generated from {source} by `python3 -m venvstacks_maint import-venvstacks`."]
    if conversion.not_converted:
        lines.append("# Not converted (docs/migrating-from-venvstacks.md):")
        lines += [f"# - {item}" for item in conversion.not_converted]
    rules = {block.partition("(")[0] for block in conversion.build_blocks} - {"py_library"}
    symbols = ", ".join(json.dumps(rule) for rule in sorted(rules | ({"layer_stack"} if conversion.locks else set())))
    lines.append("")
    if conversion.libraries:
        lines.append('load("@rules_python//python:defs.bzl", "py_library")')
    lines.append(f'load("@rules_venvstacks//rules_venvstacks:defs.bzl", {symbols})')
    blocks = list(conversion.build_blocks)
    stacked = [f":{target}" for target in conversion.locks]
    if stacked:
        blocks.append(_call("layer_stack", [("name", "stack"), ("layers", stacked)]))
    return "\n".join(lines) + "\n\n" + "\n\n".join(blocks) + "\n"


def render_module(conversion: Conversion, source: str) -> str:
    """The MODULE.bazel lines to add (after the `bazel_dep` on rules_venvstacks)."""
    lines = [f"# Generated from {source} by `python3 -m venvstacks_maint import-venvstacks`."]
    if conversion.libraries:
        lines.append('bazel_dep(name = "rules_python", version = "0.22.1")  # py_library of the launch modules')
        lines.append("")
    lines.append('venvstacks = use_extension("@rules_venvstacks//rules_venvstacks:extensions.bzl", "venvstacks")')
    lines += conversion.module_tags
    for target in conversion.locks:
        lock = f"//{conversion.package}:pylock.{target}.toml"
        lines.append(_call("venvstacks.lock", [("name", target), ("file", lock)]))
    repos = ", ".join(json.dumps(repo) for repo in [*conversion.repos, "venvstacks_wheels"])
    lines.append(f"use_repo(venvstacks, {repos})")
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    """The `import-venvstacks` command line."""
    parser = subcommand_parser(
        "import-venvstacks", "Write BUILD.bazel and a MODULE.bazel fragment for a venvstacks.toml."
    )
    parser.prog = "python -m venvstacks_maint import-venvstacks"
    parser.add_argument("spec", type=Path, help="the venvstacks stack specification (venvstacks.toml)")
    parser.add_argument("--output-dir", type=Path, help="where to write (default: the specification's folder)")
    parser.add_argument("--package", default="", help="the Bazel package of that folder, e.g. stacks (default: root)")
    parser.add_argument("--strict", action="store_true", help="fail, writing nothing, if anything is not converted")
    parser.add_argument("--force", action="store_true", help="overwrite a BUILD file already in the output folder")
    return parser


def refuse_overwrite(output: Path) -> None:
    """Fails, naming the file, when `output` already holds a BUILD file (an import must not lose a hand edit).

    `BUILD` counts too: Bazel would read the new BUILD.bazel instead of it.
    """
    for name in (BUILD_NAME, "BUILD"):
        if (output / name).exists():
            raise VenvstacksError(f"{(output / name).absolute()} already exists; pass --force to overwrite it")


def main(argv: list[str]) -> int:
    """Convert; print what was not converted on stderr; 1 on a refused spec (or with --strict)."""
    args = build_parser().parse_args(argv)
    spec = read_stack_spec(args.spec)
    conversion = convert(spec, args.package.strip("/"))
    for item in conversion.not_converted:
        print(f"import-venvstacks: not converted: {item}", file=sys.stderr)
    if args.strict and conversion.not_converted:
        raise VenvstacksError(f"{args.spec}: {len(conversion.not_converted)} item(s) not converted (--strict)")
    if not conversion.locks and not conversion.repos:
        raise VenvstacksError(f"{args.spec}: no layer could be converted")
    output = args.output_dir or args.spec.parent
    if not args.force:
        refuse_overwrite(output)
    output.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(output / BUILD_NAME, render_build(conversion, args.spec.name).encode())
    write_bytes_atomic(output / MODULE_FRAGMENT_NAME, render_module(conversion, args.spec.name).encode())
    print(f"import-venvstacks: wrote {output / BUILD_NAME} and {output / MODULE_FRAGMENT_NAME}", file=sys.stderr)
    return 0
