"""`stack_test`'s bootstrap, run by a deployed layer's interpreter as the Bazel test runs it.

Layers are built in-process with the host Python and deployed (as in test_stack_site_dirs.py):

    svc        application: the first-party package `svcmod`, on fw_shared
    tools      framework: a stand-in `pytest` (records its arguments, returns a set status), on
               fw_extra (which svc does not have) and fw_shared (which it has)
    fw_extra   `extrapkg`
    fw_shared  `sharedpkg`, with a `.pth` counting how often it runs
    runtime    the host interpreter

The bootstrap runs from a runfiles-like directory reached through a symlink, with a `deps` import
root holding a source-tree copy of `svcmod` and a helper module.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from venvstacks_testing.layer_inputs import SITE, build, build_argv, make_runtime_dir, sha256
from venvstacks_testing.wheel_index import build_wheel
from venvstacks_tool.core import cli
from venvstacks_tool.deploy import stack_test_runner

TOOLS = Path(stack_test_runner.__file__).resolve().parents[2]
RUNTIME = "cpython_rt"

# Counts the runs of fw_shared's `.pth` in an environment variable the probe reads.
_COUNT_PTH = b"import os; os.environ['SHARED_PTH_RUNS'] = str(int(os.environ.get('SHARED_PTH_RUNS', '0')) + 1)\n"

# A stand-in for pytest: writes its arguments where the test says, returns the status it is told.
_FAKE_PYTEST = b"""import json, os, sys
def main(args):
    with open(os.environ["FAKE_PYTEST_OUT"], "w") as f:
        json.dump({"args": args, "path": sys.path}, f)
    return int(os.environ.get("FAKE_PYTEST_STATUS", "0"))
"""

# The `main` script: what it sees, then the exit status its first argument names.
_PROBE = b"""import json, os, sys
import extrapkg, helper, sharedpkg, svcmod
print(json.dumps({
    "argv": sys.argv,
    "path": sys.path,
    "svcmod": svcmod.__file__,
    "helper": helper.__file__,
    "extrapkg": extrapkg.__file__,
    "pth_runs": os.environ.get("SHARED_PTH_RUNS"),
    "tool_modules": sorted(name for name in sys.modules if name.startswith("venvstacks_tool")),
}))
sys.exit(int(sys.argv[1]))
"""


@dataclass(frozen=True)
class Deployed:
    """The deployed stack and the runfiles-like directory the bootstrap runs from."""

    dest: Path
    cwd: Path  # the "main repository's runfiles directory"
    runner: Path  # the bootstrap, through the runfiles' symlink


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Deployed:
    root = tmp_path_factory.mktemp("stack")
    wheels = root / "wheels"
    shared = build_wheel(
        wheels, "sharedpkg", "1.0", files={"sharedpkg/__init__.py": b"", "sharedpkg_count.pth": _COUNT_PTH}
    )
    extra = build_wheel(wheels, "extrapkg", "1.0")
    fake_pytest = build_wheel(wheels, "pytest", "0.0", files={"pytest/__init__.py": _FAKE_PYTEST})
    out = root / "out"
    build(build_argv(out, "fw_shared", runtime=RUNTIME, wheels=[shared]))
    build(build_argv(out, "fw_extra", runtime=RUNTIME, wheels=[extra]))
    lower = {"fw_extra": sha256(out / "fw_extra.tar.zst"), "fw_shared": sha256(out / "fw_shared.tar.zst")}
    build(build_argv(out, "tools", runtime=RUNTIME, wheels=[fake_pytest], lower=("fw_extra", "fw_shared")), lower)
    (root / "src/svcmod").mkdir(parents=True)
    (root / "src/svcmod/__init__.py").write_text("WHERE = 'layer'\n")
    build(
        build_argv(
            out,
            "svc",
            kind="application",
            runtime=RUNTIME,
            lower=("fw_shared",),
            app_files={"svcmod/__init__.py": root / "src/svcmod/__init__.py"},
            launch_module="svcmod",
        ),
        {"fw_shared": lower["fw_shared"]},
    )
    dest = root / "dest"
    make_runtime_dir(dest, RUNTIME)
    argv = ["deploy", "--dest", str(dest)]
    for layer in ("fw_shared", "fw_extra", "tools", "svc"):
        argv += ["--archive", str(out / f"{layer}.tar.zst")]
    assert cli.main(argv) == 0
    # The runfiles: the tool through a symlink (Bazel links each file; a linked directory resolves
    # the same way), a test root, and a deps root with a source-tree copy of `svcmod`.
    cwd = root / "runfiles" / "_main"
    cwd.mkdir(parents=True)
    os.symlink(TOOLS, cwd / "tools")
    (cwd / "pkg").mkdir()
    (cwd / "pkg/probe.py").write_bytes(_PROBE)
    (cwd / "libs/svcmod").mkdir(parents=True)
    (cwd / "libs/svcmod/__init__.py").write_text("WHERE = 'runfiles'\n")
    (cwd / "libs/helper.py").write_text("")
    return Deployed(dest, cwd, cwd / "tools/venvstacks_tool/deploy/stack_test_runner.py")


def bootstrap(deployed: Deployed, *argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the bootstrap with svc's interpreter from the runfiles directory, as the test script does."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    return subprocess.run(
        [str(deployed.dest / "svc/bin/python"), str(deployed.runner), *argv],
        cwd=deployed.cwd,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
    )


def probe(deployed: Deployed, *args: str) -> tuple[int, dict[str, Any]]:
    tools = ["--tools-layer", str(deployed.dest / "tools")]
    result = bootstrap(deployed, *tools, "--import-root", "libs", "--main", "pkg/probe.py", "--", *args)
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)


def test_sys_path_is_the_layer_then_the_test_tools_then_the_deps(deployed: Deployed) -> None:
    status, seen = probe(deployed, "0", "extra arg")
    assert status == 0
    dest = deployed.dest
    site_entries = [entry for entry in seen["path"] if "site-packages" in entry]
    assert site_entries == [
        str(dest / "svc" / SITE),
        str(dest / "fw_shared" / SITE),
        str(dest / RUNTIME / SITE),
        # The tools layer, then the lower layer svc does not have; fw_shared is there already.
        str(dest / "tools" / SITE),
        str(dest / "fw_extra" / SITE),
    ]
    assert seen["path"][-1] == str(deployed.cwd / "libs")
    # fw_shared's `.pth` ran once: the tools layer's way to it did not run it again.
    assert seen["pth_runs"] == "1"
    assert seen["extrapkg"] == str(dest / "fw_extra" / SITE / "extrapkg/__init__.py")
    assert seen["helper"] == str(deployed.cwd / "libs/helper.py")


def test_the_shipped_first_party_code_wins_and_the_tool_is_gone(deployed: Deployed) -> None:
    _, seen = probe(deployed, "0")
    assert seen["svcmod"] == str(deployed.dest / "svc" / SITE / "svcmod/__init__.py")
    # Neither the script's directory (by its runfiles path or its real one) nor the tool's.
    runner_dirs = {str(deployed.runner.parent), str(deployed.runner.resolve().parent), str(TOOLS)}
    assert not runner_dirs & set(seen["path"]), seen["path"]
    assert str(deployed.cwd / "pkg") not in seen["path"]
    assert seen["tool_modules"] == []


def test_the_script_gets_the_args_and_gives_its_exit_status(deployed: Deployed) -> None:
    status, seen = probe(deployed, "3", "--flag", "two words")
    assert status == 3
    assert seen["argv"] == ["pkg/probe.py", "3", "--flag", "two words"]


@pytest.mark.parametrize(("status", "config"), [(0, []), (1, ["--config", "pkg/pytest.ini"])])
def test_pytest_runs_the_test_files_in_importlib_mode_without_a_cache(
    deployed: Deployed, tmp_path: Path, status: int, config: list[str]
) -> None:
    out = tmp_path / "pytest.json"
    env = {"FAKE_PYTEST_OUT": str(out), "FAKE_PYTEST_STATUS": str(status)}
    argv = ["--tools-layer", str(deployed.dest / "tools"), *config, "--test-file", "pkg/test_a.py"]
    result = bootstrap(deployed, *argv, "--test-file", "pkg/b.py", "--", "-k", "name", env=env)
    assert result.returncode == status, result.stderr
    seen = json.loads(out.read_text())
    assert seen["args"] == [
        "--import-mode=importlib",
        "-p",
        "no:cacheprovider",
        f"--rootdir={deployed.cwd}",
        # The given configuration file, or none: never one found above the runfiles.
        "-c",
        config[-1] if config else os.devnull,
        "pkg/test_a.py",
        "pkg/b.py",
        "-k",
        "name",
    ]


def test_without_pytest_the_message_names_the_layer_and_the_fix(deployed: Deployed) -> None:
    result = bootstrap(deployed, "--test-file", "pkg/test_a.py")
    assert result.returncode == 1
    assert "pytest cannot be imported by layer 'svc' (test_tools layers: none)" in result.stderr
    assert "give `test_tools` a framework layer whose requirements include pytest" in result.stderr


def test_a_test_tools_directory_that_is_no_layer_is_named(deployed: Deployed, tmp_path: Path) -> None:
    result = bootstrap(deployed, "--tools-layer", str(tmp_path / "nolayer"), "--main", "pkg/probe.py")
    assert result.returncode == 1
    assert "test_tools layer 'nolayer': cannot read the layer config" in result.stderr


def test_without_entries_resolves_symlinks_on_both_sides(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "link")
    path = [str(tmp_path / "real"), str(tmp_path / "link"), str(tmp_path / "other")]
    assert stack_test_runner.without_entries(path, [str(tmp_path / "link")]) == [str(tmp_path / "other")]
