"""Packages published as an sdist only, built into wheels in Bazel actions, through a real Bazel.

One workspace for the module: the stack workspace of `support.stack_workspace` (its runtime, the
host CPython in PBS layout) with a second runtime, `cpython_two`, for linux_x86_64 (the host's
CPython again) and windows_x86_64 (a fixture archive: analysed, never run), and two application
layers on it (the stack's own framework and app are neither locked nor built):

- `cli`: `docopt` from PyPI, pure Python (`build_from_sdist = ["docopt"]`), built once in the
  execution configuration, run; a Windows build of it still analyses;
- `native`: `fastext`, an sdist with a C extension module served on 127.0.0.1 (setuptools from
  PyPI builds it), locked as native (each platform's own wheel), built for the host with the
  C toolchain Bazel autodetects (gcc), run; its Windows build fails at analysis, naming why.

Both layers are built again in a second output base, byte for byte the same.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from venvstacks_testing.archives import archive_listing
from venvstacks_testing.fixture_pbs import make_fixture_runtime, windows_runtime_module
from venvstacks_testing.sdists import compiled_sdist
from venvstacks_testing.stack_workspace import ExtraLayers, Stack, make_stack, serve_stack_sources, sha256
from venvstacks_tool.core.platforms import by_name

pytestmark = pytest.mark.integration

WINDOWS = "--platforms=@rules_venvstacks//platforms:windows_x86_64"

LAYERS = """
runtime_layer(name = "cpython_two", runtime = "@cpython_two")

application_layer(
    name = "cli",
    build_from_sdist = ["docopt"],
    frameworks = [],
    launch_module = "cli.py",
    requirements = ["docopt==0.6.2"],
    runtime = ":cpython_two",
)

application_layer(
    name = "native",
    build_from_sdist = ["fastext"],
    extra_index_urls = ["{index_url}"],
    frameworks = [],
    launch_module = "native_main.py",
    requirements = ["fastext==1.0"],
    runtime = ":cpython_two",
)
"""

CLI_MAIN = '''\
"""Usage: cli <name>"""
import json
import docopt

print(json.dumps({"args": docopt.docopt(__doc__), "docopt": docopt.__file__}))
'''

NATIVE_MAIN = """\
import json
import fastext
import fastext._speed

print(json.dumps({"sum": fastext.add(2, 3), "module": fastext._speed.__file__, "source": fastext.source()}))
"""

DOCOPT_SHA256 = "49b3a825280bd66b3aa83585ef59c4a8c82f2c8a522dbe754a8bc8d08c85c491"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The stack workspace with the `cli` and `native` layers, both locked."""
    with serve_stack_sources(tmp_path_factory.mktemp("sources")) as sources:
        sources.index.add_file("fastext", compiled_sdist(tmp_path_factory.mktemp("fastext")))
        runtime = sources.runtime
        windows = make_fixture_runtime(sources.runtimes_dir, by_name("windows_x86_64"), runtime.python_version)
        module = windows_runtime_module("cpython_two", runtime, sources.runtime_url, windows)
        extra = ExtraLayers(build=LAYERS, locks=("cli", "native"), module=module)
        result = make_stack(tmp_path_factory.mktemp("sdist_ws"), sources, extra=extra)
        result.workspace.write("cli.py", CLI_MAIN)
        result.workspace.write("native_main.py", NATIVE_MAIN)
        result.lock("cli", "native")
        try:
            yield result
        finally:
            result.workspace.shutdown()


def _build_sdist_action(stack: Stack, target: str) -> tuple[str, dict[str, Any]]:
    """The output file name and the configuration of the one `VenvstacksBuildSdist` action of `target`."""
    query = stack.workspace.bazel("aquery", f'mnemonic("VenvstacksBuildSdist", deps({target}))', "--output=jsonproto")
    graph = json.loads(query.stdout)
    fragments = {fragment["id"]: fragment for fragment in graph["pathFragments"]}
    artifacts = {artifact["id"]: artifact["pathFragmentId"] for artifact in graph["artifacts"]}
    [action] = graph["actions"]
    [output] = [fragments[artifacts[output]]["label"] for output in action["outputIds"]]
    [configuration] = [c for c in graph["configuration"] if c["id"] == action["configurationId"]]
    return output, configuration


def _run(stack: Stack, target: str, *args: str) -> dict[str, Any]:
    ran = stack.workspace.bazel("run", target, "--", *args)
    printed: dict[str, Any] = json.loads(ran.stdout.strip().splitlines()[-1])
    return printed


def test_the_lock_records_the_sdist_and_its_build_requirements(stack: Stack) -> None:
    text = (stack.root / "pylock.cli.toml").read_text()
    assert 'sdist = { name = "docopt-0.6.2.tar.gz", url = "https://files.pythonhosted.org/' in text
    assert DOCOPT_SHA256 in text
    assert 'built-wheel = "docopt-0.6.2-py2.py3-none-any.whl"' in text
    assert '{ name = "setuptools-' in text  # the legacy default build requirement, as a wheel


def test_a_compiled_sdist_is_locked_with_each_platforms_own_wheel(stack: Stack) -> None:
    text = (stack.root / "pylock.native.toml").read_text()
    assert 'sdist = { name = "fastext-1.0.tar.gz", url = "http://127.0.0.1:' in text
    assert "native = true\n" in text and "built-wheel" not in text
    assert '{ name = "setuptools-' in text
    cp = "cp" + "".join(stack.sources.runtime.python_version.split(".")[:2])
    assert f'x86_64-pc-windows-msvc = "fastext-1.0-{cp}-{cp}-win_amd64.whl"' in text
    assert f'x86_64-unknown-linux-gnu = "fastext-1.0-{cp}-{cp}-linux_x86_64.whl"' in text


def test_the_pure_wheel_is_built_in_the_exec_configuration_installed_and_run(stack: Stack) -> None:
    output, configuration = _build_sdist_action(stack, "//:cli")
    assert output == "docopt-0.6.2-py2.py3-none-any.whl"
    # Built in the execution configuration: one action whatever the target platform.
    assert configuration["isTool"] is True

    printed = _run(stack, "//:cli", "world")
    assert printed["args"] == {"<name>": "world"}
    assert "/cli/" in printed["docopt"]  # installed in the application layer itself
    metadata = json.loads(stack.workspace.output("cli.json").read_text())
    assert metadata["built_from_sdists"] == [{"name": "docopt", "sdist_sha256": DOCOPT_SHA256}]


def test_the_compiled_wheel_is_built_for_the_target_with_its_c_toolchain_and_runs(stack: Stack) -> None:
    output, configuration = _build_sdist_action(stack, "//:native")
    assert output.startswith("fastext-1.0-cp") and output.endswith("-linux_x86_64.whl")
    assert configuration.get("isTool", False) is False  # the target configuration: the wheel is the target's

    printed = _run(stack, "//:native")
    assert printed["sum"] == 5  # the extension module, compiled by gcc in the action, imported and called
    assert "/native/" in printed["module"] and printed["module"].endswith(".so")
    metadata = json.loads(stack.workspace.output("native.json").read_text())
    [built] = metadata["built_from_sdists"]
    assert built["name"] == "fastext" and built["sdist_sha256"] in (stack.root / "pylock.native.toml").read_text()
    assert printed["source"] == "fastext/_speed.c"  # __FILE__, as setuptools names the source
    # Its debug info names the fixed directories -ffile-prefix-map gives, not the action's scratch
    # tree, sandbox or output base.
    members = archive_listing(stack.workspace.output("native.tar.zst"))
    [binary] = [data for name, (_, _, data) in members.items() if name.endswith(".so") and "/fastext/" in name]
    assert b"/venvstacks/build/" in binary
    assert not any(path in binary for path in (b"venvstacks-sdist-", b"/sandbox/", b"output_user_root"))


def test_a_foreign_platform_fails_at_analysis_for_the_compiled_sdist_only(stack: Stack) -> None:
    # The pure-Python sdist's layer still analyses for Windows (its wheel is built on the host).
    stack.workspace.bazel("build", "--nobuild", WINDOWS, "//:cli")
    failed = stack.workspace.bazel("build", "--nobuild", WINDOWS, "//:native", check=False)
    assert failed.returncode != 0
    assert (
        "cannot build fastext 1.0 for windows_x86_64: lock @@//:pylock.native.toml builds it from its sdist, which has"
        " extension modules, and a compiled sdist builds only where the target is the execution platform"
    ) in failed.stderr, failed.stderr[-4000:]
    assert "no C toolchain targets windows_x86_64 here" in failed.stderr
    assert "or install wheels of 'fastext' on windows_x86_64" in failed.stderr


def test_a_second_output_base_builds_the_same_bytes(stack: Stack, tmp_path: Path) -> None:
    names = ("cli.tar.zst", "cli.json", "native.tar.zst", "native.json")
    stack.workspace.bazel("build", "//:cli", "//:native")
    first = {name: sha256(stack.workspace.output(name)) for name in names}
    startup = (f"--output_base={tmp_path / 'ob'}",)
    try:
        stack.workspace.bazel("build", "//:cli", "//:native", startup=startup)
        second = {name: sha256(stack.workspace.output(name)) for name in names}
    finally:
        stack.workspace.bazel("shutdown", check=False, startup=startup)
    assert second == first
