"""A foreign platform really executed: the example stack built for linux_aarch64 on this x86_64
machine, deployed and run under qemu-user, prints what its x86_64 build prints.

The aarch64 runtime is Debian bookworm's arm64 CPython packed in PBS layout
(`local-runtime --debian-arch arm64`), the wheels are the example lock's real manylinux aarch64
wheels from PyPI (numpy's with its bundled OpenBLAS). The kernel runs aarch64 programs through
qemu-user registered with binfmt_misc (`venvstacks_testing.emulation` sets that up, installing
what is missing), so deploy's post-install and the layers' `bin/python` wrappers run unchanged,
as on an aarch64 machine; `QEMU_LD_PREFIX` gives qemu the Debian arm64 root as the target
system's libraries (docs/platforms.md).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import venvstacks_maint.__main__ as maint
from venvstacks_maint.local_runtime import make_local_runtime, runtime_archive_tag
from venvstacks_testing.bazel_workspace import CHECKOUT
from venvstacks_testing.emulation import Emulation, EmulationUnavailable, aarch64_emulation

pytestmark = pytest.mark.integration

AARCH64 = "@rules_venvstacks//platforms:linux_aarch64"
TOOL = CHECKOUT / "tools" / "bin" / "venvstacks_tool.py"
# What the deployed interpreter is and where numpy's compiled core was loaded from.
PROBE = "import platform, numpy._core._multiarray_umath as m; print(platform.machine(), m.__file__.rsplit('/', 1)[1])"


def _run_example_module() -> ModuleType:
    """examples/run_example.py, for its workspace copy, Bazel runner and app checks."""
    spec = importlib.util.spec_from_file_location("run_example", CHECKOUT / "examples" / "run_example.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _deploy_order(stack_json: Path) -> list[Path]:
    """The stack's archives in deployment order (each app's required layers, then the app)."""
    layers = json.loads(stack_json.read_text())["layers"]
    order: list[str] = []
    for name in sorted(name for name, layer in layers.items() if layer["kind"] == "application"):
        for required in [entry["name"] for entry in layers[name]["required_layers"]] + [name]:
            if required not in order:
                order.append(required)
    return [stack_json.parent / layers[name]["archive"]["file"] for name in order]


def _run_apps(run_example: ModuleType, dest: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """Both apps' output, run from `dest` by run_example (which checks the layer each module came from)."""
    capsys.readouterr()
    for app in run_example.APPS:
        run_example.run_app(dest, app)
    # The one thing that must differ between the two deployments: where each was deployed.
    return capsys.readouterr().out.replace(str(dest), "DEST")


@pytest.fixture(scope="module")
def emulation() -> Emulation:
    """aarch64 emulation, set up if missing; a skip naming the reason where it cannot be."""
    try:
        return aarch64_emulation()
    except EmulationUnavailable as reason:
        pytest.skip(f"aarch64 programs cannot run on this machine: {reason}")


def test_the_example_stack_built_for_aarch64_runs_under_emulation_like_the_x86_64_build(
    emulation: Emulation, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Every program started from here on finds the arm64 libraries when it is an aarch64 one.
    for name, value in emulation.env.items():
        monkeypatch.setenv(name, value)
    run_example = _run_example_module()
    host = make_local_runtime(tmp_path / "pbs")
    # The aarch64 runtime as a user makes it: `local-runtime --debian-arch arm64` (the root reused).
    roots = str(emulation.root.parent)
    argv = ["--runtime", run_example.RUNTIME, "--debian-arch=arm64", f"--debian-root-dir={roots}"]
    capsys.readouterr()
    assert maint.main(["local-runtime", *argv, f"--output-dir={tmp_path / 'pbs'}"]) == 0
    target_tag = capsys.readouterr().out
    assert '    platform = "linux_aarch64",\n' in target_tag
    tags = runtime_archive_tag(host, run_example.RUNTIME) + target_tag
    copy = run_example.copy_example(tmp_path, tags)
    bazel = run_example.Bazel(copy, [tmp_path])
    aarch64_dest, x86_64_dest = tmp_path / "aarch64", tmp_path / "x86_64"
    try:
        bazel("build", f"--platforms={AARCH64}", "//stacks:stack")
        archives = _deploy_order(copy / "bazel-bin" / "stacks" / "stack.json")
        layers = json.loads((copy / "bazel-bin" / "stacks" / "stack.json").read_text())["layers"]
        assert {layer["platform"] for layer in layers.values()} == {"aarch64-unknown-linux-gnu"}
        # deploy by hand, as on the target: the tool with any Python, each layer's post-install
        # run by the deployed aarch64 runtime (the .deploy target only runs for the host platform).
        command = [sys.executable, "-I", TOOL, "deploy", *(f"--archive={path}" for path in archives)]
        deployed = subprocess.run([*command, f"--dest={aarch64_dest}"], capture_output=True, text=True, check=False)
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        bazel("run", "//stacks:stack.deploy", "--", str(x86_64_dest))
    finally:
        bazel("shutdown", check=False)
    probes = {
        dest.name: subprocess.run(
            [dest / "app_stats" / "bin" / "python", "-c", PROBE], check=True, capture_output=True, text=True
        ).stdout.split()
        for dest in (aarch64_dest, x86_64_dest)
    }
    assert probes == {
        "aarch64": ["aarch64", "_multiarray_umath.cpython-311-aarch64-linux-gnu.so"],
        "x86_64": ["x86_64", "_multiarray_umath.cpython-311-x86_64-linux-gnu.so"],
    }
    aarch64_output = _run_apps(run_example, aarch64_dest, capsys)
    assert "mean=0.500 std=0.292\n" in aarch64_output and "mean   3\n" in aarch64_output, aarch64_output
    assert aarch64_output == _run_apps(run_example, x86_64_dest, capsys)
