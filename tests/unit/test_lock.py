"""Tests of `lock` and `check-lock` (venvstacks_tool.lock).

The resolver tests are end to end: real wheels built here, served from a PEP 503 index on
127.0.0.1 (tests/support/wheel_index.py), resolved by the real pip-tools and pip in this process
(pip-compile) and a child process (pip's wheel choice), as `bazel run <layer>.lock` does on the
layer's runtime.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from venvstacks_testing.wheel_index import WheelIndex
from venvstacks_tool.core import cli
from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.lock import lock_command as lock
from venvstacks_tool.lock import pylock

PY = platform.python_version()
TRIPLE = "x86_64-unknown-linux-gnu"

# --- inputs_hash ---------------------------------------------------------------------------------

BASE_INPUTS: dict[str, object] = {
    "layer_name": "app",
    "layer_kind": "application",
    "requirements": ["requests>=2", "rich"],
    "requirements_in": [b"click\n"],
    "python_version": "3.12.7",
    "platform": TRIPLE,
    "lower_locks": [("framework", b"lock bytes\n")],
    "index_url": "https://pypi.org/simple",
    "extra_index_urls": ["https://extra.example/simple"],
    "find_links": ["wheels"],
}

CHANGES: list[tuple[str, object]] = [
    ("layer_name", "app2"),
    ("layer_kind", "framework"),
    ("requirements", ["requests>=2"]),
    ("requirements", ["rich", "requests>=2"]),
    ("requirements", ["requests>=2", "rich", "attrs"]),
    ("requirements_in", [b"click>=8\n"]),
    ("requirements_in", [b"click\n", b""]),
    ("requirements_in", []),
    ("python_version", "3.12.8"),
    ("platform", "aarch64-unknown-linux-gnu"),
    ("lower_locks", [("framework", b"lock bytes, re-locked\n")]),
    ("lower_locks", [("framework2", b"lock bytes\n")]),
    ("lower_locks", []),
    ("index_url", "https://mirror.example/simple"),
    ("extra_index_urls", []),
    ("find_links", ["other-wheels"]),
]


def test_inputs_hash_is_stable_and_well_formed() -> None:
    digest = lock.inputs_hash(**BASE_INPUTS)  # type: ignore[arg-type]
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest)
    assert lock.inputs_hash(**BASE_INPUTS) == digest  # type: ignore[arg-type]


@pytest.mark.parametrize(("key", "value"), CHANGES, ids=[f"{k}-{i}" for i, (k, _) in enumerate(CHANGES)])
def test_inputs_hash_changes_with_each_input(key: str, value: object) -> None:
    changed = dict(BASE_INPUTS, **{key: value})
    assert lock.inputs_hash(**changed) != lock.inputs_hash(**BASE_INPUTS)  # type: ignore[arg-type]


def test_inputs_hash_ignores_credentials_in_urls() -> None:
    with_credentials = dict(
        BASE_INPUTS,
        index_url="https://alice:s3cret@pypi.org/simple",
        extra_index_urls=["https://token@extra.example/simple"],
    )
    assert lock.inputs_hash(**with_credentials) == lock.inputs_hash(**BASE_INPUTS)  # type: ignore[arg-type]


def test_strip_credentials() -> None:
    assert lock.strip_credentials("https://u:p@host:8443/simple/") == "https://host:8443/simple/"
    assert lock.strip_credentials("http://token@127.0.0.1/x.whl#sha256=00") == "http://127.0.0.1/x.whl#sha256=00"
    assert lock.strip_credentials("https://pypi.org/simple") == "https://pypi.org/simple"
    assert lock.strip_credentials("wheels/dir") == "wheels/dir"


def test_default_requirements_path() -> None:
    assert lock.default_requirements_path("stacks/app.pylock.toml") == "stacks/app.requirements.txt"
    assert lock.default_requirements_path("stacks/pylock.app.toml") == "stacks/app.requirements.txt"
    assert lock.default_requirements_path("app.toml") == "app.requirements.txt"


# --- fixtures for the subcommands ---------------------------------------------------------------


@dataclass
class Layer:
    """Arguments of one layer for `lock` and `check-lock`, with a workspace under tmp_path."""

    workspace: Path
    name: str
    kind: str = "application"
    index_url: str = "http://127.0.0.1:9/simple"
    requirements: tuple[str, ...] = ()
    requirements_in: tuple[str, ...] = ()
    lower: tuple[tuple[str, str], ...] = ()
    extra: tuple[str, ...] = ()

    @property
    def lock_path(self) -> str:
        return f"stacks/{self.name}.pylock.toml"

    def shared(self) -> list[str]:
        argv = [
            "--layer-name",
            self.name,
            "--layer-kind",
            self.kind,
            "--python-version",
            PY,
            "--platform",
            TRIPLE,
            "--index-url",
            self.index_url,
            "--lock-target",
            f"//stacks:{self.name}.lock",
        ]
        for requirement in self.requirements:
            argv += ["--requirement", requirement]
        for path in self.requirements_in:
            argv += ["--requirements-in", path]
        for name, path in self.lower:
            argv += ["--lower-lock", f"{name}={path}"]
        return argv + list(self.extra)

    def lock_argv(self, *more: str) -> list[str]:
        return [
            "lock",
            *self.shared(),
            "--workspace-dir",
            str(self.workspace),
            "--output-lock",
            self.lock_path,
            *more,
        ]

    def check_argv(self) -> list[str]:
        return ["check-lock", *self.shared(), "--lock", self.lock_path]

    def read_lock(self) -> pylock.Lock:
        return pylock.read_lock(self.workspace / self.lock_path)


def lock_failure(layer: Layer, capsys: pytest.CaptureFixture[str]) -> str:
    """The last line `lock` prints to stderr when it fails (exit status 1) for `layer`."""
    assert cli.main(layer.lock_argv()) == 1
    return capsys.readouterr().err.splitlines()[-1]


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A source tree that is also the cwd (as the runfiles dir mirrors it under `bazel run`)."""
    root = tmp_path / "ws"
    (root / "stacks").mkdir(parents=True)
    monkeypatch.chdir(root)
    monkeypatch.delenv("BUILD_WORKSPACE_DIRECTORY", raising=False)
    return root


def write_fake_lock(workspace: Path, name: str, packages: dict[str, str], kind: str = "framework") -> str:
    """Write a lock of layer `name` pinning `packages` (name -> version); return its path."""
    path = f"stacks/{name}.pylock.toml"
    lock_ = pylock.Lock(
        layer=name,
        kind=kind,
        inputs_hash="sha256:" + "0" * 64,
        python_version=PY,
        platform=TRIPLE,
        requirements=sorted(packages),
        packages=[
            pylock.LockedPackage(
                package,
                version,
                [pylock.LockedWheel(f"{package}-{version}-py3-none-any.whl", f"https://x/{package}.whl", "a" * 64)],
            )
            for package, version in packages.items()
        ],
    )
    pylock.write_lock(workspace / path, lock_, f"//stacks:{name}.lock")
    return path


# --- errors found before resolving --------------------------------------------------------------


def test_conflict_with_a_lower_layer_pin_names_both_layers(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    framework = write_fake_lock(workspace, "framework", {"numpy": "2.1.2"})
    app = Layer(workspace, "app", requirements=("requests", "numpy <2"), lower=(("framework", framework),))
    assert lock_failure(app, capsys) == (
        "venvstacks: error: layer 'app' requires 'numpy<2' but layer 'framework' pins numpy==2.1.2"
        " (stacks/framework.pylock.toml)"
    )
    assert not (workspace / app.lock_path).exists()


def test_conflict_found_in_a_requirements_in_file_and_by_normalized_name(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    framework = write_fake_lock(workspace, "framework", {"Typing_Extensions": "4.12.2"})
    (workspace / "stacks" / "app.in").write_text("# tools\nrich\ntyping.extensions >= 5 ; python_version >= '3'\n")
    app = Layer(workspace, "app", requirements_in=("stacks/app.in",), lower=(("framework", framework),))
    assert lock_failure(app, capsys) == (
        "venvstacks: error: layer 'app' requires 'typing.extensions>=5; python_version >= \"3\"' but layer"
        " 'framework' pins typing-extensions==4.12.2 (stacks/framework.pylock.toml)"
    )


def test_requirements_that_do_not_apply_or_allow_the_pin_are_no_conflict(workspace: Path) -> None:
    framework = write_fake_lock(workspace, "framework", {"numpy": "2.1.2rc1"})
    args = lock.build_parser().parse_args(
        Layer(
            workspace,
            "app",
            requirements=("numpy<2; python_version < '3'", "numpy>=2", "numpy"),
            lower=(("framework", framework),),
        ).lock_argv()[1:]
    )
    inputs = lock._read_inputs(args)
    pins = lock._lower_pins(inputs)
    assert pins["numpy"].layer == "framework"
    lock._check_against_lower_pins("app", lock._top_level_requirements(args, inputs), pins)


def test_options_in_a_requirements_in_file_are_rejected(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workspace / "stacks" / "app.in").write_text("rich \\\n  >=13\n\n--index-url https://elsewhere/simple\n")
    app = Layer(workspace, "app", requirements_in=("stacks/app.in",))
    assert cli.main(app.lock_argv()) == 1
    assert (
        capsys.readouterr()
        .err.splitlines()[-1]
        .startswith("venvstacks: error: stacks/app.in:4: options such as '--index-url' are not supported")
    )


def test_an_invalid_requirement_names_its_origin(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workspace / "stacks" / "app.in").write_text("rich\nnot a requirement!\n")
    app = Layer(workspace, "app", requirements_in=("stacks/app.in",))
    assert cli.main(app.lock_argv()) == 1
    assert "venvstacks: error: stacks/app.in:2: invalid requirement 'not a requirement!'" in capsys.readouterr().err


def test_lock_refuses_another_python(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = Layer(workspace, "app", requirements=("rich",)).lock_argv()
    argv[argv.index("--python-version") + 1] = "3.9.0"
    assert cli.main(argv) == 1
    assert f"is locked for Python 3.9.0, but this is Python {PY}" in capsys.readouterr().err


def test_lock_needs_a_workspace(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = Layer(workspace, "app").lock_argv()
    del argv[argv.index("--workspace-dir") : argv.index("--workspace-dir") + 2]
    assert cli.main(argv) == 1
    assert "BUILD_WORKSPACE_DIRECTORY is not set; run it with `bazel run //stacks:app.lock`" in capsys.readouterr().err


def test_a_lower_lock_of_another_layer_is_an_error(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = write_fake_lock(workspace, "other", {"numpy": "2.1.2"})
    app = Layer(workspace, "app", requirements=("rich",), lower=(("framework", other),))
    assert cli.main(app.lock_argv()) == 1
    assert (
        "stacks/other.pylock.toml: the lock of layer 'other' was given as the lock of layer 'framework'"
        in capsys.readouterr().err
    )


# --- check-lock ----------------------------------------------------------------------------------


def test_check_lock_fresh_stale_and_missing(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    framework = write_fake_lock(workspace, "framework", {"numpy": "2.1.2"})
    (workspace / "stacks" / "app.in").write_text("rich\n")
    app = Layer(
        workspace,
        "app",
        requirements=("requests",),
        requirements_in=("stacks/app.in",),
        lower=(("framework", framework),),
    )
    stale = (
        "stacks/app.pylock.toml is stale against its inputs (requirements, runtime, lower layers' locks):"
        " run `bazel run //stacks:app.lock`"
    )

    # Missing.
    assert cli.main(app.check_argv()) == 1
    assert capsys.readouterr().err == ("stacks/app.pylock.toml does not exist: run `bazel run //stacks:app.lock`\n")

    # Fresh: a lock whose inputs-hash is the hash of exactly these inputs.
    digest = lock.inputs_hash(
        layer_name="app",
        layer_kind="application",
        requirements=["requests"],
        requirements_in=[b"rich\n"],
        python_version=PY,
        platform=TRIPLE,
        lower_locks=[("framework", (workspace / framework).read_bytes())],
        index_url=app.index_url,
        extra_index_urls=[],
        find_links=[],
    )
    pylock.write_lock(workspace / app.lock_path, pylock.Lock("app", "application", digest, PY, TRIPLE))
    assert cli.main(app.check_argv()) == 0
    assert capsys.readouterr() == ("", "")

    # The same content at another path is the same input.
    (workspace / "elsewhere.in").write_text("rich\n")
    moved = replace(app, requirements_in=("elsewhere.in",))
    assert cli.main(moved.check_argv()) == 0

    # Stale: each kind of input.
    (workspace / "stacks" / "app.in").write_text("rich>=13\n")
    assert cli.main(app.check_argv()) == 1
    assert capsys.readouterr().err == stale + "\n"
    (workspace / "stacks" / "app.in").write_text("rich\n")
    assert cli.main(app.check_argv()) == 0

    write_fake_lock(workspace, "framework", {"numpy": "2.1.3"})
    assert cli.main(app.check_argv()) == 1
    assert capsys.readouterr().err == stale + "\n"
    write_fake_lock(workspace, "framework", {"numpy": "2.1.2"})
    assert cli.main(app.check_argv()) == 0

    argv = app.check_argv()
    argv[argv.index("--python-version") + 1] = "3.99.0"
    assert cli.main(argv) == 1
    assert capsys.readouterr().err == stale + "\n"


def test_check_lock_of_an_unreadable_lock(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    app = Layer(workspace, "app", requirements=("rich",))
    (workspace / app.lock_path).write_text("<<<<<<< HEAD\n")
    assert cli.main(app.check_argv()) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1
    assert err.startswith("stacks/app.pylock.toml is not a valid lock (stacks/app.pylock.toml: not a valid TOML file")
    assert err.endswith("run `bazel run //stacks:app.lock`\n")


# --- the real resolver ---------------------------------------------------------------------------


@pytest.fixture
def index(tmp_path: Path) -> Iterator[tuple[WheelIndex, str]]:
    """A served index: alpha -> beta>=1 -> (2.0 only) gamma; delta -> gamma; eps -> gamma>=0.6."""
    wheels = WheelIndex(tmp_path / "index")
    wheels.add_wheel("alpha", "1.0", ["beta>=1"])
    wheels.add_wheel("beta", "1.0")
    wheels.add_wheel("beta", "2.0", ["gamma"])
    wheels.add_wheel("gamma", "0.5")
    wheels.add_wheel("gamma", "0.6")
    wheels.add_wheel("delta", "1.0", ["gamma"])
    wheels.add_wheel("eps", "1.0", ["gamma>=0.6"])
    wheels.add_sdist("sdist-only", "1.0")
    wheels.add_wheel("windows-only", "1.0", tag="cp311-cp311-win_amd64")
    with wheels.serve() as url:
        yield wheels, url


def wheel_of(wheels: WheelIndex, url: str, file_name: str) -> pylock.LockedWheel:
    digest = hashlib.sha256((wheels.files_dir / file_name).read_bytes()).hexdigest()
    return pylock.LockedWheel(file_name, url.removesuffix("/simple") + "/files/" + file_name, digest)


def test_lock_resolves_a_dependency_graph(
    workspace: Path, index: tuple[WheelIndex, str], capsys: pytest.CaptureFixture[str]
) -> None:
    wheels, url = index
    (workspace / "stacks" / "app.in").write_text("# the app\nalpha  # top\n")
    app = Layer(workspace, "app", index_url=url, requirements=("beta >= 1",), requirements_in=("stacks/app.in",))
    assert cli.main(app.lock_argv()) == 0
    out = capsys.readouterr().out
    assert out == "venvstacks: locked layer 'app': 3 package(s), 0 provided by lower layers -> stacks/app.pylock.toml\n"

    locked = app.read_lock()
    assert locked.packages == [
        pylock.LockedPackage("alpha", "1.0", [wheel_of(wheels, url, "alpha-1.0-py3-none-any.whl")]),
        pylock.LockedPackage("beta", "2.0", [wheel_of(wheels, url, "beta-2.0-py3-none-any.whl")]),
        pylock.LockedPackage("gamma", "0.6", [wheel_of(wheels, url, "gamma-0.6-py3-none-any.whl")]),
    ]
    assert (locked.layer, locked.kind, locked.python_version, locked.platform) == ("app", "application", PY, TRIPLE)
    assert locked.requirements == ["beta >= 1", "alpha"]  # as written
    assert locked.provided == []
    text = (workspace / app.lock_path).read_text()
    assert text.startswith("# This file is generated by `bazel run //stacks:app.lock`; do not edit.\n")
    assert text == pylock.render_lock(locked, "//stacks:app.lock")

    requirements = (workspace / "stacks" / "app.requirements.txt").read_text()
    assert requirements.splitlines()[2:] == [
        "alpha==1.0 \\",
        f"    --hash=sha256:{locked.packages[0].wheels[0].sha256}",
        "beta==2.0 \\",
        f"    --hash=sha256:{locked.packages[1].wheels[0].sha256}",
        "gamma==0.6 \\",
        f"    --hash=sha256:{locked.packages[2].wheels[0].sha256}",
    ]

    # Fresh right after locking; locking again gives the same bytes.
    assert cli.main(app.check_argv()) == 0
    assert cli.main(app.lock_argv()) == 0
    assert (workspace / app.lock_path).read_text() == text

    # Changing a requirement makes it stale, with the one-line hint.
    capsys.readouterr()
    (workspace / "stacks" / "app.in").write_text("alpha\ndelta\n")
    assert cli.main(app.check_argv()) == 1
    assert capsys.readouterr().err == (
        "stacks/app.pylock.toml is stale against its inputs (requirements, runtime, lower layers' locks):"
        " run `bazel run //stacks:app.lock`\n"
    )
    assert cli.main(app.lock_argv()) == 0
    assert [p.name for p in app.read_lock().packages] == ["alpha", "beta", "delta", "gamma"]
    assert cli.main(app.check_argv()) == 0


def test_stacking_takes_the_lower_layers_version_and_marks_it_provided(
    workspace: Path, index: tuple[WheelIndex, str], capsys: pytest.CaptureFixture[str]
) -> None:
    wheels, url = index
    framework = Layer(workspace, "framework", kind="framework", index_url=url, requirements=("gamma<0.6",))
    assert cli.main(framework.lock_argv()) == 0
    assert [(p.name, p.version) for p in framework.read_lock().packages] == [("gamma", "0.5")]

    app = Layer(workspace, "app", index_url=url, requirements=("delta",), lower=(("framework", framework.lock_path),))
    assert cli.main(app.lock_argv()) == 0
    locked = app.read_lock()
    assert locked.packages == [
        pylock.LockedPackage("delta", "1.0", [wheel_of(wheels, url, "delta-1.0-py3-none-any.whl")])
    ]
    assert locked.provided == [pylock.ProvidedPackage("gamma", "0.5", "framework")]
    assert "gamma==0.5: provided by layer 'framework'" in (workspace / "stacks" / "app.requirements.txt").read_text()
    assert "gamma" not in (workspace / "stacks" / "app.requirements.txt").read_text().split("\n", 3)[3]
    assert capsys.readouterr().out.splitlines()[-1] == (
        "venvstacks: locked layer 'app': 1 package(s), 1 provided by lower layers -> stacks/app.pylock.toml"
    )

    # A lower layer's new lock makes the upper one stale.
    assert cli.main(app.check_argv()) == 0
    framework.requirements = ("gamma<=0.6",)
    assert cli.main(framework.lock_argv()) == 0
    assert cli.main(app.check_argv()) == 1

    # A transitive conflict with the lower pin fails at resolution, naming both layers.
    framework.requirements = ("gamma<0.6",)
    assert cli.main(framework.lock_argv()) == 0
    capsys.readouterr()
    app.requirements = ("eps",)
    assert lock_failure(app, capsys) == (
        "venvstacks: error: layer 'app': the requirements conflict: eps 1.0 depends on gamma>=0.6;"
        " layer 'framework' pins gamma==0.5 (stacks/framework.pylock.toml)"
    )


def test_conflicting_requirements_of_one_layer(
    workspace: Path, index: tuple[WheelIndex, str], capsys: pytest.CaptureFixture[str]
) -> None:
    _, url = index
    app = Layer(workspace, "app", index_url=url, requirements=("eps", "gamma < 0.6"))
    assert lock_failure(app, capsys) == (
        "venvstacks: error: layer 'app': the requirements conflict: layer 'app' requires 'gamma<0.6';"
        " eps 1.0 depends on gamma>=0.6"
    )


@pytest.mark.parametrize("package", ["sdist-only", "windows-only"])
def test_a_package_without_a_compatible_wheel_fails_by_name(
    workspace: Path, index: tuple[WheelIndex, str], capsys: pytest.CaptureFixture[str], package: str
) -> None:
    _, url = index
    app = Layer(workspace, "app", index_url=url, requirements=("alpha", package))
    assert lock_failure(app, capsys) == (
        f"venvstacks: error: layer 'app': no compatible wheel of '{package}' for Python {PY} on {TRIPLE};"
        " layers are installed from wheels only, so a package with only an sdist, or only wheels for other"
        " Pythons or platforms, cannot be locked"
    )
    assert not (workspace / app.lock_path).exists()


def test_no_version_satisfies_the_requirement(
    workspace: Path, index: tuple[WheelIndex, str], capsys: pytest.CaptureFixture[str]
) -> None:
    _, url = index
    app = Layer(workspace, "app", index_url=url, requirements=("beta>=3",))
    assert lock_failure(app, capsys) == (
        f"venvstacks: error: layer 'app': no version of 'beta' that satisfies 'beta>=3' has a wheel for"
        f" Python {PY} on {TRIPLE} (versions with a compatible wheel: 1.0, 2.0)"
    )


def test_a_project_missing_from_the_index(
    workspace: Path, index: tuple[WheelIndex, str], capsys: pytest.CaptureFixture[str]
) -> None:
    _, url = index
    app = Layer(workspace, "app", index_url=url, requirements=("alpha", "no_such.project"))
    assert cli.main(app.lock_argv()) == 1
    err = capsys.readouterr().err
    assert (
        err.splitlines()[-1]
        == f"venvstacks: error: layer 'app': no project 'no-such-project' on the package index ({url})"
    )
    assert "DEBUG" not in err


def test_host_pip_configuration_is_ignored_and_credentials_are_not_written(
    workspace: Path, index: tuple[WheelIndex, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheels, url = index
    config = tmp_path / "pip.conf"
    config.write_text("[global]\nno-index = true\nconstraint = /nonexistent/constraints.txt\n")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(config))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_ONLY_BINARY", "none")
    monkeypatch.setenv("PIP_REQUIRE_VIRTUALENV", "1")
    credentialed = url.replace("http://", "http://alice:s3cret@")
    app = Layer(workspace, "app", index_url=credentialed, requirements=("delta",))
    assert cli.main(app.lock_argv()) == 0
    assert [(p.name, p.version) for p in app.read_lock().packages] == [("delta", "1.0"), ("gamma", "0.6")]
    for written in ("app.pylock.toml", "app.requirements.txt"):
        text = (workspace / "stacks" / written).read_text()
        assert "s3cret" not in text
        assert "alice" not in text
    assert app.read_lock().packages[0].wheels[0] == wheel_of(wheels, url, "delta-1.0-py3-none-any.whl")
    # The environment is restored afterwards.
    assert os.environ["PIP_CONFIG_FILE"] == str(config)
    assert os.environ["PIP_NO_INDEX"] == "1"


def test_find_links_relative_to_the_workspace_and_kept_versions(workspace: Path, index: tuple[WheelIndex, str]) -> None:
    wheels, url = index
    local = WheelIndex(workspace / "local")
    local_wheel = local.add_wheel("local-tool", "0.1", ["gamma"])
    app = Layer(workspace, "app", index_url=url, requirements=("local-tool",), extra=("--find-links", "local/files"))
    assert cli.main(app.lock_argv()) == 0
    locked = app.read_lock()
    assert [(p.name, p.version) for p in locked.packages] == [("gamma", "0.6"), ("local-tool", "0.1")]
    # Recorded relative to the lock file (PEP 751 `path`), never as this machine's file:// URL.
    local_locked = locked.packages[1].wheels[0]
    lock_file = workspace / app.lock_path
    assert (local_locked.url, local_locked.path) == ("", os.path.relpath(local_wheel, lock_file.parent))
    assert "file:" not in lock_file.read_text()

    # A newer version on the index: re-locking keeps the locked one, --upgrade takes the newer.
    wheels.add_wheel("gamma", "0.7")
    assert cli.main(app.lock_argv()) == 0
    assert [(p.name, p.version) for p in app.read_lock().packages] == [("gamma", "0.6"), ("local-tool", "0.1")]
    assert cli.main(app.lock_argv("--upgrade")) == 0
    assert [(p.name, p.version) for p in app.read_lock().packages] == [("gamma", "0.7"), ("local-tool", "0.1")]


def test_an_unreachable_index_is_reported(
    workspace: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIP_RETRIES", "0")  # a transport setting: kept while pip runs
    app = Layer(workspace, "app", index_url="http://127.0.0.1:9/simple", requirements=("alpha",))
    assert cli.main(app.lock_argv()) == 1
    assert (
        capsys.readouterr()
        .err.splitlines()[-1]
        .startswith("venvstacks: error: layer 'app': cannot read the package index for 'alpha'")
    )


def test_an_empty_layer_locks_to_nothing(workspace: Path) -> None:
    app = Layer(workspace, "app")
    assert cli.main(app.lock_argv()) == 0
    locked = app.read_lock()
    assert (locked.packages, locked.provided, locked.requirements) == ([], [], [])
    assert cli.main(app.check_argv()) == 0


def test_inputs_hash_of_lock_matches_check_lock(workspace: Path) -> None:
    """`lock` and `check-lock` hash the same staged inputs the same way."""
    args = lock.build_parser().parse_args(Layer(workspace, "app", requirements=("x",)).lock_argv()[1:])
    check_args = lock.build_check_parser().parse_args(Layer(workspace, "app", requirements=("x",)).check_argv()[1:])
    assert lock._read_inputs(args).hash(args) == lock._read_inputs(check_args).hash(check_args)


def test_lower_lock_argument_format() -> None:
    with pytest.raises(SystemExit):
        lock.build_check_parser().parse_args(
            [
                *("--layer-name", "a", "--layer-kind", "framework", "--python-version", "3.12.7"),
                *("--platform", TRIPLE, "--lock", "x", "--lower-lock", "no-equals-sign"),
            ]
        )


def test_errors_are_venvstacks_errors(workspace: Path) -> None:
    args = lock.build_parser().parse_args(Layer(workspace, "app", requirements_in=("missing.in",)).lock_argv()[1:])
    with pytest.raises(VenvstacksError, match=r"^missing\.in: the requirements file does not exist$"):
        lock.lock(args)
