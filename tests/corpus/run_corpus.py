"""The compatibility corpus: lock, build, deploy, then import and call every package from the deployed app.

    python3 tests/corpus/run_corpus.py [--ci] [--relock] [--write-locks] [--write-docs] [--dest DIR] [--rows FILE]

Works on a copy of tests/corpus (a Bazel module on this checkout's rules) with a real Bazel
(tests/bazel.sh), real pip and the real index:

1. with `--relock`, `bazel run //stacks:<layer>.lock` for each layer, lowest first (`--write-locks`
   copies the new locks back into tests/corpus/stacks); otherwise the checked-in locks are used;
2. `bazel build` of the stack, then `bazel test` of each layer's lock freshness test and of the
   application's `.test` (which deploys the stack into a temporary directory and runs the probe);
3. `bazel run //stacks:<app>.deploy -- DEST`;
4. `DEST/<app>/bin/python -m corpus_probe`: one JSON row per package (version, the layer it was
   imported from, the call made, the result); the run fails if any row failed.

The full corpus (default) holds PyPI's big packages and PyTorch's 192 MB CPU wheel, taken from
/opt/wheels (or $VENVSTACKS_CORPUS_TORCH_WHEELS) through a `find_links` directory of the copy;
`--ci` runs the reduced corpus (small wheels, the same layer crossings) that CI runs.
`--write-docs` puts the table and the timings into docs/compatibility.md. The runtime is this
machine's CPython packed as a PBS-layout archive and served on 127.0.0.1 (PBS lives on GitHub,
which the project's machines cannot reach; the corpus is about packages, not runtimes).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from venvstacks_maint.local_runtime import LocalRuntime, make_local_runtime, runtime_archive_tag
from venvstacks_testing.bazel_workspace import Workspace
from venvstacks_testing.http_server import serve_directory

CHECKOUT = Path(__file__).resolve().parents[2]
CORPUS = CHECKOUT / "tests" / "corpus"
DOCS = CHECKOUT / "docs" / "compatibility.md"
TORCH_WHEEL = "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"
TORCH_WHEEL_DIR = Path(os.environ.get("VENVSTACKS_CORPUS_TORCH_WHEELS", "/opt/wheels"))
# The corpus' runtime (tests/corpus/MODULE.bazel), declared on this machine's CPython.
RUNTIME = "cpython3_11"
_TABLE_BLOCK = re.compile(r"<!-- corpus-table-begin -->.*?<!-- corpus-table-end -->", re.DOTALL)


@dataclass(frozen=True)
class Corpus:
    """One corpus of the module: its layers, lowest first (the application last), and its stack target."""

    layers: tuple[str, ...]
    stack: str
    torch: bool

    @property
    def app(self) -> str:
        """The application layer, whose interpreter runs the probe."""
        return self.layers[-1]


FULL = Corpus(("sci_framework", "services_framework", "corpus_app"), "full_stack", torch=True)
CI = Corpus(("ci_base", "ci_services", "ci_app"), "ci_stack", torch=False)


@dataclass
class Result:
    """What a run produced: the probe's rows and the wall time of each phase, in seconds."""

    rows: list[dict[str, object]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    runtime_version: str = ""
    deployed_bytes: int = 0
    load: tuple[float, ...] = ()

    @property
    def failed(self) -> list[dict[str, object]]:
        """The rows whose check did not pass."""
        return [row for row in self.rows if not row["ok"]]


def log(message: str) -> None:
    """One progress line on stdout."""
    print(f"run_corpus: {message}", flush=True)


def copy_corpus(destination: Path, runtime: LocalRuntime, url: str) -> Workspace:
    """Copies tests/corpus (no wheels/, no bazel-* links) to `destination`, on this checkout's rules and runtime.

    The copy's MODULE.bazel names this checkout and ends with the runtime_archive tag of `runtime`
    (`local-runtime`'s, as examples/run_example.py appends it), its archive served from `url`.
    """
    shutil.copytree(CORPUS, destination, ignore=shutil.ignore_patterns("bazel-*", "wheels", "__pycache__"))
    module = (destination / "MODULE.bazel").read_text().replace('path = "../.."', f'path = "{CHECKOUT}"')
    tag = runtime_archive_tag(runtime, RUNTIME, url=f"{url}/{runtime.path.name}")
    (destination / "MODULE.bazel").write_text(f"{module}\n# Appended by tests/corpus/run_corpus.py.\n{tag}")
    return Workspace(destination)


def link_torch_wheel(root: Path) -> None:
    """Puts the torch wheel into the copy's `wheels/` (the full corpus' find_links), hard-linked when possible."""
    wheel = TORCH_WHEEL_DIR / TORCH_WHEEL
    if not wheel.is_file():
        raise SystemExit(
            f"run_corpus: {wheel} is missing: the full corpus needs PyTorch's CPU wheel "
            "(set VENVSTACKS_CORPUS_TORCH_WHEELS to its directory, or run --ci)"
        )
    (root / "wheels").mkdir()
    try:
        os.link(wheel, root / "wheels" / wheel.name)
    except OSError:
        shutil.copyfile(wheel, root / "wheels" / wheel.name)


def timed(result: Result, phase: str, workspace: Workspace, startup: tuple[str, ...], *args: str) -> None:
    """Runs one Bazel command, adding its wall time to `phase`."""
    log(f"bazel {' '.join(args)}")
    start = time.monotonic()
    workspace.bazel(*args, startup=startup)
    result.timings[phase] = result.timings.get(phase, 0.0) + time.monotonic() - start


def run_probe(python: Path, result: Result) -> None:
    """Runs the probe with the deployed application's interpreter; collects its rows."""
    start = time.monotonic()
    probe = subprocess.run([python, "-m", "corpus_probe"], capture_output=True, text=True, check=False)
    result.timings["probe"] = time.monotonic() - start
    for line in probe.stdout.splitlines():
        if line.startswith('{"corpus_row"'):
            result.rows.append(json.loads(line)["corpus_row"])
        else:
            print(line)
    if probe.returncode != 0 and not result.failed:
        raise SystemExit(f"run_corpus: the probe failed ({probe.returncode}) with no failed row:\n{probe.stderr}")


def run(corpus: Corpus, dest: Path, scratch: Path, *, relock: bool, write_locks: bool) -> Result:
    """Locks (if asked), builds, deploys and probes `corpus`, with the host's runtime."""
    runtime = make_local_runtime(scratch)
    # An output base in the scratch directory, removed with it (a full run leaves about 800 MB);
    # the wheels stay in tests/bazel.sh's shared repository cache.
    startup = (f"--output_base={scratch / 'output_base'}",)
    result = Result(runtime_version=runtime.python_version, load=os.getloadavg())
    with serve_directory(scratch) as url:
        workspace = copy_corpus(scratch / "corpus", runtime, url)
        if corpus.torch:
            link_torch_wheel(workspace.root)
        try:
            if relock:
                for layer in corpus.layers:
                    timed(result, "lock", workspace, startup, "run", f"//stacks:{layer}.lock")
                    if write_locks:
                        for name in (f"pylock.{layer}.toml", f"{layer}.requirements.txt"):
                            shutil.copyfile(workspace.root / "stacks" / name, CORPUS / "stacks" / name)
            timed(result, "build", workspace, startup, "build", f"//stacks:{corpus.stack}")
            tests = [f"//stacks:{layer}.lock_test" for layer in corpus.layers] + [f"//stacks:{corpus.app}.test"]
            timed(result, "test", workspace, startup, "test", *tests)
            timed(result, "deploy", workspace, startup, "run", f"//stacks:{corpus.app}.deploy", "--", str(dest))
        finally:
            workspace.bazel("shutdown", check=False, startup=startup)
    files = [path for path in dest.rglob("*") if path.is_file() and not path.is_symlink()]
    result.deployed_bytes = sum(path.stat().st_size for path in files)
    run_probe(dest / corpus.app / "bin" / "python", result)
    return result


def table(result: Result) -> str:
    """The rows as the Markdown table of docs/compatibility.md."""
    lines = ["| package | version | layer | what was called | result |", "| --- | --- | --- | --- | --- |"]
    for row in result.rows:
        cells = [row["package"], row["version"], row["layer"], row["call"], row["result"]]
        lines.append("| " + " | ".join(str(cell).replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines)


def code_version() -> str:
    """The checkout's commit, and how many of its files are modified."""
    commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=CHECKOUT, capture_output=True, text=True)
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], cwd=CHECKOUT, capture_output=True, text=True
    )
    return f"`{commit.stdout.strip()}` + {len(status.stdout.splitlines())} modified file(s)"


def write_docs(result: Result, relock: bool) -> None:
    """Replaces the generated block of docs/compatibility.md with this run's table and timings."""
    phases = ["lock", "build", "test", "deploy", "probe"] if relock else ["build", "test", "deploy", "probe"]
    timings = ", ".join(f"{phase} {result.timings[phase]:.0f} s" for phase in phases)
    today = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    block = (
        "<!-- corpus-table-begin -->\n"
        f"Generated by `python3 tests/corpus/run_corpus.py{' --relock' if relock else ''} --write-docs` on {today}, "
        f"code at {code_version()}, on Linux x86_64 ({os.cpu_count()} cores, load average {result.load[0]:.1f} at "
        f"the start), CPython {result.runtime_version} runtime (this machine's, PBS layout). Wall times: {timings}; "
        f"the deployed stack holds {result.deployed_bytes / 1e6:.0f} MB.\n\n{table(result)}\n"
        "<!-- corpus-table-end -->"
    )
    text = DOCS.read_text()
    if not _TABLE_BLOCK.search(text):
        raise SystemExit(f"run_corpus: {DOCS} has no <!-- corpus-table-begin/end --> block to replace")
    DOCS.write_text(_TABLE_BLOCK.sub(lambda _: block, text))
    log(f"wrote the table into {DOCS}")


def main(argv: list[str]) -> int:
    """Command-line entry."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ci", action="store_true", help="the reduced corpus CI runs (small wheels)")
    parser.add_argument("--relock", action="store_true", help="re-lock every layer against the index first")
    parser.add_argument("--write-locks", action="store_true", help="with --relock: copy the locks back")
    parser.add_argument("--write-docs", action="store_true", help="put the table into docs/compatibility.md")
    parser.add_argument("--dest", type=Path, help="where to deploy (default: a temporary directory)")
    parser.add_argument("--rows", type=Path, help="also write the probe's rows to this file, as JSON")
    args = parser.parse_args(argv)
    corpus = CI if args.ci else FULL
    with tempfile.TemporaryDirectory(prefix="venvstacks-corpus-") as scratch:
        dest = args.dest.resolve() if args.dest else Path(scratch) / "deployed"
        dest.mkdir(parents=True, exist_ok=True)
        result = run(corpus, dest, Path(scratch), relock=args.relock, write_locks=args.write_locks)
    print(table(result))
    if args.rows:
        args.rows.write_text(json.dumps(result.rows, indent=1) + "\n")
    log("wall times: " + ", ".join(f"{phase} {seconds:.1f} s" for phase, seconds in result.timings.items()))
    if args.write_docs:
        write_docs(result, args.relock)
    for row in result.failed:
        log(f"FAILED: {row['package']} ({row['layer'] or 'not installed'}): {row['result']}")
    return 1 if result.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
