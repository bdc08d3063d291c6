"""The README's main job: build, test and deploy the example stack, then run both apps.

    python3 examples/run_example.py [--workdir DIR] [--dest DIR] [--local-runtime] [--write-locks]

Needs only this checkout, a Python 3.10+ and, for Bazel, what tests/bazel.sh provisions by itself
(as root on Debian: a Bazel 7 root built once with mmdebstrap, a few minutes). Steps, each
announced as it starts:

1. Bazel: `tests/bazel.sh --version` (the first run provisions it, with its progress shown);
2. the runtime: python-build-standalone from GitHub as the example declares it; where GitHub is
   unreachable (as on the project's CI machines), a PBS-layout archive of this machine's CPython
   for the host platform (`python3 -m venvstacks_maint local-runtime`, docs/runtimes.md), declared
   by a `venvstacks.runtime_archive` tag appended to the copy's MODULE.bazel;
3. a copy of examples/stack in the work directory (`--override_module` points it at this
   checkout's rules); with `--write-locks`, `bazel run //stacks:<layer>.lock` for each layer,
   framework first, and the locks copied back into examples/stack/stacks (the example ships its
   locks: a lock covers every platform and does not depend on the runtime's patch release);
4. `bazel build //stacks:stack`, `bazel test //stacks:all` (lock freshness, each app's launch
   module, and app_report's own pytest files run inside its deployed stack: `stack_test`),
   `bazel run //stacks:app_report -- 3 1 4 1 5` (the app started as `py_binary` would) and, with
   PBS, the Windows archives of an app (`--platforms=@rules_venvstacks//platforms:windows_x86_64`);
5. `bazel run //stacks:stack.deploy -- DEST` deploys every layer of both applications; each runs
   from DEST (`DEST/<app>/bin/python -m <app>`) and must import numpy and the shared first-party
   library (stats_core) from the framework layer.

It ends with the archives it built and where the stack is deployed. The work directory is kept
(and reused by the next run, whose Bazel output base is then warm).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]
# The maintainer tools ship with the module's Python tooling (tools/); nothing needs installing.
sys.path.insert(0, str(CHECKOUT / "tools"))

from venvstacks_maint.local_runtime import make_local_runtime, runtime_archive_tag  # noqa: E402

EXAMPLE = CHECKOUT / "examples" / "stack"
BAZEL_SH = CHECKOUT / "tests" / "bazel.sh"
RUNTIME = "cpython3_11"
LAYERS = ["numpy_framework", "app_report", "app_stats", "test_tools"]
APPS = ["app_report", "app_stats"]
WINDOWS = "@rules_venvstacks//platforms:windows_x86_64"
STEPS = 5


def say(message: str) -> None:
    """One progress line of this script (Bazel's own output goes to stderr beside it)."""
    print(f"run_example: {message}", flush=True)


def default_workdir() -> Path:
    """A work directory per checkout under the temporary directory, reused from run to run."""
    key = hashlib.sha256(str(CHECKOUT).encode()).hexdigest()[:8]
    return Path(tempfile.gettempdir()) / f"rules_venvstacks-example-{key}"


def github_reachable() -> bool:
    """True when a TCP connection to github.com:443 opens within 5 seconds."""
    try:
        socket.create_connection(("github.com", 443), timeout=5).close()
    except OSError:
        return False
    return True


class Bazel:
    """`tests/bazel.sh` in one workspace, its output shown as it runs, pointed at this checkout's rules."""

    def __init__(self, workspace: Path, visible: list[Path]) -> None:
        self.workspace = workspace
        # bazel.sh shows Bazel /tmp, its cache and the checkout; other paths used here must be bound.
        extra = [str(path) for path in visible if not path.is_relative_to("/tmp")]
        bind = ":".join(filter(None, [os.environ.get("VENVSTACKS_BAZEL_BIND", ""), *extra]))
        self.env = {**os.environ, "VENVSTACKS_BAZEL_BIND": bind}

    def __call__(self, command: str, *args: str, check: bool = True) -> None:
        """Runs `bazel COMMAND ARGS...`; a failure ends the script with the command named."""
        flags = [f"--override_module=rules_venvstacks={CHECKOUT}"] if command != "shutdown" else []
        argv = [str(BAZEL_SH), command, *flags, *args]
        result = subprocess.run(argv, cwd=self.workspace, env=self.env, check=False)
        if check and result.returncode != 0:
            raise SystemExit(f"run_example: `bazel {command} {' '.join(args)}` failed (exit {result.returncode})")


def provision_bazel() -> None:
    """Runs `tests/bazel.sh --version`, which on the first run builds the Bazel root (progress shown)."""
    say(f"[1/{STEPS}] Bazel 7 through tests/bazel.sh (the first run provisions it with mmdebstrap: a few minutes)")
    if subprocess.run([str(BAZEL_SH), "--version"], cwd=CHECKOUT, check=False).returncode != 0:
        raise SystemExit("run_example: tests/bazel.sh could not provide a Bazel 7 (its messages above say why)")


def runtime_tag(workdir: Path, local_runtime: bool) -> str | None:
    """None to use PBS from GitHub, else the runtime_archive tag of this machine's CPython."""
    if not local_runtime and github_reachable():
        say(f"[2/{STEPS}] runtime: python-build-standalone from GitHub, as examples/stack declares it")
        return None
    reason = "as asked (--local-runtime)" if local_runtime else "GitHub is unreachable"
    runtime = make_local_runtime(workdir / "pbs")
    say(f"[2/{STEPS}] runtime: {reason}, so this machine's CPython {runtime.python_version}: {runtime.path}")
    say("      (as `venvstacks_maint local-runtime` makes it, docs/runtimes.md); other platforms are skipped")
    return runtime_archive_tag(runtime, RUNTIME)


def copy_example(workdir: Path, tag: str | None) -> Path:
    """A fresh copy of examples/stack in `workdir/example`, with `tag` appended to its MODULE.bazel."""
    copy = workdir / "example"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(EXAMPLE, copy)
    if tag is not None:
        with open(copy / "MODULE.bazel", "a", encoding="utf-8") as module:
            module.write("\n# Appended by examples/run_example.py: GitHub is unreachable.\n" + tag)
    return copy


def write_locks(bazel: Bazel) -> None:
    """Re-locks every layer in the copy and copies the locks back into examples/stack/stacks."""
    for layer in LAYERS:
        say(f"      bazel run //stacks:{layer}.lock")
        bazel("run", f"//stacks:{layer}.lock")
        for name in (f"pylock.{layer}.toml", f"{layer}.requirements.txt"):
            shutil.copyfile(bazel.workspace / "stacks" / name, EXAMPLE / "stacks" / name)


def run_app(dest: Path, app: str) -> dict[str, str]:
    """Runs a deployed app; returns its report, after checking where its modules came from."""
    python = dest / app / "bin" / "python"
    output = subprocess.run([python, "-m", app], check=True, capture_output=True, text=True).stdout
    print(output, end="", flush=True)
    report: dict[str, str] = json.loads(output.strip().splitlines()[-1])
    expected = {"numpy_file": "numpy_framework", "stats_core_file": "numpy_framework", "report_format_file": app}
    for key, layer in expected.items():
        if key in report and not Path(report[key]).is_relative_to(dest / layer):
            raise SystemExit(f"run_example: {app} imported {report[key]}, not from the layer {layer}")
    return report


def summary(copy: Path, dest: Path) -> None:
    """What was built and deployed, and where."""
    metadata = json.loads((copy / "bazel-bin" / "stacks" / "stack.json").read_text())
    say("done. Layer archives (built by Bazel; bazel-bin is a link into its output base):")
    for name, layer in sorted(metadata["layers"].items()):
        archive = copy / "bazel-bin" / "stacks" / layer["archive"]["file"]
        say(f"  {name:16} {layer['archive']['size']:>11,} bytes  {archive}")
    say(f"  stack metadata   {copy / 'bazel-bin' / 'stacks' / 'stack.json'}")
    say(f"Deployed stack: {dest} (one directory per layer); run an app with:")
    for app in APPS:
        say(f"  {dest / app / 'bin' / 'python'} -m {app}")
    say(f"The workspace (a copy of examples/stack): {copy}")


def run(workdir: Path, dest: Path, *, local_runtime: bool, relock: bool) -> dict[str, dict[str, str]]:
    """Runs the five steps; returns what each app reported."""
    provision_bazel()
    tag = runtime_tag(workdir, local_runtime)
    copy = copy_example(workdir, tag)
    bazel = Bazel(copy, [workdir, dest])
    try:
        say(
            f"[3/{STEPS}] workspace: {copy}" + (", re-locking every layer" if relock else ", with its checked-in locks")
        )
        if relock:
            write_locks(bazel)
        say(f"[4/{STEPS}] bazel build //stacks:stack, bazel test //stacks:all, bazel run //stacks:app_report")
        bazel("build", "//stacks:stack")
        bazel("test", "//stacks:all")
        bazel("run", "//stacks:app_report", "--", "3", "1", "4", "1", "5")
        if tag is None:
            say(f"      bazel build --platforms={WINDOWS} //stacks:app_report")
            bazel("build", f"--platforms={WINDOWS}", "//stacks:app_report")
        else:
            say("      skipping the Windows build: its runtime comes from GitHub")
        say(f"[5/{STEPS}] bazel run //stacks:stack.deploy -- {dest}, then running both applications from there")
        bazel("run", "//stacks:stack.deploy", "--", str(dest))
    finally:
        bazel("shutdown", check=False)
    reports = {app: run_app(dest, app) for app in APPS}
    summary(copy, dest)
    return reports


def main(argv: list[str]) -> int:
    """Command-line entry."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--workdir", type=Path, help=f"where the example's copy and runtime go (default: {default_workdir()})"
    )
    parser.add_argument("--dest", type=Path, help="where to deploy the stack (default: WORKDIR/deployed)")
    parser.add_argument(
        "--local-runtime",
        action="store_true",
        help="use a PBS-layout archive of this machine's CPython, without trying GitHub",
    )
    parser.add_argument(
        "--write-locks",
        action="store_true",
        help="re-lock every layer (network) and copy the locks into examples/stack/stacks",
    )
    args = parser.parse_args(argv)
    workdir = (args.workdir or default_workdir()).resolve()
    dest = (args.dest or workdir / "deployed").resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    dest.mkdir(parents=True, exist_ok=True)
    run(workdir, dest, local_runtime=args.local_runtime, relock=args.write_locks)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
