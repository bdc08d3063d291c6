"""Tests of `lock-stack` (venvstacks_tool.lock.lock_stack): a stack's layers locked in one process.

The scheduler is tested with real threads (a barrier the two upper layers must reach together);
the command end to end with the real resolvers against an index served on 127.0.0.1, and its
locks compared byte for byte with those of one `lock` per layer.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import uv

from venvstacks_testing.wheel_index import WheelIndex
from venvstacks_tool.core import cli
from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.lock.lock_stack import run_after_lower

PY = f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"
LINUX = "x86_64-unknown-linux-gnu"
# framework <- app, framework <- tool_app: both applications read only the framework's lock.
STACK = {"framework": (), "app": ("framework",), "tool_app": ("framework",)}
REQUIREMENTS = {"framework": ["beta"], "app": ["alpha"], "tool_app": []}


# --- the scheduler ---------------------------------------------------------------------------


def test_each_name_runs_after_the_names_below_it_and_siblings_run_together() -> None:
    both_started = threading.Barrier(2, timeout=10)
    events: list[str] = []

    def run(name: str) -> None:
        events.append(f"start {name}")
        if name != "framework":
            both_started.wait()  # fails unless the two applications run at the same time
        events.append(f"end {name}")

    assert run_after_lower(STACK, run) == {}
    assert events[:2] == ["start framework", "end framework"]
    assert sorted(events[2:4]) == ["start app", "start tool_app"]


def test_a_failed_name_stops_only_the_names_above_it() -> None:
    ran: list[str] = []
    lower = {"framework": (), "other": (), "app": ("framework",), "top": ("app",), "beside": ("other",)}

    def run(name: str) -> None:
        ran.append(name)
        if name == "framework":
            raise VenvstacksError("layer 'framework': no wheel")

    failures = run_after_lower(lower, run)
    assert sorted(ran) == ["beside", "framework", "other"]
    assert failures == {
        "framework": "layer 'framework': no wheel",
        "app": "layer 'app' was not locked: the lock of layer 'framework', below it, failed",
        "top": "layer 'top' was not locked: the lock of layer 'app', below it, failed",
    }


def test_other_exceptions_are_raised() -> None:
    def run(name: str) -> None:
        raise KeyError(name)

    with pytest.raises(KeyError):
        run_after_lower({"framework": ()}, run)


# --- the command -----------------------------------------------------------------------------


@pytest.fixture
def index(tmp_path: Path) -> Iterator[str]:
    """A served index: alpha -> beta>=1; beta 1.0 and 2.0."""
    wheels = WheelIndex(tmp_path / "index")
    wheels.add_wheel("alpha", "1.0", ["beta>=1"])
    wheels.add_wheel("beta", "1.0")
    wheels.add_wheel("beta", "2.0")
    with wheels.serve() as url:
        yield url


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A source tree, the cwd and $BUILD_WORKSPACE_DIRECTORY, as under `bazel run`."""
    root = tmp_path / "ws"
    (root / "stacks").mkdir(parents=True)
    monkeypatch.chdir(root)
    monkeypatch.setenv("BUILD_WORKSPACE_DIRECTORY", str(root))
    return root


def lock_arguments(layer: str, url: str, resolver: str) -> list[str]:
    """`lock`'s arguments of one layer of STACK, as its `.lock` target gives them, without lower locks."""
    arguments = ["--layer-name", layer, "--layer-kind", "framework" if layer == "framework" else "application"]
    arguments += ["--python-version", PY, "--index-url", url, "--platform", LINUX]
    arguments += [argument for requirement in REQUIREMENTS[layer] for argument in ("--requirement", requirement)]
    arguments += ["--lock-target", f"//stacks:{layer}.lock", "--output-lock", f"stacks/pylock.{layer}.toml"]
    return arguments + (["--resolver", "uv", "--uv", uv.find_uv_bin()] if resolver == "uv" else [])


def write_plan(workspace: Path, url: str, resolver: str) -> Path:
    """STACK's plan, as `_lock_all_impl` writes it."""
    layers = [
        {
            "layer": layer,
            "arguments": lock_arguments(layer, url, resolver),
            "lower_locks": [[lower, f"stacks/pylock.{lower}.toml"] for lower in below],
        }
        for layer, below in STACK.items()
    ]
    plan = workspace.parent / "stack.lock.plan.json"
    plan.write_text(json.dumps({"layers": layers}))
    return plan


def locks(workspace: Path) -> dict[str, str]:
    return {path.name: path.read_text() for path in sorted((workspace / "stacks").glob("*"))}


@pytest.mark.parametrize("resolver", ["pip", "uv"])
def test_lock_stack_writes_what_one_lock_per_layer_writes(
    workspace: Path, index: str, resolver: str, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = write_plan(workspace, index, resolver)
    assert cli.main(["lock-stack", "--plan", str(plan)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("venvstacks: locked layer 'framework'"), out
    assert sorted(line.split("'")[1] for line in out[1:]) == ["app", "tool_app"], out
    together = locks(workspace)
    assert "provided = [\n" in together["pylock.app.toml"], "the framework's beta is provided to the app"

    for path in (workspace / "stacks").iterdir():
        path.unlink()
    for layer, below in STACK.items():
        lower = [f"--lower-lock={name}={workspace}/stacks/pylock.{name}.toml" for name in below]
        assert cli.main(["lock", *lock_arguments(layer, index, resolver), *lower]) == 0
    assert locks(workspace) == together

    # Unchanged inputs: every layer kept; the command's own arguments go to every layer.
    capsys.readouterr()
    assert cli.main(["lock-stack", "--plan", str(plan)]) == 0
    assert capsys.readouterr().out.count("is up to date") == 3
    assert cli.main(["lock-stack", "--plan", str(plan), "--upgrade"]) == 0
    assert capsys.readouterr().out.count("venvstacks: locked layer") == 3
    assert locks(workspace) == together


def test_a_failing_layer_is_named_and_the_layers_above_it_are_not_locked(
    workspace: Path, index: str, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = write_plan(workspace, index, "uv")
    document = json.loads(plan.read_text())
    framework = document["layers"][0]["arguments"]
    framework[framework.index("beta")] = "no-such-project"
    plan.write_text(json.dumps(document))
    assert cli.main(["lock-stack", "--plan", str(plan)]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("venvstacks: error: ")]
    assert len(errors) == 3, errors
    assert "no project 'no-such-project'" in errors[0]
    assert errors[1:] == [
        f"venvstacks: error: layer '{layer}' was not locked: the lock of layer 'framework', below it, failed"
        for layer in ("app", "tool_app")
    ]
    assert not list((workspace / "stacks").iterdir()), "nothing written"


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        ([{"layer": "app", "arguments": [], "lower_locks": [["framework", "x"]]}], "'framework', which is not planned"),
        ([{"layer": "a", "arguments": [], "lower_locks": []}] * 2, "layer 'a' is planned twice"),
        ([{"layer": "a"}], "not a stack lock plan: 'arguments'"),
    ],
)
def test_a_bad_plan_is_named(workspace: Path, layers: object, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    plan = workspace.parent / "plan.json"
    plan.write_text(json.dumps({"layers": layers}))
    assert cli.main(["lock-stack", "--plan", str(plan)]) == 1
    err = capsys.readouterr().err
    assert f"venvstacks: error: {plan}: " in err and message in err, err
