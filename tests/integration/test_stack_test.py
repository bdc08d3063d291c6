"""`stack_test` through a real Bazel: a team's pytest files and scripts run inside the deployed stack.

The stack of test_stack.py (served wheels, the host CPython as runtime), plus:

    svc          application: first-party `svc` (the files of //svc:svc_lib), on the framework
    test_tools   framework: real pytest, locked against PyPI; svc carries no test tooling
    //svc:svc_lib  a py_library of svc's sources, also a dep of the tests: its copy in the
                 runfiles must lose to the layer's
    testhelpers  a py_library with an `imports` root, used by the tests
    fw_other     a framework on a second runtime (the same archive under another name)

and the stack_tests: passing pytest files and a passing script, a failing test, a test without
pytest, and three refused at analysis.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from venvstacks_testing.stack_workspace import ExtraLayers, Stack, make_stack, serve_stack_sources

pytestmark = pytest.mark.integration

# Root package (after the stack's own layers): the layers svc and the tests need.
LAYERS = """
runtime_layer(name = "cpython_other", runtime = "@cpython_other")

framework_layer(name = "fw_other", runtime = ":cpython_other")

framework_layer(name = "test_tools", requirements = ["pytest>=8"], runtime = ":cpython")

application_layer(
    name = "svc",
    srcs = ["//svc:svc_lib"],
    frameworks = [":framework"],
    index_url = "{index_url}",
    launch_module = "svc",
    runtime = ":cpython",
)

py_library(name = "testhelpers", srcs = ["svc_tests/helpers/src/testhelpers.py"], imports = ["svc_tests/helpers/src"])

stack_test(
    name = "svc_test",
    srcs = ["svc_tests/conftest.py", "svc_tests/test_svc.py"],
    args = ["-v"],
    config = "svc_tests/pytest.ini",
    data = ["svc_tests/data/expected.txt"],
    layer = ":svc",
    test_tools = [":test_tools"],
    deps = [":testhelpers", "//svc:svc_lib"],
)

# No `config`: the workspace's pytest.ini (in no target) must not be read, even unsandboxed.
stack_test(
    name = "svc_unconfigured_test",
    srcs = ["svc_tests/conftest.py", "svc_tests/test_svc.py"],
    data = ["svc_tests/data/expected.txt"],
    layer = ":svc",
    tags = ["manual"],
    test_tools = [":test_tools"],
    deps = [":testhelpers", "//svc:svc_lib"],
)

stack_test(
    name = "svc_failing_test",
    srcs = ["svc_tests/test_failing.py"],
    layer = ":svc",
    tags = ["manual"],
    test_tools = [":test_tools"],
)

stack_test(name = "svc_without_pytest_test", srcs = ["svc_tests/test_failing.py"], layer = ":svc", tags = ["manual"])

stack_test(
    name = "svc_main_test",
    args = ["from_args", "0"],
    data = ["svc_tests/data/expected.txt"],
    layer = ":svc",
    main = "svc_tests/check_main.py",
)

stack_test(name = "on_runtime_test", srcs = ["svc_tests/test_svc.py"], layer = ":cpython", tags = ["manual"])

stack_test(name = "on_library_test", srcs = ["svc_tests/test_svc.py"], layer = "//svc:svc_lib", tags = ["manual"])

stack_test(
    name = "tools_on_other_runtime_test",
    srcs = ["svc_tests/test_svc.py"],
    layer = ":svc",
    tags = ["manual"],
    test_tools = [":fw_other"],
)
"""

# Loads the layers' BUILD file does not have, put before its own.
LOADS = """\
load("@rules_python//python:defs.bzl", "py_library")
load("@rules_venvstacks//rules_venvstacks:defs.bzl", "stack_test")
"""

SVC_BUILD = """\
load("@rules_python//python:defs.bzl", "py_library")

py_library(
    name = "svc_lib",
    srcs = ["__init__.py", "__main__.py", "greeting.py"],
    visibility = ["//visibility:public"],
)
"""

FILES = {
    "svc/BUILD.bazel": SVC_BUILD,
    "svc/__init__.py": "",
    "svc/__main__.py": "from svc.greeting import greet\n\nprint(greet('world'))\n",
    "svc/greeting.py": "def greet(name):\n    return f'hello {name}'\n",
    # Read from the working directory: the main repository's runfiles, where `data` is.
    "svc_tests/helpers/src/testhelpers.py": (
        "def expected_greeting():\n    return open('svc_tests/data/expected.txt').read().strip()\n"
    ),
    "svc_tests/data/expected.txt": "hello stack\n",
    # Read only when given as `config`: it makes pytest collect `check_*` functions too.
    "svc_tests/pytest.ini": "[pytest]\npython_functions = test_* check_*\n",
    # In no target: a configuration file pytest would find above the runfiles when unsandboxed.
    "pytest.ini": "[pytest]\naddopts = --no-such-option\n",
    "svc_tests/conftest.py": "import pytest\n\n\n@pytest.fixture\ndef who():\n    return 'stack'\n",
    "svc_tests/test_svc.py": """\
import os
import sys
from pathlib import Path

import pytest
import svc.greeting
import testhelpers


def test_greeting_comes_from_the_shipped_layer(who):
    # svc_lib's copy is in the runfiles (a dep) too: the layer's comes first on sys.path.
    shipped = Path(svc.greeting.__file__).resolve()
    assert shipped.is_relative_to(Path(sys.prefix).resolve()), shipped
    assert (Path.cwd() / "svc/greeting.py").exists()
    assert svc.greeting.greet(who) == testhelpers.expected_greeting()


def test_the_tests_get_the_callers_environment_not_the_tools():
    leaked = sorted(set(os.environ) & {"PYTHONHASHSEED", "PYTHONUTF8", "VENVSTACKS_TOOL_PATH"})
    assert not leaked, leaked


def check_the_configuration_file_is_read():
    pass


def test_pytest_comes_from_the_test_tools_layer():
    assert Path(pytest.__file__).resolve().is_relative_to(Path(sys.prefix).resolve().parent / "test_tools")
    assert not list((Path(sys.prefix) / "lib").glob("python3*/site-packages/pytest"))
""",
    "svc_tests/test_failing.py": "def test_fails_on_purpose():\n    assert 1 + 1 == 3\n",
    "svc_tests/check_main.py": """\
import sys
from pathlib import Path

import svc.greeting

assert Path(svc.greeting.__file__).resolve().is_relative_to(Path(sys.prefix).resolve())
assert Path("svc_tests/data/expected.txt").read_text() == "hello stack\\n"
print("check_main ran with", sys.argv[1:])
sys.exit(int(sys.argv[-1]))
""",
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The locked stack with svc, test_tools (pytest from PyPI) and fw_other on a second runtime."""
    with serve_stack_sources(tmp_path_factory.mktemp("sources")) as sources:
        extra = ExtraLayers(build=LAYERS, locks=("svc", "test_tools", "fw_other"), stack_layers=(":app", ":svc"))
        result = make_stack(tmp_path_factory.mktemp("stack_test_ws"), sources, extra=extra)
        workspace = result.workspace
        runtime = sources.runtime
        module = (workspace.root / "MODULE.bazel").read_text()
        workspace.write(
            "MODULE.bazel",
            module
            + 'bazel_dep(name = "rules_python", version = "0.22.1")\n'
            + f'venvstacks.runtime(name = "cpython_other", python_version = "{runtime.python_version}", '
            + f'urls = ["{sources.runtime_url}/{runtime.path.name}"], sha256 = "{runtime.sha256}")\n'
            + 'use_repo(venvstacks, "cpython_other")\n',
        )
        workspace.write("BUILD.bazel", LOADS + (workspace.root / "BUILD.bazel").read_text())
        for path, text in FILES.items():
            workspace.write(path, text)
        result.lock("framework", "app", "svc", "test_tools", "fw_other")
        try:
            yield result
        finally:
            workspace.shutdown()


def _test_log(stack: Stack, target: str) -> str:
    return (stack.root / "bazel-testlogs" / target / "test.log").read_text()


def test_pytest_runs_the_team_tests_against_the_shipped_layer(stack: Stack) -> None:
    result = stack.workspace.bazel("test", "//:svc_test", "//:svc_main_test", check=False)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    log = _test_log(stack, "svc_test")
    # `args` reached pytest (-v), the conftest fixture served, and both tests ran from their files.
    assert "svc_tests/test_svc.py::test_greeting_comes_from_the_shipped_layer PASSED" in log, log[-3000:]
    assert "svc_tests/test_svc.py::test_pytest_comes_from_the_test_tools_layer PASSED" in log, log[-3000:]
    assert "svc_tests/test_svc.py::check_the_configuration_file_is_read PASSED" in log, log[-3000:]
    assert "svc_tests/test_svc.py::test_the_tests_get_the_callers_environment_not_the_tools PASSED" in log, log[-3000:]
    assert "4 passed" in log
    assert "check_main ran with ['from_args', '0']" in _test_log(stack, "svc_main_test")


def test_without_config_pytest_reads_no_configuration_file_from_above_the_runfiles(stack: Stack) -> None:
    # Unsandboxed, the directories above the runfiles lead to the workspace's files.
    result = stack.workspace.bazel("test", "--strategy=TestRunner=local", "//:svc_unconfigured_test", check=False)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    assert "3 passed" in _test_log(stack, "svc_unconfigured_test")


def test_a_failing_test_fails_bazel_test_and_names_the_test(stack: Stack) -> None:
    result = stack.workspace.bazel("test", "//:svc_failing_test", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    # .bazelrc's --test_output=errors puts the failing test's log in Bazel's output.
    assert "FAILED svc_tests/test_failing.py::test_fails_on_purpose" in output, output[-4000:]


def test_the_script_gets_test_args_after_args_and_its_status_is_the_test_status(stack: Stack) -> None:
    result = stack.workspace.bazel("test", "//:svc_main_test", "--test_arg=3", check=False)
    assert result.returncode != 0
    assert "check_main ran with ['from_args', '0', '3']" in _test_log(stack, "svc_main_test")


def test_without_pytest_anywhere_the_test_says_where_it_looked(stack: Stack) -> None:
    result = stack.workspace.bazel("test", "//:svc_without_pytest_test", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "pytest cannot be imported by layer 'svc' (test_tools layers: none)" in output, output[-4000:]


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (
            "on_runtime_test",
            ["`layer` takes an application_layer or framework_layer target", "//:cpython is a runtime"],
        ),
        ("on_library_test", ["`layer` takes an application_layer", "//svc:svc_lib is not a layer"]),
        (
            "tools_on_other_runtime_test",
            ["test_tools layer", "//:fw_other is on runtime", "//:cpython_other, but", "//:svc is on", "//:cpython;"],
        ),
    ],
)
def test_a_bad_layer_or_test_tools_fails_at_analysis(stack: Stack, target: str, expected: list[str]) -> None:
    # --nobuild stops after analysis: failing here means the error is an analysis-time error.
    result = stack.workspace.bazel("build", "--nobuild", f"//:{target}", check=False)
    assert result.returncode != 0
    for text in [f"//:{target}: ", *expected]:
        assert text in result.stderr, f"{text!r} not in:\n{result.stderr[-3000:]}"
