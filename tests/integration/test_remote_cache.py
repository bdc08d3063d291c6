"""Remote-cache sharing, reproducibility, hermeticity, incrementality and cache outages, proven
with a real Bazel, a real HTTP remote cache (nginx + WebDAV) and the runtime + framework + app
stack of `support.stack_workspace`.

One locked workspace serves the module. The rules come from two snapshots of this checkout taken
at the start (`checkout_a/…` and `checkout_b/elsewhere/…`), so edits made to the checkout while
the module runs cannot make two builds differ, and the two "developers" really use rules at
different absolute paths. Every build gets its own output base unless it says otherwise; every
Bazel server is shut down and every output base deleted at the end.

Some builds run Bazel's Debian sid root (tests/bazel.sh) through an overlay filesystem that adds
files to it without touching it: an `/etc/ld.so.preload` with libfaketime and a umask library
(another clock and umask for every process, actions included), or a poisoned host Python, pip
configuration and pip cache (hermeticity). See `OverlayRoot`.

The tests follow issue 5's list (1-5); the last one is the other face of an outage: a cache
that answers a lookup and then cannot serve the output.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from venvstacks_testing.bazel_workspace import BAZEL_SH, CHECKOUT
from venvstacks_testing.remote_cache import RemoteCache, remote_cache
from venvstacks_testing.stack_workspace import (
    LAYER_MNEMONICS,
    LAYER_OUTPUTS,
    LAYER_TARGETS,
    Stack,
    StackSources,
    copy_checkout,
    describe_spawns,
    layer_spawns,
    make_stack,
    make_variant_runtime,
    read_execution_log,
    remote_cache_hit,
    serve_stack_sources,
    sha256,
)
from venvstacks_tool.core.fsutil import json_bytes

pytestmark = pytest.mark.integration

SID_ROOT = Path(os.environ.get("VENVSTACKS_BAZEL_ROOT", "/var/cache/rules_venvstacks/sid-root"))


def _libfaketime() -> Path:
    """Debian's libfaketime (package `faketime`), wherever the architecture puts it."""
    found = sorted(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"))
    return found[0] if found else Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")


# The clock of the "other machine" in the reproducibility test: ten years ahead.
FAKETIME_SHIFT = "+3650d"

# The flags of a hermetic build: actions in a Linux sandbox without network or host environment.
HERMETIC_FLAGS = (
    "--sandbox_default_allow_network=false",
    "--spawn_strategy=linux-sandbox",
    "--incompatible_strict_action_env",
)

# The remote-cache lines of docs/remote-caching.md, besides the cache URL (and the disk cache,
# which these tests leave out so that every build either hits the remote cache or runs).
DOCUMENTED_REMOTE_FLAGS = (
    "--remote_upload_local_results",
    "--remote_local_fallback",
    "--remote_timeout=30s",
    "--experimental_remote_cache_eviction_retries=5",
)

# An action that reports what an action sees of the host: its clock, umask, and whether the
# poisoned host Python, pip configuration and pip cache are there (they are, in the poisoned root).
WITNESS_SCRIPT = r"""#!/bin/sh
pip_conf=$(head -c 60 /etc/pip.conf 2>/dev/null | tr -d '\n"\\')
host_python=$(/usr/bin/python3 -c pass 2>&1 | head -c 80 | tr -d '\n"\\')
pip_cache=$(ls /root/.cache/pip 2>/dev/null | tr '\n' ' ')
printf '{"year": %s, "umask": "%s",' "$(date -u +%Y)" "$(umask)"
printf ' "pip_conf": "%s", "host_python": "%s",' "$pip_conf" "$host_python"
printf ' "root_pip_cache": "%s", "pythonpath": "%s"}\n' "$pip_cache" "${PYTHONPATH:-}"
"""
# Not a genrule: a plain action, started the way the layer actions are (Bazel's process-wrapper
# or linux-sandbox), but with the default shell environment, so --action_env reaches it.
WITNESS_BZL = """\
def _witness_impl(ctx):
    out = ctx.actions.declare_file(ctx.label.name + ".json")
    ctx.actions.run_shell(
        inputs = [ctx.file.script],
        outputs = [out],
        command = "/bin/sh %s > %s" % (ctx.file.script.path, out.path),
        use_default_shell_env = True,
        mnemonic = "VenvstacksTestWitness",
    )
    return [DefaultInfo(files = depset([out]))]

witness = rule(implementation = _witness_impl, attrs = {"script": attr.label(allow_single_file = True)})
"""
WITNESS_BUILD = """\
load(":witness.bzl", "witness")

witness(name = "witness", script = "witness.sh")
"""


# --- Running Bazel with another environment, umask and root -----------------------------------


@dataclass
class OverlayRoot:
    """Bazel's sid root with extra files laid over it (overlayfs), mounted per Bazel call.

    Every call runs `tests/bazel.sh` in a private mount namespace where the overlay is mounted
    and `VENVSTACKS_BAZEL_ROOT` points at it; the Bazel server that call starts stays in that
    namespace (and so do the actions it runs) until it is shut down. The sid root itself is not
    modified.
    """

    directory: Path
    files: dict[str, tuple[bytes, int]]

    def __post_init__(self) -> None:
        for name in ("upper", "work", "mnt"):
            (self.directory / name).mkdir(parents=True, exist_ok=True)
        for relative, (data, mode) in self.files.items():
            path = self.directory / "upper" / relative.lstrip("/")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            path.chmod(mode)

    def wrap(self, command: Sequence[str]) -> list[str]:
        mount = (
            f"mount -t overlay overlay -o lowerdir={SID_ROOT},upperdir={self.directory}/upper,"
            f'workdir={self.directory}/work {self.directory}/mnt && exec "$@"'
        )
        return [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            mount,
            "sh",
            "env",
            f"VENVSTACKS_BAZEL_ROOT={self.directory}/mnt",
            "VENVSTACKS_BAZEL_FORCE_ROOT=1",
            *command,
        ]


@dataclass
class OutputBase:
    """An output base, and how every Bazel call on it runs (environment, umask, root)."""

    path: Path
    env: dict[str, str] | None = None
    umask: int = 0o022
    overlay: OverlayRoot | None = None
    used: bool = False

    @property
    def startup(self) -> tuple[str, ...]:
        return (f"--output_base={self.path}",)

    def bazel(self, cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        self.used = True
        command = [str(BAZEL_SH), *self.startup, *args]
        if self.overlay is not None:
            command = self.overlay.wrap(command)
        result = subprocess.run(
            command, cwd=cwd, env=self.env, umask=self.umask, capture_output=True, text=True, check=False
        )
        if check and result.returncode != 0:
            raise AssertionError(f"bazel {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-6000:]}")
        return result

    def shutdown(self, cwd: Path) -> None:
        if self.used:
            self.bazel(cwd, "shutdown", check=False)
            self.used = False


# --- The module's shared state --------------------------------------------------------------


@dataclass
class Build:
    """One build: copies of its layer outputs, their hashes, its layer spawns and its output."""

    name: str
    outputs: Path
    hashes: dict[str, str]
    spawns: list[dict[str, Any]]  # the layers' archive actions
    output: str
    seconds: float
    metadata_spawns: list[dict[str, Any]] = field(default_factory=list)  # their metadata actions
    all_spawns: list[dict[str, Any]] = field(default_factory=list)  # every action of the build

    def processes_line(self) -> str:
        """Bazel's `INFO: N processes: ...` summary."""
        lines = [line for line in self.output.splitlines() if " processes" in line and line.startswith("INFO:")]
        return lines[-1] if lines else ""


@dataclass
class Context:
    base: Path
    sources: StackSources
    cache: RemoteCache
    stack: Stack
    rules_a: Path
    rules_b: Path
    ob_a: OutputBase
    output_bases: list[tuple[OutputBase, Path]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def output_base(self, name: str, cwd: Path | None = None, **kwargs: Any) -> OutputBase:
        """A fresh output base, shut down and deleted at the end of the module."""
        output_base = OutputBase(self.base / "output_bases" / name, **kwargs)
        self.output_bases.append((output_base, cwd or self.stack.root))
        return output_base

    def build(
        self,
        name: str,
        output_base: OutputBase,
        *flags: str,
        stack: Stack | None = None,
        targets: Sequence[str] = LAYER_TARGETS,
        check: bool = True,
    ) -> Build:
        """Builds `targets` with `flags`, an execution log, and copies the layer outputs aside."""
        workspace = (stack or self.stack).workspace
        log_file = self.base / "logs" / f"{name}.json"
        log_file.parent.mkdir(parents=True, exist_ok=True)
        start = time.monotonic()
        result = output_base.bazel(
            workspace.root, "build", f"--execution_log_json_file={log_file}", *flags, *targets, check=check
        )
        seconds = time.monotonic() - start
        self.timings[name] = seconds
        outputs = self.base / "outputs" / name
        outputs.mkdir(parents=True, exist_ok=True)
        for output in LAYER_OUTPUTS:
            if workspace.output(output).exists():
                shutil.copyfile(workspace.output(output), outputs / output)
        if "//witness" in targets and workspace.output("witness/witness.json").exists():
            shutil.copyfile(workspace.output("witness/witness.json"), outputs / "witness.json")
        hashes = {output: sha256(outputs / output) for output in LAYER_OUTPUTS if (outputs / output).exists()}
        entries = read_execution_log(log_file) if log_file.exists() else []
        metadata = [entry for entry in entries if entry.get("mnemonic") == "VenvstacksLayerMetadata"]
        return Build(
            name, outputs, hashes, layer_spawns(entries), result.stdout + result.stderr, seconds, metadata, entries
        )


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Context]:
    """Sources served, an empty remote cache, two rules snapshots, and a locked stack workspace."""
    base = tmp_path_factory.mktemp("remote_cache")
    rules_a = copy_checkout(base / "checkout_a" / "rules_venvstacks")
    rules_b = base / "checkout_b" / "elsewhere" / "rules_venvstacks"
    shutil.copytree(rules_a, rules_b)
    with serve_stack_sources(base / "sources") as sources, remote_cache(base / "cache") as cache:
        stack = make_stack(base / "ws_a", sources, rules_a)
        stack.workspace.write("witness/BUILD.bazel", WITNESS_BUILD)
        stack.workspace.write("witness/witness.sh", WITNESS_SCRIPT)
        stack.workspace.write("witness/witness.bzl", WITNESS_BZL)
        context = Context(base, sources, cache, stack, rules_a, rules_b, OutputBase(base / "output_bases" / "a"))
        context.output_bases.append((context.ob_a, stack.root))
        try:
            start = time.monotonic()
            for layer in ("framework", "app"):
                context.ob_a.bazel(stack.root, "run", f"//:{layer}.lock")
            context.timings["lock"] = time.monotonic() - start
            yield context
        finally:
            for output_base, cwd in context.output_bases:
                output_base.shutdown(cwd)
                shutil.rmtree(output_base.path, ignore_errors=True)
            print("\nbuild times (s):", json.dumps({k: round(v, 1) for k, v in context.timings.items()}))


@pytest.fixture(scope="module")
def reference(ctx: Context) -> Build:
    """A clean hermetic build (no remote or disk cache) in a neutral environment: the reference bytes."""
    env = _environment(
        ctx,
        "reference",
        LANG="C.UTF-8",
        LC_ALL="C.UTF-8",
        TZ="UTC",
        SOURCE_DATE_EPOCH=str(int(time.time())),
    )
    output_base = ctx.output_base("reference", env=env, umask=0o022)
    build = ctx.build(
        "reference",
        output_base,
        *HERMETIC_FLAGS,
        "--action_env=SOURCE_DATE_EPOCH",
        targets=(*LAYER_TARGETS, "//witness"),
    )
    output_base.shutdown(ctx.stack.root)
    times = {spawn["targetLabel"]: spawn.get("metrics", {}).get("executionWallTime") for spawn in build.spawns}
    print(f"\nreference build: layer action wall times {times}")
    return build


def _environment(ctx: Context, name: str, **overrides: str) -> dict[str, str]:
    """The test's environment with its own TMPDIR and the given variables."""
    tmpdir = ctx.base / "tmpdirs" / name
    tmpdir.mkdir(parents=True, exist_ok=True)
    return dict(os.environ, TMPDIR=str(tmpdir), **overrides)


def _diff_report(a: Path, b: Path) -> str:
    """Both sha256s and what `venvstacks_tool diff-archives A B` says (when the command exists)."""
    env = dict(os.environ, PYTHONPATH=str(CHECKOUT / "tools"))
    try:
        result = subprocess.run(
            [sys.executable, "-m", "venvstacks_tool", "diff-archives", str(a), str(b)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        report = (result.stdout + result.stderr).strip()[-8000:]
    except (OSError, subprocess.TimeoutExpired) as error:
        report = f"(diff-archives could not run: {error})"
    return f"{a.name}: {sha256(a)}\n{b.name}: {sha256(b)}\ndiff-archives:\n{report}"


def assert_same_outputs(expected: Build, actual: Build) -> None:
    """Every layer archive and metadata JSON has the same sha256; else the archive diff."""
    assert sorted(actual.hashes) == sorted(LAYER_OUTPUTS), f"{actual.name}: missing outputs {actual.hashes}"
    differing = [name for name in LAYER_OUTPUTS if expected.hashes[name] != actual.hashes[name]]
    if differing:
        reports = []
        for name in differing:
            a, b = expected.outputs / name, actual.outputs / name
            if name.endswith(".json"):
                reports.append(f"--- {name}\n{a.read_text()}\n+++ {name}\n{b.read_text()}")
            else:
                reports.append(f"--- {name}\n{_diff_report(a, b)}")
        pytest.fail(f"{actual.name} differs from {expected.name} in {differing}:\n" + "\n".join(reports))


def _executed_locally(spawn: dict[str, Any]) -> bool:
    return not spawn.get("cacheHit") and not spawn.get("remoteCacheHit")


def _by_target(build: Build) -> dict[str, dict[str, Any]]:
    spawns: dict[str, dict[str, Any]] = {}
    for spawn in build.spawns:
        assert spawn["targetLabel"] not in spawns, f"{build.name}: two layer spawns for {spawn['targetLabel']}"
        spawns[spawn["targetLabel"]] = spawn
    return spawns


# --- 1. Remote cache across checkouts -------------------------------------------------------


def test_checkout_b_gets_every_layer_from_the_remote_cache(ctx: Context, reference: Build) -> None:
    """Checkout A (rules at checkout_a/…, workspace ws_a, output base a) builds with
    `--remote_cache` and the documented flags, and uploads; checkout B (rules at checkout_b/elsewhere/…, workspace
    elsewhere/ws_b, its own output base) builds the same targets: the execution log has one spawn
    per layer, each a remote cache hit, the process summary counts only remote cache hits, no local
    process, and B's archives are byte-identical to A's (and to the reference build's).
    """
    flags = (f"--remote_cache={ctx.cache.url}", *DOCUMENTED_REMOTE_FLAGS)
    a = ctx.build("checkout_a", ctx.ob_a, *flags)
    assert sorted(_by_target(a)) == sorted(LAYER_TARGETS)
    assert all(_executed_locally(spawn) for spawn in a.spawns), describe_spawns(a.spawns)
    assert_same_outputs(reference, a)
    uploaded = [path for method, path, status in ctx.cache.requests() if method == "PUT" and status in (201, 204)]
    assert sum(path.startswith("/ac/") for path in uploaded) >= 3, ctx.cache.requests()

    stack_b = ctx.stack.clone(ctx.base / "elsewhere" / "ws_b", ctx.rules_b)
    assert stack_b.root != ctx.stack.root and ctx.rules_b != ctx.rules_a
    ob_b = ctx.output_base("b", cwd=stack_b.root)
    b = ctx.build("checkout_b", ob_b, *flags, stack=stack_b)
    ob_b.shutdown(stack_b.root)
    spawns = _by_target(b)
    assert sorted(spawns) == sorted(LAYER_TARGETS), describe_spawns(b.spawns)
    assert all(remote_cache_hit(spawn) for spawn in b.spawns), describe_spawns(b.spawns)
    summary = b.processes_line()
    # Beside the archives, hits too: the framework's and the application's metadata action each
    # (which writes their `bazel run` key too), the runtime's `bazel run` key (VenvstacksRunKey),
    # the application's stack check (the framework sits on the runtime alone: nothing to check
    # it against), and the framework's and the application's validations: the lock check
    # (VenvstacksLockCheck) and the loader check (VenvstacksLoaderCheck). 2 + 1 + 1 + 2 + 2.
    assert f"{len(LAYER_TARGETS) + 8} remote cache hit" in summary, summary
    for local_runner in ("linux-sandbox", "processwrapper-sandbox", "local", "worker"):
        assert f" {local_runner}" not in summary.split(":", 2)[-1], summary
    digests_a = {target: spawn["digest"]["hash"] for target, spawn in _by_target(a).items()}
    digests_b = {target: spawn["digest"]["hash"] for target, spawn in spawns.items()}
    assert digests_a == digests_b, "the action keys depend on the checkout's path"
    assert_same_outputs(a, b)
    print(f"\ncheckout B: {summary}; action digests {digests_b}")


# --- 2. Reproducible across clock, umask, TMPDIR and locale ---------------------------------


_UMASK_PRELOAD_C = """\
#include <sys/stat.h>
/* Preloaded into every process of the variant build: Bazel gives each spawn umask 022 before
   exec; this sets 077 again when the action's program starts. */
__attribute__((constructor)) static void venvstacks_test_umask(void) { umask(077); }
"""
UMASK_PRELOAD = "/usr/lib/venvstacks-test/libumask077.so"


def _variant_overlay(ctx: Context) -> tuple[OverlayRoot | None, list[str]]:
    """An overlay of Bazel's root where every process runs ten years ahead with umask 077.

    Returns the overlay (None when neither could be set up) and what could not be varied.
    """
    missing: list[str] = []
    if not SID_ROOT.joinpath(".venvstacks-ready").exists():
        return None, ["clock (no sid root)", "umask inside actions (no sid root)"]
    if not _libfaketime().exists() and os.geteuid() == 0 and shutil.which("apt-get"):
        print("test_remote_cache: installing Debian's faketime (apt-get) for the clock-shift build", flush=True)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "install", "-y", "-q", "faketime"], env=env, capture_output=True, check=False)
    files: dict[str, tuple[bytes, int]] = {}
    preload: list[str] = []
    libfaketime = _libfaketime()
    if libfaketime.exists():
        files[str(libfaketime)] = (libfaketime.read_bytes(), 0o755)
        # Read by libfaketime when FAKETIME is not in the environment: in every action.
        files["/etc/faketimerc"] = (f"{FAKETIME_SHIFT}\n".encode(), 0o644)
        preload.append(str(libfaketime))
    else:
        missing.append("clock (Debian's faketime is not installed)")
    library = ctx.base / "libumask077.so"
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler:
        (ctx.base / "umask077.c").write_text(_UMASK_PRELOAD_C)
        subprocess.run([compiler, "-shared", "-fPIC", "-O2", "-o", library, ctx.base / "umask077.c"], check=False)
    if library.exists():
        files[UMASK_PRELOAD] = (library.read_bytes(), 0o755)
        preload.append(UMASK_PRELOAD)
    else:
        missing.append("umask inside actions (no C compiler for the preload library)")
    if not preload:
        return None, missing
    files["/etc/ld.so.preload"] = ("".join(f"{path}\n" for path in preload).encode(), 0o644)
    return OverlayRoot(ctx.base / "overlay_variant", files), missing


def test_same_bytes_under_another_clock_umask_tmpdir_and_locale(ctx: Context, reference: Build) -> None:
    """Two clean builds (own output bases, no remote cache, no disk cache) whose every layer
    archive and metadata JSON must have the same sha256:

    * the reference: umask 022, LANG/LC_ALL C.UTF-8, TZ UTC, its own TMPDIR, SOURCE_DATE_EPOCH now
      (also passed with --action_env=SOURCE_DATE_EPOCH, which reaches actions that take the shell
      environment), the real clock, linux-sandbox;
    * this one: LANG/LC_ALL C (ASCII), TZ 14 hours east, another TMPDIR, SOURCE_DATE_EPOCH ten
      years back, and, in every process of Bazel's root including the actions, the clock ten years
      ahead and umask 077.

    How clock and umask reach the actions: `faketime bazel build` or `umask 077; bazel build` do
    not (actions get an explicit environment, so LD_PRELOAD/FAKETIME never reach them, and Bazel
    gives every spawn umask 022 whatever the server's). So this build runs on an overlay of
    Bazel's root whose `/etc/ld.so.preload` loads Debian's libfaketime (shift from
    `/etc/faketimerc`) and a three-line library that sets umask 077 when a program starts. The JVM
    gets FAKETIME=+0 and keeps the real time. With libfaketime loaded, Bazel's linux-sandbox
    self-check fails and Bazel uses its processwrapper-sandbox: one more difference.

    The `//witness` action records what an action saw (year, umask), to prove each difference
    reached the actions. Where faketime or a C compiler is missing, that difference is left out
    with a warning; the others still apply.
    """
    overlay, missing = _variant_overlay(ctx)
    if missing:
        import warnings

        warnings.warn(f"reproducibility build without: {', '.join(missing)}", stacklevel=1)
    env = _environment(
        ctx,
        "variant",
        LANG="C",
        LC_ALL="C",
        TZ="XYZ-14",
        SOURCE_DATE_EPOCH=str(int(time.time()) - 10 * 365 * 86400),
        FAKETIME="+0",
    )
    output_base = ctx.output_base("variant", env=env, umask=0o077, overlay=overlay)
    variant = ctx.build("variant", output_base, "--action_env=SOURCE_DATE_EPOCH", targets=(*LAYER_TARGETS, "//witness"))
    output_base.shutdown(ctx.stack.root)
    assert len(variant.spawns) == len(LAYER_TARGETS), describe_spawns(variant.spawns)
    assert all(_executed_locally(spawn) for spawn in variant.spawns), describe_spawns(variant.spawns)
    seen = json.loads((variant.outputs / "witness.json").read_text())
    seen_reference = json.loads((reference.outputs / "witness.json").read_text())
    this_year = datetime.now(timezone.utc).year
    assert seen_reference["year"] == this_year and seen_reference["umask"] == "0022", seen_reference
    if not any(item.startswith("umask") for item in missing):
        assert seen["umask"] == "0077", f"the actions did not get umask 077: {seen}"
    if not any(item.startswith("clock") for item in missing):
        assert seen["year"] >= this_year + 9, f"the actions did not see the shifted clock: {seen}"
    print(f"\nwhat an action saw: reference {seen_reference}; variant {seen}; variant ran {variant.processes_line()}")
    assert_same_outputs(reference, variant)


# --- 3. Hermetic ----------------------------------------------------------------------------

_POISON = (
    "import os, sys\n"
    "sys.stderr.write('POISONED: %s was imported from the host\\n' % __file__)\n"
    "sys.stderr.flush()\n"
    "os._exit(97)\n"
)
_POISON_CONF = b"[global]\nindex-url = http://127.0.0.1:1/poisoned\nfind-links = /poisoned\nno-index = false\n"
_POISON_PYTHON = b"#!/bin/sh\necho 'POISONED host python3 was run' >&2\nexit 97\n"


def _poison_tree(root: str, minor: str) -> dict[str, tuple[bytes, int]]:
    """Poisoned `pip`, `zstandard`, `sitecustomize` in every host site directory under `root`."""
    files: dict[str, tuple[bytes, int]] = {}
    for site in (
        f"{root}/usr/lib/python3/dist-packages",
        f"{root}/usr/local/lib/python{minor}/dist-packages",
        f"{root}/usr/lib/python{minor}",
        f"{root}/usr/lib/python{minor}/site-packages",
        f"{root}/root/.local/lib/python{minor}/site-packages",
    ):
        for module in ("zstandard.py", "pip/__init__.py", "pip/__main__.py", "sitecustomize.py", "usercustomize.py"):
            files[f"{site}/{module}"] = (_POISON.encode(), 0o644)
    # The stdlib landmark and `os` itself: a runtime that lost its own stdlib would land here.
    files[f"{root}/usr/lib/python{minor}/os.py"] = (_POISON.encode(), 0o644)
    return files


def _poisoned_host(ctx: Context) -> tuple[OverlayRoot | None, dict[str, str]]:
    """An overlay of Bazel's root with a poisoned host Python/pip/caches, and a poisoned environment."""
    minor = ".".join(ctx.sources.runtime.python_version.split(".")[:2])
    home = ctx.base / "poisoned_home"
    pythonpath = ctx.base / "poisoned_pythonpath"
    user_site = home / ".local" / "lib" / f"python{minor}" / "site-packages"
    for directory, modules in (
        (user_site, ("zstandard.py", "pip/__init__.py", "pip/__main__.py", "sitecustomize.py", "usercustomize.py")),
        (pythonpath, ("zstandard.py", "pip/__init__.py", "pip/__main__.py", "sitecustomize.py", "os.py", "site.py")),
    ):
        for module in modules:
            path = directory / module
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(_POISON)
    for relative in (".config/pip/pip.conf", ".pip/pip.conf"):
        (home / relative).parent.mkdir(parents=True, exist_ok=True)
        (home / relative).write_bytes(_POISON_CONF)
    # A pip cache with a different apppkg 1.0 wheel in it.
    (home / ".cache/pip/wheels/aa").mkdir(parents=True, exist_ok=True)
    (home / ".cache/pip/wheels/aa/apppkg-1.0-py3-none-any.whl").write_bytes(b"not the locked wheel")
    (home / ".pydistutils.cfg").write_text("[install]\nprefix = /poisoned\n")
    env = dict(
        os.environ,
        HOME=str(home),
        PYTHONPATH=str(pythonpath),
        PYTHONHOME="/poisoned-python-home",
        PYTHONSTARTUP=str(pythonpath / "os.py"),
        PYTHONUSERBASE=str(home / ".local"),
        PYTHONNOUSERSITE="",
        VIRTUAL_ENV=str(home / "venv"),
        XDG_CACHE_HOME=str(home / ".cache"),
        XDG_CONFIG_HOME=str(home / ".config"),
        PIP_INDEX_URL="http://127.0.0.1:1/poisoned",
        PIP_EXTRA_INDEX_URL="http://127.0.0.1:1/poisoned-extra",
        PIP_FIND_LINKS=str(home / ".cache/pip/wheels/aa"),
        PIP_CONFIG_FILE=str(home / ".config/pip/pip.conf"),
        PIP_NO_INDEX="0",
        PIP_USER="1",
        PIP_TARGET=str(home / "target"),
        PIP_PREFIX=str(home / "prefix"),
        PIP_REQUIRE_VIRTUALENV="1",
        PIP_COMPILE="1",
        SOURCE_DATE_EPOCH="1",
    )
    if not SID_ROOT.joinpath(".venvstacks-ready").exists():
        return None, env
    files = _poison_tree("", minor)
    files["/usr/bin/python3"] = (_POISON_PYTHON, 0o755)
    files[f"/usr/bin/python{minor}"] = (_POISON_PYTHON, 0o755)
    files["/usr/local/bin/python3"] = (_POISON_PYTHON, 0o755)
    files["/usr/local/bin/pip"] = (_POISON_PYTHON, 0o755)
    for conf in ("/etc/pip.conf", "/etc/xdg/pip/pip.conf", "/root/.config/pip/pip.conf", "/root/.pip/pip.conf"):
        files[conf] = (_POISON_CONF, 0o644)
    files["/root/.cache/pip/wheels/aa/apppkg-1.0-py3-none-any.whl"] = (b"not the locked wheel", 0o644)
    files["/root/.pydistutils.cfg"] = (b"[install]\nprefix = /poisoned\n", 0o644)
    return OverlayRoot(ctx.base / "overlay_poisoned", files), env


def test_hermetic_actions_read_nothing_from_the_host(ctx: Context, reference: Build) -> None:
    """The reference build ran with `--sandbox_default_allow_network=false
    --spawn_strategy=linux-sandbox --incompatible_strict_action_env` and succeeded, every layer
    action in linux-sandbox. Then a clean build in a fresh output base, with the same flags, on a
    host where everything a leaky action could pick up exists and is poisoned gives the same bytes:

    * in Bazel's root (an overlay): `/usr/bin/python3` (and python3.X, /usr/local/bin/python3, pip)
      exit 97; `pip`, `zstandard`, `sitecustomize`, `usercustomize` packages that exit 97 on import
      in /usr/lib/python3/dist-packages, /usr/local/lib/python3.X/dist-packages,
      /usr/lib/python3.X (with a poisoned `os.py`: the stdlib landmark), ~root/.local;
      /etc/pip.conf, /etc/xdg/pip/pip.conf and ~root pip.conf pointing at a dead index; a
      ~root/.cache/pip holding a fake apppkg wheel;
    * in the client's environment (and forwarded with --action_env to actions that take it):
      PYTHONPATH at a directory of the same poisoned modules (plus os.py, site.py), PYTHONHOME,
      PYTHONSTARTUP, PYTHONUSERBASE, VIRTUAL_ENV, HOME with its own poisoned pip.conf, pip cache and
      .pydistutils.cfg, XDG dirs, and PIP_INDEX_URL/EXTRA_INDEX_URL/FIND_LINKS/CONFIG_FILE/USER/
      TARGET/PREFIX/REQUIRE_VIRTUALENV/COMPILE.

    The `//witness` genrule shows that an ordinary action does see the poison (the host python3
    fails, /etc/pip.conf and the pip cache are there, PYTHONPATH is forwarded to it).
    """
    reference_spawns = _by_target(reference)
    assert sorted(reference_spawns) == sorted(LAYER_TARGETS)
    assert all(spawn["runner"] == "linux-sandbox" for spawn in reference.spawns), describe_spawns(reference.spawns)

    overlay, env = _poisoned_host(ctx)
    forwarded = [
        f"--action_env={name}"
        for name in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PIP_INDEX_URL", "PIP_FIND_LINKS", "PIP_CONFIG_FILE")
    ]
    output_base = ctx.output_base("poisoned", env=env, overlay=overlay)
    poisoned = ctx.build(
        "poisoned", output_base, *HERMETIC_FLAGS, *forwarded, targets=(*LAYER_TARGETS, "//witness"), check=False
    )
    output_base.shutdown(ctx.stack.root)
    assert "POISONED" not in poisoned.output, poisoned.output[-6000:]
    assert "Build completed successfully" in poisoned.output, poisoned.output[-6000:]
    seen = json.loads((poisoned.outputs / "witness.json").read_text())
    assert seen["pythonpath"] == env["PYTHONPATH"], seen
    if overlay is not None:
        assert "POISONED" in seen["host_python"] and "poisoned" in seen["pip_conf"], seen
        assert "wheels" in seen["root_pip_cache"], seen
    assert all(spawn["runner"] == "linux-sandbox" for spawn in poisoned.spawns), describe_spawns(poisoned.spawns)
    print(f"\nwhat an ordinary action saw on the poisoned host: {seen}")
    assert_same_outputs(reference, poisoned)


# --- 4. Incremental -------------------------------------------------------------------------


def _executed_layers(build: Build) -> list[str]:
    """Targets whose layer action ran (executed or taken from a cache) in this build."""
    return sorted(spawn["targetLabel"] for spawn in build.spawns)


def test_only_what_changed_rebuilds(ctx: Context) -> None:
    """In checkout A's output base, after a full build: a new app requirement (relocked with
    `bazel run //:app.lock`) and then an app code change each run exactly the app layer action;
    the runtime and framework actions are up to date, so the execution log has no entry for them
    (Bazel logs only spawns it runs or looks up in a cache). Then the framework changes (its
    bytecode is switched off): only the framework's archive action runs; the app's archive does
    not depend on it, so only the app's metadata, which records the framework archive's new
    sha256, is written again. Then the runtime changes (another archive: same CPython plus one
    file, another sha256): runtime, framework and app all run, and the new runtime archive's
    sha256 is what the layers above record.
    """
    stack, ob = ctx.stack, ctx.ob_a
    originals = {name: (stack.root / name).read_bytes() for name in ("pylock.app.toml", "app/__main__.py")}
    ctx.build("incremental_full", ob)
    try:
        ctx.sources.index.add_wheel("extrapkg", "1.0")
        stack.set_app_requirements(["apppkg", "extrapkg"])
        ob.bazel(stack.root, "run", "//:app.lock")
        assert "extrapkg" in (stack.root / "pylock.app.toml").read_text()
        requirements = ctx.build("incremental_app_requirements", ob)
        assert _executed_layers(requirements) == ["//:app"], describe_spawns(requirements.spawns)
        assert all(_executed_locally(spawn) for spawn in requirements.spawns)

        stack.workspace.write("app/__main__.py", originals["app/__main__.py"].decode() + "# changed\n")
        code = ctx.build("incremental_app_code", ob)
        assert _executed_layers(code) == ["//:app"], describe_spawns(code.spawns)
        assert code.hashes["app.tar.zst"] != requirements.hashes["app.tar.zst"]
        for unchanged in ("cpython.tar.zst", "framework.tar.zst"):
            assert code.hashes[unchanged] == requirements.hashes[unchanged]

        build_file = stack.root / "BUILD.bazel"
        text = build_file.read_text()
        build_file.write_text(text.replace('name = "framework",', 'name = "framework",\n    bytecode = "none",', 1))
        framework = ctx.build("incremental_framework", ob)
        assert _executed_layers(framework) == ["//:framework"], describe_spawns(framework.spawns)
        metadata_runs = sorted(spawn["targetLabel"] for spawn in framework.metadata_spawns)
        assert metadata_runs == ["//:app", "//:framework"], describe_spawns(framework.metadata_spawns)
        assert framework.hashes["app.tar.zst"] == code.hashes["app.tar.zst"]
        for changed in ("framework.tar.zst", "framework.json", "app.json"):
            assert framework.hashes[changed] != code.hashes[changed], changed
        assert framework.hashes["framework.tar.zst"] in (stack.root / "bazel-bin" / "app.json").read_text()
        build_file.write_text(text)

        stack.set_runtime(make_variant_runtime(ctx.sources.runtime, ctx.sources.runtimes_dir, "local2"))
        runtime = ctx.build("incremental_runtime", ob)
        assert _executed_layers(runtime) == sorted(LAYER_TARGETS), describe_spawns(runtime.spawns)
        assert {spawn["mnemonic"] for spawn in runtime.spawns} == set(LAYER_MNEMONICS)
        # The runtime archive changes; the layers above record its sha256 in their metadata. (Their
        # archives may keep their bytes: here the runtime gained a file nothing above refers to.)
        for name in ("cpython.tar.zst", "cpython.json", "framework.json", "app.json"):
            assert runtime.hashes[name] != framework.hashes[name], name
        assert runtime.hashes["cpython.tar.zst"] in (ctx.stack.root / "bazel-bin" / "framework.json").read_text()
    finally:
        stack.runtime = None
        stack.app_requirements = ["apppkg"]
        stack.write()
        for name, data in originals.items():
            (stack.root / name).write_bytes(data)


# --- 5. Cache outage ------------------------------------------------------------------------


def test_build_survives_a_cache_outage_and_uploads_nothing_wrong(ctx: Context, reference: Build) -> None:
    """A second, empty nginx cache. A clean build starts with `--remote_cache=URL` and the
    documented flags (DOCUMENTED_REMOTE_FLAGS); as soon as the first action result is stored (a
    `PUT /ac/…`: of any action, the layers' archives or the validations beside them), nginx is stopped.
    The build still succeeds: every layer is built locally, Bazel warns about the remote cache.
    nginx comes back on the same port and cache directory; a clean build from another output base
    takes what was stored from the cache, builds the rest, and every archive is byte-identical to
    the reference build; every blob in the cache is intact (named by its sha256).
    """
    with remote_cache(ctx.base / "outage_cache") as cache:
        flags = (f"--remote_cache={cache.url}", *DOCUMENTED_REMOTE_FLAGS)
        output_base = ctx.output_base("outage")
        log_file = ctx.base / "logs" / "outage.json"
        command = [
            str(BAZEL_SH),
            *output_base.startup,
            "build",
            f"--execution_log_json_file={log_file}",
            *flags,
            *LAYER_TARGETS,
        ]
        output_base.used = True
        start = time.monotonic()
        process = subprocess.Popen(
            command, cwd=ctx.stack.root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        stopped_at = None
        while process.poll() is None:
            if stopped_at is None and any(m == "PUT" and p.startswith("/ac/") for m, p, _ in cache.requests()):
                cache.stop()
                stopped_at = time.monotonic() - start
            time.sleep(0.05)
        output = process.stdout.read() if process.stdout else ""
        ctx.timings["outage"] = time.monotonic() - start
        output_base.shutdown(ctx.stack.root)
        assert process.returncode == 0, output[-6000:]
        assert stopped_at is not None, f"the build finished before any upload:\n{output[-4000:]}"
        assert "WARNING" in output and ("Remote Cache" in output or "remote cache" in output), output[-6000:]
        spawns = {spawn["targetLabel"]: spawn for spawn in layer_spawns(read_execution_log(log_file))}
        assert sorted(spawns) == sorted(LAYER_TARGETS)
        assert all(_executed_locally(spawn) for spawn in spawns.values()), describe_spawns(list(spawns.values()))
        stored_after_outage = len(cache.entries("ac"))

        cache.start()
        after = ctx.output_base("after_outage")
        rebuilt = ctx.build("after_outage", after, f"--remote_cache={cache.url}", *DOCUMENTED_REMOTE_FLAGS)
        after.shutdown(ctx.stack.root)
        # Every action: the first result stored before the outage may be any of them (a validation
        # action, which needs no archive, often finishes before the layers do).
        everything = rebuilt.all_spawns
        hits = [f"{spawn['mnemonic']} {spawn['targetLabel']}" for spawn in everything if remote_cache_hit(spawn)]
        assert hits, describe_spawns(everything)
        hit_or_local = [remote_cache_hit(spawn) or _executed_locally(spawn) for spawn in everything]
        assert all(hit_or_local), describe_spawns(everything)
        assert stored_after_outage >= 1
        assert_same_outputs(reference, rebuilt)
        for blob in cache.entries("cas"):
            assert sha256(blob) == blob.name, f"corrupt blob in the cache: {blob}"
        warnings = sorted({line for line in output.splitlines() if "Remote Cache" in line})
        print(
            f"\noutage: warnings {warnings}; nginx stopped {stopped_at:.1f}s into the build; "
            f"hits after restart: {hits}; {stored_after_outage} action results stored before the outage"
        )


def test_blob_lost_after_a_cache_hit_is_rebuilt_locally(ctx: Context, reference: Build) -> None:
    """The other face of an outage: the cache answers the action lookup, then cannot serve an
    output (evicted, or the server lost it). With Bazel 7's default `--remote_download_toplevel`
    the framework layer's hits are not downloaded; the app layer's metadata action (the app
    changed, so it runs) then needs the framework's archive record and Bazel fails with "Failed
    to fetch blobs because they do not exist remotely" (exit 39) unless
    `--experimental_remote_cache_eviction_retries` is set: with it (one of the documented flags)
    Bazel starts the build again, runs the framework's archive action locally and succeeds, and
    what it uploads again is the reference's record.
    """
    # The record is the `archive` entry of framework.json with the layer's name, as the tool writes JSON.
    framework_metadata = json.loads((reference.outputs / "framework.json").read_text())
    record = json_bytes({"archive": framework_metadata["archive"], "layer_name": "framework"})
    lost = ctx.cache.cache_dir / "cas" / hashlib.sha256(record).hexdigest()
    if not lost.exists():  # this test alone: fill the cache first
        populate = ctx.output_base("populate")
        ctx.build("populate", populate, f"--remote_cache={ctx.cache.url}", *DOCUMENTED_REMOTE_FLAGS)
        populate.shutdown(ctx.stack.root)
    lost.unlink()
    app_main = ctx.stack.root / "app" / "__main__.py"
    original = app_main.read_text()
    app_main.write_text(original + "# changed after the cache lost a blob\n")
    try:
        output_base = ctx.output_base("lost_blob")
        build = ctx.build(
            "lost_blob", output_base, f"--remote_cache={ctx.cache.url}", *DOCUMENTED_REMOTE_FLAGS, targets=("//:app",)
        )
        output_base.shutdown(ctx.stack.root)
    finally:
        app_main.write_text(original)
    attempts = [line for line in build.output.splitlines() if line.startswith("INFO:") and " processes: " in line]
    assert "do not exist remotely" in build.output and len(attempts) == 2, build.output[-4000:]
    framework_runs = [spawn for spawn in build.spawns if spawn["targetLabel"] == "//:framework"]
    assert any(_executed_locally(spawn) for spawn in framework_runs), describe_spawns(build.spawns)
    assert lost.exists() and lost.read_bytes() == record
    print(f"\nlost blob: first attempt {attempts[0]!r}, retry {attempts[1]!r}")
