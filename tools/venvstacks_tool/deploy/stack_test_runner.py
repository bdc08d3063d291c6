"""`stack_test`'s bootstrap: a team's tests (pytest, or a plain script) run inside a deployed stack.

`stack_test` deploys the tested layer's stack (and its `test_tools` layers) into the test's
temporary directory, then starts this file with the tested layer's own interpreter, from the
runfiles root of the main repository:

    <dest>/<layer>/bin/python <tools>/venvstacks_tool/deploy/stack_test_runner.py
        [--tools-layer DIR]... [--import-root DIR]... [--config FILE]
        (--test-file F... | --main SCRIPT) -- ARGS...

`site` has already put the tested layer's sys.path in place (its site-packages, its frameworks',
the runtime's), so the first-party code the tests import is the shipped copy. Then, in order:

1. the directory of this file, which Python put first on sys.path, and the tool's own directory
   (on it only while this module's imports ran) are dropped, and the tool's modules forgotten:
   the tests see the stack, not the tool;
2. each test-tools layer's site-packages, then the lower layers' it sits on that are not on
   sys.path yet, is appended with `site.addsitedir`, so its `.pth` files run as in its own
   interpreter (the directory comes from the layer config, as `postinstall.py` finds it);
3. the import roots of the test's `deps` (runfiles paths) are appended as plain entries: after the
   layer's paths, so a first-party module the layer ships wins over its copy in the runfiles;
4. pytest runs on the test files (`--import-mode=importlib`: pytest's default `prepend` mode would
   put each test file's directory first on sys.path; no cache provider, so nothing is written
   into the runfiles; the runfiles directory as rootdir; the given configuration file, or none:
   pytest would otherwise look for one in every directory above the test files, outside the
   runfiles where a test runs unsandboxed), or the script runs as `__main__`; its exit status
   is this process's.

Standard library only (the tested layer's interpreter has no tool wheels); pytest is imported by
name from the stack, never by the tool.
"""

from __future__ import annotations

import os
import sys

# The tool's top directory (`tools/`), where this file is (in the runfiles when run by a test).
_TOOLS_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if __name__ == "__main__":
    # Run as a file: the tool's directory is on sys.path only while the imports below run.
    sys.path.insert(0, _TOOLS_DIR)

import argparse  # noqa: E402  (after the path set above, like every import below)
import importlib  # noqa: E402
import runpy  # noqa: E402
import site  # noqa: E402
from collections.abc import Iterable, Sequence  # noqa: E402
from dataclasses import dataclass  # noqa: E402

from venvstacks_tool.core.cli import subcommand_parser  # noqa: E402
from venvstacks_tool.core.errors import VenvstacksError  # noqa: E402
from venvstacks_tool.core.postinstall_template import PostInstallError, load_layer_config, lower_site_dirs  # noqa: E402

# pytest's options for every run; the test's own `args` come after the test files.
PYTEST_OPTIONS = ("--import-mode=importlib", "-p", "no:cacheprovider")


@dataclass(frozen=True)
class StackTestRun:
    """One run: where the test tools are, what goes on sys.path, and what runs with which arguments."""

    tools_layers: tuple[str, ...]  # deployed test-tools layer directories, in sys.path order
    import_roots: tuple[str, ...]  # the deps' import roots, relative to the working directory
    test_files: tuple[str, ...]  # pytest's test files (empty with `main`)
    config: str  # pytest's configuration file, or "" for none
    main: str  # a script run instead of pytest, or ""
    args: tuple[str, ...]  # the test's arguments: pytest's after the test files, or the script's


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the bootstrap."""
    parser = subcommand_parser("stack-test", "Run a stack_test's pytest files or script in the deployed stack.")
    parser.add_argument("--tools-layer", action="append", default=[], dest="tools_layers", metavar="DIR")
    parser.add_argument("--import-root", action="append", default=[], dest="import_roots", metavar="DIR")
    parser.add_argument("--config", default="", metavar="FILE", help="pytest's configuration file")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--test-file", action="append", default=[], dest="test_files", metavar="FILE")
    what.add_argument("--main", default="", metavar="SCRIPT")
    parser.add_argument("args", nargs="*", help="after `--`: the test's arguments")
    return parser


def parse_request(argv: Sequence[str]) -> StackTestRun:
    """Parse the bootstrap's command line into a `StackTestRun`."""
    options = build_parser().parse_args(list(argv))
    return StackTestRun(
        tuple(options.tools_layers),
        tuple(options.import_roots),
        tuple(options.test_files),
        options.config,
        options.main,
        tuple(options.args),
    )


def without_entries(path: Iterable[str], directories: Iterable[str]) -> list[str]:
    """`path` without the entries naming one of `directories` (symlinks resolved on both sides)."""
    dropped = {os.path.realpath(directory) for directory in directories}
    return [entry for entry in path if os.path.realpath(entry or os.curdir) not in dropped]


def tools_site_dirs(layer_dir: str) -> list[str]:
    """A deployed layer's site-packages, then its lower layers' (frameworks, runtime), as absolute paths."""
    try:
        config = load_layer_config(layer_dir)
    except PostInstallError as error:
        raise VenvstacksError(f"test_tools layer {os.path.basename(layer_dir)!r}: {error}") from error
    own = os.path.join(os.path.abspath(layer_dir), *str(config["site_dir"]).split("/"))
    return [own] + [os.path.normpath(os.path.join(own, *lower.split("/"))) for lower in lower_site_dirs(config)]


def _on_path() -> set[str]:
    return {os.path.realpath(entry or os.curdir) for entry in sys.path}


def extend_sys_path(tools_layers: Sequence[str], import_roots: Sequence[str]) -> None:
    """Append the test-tools layers' site directories, then the import roots, to sys.path.

    A site directory already on sys.path (a framework or the runtime the tested layer shares with
    a test-tools layer) is skipped whole: `site.addsitedir` would run its `.pth` files twice.
    """
    for layer in tools_layers:
        for directory in tools_site_dirs(layer):
            if os.path.realpath(directory) not in _on_path():
                site.addsitedir(directory)
    for root in import_roots:
        if os.path.realpath(root) not in _on_path():
            sys.path.append(os.path.abspath(root))


def pytest_arguments(run: StackTestRun, rootdir: str) -> list[str]:
    """pytest's command line: the fixed options, rootdir and configuration file, the test files, the args."""
    config = ["-c", run.config or os.devnull]
    return [*PYTEST_OPTIONS, f"--rootdir={rootdir}", *config, *run.test_files, *run.args]


def run_pytest(run: StackTestRun) -> int:
    """Run pytest from the stack on the test files; return its exit status."""
    try:
        pytest = importlib.import_module("pytest")
    except ImportError as error:
        layers = ", ".join(repr(os.path.basename(layer)) for layer in run.tools_layers) or "none"
        raise VenvstacksError(
            f"stack_test: pytest cannot be imported by layer {os.path.basename(sys.prefix)!r} (test_tools layers:"
            f" {layers}): {error}; give `test_tools` a framework layer whose requirements include pytest,"
            " or give `main` a script to run instead"
        ) from error
    return int(pytest.main(pytest_arguments(run, os.getcwd())))


def run_script(run: StackTestRun) -> int:
    """Run the script as `__main__` with the args as `sys.argv[1:]`; 0 unless it exits otherwise.

    Its own directory is not put on sys.path (as `python -P` would not): that directory is in the
    runfiles, the source tree's copy of the code.
    """
    sys.argv = [run.main, *run.args]
    runpy.run_path(run.main, run_name="__main__")
    return 0


def main(argv: Sequence[str]) -> int:
    """Set up sys.path for `argv`'s run, then run pytest or the script; return the exit status."""
    run = parse_request(argv)
    # No __pycache__ written beside the test files or the deps' sources: they are in the runfiles.
    sys.dont_write_bytecode = True
    extend_sys_path(run.tools_layers, run.import_roots)
    return run_script(run) if run.main else run_pytest(run)


def _forget_tool() -> None:
    """Drop this file's and the tool's directories from sys.path and the tool's modules from sys.modules."""
    # Python put the directory of the file's real path first (it resolves the runfiles symlink).
    script_dirs = [os.path.dirname(os.path.abspath(__file__)), os.path.dirname(os.path.realpath(__file__))]
    sys.path[:] = without_entries(sys.path, [_TOOLS_DIR, *script_dirs])
    for name in [name for name in sys.modules if name.partition(".")[0] == "venvstacks_tool"]:
        del sys.modules[name]


if __name__ == "__main__":
    _forget_tool()
    try:
        status = main(sys.argv[1:])
    except VenvstacksError as error:
        print(f"venvstacks: error: {error}", file=sys.stderr)
        status = 1
    sys.exit(status)
