"""A package published as an sdist only (`docopt`, from PyPI) in an application layer, through a real Bazel.

One workspace for the module: the stack workspace of `support.stack_workspace` (its runtime, the
host CPython in PBS layout) with an application layer `cli` on the runtime alone, on PyPI, whose
`build_from_sdist = ["docopt"]` (the stack's own framework and app are neither locked nor built:
the test pays for the runtime and `cli` only). It is locked (the sdist and setuptools' wheel
recorded), built (the wheel made from the sdist in a sandboxed action of the execution
configuration), run, and built again in a second output base, byte for byte the same.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from venvstacks_testing.stack_workspace import ExtraLayers, Stack, make_stack, serve_stack_sources, sha256

pytestmark = pytest.mark.integration

CLI = ExtraLayers(
    build="""
application_layer(
    name = "cli",
    build_from_sdist = ["docopt"],
    frameworks = [],
    launch_module = "cli.py",
    requirements = ["docopt==0.6.2"],
    runtime = ":cpython",
)
""",
    locks=("cli",),
)

CLI_MAIN = '''\
"""Usage: cli <name>"""
import json
import docopt

print(json.dumps({"args": docopt.docopt(__doc__), "docopt": docopt.__file__}))
'''


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The stack workspace with the `cli` layer, `cli` locked."""
    with serve_stack_sources(tmp_path_factory.mktemp("sources")) as sources:
        result = make_stack(tmp_path_factory.mktemp("sdist_ws"), sources, extra=CLI)
        result.workspace.write("cli.py", CLI_MAIN)
        result.lock("cli")
        try:
            yield result
        finally:
            result.workspace.shutdown()


def test_the_lock_records_the_sdist_and_its_build_requirements(stack: Stack) -> None:
    text = (stack.root / "pylock.cli.toml").read_text()
    assert 'sdist = { name = "docopt-0.6.2.tar.gz", url = "https://files.pythonhosted.org/' in text
    assert "49b3a825280bd66b3aa83585ef59c4a8c82f2c8a522dbe754a8bc8d08c85c491" in text
    assert 'built-wheel = "docopt-0.6.2-py2.py3-none-any.whl"' in text
    assert '{ name = "setuptools-' in text  # the legacy default build requirement, as a wheel


def test_the_wheel_is_built_in_the_exec_configuration_installed_and_run(stack: Stack) -> None:
    query = stack.workspace.bazel("aquery", 'mnemonic("VenvstacksBuildSdist", deps(//:cli))', "--output=jsonproto")
    graph = json.loads(query.stdout)
    fragments = {fragment["id"]: fragment for fragment in graph["pathFragments"]}
    artifacts = {artifact["id"]: artifact["pathFragmentId"] for artifact in graph["artifacts"]}
    [action] = graph["actions"]
    [output] = [fragments[artifacts[output]]["label"] for output in action["outputIds"]]
    assert output == "docopt-0.6.2-py2.py3-none-any.whl"
    # Built in the execution configuration: one action whatever the target platform.
    [configuration] = [c for c in graph["configuration"] if c["id"] == action["configurationId"]]
    assert configuration["isTool"] is True

    ran = stack.workspace.bazel("run", "//:cli", "--", "world")
    printed = json.loads(ran.stdout.strip().splitlines()[-1])
    assert printed["args"] == {"<name>": "world"}
    assert "/cli/" in printed["docopt"]  # installed in the application layer itself
    metadata = json.loads(stack.workspace.output("cli.json").read_text())
    sdist = "49b3a825280bd66b3aa83585ef59c4a8c82f2c8a522dbe754a8bc8d08c85c491"
    assert metadata["built_from_sdists"] == [{"name": "docopt", "sdist_sha256": sdist}]


def test_a_second_output_base_builds_the_same_bytes(stack: Stack, tmp_path: Path) -> None:
    stack.workspace.bazel("build", "//:cli")
    first = {name: sha256(stack.workspace.output(name)) for name in ("cli.tar.zst", "cli.json")}
    startup = (f"--output_base={tmp_path / 'ob'}",)
    try:
        stack.workspace.bazel("build", "//:cli", startup=startup)
        second = {name: sha256(stack.workspace.output(name)) for name in ("cli.tar.zst", "cli.json")}
    finally:
        stack.workspace.bazel("shutdown", check=False, startup=startup)
    assert second == first
