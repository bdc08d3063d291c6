"""A runtime + framework + application stack workspace, locked against a local PEP 503 index.

The pieces `tests/integration/test_stack.py` builds inline, shared so that other integration
tests (remote caching, reproducibility) build the same stack:

* `serve_stack_sources()` builds the test wheels and a PBS-layout runtime from the host CPython,
  and serves both on 127.0.0.1;
* `make_stack()` writes a workspace whose runtime, framework and app layers use them, and
  `Stack.lock()` runs `bazel run //:framework.lock` and `//:app.lock`;
* `Stack.clone()` copies a locked workspace to another path (optionally on a copy of the rules:
  `copy_checkout()`), which is what a second developer or CI machine has;
* `read_execution_log()` / `layer_spawns()` read Bazel's `--execution_log_json_file`, and
  `remote_cache_hit()` says whether one of its entries is a remote cache hit (the tests' and the
  bench's one definition).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from venvstacks_testing.bazel_workspace import CHECKOUT, Workspace
from venvstacks_testing.http_server import serve_directory
from venvstacks_testing.local_pbs import LocalRuntime, make_local_runtime
from venvstacks_testing.wheel_index import WheelIndex

APP_MAIN = """\
import json
import apppkg
import fwpkg
import shared

print(json.dumps({"shared": shared.__file__, "fwpkg": fwpkg.__file__, "apppkg": apppkg.__file__}))
"""

# Mnemonics of the actions that build layer archives.
LAYER_MNEMONICS = ("VenvstacksRuntimeLayer", "VenvstacksLayer")
# The layer targets of the stack and every file they output (under bazel-bin).
LAYER_TARGETS = ("//:cpython", "//:framework", "//:app")
LAYER_OUTPUTS = (
    "cpython.tar.zst",
    "cpython.json",
    "framework.tar.zst",
    "framework.json",
    "app.tar.zst",
    "app.json",
)


@dataclass(frozen=True)
class ExtraLayers:
    """More for the stack: BUILD.bazel targets, their locks, the stack's top layers, MODULE.bazel lines.

    `framework_attrs` and `app_attrs` are more attribute lines of the stock framework and app
    (`    name = value,\n`, formatted with `index_url` like `build`).
    """

    build: str = ""
    locks: tuple[str, ...] = ()
    stack_layers: tuple[str, ...] = (":app",)
    module: str = ""
    framework_attrs: str = ""
    app_attrs: str = ""


def build_file(
    index_url: str,
    app_requirements: Sequence[str],
    runtime_repo: str = "cpython_local",
    extra: ExtraLayers = ExtraLayers(),
) -> str:
    """BUILD.bazel of the stack: runtime `cpython`, framework (fwpkg, shared==1.0), app, stack."""
    return f"""\
load(
    "@rules_venvstacks//rules_venvstacks:defs.bzl",
    "application_layer",
    "framework_layer",
    "layer_stack",
    "runtime_layer",
)

runtime_layer(name = "cpython", runtime = "@{runtime_repo}")

framework_layer(
    name = "framework",
    index_url = "{index_url}",
    requirements = ["fwpkg", "shared==1.0"],
    runtime = ":cpython",
{extra.framework_attrs.format(index_url=index_url)})

application_layer(
    name = "app",
    srcs = ["app/__main__.py"],
    frameworks = [":framework"],
    index_url = "{index_url}",
    launch_module = "app",
    requirements = {json.dumps(list(app_requirements))},
    runtime = ":cpython",
{extra.app_attrs.format(index_url=index_url)})

{extra.build.format(index_url=index_url)}
layer_stack(name = "stack", layers = {json.dumps(list(extra.stack_layers))})
"""


def module_body(runtime: LocalRuntime, runtime_url: str, extra_locks: Sequence[str] = ()) -> str:
    """The MODULE.bazel lines after the rules_venvstacks header: runtime, locks, repos."""
    locks = "".join(f'venvstacks.lock(name = "{name}", file = "//:pylock.{name}.toml")\n' for name in extra_locks)
    return (
        textwrap.dedent(f"""\
        venvstacks.runtime(
            name = "cpython_local",
            python_version = "{runtime.python_version}",
            urls = ["{runtime_url}/{runtime.path.name}"],
            sha256 = "{runtime.sha256}",
        )
        venvstacks.lock(name = "framework", file = "//:pylock.framework.toml")
        venvstacks.lock(name = "app", file = "//:pylock.app.toml")
        use_repo(venvstacks, "cpython_local", "venvstacks_wheels")
        """)
        + locks
    )


@dataclass
class StackSources:
    """The served index and runtime(s) a stack workspace is built from."""

    index: WheelIndex
    index_url: str
    runtime: LocalRuntime
    runtimes_dir: Path
    runtime_url: str


@contextmanager
def serve_stack_sources(directory: Path) -> Iterator[StackSources]:
    """Builds the test wheels and the host-CPython runtime in `directory`, serves both on 127.0.0.1.

    Index: shared 1.0 and 2.0, fwpkg 1.0 (needs shared>=1), apppkg 1.0 (needs shared), and an
    sdist-only `sdistonly`.
    """
    index = WheelIndex(directory / "index")
    index.add_wheel("shared", "1.0")
    index.add_wheel("shared", "2.0")
    index.add_wheel("fwpkg", "1.0", ["shared>=1"])
    index.add_wheel("apppkg", "1.0", ["shared"])
    index.add_sdist("sdistonly", "1.0")
    runtimes = directory / "pbs"
    runtimes.mkdir(parents=True, exist_ok=True)
    runtime = make_local_runtime(runtimes)
    with ExitStack() as stack:
        index_url = stack.enter_context(index.serve())
        runtime_url = stack.enter_context(serve_directory(runtimes))
        yield StackSources(index, index_url, runtime, runtimes, runtime_url)


def make_variant_runtime(runtime: LocalRuntime, directory: Path, marker: str) -> LocalRuntime:
    """The same CPython re-packed with one extra file `python/<marker>.txt`: another sha256.

    Stands in for "a new runtime release" (the host has one CPython): a different archive, hence a
    different runtime layer and, above it, different layers.
    """
    name = runtime.path.name.replace("+local-", f"+{marker}-")
    path = directory / name
    if not path.exists():
        with tarfile.open(runtime.path, "r:gz") as source:
            members = [(info, source.extractfile(info).read() if info.isfile() else None) for info in source]  # type: ignore[union-attr]
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for info, data in members:
                tar.addfile(info, io.BytesIO(data) if data is not None else None)
            extra = f"{marker}\n".encode()
            info = tarfile.TarInfo(f"python/{marker}.txt")
            info.size = len(extra)
            info.mode = 0o644
            info.mtime = members[0][0].mtime
            tar.addfile(info, io.BytesIO(extra))
        with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, compresslevel=6) as gz:
            gz.write(buffer.getvalue())
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return LocalRuntime(path=path, python_version=runtime.python_version, sha256=digest)


@dataclass
class Stack:
    """A stack workspace: its sources, its app requirements and runtime, and how to lock it."""

    workspace: Workspace
    sources: StackSources
    app_requirements: list[str] = field(default_factory=lambda: ["apppkg"])
    runtime: LocalRuntime | None = None
    extra: ExtraLayers = ExtraLayers()

    @property
    def root(self) -> Path:
        return self.workspace.root

    @property
    def index(self) -> WheelIndex:
        return self.sources.index

    @property
    def index_url(self) -> str:
        return self.sources.index_url

    def write(self) -> None:
        """(Re)writes MODULE.bazel, .bazelrc and BUILD.bazel from the current settings."""
        runtime = self.runtime or self.sources.runtime
        module = module_body(runtime, self.sources.runtime_url, self.extra.locks) + self.extra.module
        self.workspace.write_module(module)
        build = build_file(self.sources.index_url, self.app_requirements, extra=self.extra)
        self.workspace.write("BUILD.bazel", build)

    def set_app_requirements(self, requirements: Sequence[str]) -> None:
        self.app_requirements = list(requirements)
        self.write()

    def set_runtime(self, runtime: LocalRuntime) -> None:
        """Points `@cpython_local` at another archive (served from the same directory)."""
        self.runtime = runtime
        self.write()

    def lock(self, *layers: str, startup: tuple[str, ...] = ()) -> None:
        """`bazel run //:<layer>.lock` for each layer (default: framework, app, then the extra ones)."""
        for layer in layers or ("framework", "app", *self.extra.locks):
            self.workspace.bazel("run", f"//:{layer}.lock", startup=startup)

    def clone(self, root: Path, rules_path: Path | None = None) -> Stack:
        """A copy of this workspace's sources (locks included) at `root`, on `rules_path`'s rules."""
        root.mkdir(parents=True, exist_ok=True)
        for entry in sorted(self.root.iterdir()):
            if entry.name.startswith("bazel-") or entry.name == "MODULE.bazel.lock":
                continue
            if entry.is_dir():
                shutil.copytree(entry, root / entry.name, symlinks=True)
            else:
                shutil.copy2(entry, root / entry.name)
        if rules_path is None:
            workspace = Workspace(root, self.workspace.rules_path, self.workspace.rules_dependency)
        else:
            workspace = Workspace(root, rules_path)
        clone = Stack(workspace, self.sources, list(self.app_requirements), self.runtime, self.extra)
        clone.write()
        return clone


def make_stack(
    root: Path,
    sources: StackSources,
    rules_path: Path = CHECKOUT,
    extra: ExtraLayers = ExtraLayers(),
    rules_dependency: str | None = None,
) -> Stack:
    """An unlocked stack workspace at `root` (app requirements: apppkg), with `extra` layers.

    `rules_dependency`: MODULE.bazel lines that bring in rules_venvstacks other than from
    `rules_path` (see `Workspace`).
    """
    stack = Stack(Workspace(root, rules_path, rules_dependency), sources, extra=extra)
    stack.workspace.write("app/__main__.py", APP_MAIN)
    stack.write()
    return stack


def copy_checkout(destination: Path) -> Path:
    """Copies this checkout's files (tracked, and untracked but not ignored) to `destination`.

    A second checkout of rules_venvstacks at another absolute path, as another developer has it.
    """
    names = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=CHECKOUT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split("\0")
    for name in names:
        source = CHECKOUT / name
        if name and source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    return destination


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def output_hashes(workspace: Workspace, names: Sequence[str] = LAYER_OUTPUTS) -> dict[str, str]:
    """sha256 of each layer output under the workspace's bazel-bin."""
    return {name: sha256(workspace.output(name)) for name in names}


def read_execution_log(path: Path) -> list[dict[str, Any]]:
    """The entries of an `--execution_log_json_file` (a stream of JSON objects, one per spawn)."""
    text = path.read_text()
    decoder = json.JSONDecoder()
    entries: list[dict[str, Any]] = []
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position >= len(text):
            return entries
        entry, position = decoder.raw_decode(text, position)
        entries.append(entry)


def layer_spawns(entries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The execution-log entries of layer-building actions."""
    return [entry for entry in entries if entry.get("mnemonic") in LAYER_MNEMONICS]


def remote_cache_hit(entry: Mapping[str, Any]) -> bool:
    """Whether an execution-log entry is a remote cache hit (not a local one, not an execution)."""
    # Bazel 7 writes `cacheHit: true` and the runner "remote cache hit"; newer ones `remoteCacheHit`.
    return bool(entry.get("remoteCacheHit")) or (
        bool(entry.get("cacheHit")) and entry.get("runner") == "remote cache hit"
    )


def describe_spawns(entries: Sequence[dict[str, Any]]) -> str:
    """One line per spawn: mnemonic, target, runner, cache hit (for assertion messages)."""
    return "\n".join(
        f"{entry.get('mnemonic')} {entry.get('targetLabel', '?')} runner={entry.get('runner', '?')!r}"
        f" remoteCacheHit={entry.get('remoteCacheHit', False)} cacheHit={entry.get('cacheHit', False)}"
        for entry in entries
    )
