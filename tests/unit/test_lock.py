"""Tests of `lock` and `check-lock` (venvstacks_tool.lock.lock_command), driven through `cli.main`.

The resolver tests are end to end: real wheels built here, served from a PEP 503 index on
127.0.0.1 (tests/support/wheel_index.py), resolved by the real pip in child processes, one per
target platform, as `bazel run <layer>.lock` does, and each again by the real uv from PyPI (the
`resolver` fixture: the same test, both resolvers, the same lock expected). The multi-platform
tests against the real PyPI lock numpy and click for all five PBS platforms (metadata and hashes
only: no wheel is downloaded), with both resolvers, and compare their locks.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
import uv

from venvstacks_testing.wheel_index import WheelIndex
from venvstacks_tool.core import cli
from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.core.platforms import PLATFORMS
from venvstacks_tool.lock import lock_command as lock
from venvstacks_tool.lock import pylock
from venvstacks_tool.lock.urls import file_url_path, strip_credentials

# The target's full version: the host's X.Y (required), a patch of its own (markers use it).
PY = f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"
CP = f"cp{sys.version_info.major}{sys.version_info.minor}"
LINUX = "x86_64-unknown-linux-gnu"
WINDOWS = "x86_64-pc-windows-msvc"
LINUX_MARKER = "sys_platform == 'linux' and platform_machine == 'x86_64'"
WINDOWS_MARKER = "sys_platform == 'win32' and platform_machine == 'AMD64'"
ALL = tuple(sorted(p.triple for p in PLATFORMS))
# What `Layer.lock_argv` adds to choose the resolver; the `resolver` fixture sets it.
_RESOLVER_ARGV: list[str] = []


RESOLVERS = ("pip", "uv")


def resolver_argv(resolver: str) -> list[str]:
    """`lock`'s arguments choosing `resolver`: pip's (the default), or uv's (the uv wheel of tests/requirements.txt)."""
    return ["--resolver", "uv", "--uv", uv.find_uv_bin()] if resolver == "uv" else []


@pytest.fixture(params=RESOLVERS)
def resolver(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test once with pip's resolver and once with uv's."""
    monkeypatch.setattr(sys.modules[__name__], "_RESOLVER_ARGV", resolver_argv(request.param))
    return str(request.param)


# --- inputs_hash ---------------------------------------------------------------------------------

BASE_INPUTS: dict[str, object] = {
    "layer_name": "app",
    "layer_kind": "application",
    "requirements": ["requests>=2", "rich"],
    "requirements_in": [b"click\n"],
    "python_version": "3.12.7",
    "platforms": [LINUX, WINDOWS],
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
    ("python_version", "3.13.0"),
    ("platforms", [LINUX]),
    ("platforms", [LINUX, WINDOWS, "aarch64-apple-darwin"]),
    ("lower_locks", [("framework", b"lock bytes, re-locked\n")]),
    ("lower_locks", [("framework2", b"lock bytes\n")]),
    ("lower_locks", []),
    ("index_url", "https://mirror.example/simple"),
    ("floors", {"glibc": "2.28"}),
    ("floors", {"macos": "12.0"}),
    ("extra_index_urls", []),
    ("find_links", ["other-wheels"]),
    ("named_indexes", {"indexes": {"cpu": "https://cpu.example/simple"}, "packages": {"torch": "cpu"}, "priority": []}),
]


def test_inputs_hash_is_stable_and_well_formed() -> None:
    digest = lock.inputs_hash(**BASE_INPUTS)  # type: ignore[arg-type]
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest)
    assert lock.inputs_hash(**BASE_INPUTS) == digest  # type: ignore[arg-type]


def test_inputs_hash_is_independent_of_the_host_and_of_the_patch_release() -> None:
    # A fixed value: the hash holds nothing of the machine (OS, architecture, its Python), so it
    # is the same wherever the tests run. Changing it means every checked-in lock goes stale.
    digest = lock.inputs_hash(**BASE_INPUTS)  # type: ignore[arg-type]
    assert digest == "sha256:89236c6061e4440ce0582d9725c746448c767e3f8f5cfb11353c63bdc6b36016"
    for patch in ("3.12.0", "3.12.14", "3.12"):
        assert lock.inputs_hash(**dict(BASE_INPUTS, python_version=patch)) == digest  # type: ignore[arg-type]
    # The platforms are a set: their order on the command line does not matter.
    assert lock.inputs_hash(**dict(BASE_INPUTS, platforms=[WINDOWS, LINUX])) == digest  # type: ignore[arg-type]
    # No raised wheel floor is the same as none given.
    assert lock.inputs_hash(**dict(BASE_INPUTS, floors={})) == digest  # type: ignore[arg-type]


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
    assert strip_credentials("https://u:p@host:8443/simple/") == "https://host:8443/simple/"
    assert strip_credentials("http://token@127.0.0.1/x.whl#sha256=00") == "http://127.0.0.1/x.whl#sha256=00"
    assert strip_credentials("https://pypi.org/simple") == "https://pypi.org/simple"
    assert strip_credentials("wheels/dir") == "wheels/dir"


def test_file_url_path_and_a_light_start() -> None:
    """A find-links file's path from its URL, without urllib.request (http.client, ssl: slow to import)."""
    assert file_url_path("file:///wheels/a%20b-1.0-py3-none-any.whl") == Path("/wheels/a b-1.0-py3-none-any.whl")
    assert file_url_path(Path("/tmp/x y.whl").as_uri()) == Path("/tmp/x y.whl")
    code = (
        "import sys; import venvstacks_tool.lock.lock_command, venvstacks_tool.lock.resolve,"
        " venvstacks_tool.lock.uv_resolver; print(sorted({'urllib.request', 'http.client', 'ssl'} & set(sys.modules)))"
    )
    tools = Path(lock.__file__).parents[2]
    found = subprocess.run([sys.executable, "-c", code], cwd=tools, capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "[]", "the lock's modules import what every lock run then pays for at start"


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
    platforms: tuple[str, ...] = (LINUX,)
    python_version: str = PY
    more: list[str] = field(default_factory=list)

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
            self.python_version,
            "--index-url",
            self.index_url,
            "--lock-target",
            f"//stacks:{self.name}.lock",
        ]
        for triple in self.platforms:
            argv += ["--platform", triple]
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
            *_RESOLVER_ARGV,
            *more,
        ]

    def check_argv(self) -> list[str]:
        return ["check-lock", *self.shared(), "--lock", self.lock_path]

    def read_lock(self) -> pylock.Lock:
        return pylock.read_lock(self.workspace / self.lock_path)

    def text(self) -> str:
        return (self.workspace / self.lock_path).read_text()


def lock_failure(layer: Layer, capsys: pytest.CaptureFixture[str]) -> str:
    """The last line `lock` prints to stderr when it fails (exit status 1) for `layer`."""
    assert cli.main(layer.lock_argv()) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith("venvstacks: error: ")
    return err[-1]


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A source tree that is also the cwd (as the runfiles dir mirrors it under `bazel run`)."""
    root = tmp_path / "ws"
    (root / "stacks").mkdir(parents=True)
    monkeypatch.chdir(root)
    monkeypatch.delenv("BUILD_WORKSPACE_DIRECTORY", raising=False)
    return root


def write_fake_lock(
    workspace: Path,
    name: str,
    packages: dict[str, str],
    kind: str = "framework",
    platforms: tuple[str, ...] = (LINUX,),
    only: dict[str, tuple[str, ...]] | None = None,
) -> str:
    """Write a lock of layer `name` pinning `packages` (name -> version) on `platforms`; return its path.

    `only` limits a package to some platforms (name -> triples).
    """
    path = f"stacks/{name}.pylock.toml"
    locked = []
    for package, version in packages.items():
        file_name = f"{package}-{version}-py3-none-any.whl"
        wheel = pylock.LockedWheel(file_name, f"https://x/{file_name}", "a" * 64)
        installs = (only or {}).get(package, platforms)
        locked.append(pylock.LockedPackage(package, version, [wheel], dict.fromkeys(installs, file_name)))
    lock_ = pylock.Lock(
        layer=name,
        kind=kind,
        inputs_hash="sha256:" + "0" * 64,
        python_version=PY,
        platforms=list(platforms),
        requirements=sorted(packages),
        packages=locked,
    )
    pylock.write_lock(workspace / path, lock_, f"//stacks:{name}.lock")
    return path


# --- the command line ----------------------------------------------------------------------------


def test_arguments_are_parsed_once_into_a_frozen_request(workspace: Path) -> None:
    app = Layer(workspace, "app", requirements=("rich",), platforms=(WINDOWS, LINUX))
    request = lock.parse_request(app.lock_argv("--upgrade")[1:])
    assert request.inputs.platforms == (WINDOWS, LINUX)  # sorted
    assert request.inputs.requirements == ("rich",)
    assert request.output_requirements == "stacks/app.requirements.txt"
    assert request.upgrade is True
    with pytest.raises(AttributeError):
        request.upgrade = False  # type: ignore[misc]
    check = lock.parse_check_request(app.check_argv()[1:])
    assert check.inputs == request.inputs
    assert check.lock == Path(app.lock_path)


@pytest.mark.parametrize(
    ("platforms", "message"),
    [
        (
            (LINUX, "x86_64-linux"),
            "layer 'app': --platform: 'x86_64-linux' is not the triple of a platform rules_venvstacks builds for;"
            " known: linux_aarch64 (aarch64-unknown-linux-gnu), linux_x86_64 (x86_64-unknown-linux-gnu),",
        ),
        ((LINUX, WINDOWS, LINUX), "layer 'app': --platform: platform linux_x86_64 is listed twice"),
    ],
)
def test_unknown_or_repeated_platforms_are_named_by_their_short_names(
    workspace: Path, capsys: pytest.CaptureFixture[str], platforms: tuple[str, ...], message: str
) -> None:
    app = Layer(workspace, "app", platforms=platforms)
    for argv in (app.lock_argv(), app.check_argv()):
        assert cli.main(argv) == 1
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and message in err


def test_at_least_one_platform_and_no_lock_alias(workspace: Path) -> None:
    app = Layer(workspace, "app", platforms=())
    with pytest.raises(SystemExit):
        lock.parse_request(app.lock_argv()[1:])
    argv = Layer(workspace, "app").lock_argv()
    argv[argv.index("--output-lock")] = "--lock"
    with pytest.raises(SystemExit):
        lock.parse_request(argv[1:])


def test_a_python_version_must_be_complete(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    app = Layer(workspace, "app", python_version="3.11")
    assert cli.main(app.check_argv()) == 1
    assert "--python-version '3.11' is not a full Python version" in capsys.readouterr().err


def test_lower_lock_argument_format() -> None:
    with pytest.raises(SystemExit):
        lock.parse_check_request(
            [
                *("--layer-name", "a", "--layer-kind", "framework", "--python-version", "3.12.7"),
                *("--platform", LINUX, "--lock", "x", "--lower-lock", "no-equals-sign"),
            ]
        )


# --- errors found before resolving --------------------------------------------------------------


def test_conflict_with_a_lower_layer_pin_names_both_layers(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    framework = write_fake_lock(workspace, "framework", {"numpy": "2.1.2"})
    app = Layer(workspace, "app", requirements=("requests", "numpy <2"), lower=(("framework", framework),))
    assert lock_failure(app, capsys) == (
        "venvstacks: error: layer 'app' requires 'numpy<2' but layer 'framework' pins numpy==2.1.2"
        " (stacks/framework.pylock.toml)"
    )
    assert not (workspace / app.lock_path).exists()


def test_conflict_with_a_pin_on_some_platforms_names_them(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    framework = write_fake_lock(
        workspace, "framework", {"numpy": "2.1.2"}, platforms=(LINUX, WINDOWS), only={"numpy": (WINDOWS,)}
    )
    app = Layer(
        workspace, "app", requirements=("numpy <2",), lower=(("framework", framework),), platforms=(LINUX, WINDOWS)
    )
    assert lock_failure(app, capsys) == (
        "venvstacks: error: layer 'app' requires 'numpy<2' but layer 'framework' pins numpy==2.1.2"
        " on windows_x86_64 (stacks/framework.pylock.toml)"
    )


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
    framework = write_fake_lock(workspace, "framework", {"numpy": "2.1.2rc1"}, platforms=(LINUX, WINDOWS))
    request = lock.parse_request(
        Layer(
            workspace,
            "app",
            # The markers of the first two hold on neither platform; the others allow the pin.
            requirements=("numpy<2; python_version < '3'", "numpy<2; sys_platform == 'darwin'", "numpy>=2", "numpy"),
            lower=(("framework", framework),),
            platforms=(LINUX, WINDOWS),
        ).lock_argv()[1:]
    )
    inputs = lock._read_inputs(request.inputs)
    pins = lock._lower_pins(inputs, request.inputs.platforms)
    assert pins[LINUX]["numpy"].layer == "framework" and pins[WINDOWS]["numpy"].version == "2.1.2rc1"
    lock._check_against_lower_pins(request.inputs, lock._top_level_requirements(request.inputs, inputs), pins)


def test_options_in_a_requirements_in_file_are_rejected(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workspace / "stacks" / "app.in").write_text("rich \\\n  >=13\n\n--index-url https://elsewhere/simple\n")
    app = Layer(workspace, "app", requirements_in=("stacks/app.in",))
    assert lock_failure(app, capsys).startswith(
        "venvstacks: error: stacks/app.in:4: options such as '--index-url' are not supported"
    )


def test_an_invalid_requirement_names_its_origin(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workspace / "stacks" / "app.in").write_text("rich\nnot a requirement!\n")
    app = Layer(workspace, "app", requirements_in=("stacks/app.in",))
    assert "venvstacks: error: stacks/app.in:2: invalid requirement 'not a requirement!'" in lock_failure(app, capsys)


def test_lock_needs_the_targets_python_minor_version(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    app = Layer(workspace, "app", requirements=("rich",), python_version="3.9.0")
    assert lock_failure(app, capsys) == (
        f"venvstacks: error: layer 'app' is locked for Python 3.9.0, but the lock runs on Python {PY}: run it"
        " with a Python 3.9"
    )


def test_lock_needs_a_workspace(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = Layer(workspace, "app").lock_argv()
    del argv[argv.index("--workspace-dir") : argv.index("--workspace-dir") + 2]
    assert cli.main(argv) == 1
    assert "BUILD_WORKSPACE_DIRECTORY is not set; run it with `bazel run //stacks:app.lock`" in capsys.readouterr().err


def test_a_lower_lock_of_another_layer_is_an_error(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = write_fake_lock(workspace, "other", {"numpy": "2.1.2"})
    app = Layer(workspace, "app", requirements=("rich",), lower=(("framework", other),))
    assert lock_failure(app, capsys) == (
        "venvstacks: error: stacks/other.pylock.toml: the lock of layer 'other' was given as the lock of layer"
        " 'framework'"
    )


def test_a_lower_lock_lacking_a_platform_is_an_error(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    framework = write_fake_lock(workspace, "framework", {"numpy": "2.1.2"}, platforms=(LINUX,))
    app = Layer(workspace, "app", requirements=("rich",), lower=(("framework", framework),), platforms=(LINUX, WINDOWS))
    expected = (
        "venvstacks: error: layer 'app' is locked for windows_x86_64, linux_x86_64 but layer 'framework' for"
        " linux_x86_64"
        " (stacks/framework.pylock.toml), without windows_x86_64; re-lock 'framework' for every platform of the"
        " layers above it"
    )
    assert lock_failure(app, capsys) == expected
    assert cli.main(app.check_argv()) == 1
    assert capsys.readouterr().err == expected + "\n"


def test_a_lower_lock_covering_more_platforms_is_read(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A layer narrowed by `platforms` sits on a framework locked for more: its platforms are among those."""
    framework = write_fake_lock(workspace, "framework", {"numpy": "2.1.2"}, platforms=(LINUX, WINDOWS))
    app = Layer(workspace, "app", requirements=("rich",), lower=(("framework", framework),), platforms=(WINDOWS,))
    assert cli.main(app.check_argv()) == 1
    err = capsys.readouterr().err
    assert "stacks/app.pylock.toml does not exist" in err, err
    assert "layer 'framework' for" not in err


def test_errors_are_venvstacks_errors(workspace: Path) -> None:
    request = lock.parse_request(Layer(workspace, "app", requirements_in=("missing.in",)).lock_argv()[1:])
    with pytest.raises(VenvstacksError, match=r"^missing\.in: the requirements file does not exist$"):
        lock.lock(request)


# --- check-lock ----------------------------------------------------------------------------------

STALE = (
    "stacks/app.pylock.toml is stale against its inputs (requirements, Python, platforms, lower layers' locks,"
    " indexes): run `bazel run //stacks:app.lock`\n"
)


def test_check_lock_fresh_stale_and_missing(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    framework = write_fake_lock(workspace, "framework", {"numpy": "2.1.2"}, platforms=(LINUX, WINDOWS))
    (workspace / "stacks" / "app.in").write_text("rich\n")
    app = Layer(
        workspace,
        "app",
        requirements=("requests",),
        requirements_in=("stacks/app.in",),
        lower=(("framework", framework),),
        platforms=(WINDOWS, LINUX),
        python_version="3.12.7",
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
        python_version="3.12.7",
        platforms=[LINUX, WINDOWS],
        lower_locks=[("framework", (workspace / framework).read_bytes())],
        index_url=app.index_url,
        extra_index_urls=[],
        find_links=[],
        floors={"glibc": "2.28"},  # the default; a Linux and Windows lock has no macOS floor
    )
    pylock.write_lock(workspace / app.lock_path, pylock.Lock("app", "application", digest, "3.12.7", [LINUX, WINDOWS]))
    assert cli.main(app.check_argv()) == 0
    assert capsys.readouterr() == ("", "")

    # The same content at another path is the same input; so is another patch release of 3.12
    # (a runtime bump, or the machine's own CPython 3.12) and another order of the platforms.
    (workspace / "elsewhere.in").write_text("rich\n")
    for same in (
        replace(app, requirements_in=("elsewhere.in",)),
        replace(app, python_version="3.12.11"),
        replace(app, platforms=(LINUX, WINDOWS)),
    ):
        assert cli.main(same.check_argv()) == 0

    # Stale: each kind of input.
    (workspace / "stacks" / "app.in").write_text("rich>=13\n")
    assert cli.main(app.check_argv()) == 1
    assert capsys.readouterr().err == STALE
    (workspace / "stacks" / "app.in").write_text("rich\n")
    assert cli.main(app.check_argv()) == 0

    write_fake_lock(workspace, "framework", {"numpy": "2.1.3"}, platforms=(LINUX, WINDOWS))
    assert cli.main(app.check_argv()) == 1
    assert capsys.readouterr().err == STALE
    write_fake_lock(workspace, "framework", {"numpy": "2.1.2"}, platforms=(LINUX, WINDOWS))
    assert cli.main(app.check_argv()) == 0

    assert cli.main(replace(app, python_version="3.13.0").check_argv()) == 1
    assert capsys.readouterr().err == STALE


def test_check_lock_of_an_unreadable_lock(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    app = Layer(workspace, "app", requirements=("rich",))
    (workspace / app.lock_path).write_text("<<<<<<< HEAD\n")
    assert cli.main(app.check_argv()) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1
    assert err.startswith("stacks/app.pylock.toml is not a valid lock (stacks/app.pylock.toml: not a valid TOML file")
    assert err.endswith("run `bazel run //stacks:app.lock`\n")


def test_check_lock_as_the_build_validation_warns_or_fails(
    workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The stale-lock validation action: `--stale warn` prints the line and succeeds, writing the
    report; `--stale fail` (//settings:stale_lock=error) fails as `.lock_test` does, leaving none."""
    app = Layer(workspace, "app", requirements=("rich",))
    report = tmp_path / "out" / "_app.lock_check.txt"
    report.parent.mkdir()
    argv = app.check_argv()
    assert cli.main([*argv, "--stale", "warn", "--report", str(report)]) == 0
    missing = "stacks/app.pylock.toml does not exist: run `bazel run //stacks:app.lock`"
    assert capsys.readouterr().err == f"warning: {missing}\n"
    assert report.read_text() == f"{missing}\n"

    request = lock.parse_check_request(argv[1:]).inputs
    digest = lock._read_inputs(request).hash(request)
    pylock.write_lock(workspace / app.lock_path, pylock.Lock("app", "application", digest, PY, [LINUX]))
    assert cli.main([*argv, "--stale", "fail", "--report", str(report)]) == 0
    assert capsys.readouterr() == ("", "")
    assert report.read_text() == "fresh\n"

    stale = replace(app, requirements=("rich", "requests"))
    report.unlink()
    assert cli.main([*stale.check_argv(), "--stale", "warn", "--report", str(report)]) == 0
    assert capsys.readouterr().err == f"warning: {STALE}"
    assert report.read_text() == STALE
    report.unlink()
    assert cli.main([*stale.check_argv(), "--stale", "fail", "--report", str(report)]) == 1
    assert capsys.readouterr().err == STALE
    assert not report.exists()


def test_inputs_hash_of_lock_matches_check_lock(workspace: Path) -> None:
    """`lock` and `check-lock` hash the same staged inputs the same way."""
    layer = Layer(workspace, "app", requirements=("x",), platforms=(LINUX, WINDOWS))
    request = lock.parse_request(layer.lock_argv()[1:]).inputs
    check = lock.parse_check_request(layer.check_argv()[1:]).inputs
    assert lock._read_inputs(request).hash(request) == lock._read_inputs(check).hash(check)


# --- the real resolver, a local index ------------------------------------------------------------


@pytest.fixture
def index(tmp_path: Path) -> Iterator[tuple[WheelIndex, str]]:
    """A served index: alpha -> beta>=1 -> (2.0 only) gamma; delta -> gamma; eps -> gamma>=0.6.

    tool -> helper on Windows only; native has one wheel for Linux and one for Windows.
    """
    wheels = WheelIndex(tmp_path / "index")
    wheels.add_wheel("alpha", "1.0", ["beta>=1"])
    wheels.add_wheel("beta", "1.0")
    wheels.add_wheel("beta", "2.0", ["gamma"])
    wheels.add_wheel("gamma", "0.5")
    wheels.add_wheel("gamma", "0.6")
    wheels.add_wheel("delta", "1.0", ["gamma"])
    wheels.add_wheel("eps", "1.0", ["gamma>=0.6"])
    wheels.add_sdist("sdist-only", "1.0")
    wheels.add_wheel("windows-only", "1.0", tag=f"{CP}-{CP}-win_amd64")
    wheels.add_wheel("tool", "1.0", ['helper; sys_platform == "win32"'])
    wheels.add_wheel("helper", "1.0")
    wheels.add_wheel("native", "1.0", tag=f"{CP}-{CP}-manylinux_2_17_x86_64")
    wheels.add_wheel("native", "1.0", tag=f"{CP}-{CP}-win_amd64")
    with wheels.serve() as url:
        yield wheels, url


def wheel_of(wheels: WheelIndex, url: str, file_name: str) -> pylock.LockedWheel:
    digest = hashlib.sha256((wheels.files_dir / file_name).read_bytes()).hexdigest()
    return pylock.LockedWheel(file_name, url.removesuffix("/simple") + "/files/" + file_name, digest)


def test_layers_locked_with_one_uv_cache_lock_the_same(workspace: Path, index: tuple[WheelIndex, str]) -> None:
    """`stack.lock` gives its layers one uv cache (`--uv-cache-dir`): it is used, kept, and changes no lock byte."""
    _, url = index
    cache = workspace.parent / "shared-uv-cache"
    uv_argv = (*resolver_argv("uv"), "--uv-cache-dir", str(cache))
    framework = Layer(workspace, "framework", kind="framework", index_url=url, requirements=("alpha",))
    assert cli.main([*framework.lock_argv(), *uv_argv]) == 0
    assert any(cache.iterdir()), "uv wrote its cache where it was told"
    app = Layer(workspace, "app", index_url=url, requirements=("beta",), lower=(("framework", framework.lock_path),))
    assert cli.main([*app.lock_argv(), *uv_argv]) == 0
    assert cache.is_dir(), "the caller's cache outlives the run (the launcher removes it)"
    shared = (framework.text(), app.text())
    for layer in (framework, app):
        (workspace / layer.lock_path).unlink()
        assert cli.main([*layer.lock_argv(), *resolver_argv("uv")]) == 0
    assert (framework.text(), app.text()) == shared


@pytest.mark.usefixtures("resolver")
def test_lock_resolves_a_dependency_graph(
    workspace: Path, index: tuple[WheelIndex, str], capsys: pytest.CaptureFixture[str]
) -> None:
    wheels, url = index
    (workspace / "stacks" / "app.in").write_text("# the app\nalpha  # top\n")
    app = Layer(workspace, "app", index_url=url, requirements=("beta >= 1",), requirements_in=("stacks/app.in",))
    assert cli.main(app.lock_argv()) == 0
    out = capsys.readouterr().out
    assert out == (
        "venvstacks: locked layer 'app' for 1 platform(s): 3 package(s), 0 provided by lower layers"
        " -> stacks/app.pylock.toml\n"
    )

    locked = app.read_lock()
    files = ("alpha-1.0-py3-none-any.whl", "beta-2.0-py3-none-any.whl", "gamma-0.6-py3-none-any.whl")
    assert locked.packages == [
        pylock.LockedPackage(name, version, [wheel_of(wheels, url, file)], {LINUX: file})
        for (name, version), file in zip([("alpha", "1.0"), ("beta", "2.0"), ("gamma", "0.6")], files, strict=True)
    ]
    assert (locked.layer, locked.kind, locked.python_version, locked.platforms) == ("app", "application", PY, [LINUX])
    assert locked.requirements == ["beta >= 1", "alpha"]  # as written
    assert locked.provided == []
    text = app.text()
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
    assert app.text() == text

    # Changing a requirement makes it stale, with the one-line hint.
    capsys.readouterr()
    (workspace / "stacks" / "app.in").write_text("alpha\ndelta\n")
    assert cli.main(app.check_argv()) == 1
    assert capsys.readouterr().err == STALE
    assert cli.main(app.lock_argv()) == 0
    assert [p.name for p in app.read_lock().packages] == ["alpha", "beta", "delta", "gamma"]
    assert cli.main(app.check_argv()) == 0


@pytest.mark.usefixtures("resolver")
def test_an_unchanged_layer_relocks_without_the_index(
    workspace: Path, index: tuple[WheelIndex, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Same inputs: the lock is kept as it is, without asking the index (here: no longer served)."""
    _, url = index
    app = Layer(workspace, "app", index_url=url, requirements=("alpha",))
    assert cli.main(app.lock_argv()) == 0
    text = app.text()
    requirements = workspace / "stacks" / "app.requirements.txt"
    requirements.unlink()
    capsys.readouterr()
    index[0].files_dir.rename(index[0].files_dir.with_name("gone"))  # a resolution would fail now
    assert cli.main(app.lock_argv()) == 0
    assert "is up to date" in capsys.readouterr().out
    assert app.text() == text
    assert requirements.is_file(), "the requirements.txt for people is written again"
    # --upgrade resolves afresh, and so fails without the index's files.
    assert cli.main(app.lock_argv("--upgrade")) == 1


@pytest.mark.usefixtures("resolver")
def test_a_raised_glibc_floor_admits_newer_manylinux_wheels(
    workspace: Path, index: tuple[WheelIndex, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """At PBS' own floor, glibc 2.17, a manylinux_2_28-only package (PyTorch's case) has no wheel; by default it has."""
    wheels, url = index
    wheels.add_wheel("modern", "1.0", tag=f"{CP}-{CP}-manylinux_2_28_x86_64")
    pbs = Layer(workspace, "app", index_url=url, requirements=("modern",), extra=("--glibc-minimum", "2.17"))
    failure = lock_failure(pbs, capsys)
    assert "no wheel of 'modern' for linux_x86_64" in failure
    # The failing platform is tried again at glibc 2.28, where it resolves: the message says what to set.
    assert failure.endswith(
        '; linux_x86_64 resolve(s) with glibc_minimum = "2.28" on venvstacks.runtime (the wheels then need that'
        " glibc or macOS; docs/platforms.md#wheel-floors-the-oldest-glibc-and-macos)"
    )
    app = Layer(workspace, "app", index_url=url, requirements=("modern",))
    assert cli.main(app.lock_argv()) == 0
    assert [w.name for w in app.read_lock().packages[0].wheels] == [f"modern-1.0-{CP}-{CP}-manylinux_2_28_x86_64.whl"]
    assert cli.main(app.check_argv()) == 0
    explicit = Layer(workspace, "app", index_url=url, requirements=("modern",), extra=("--glibc-minimum", "2.28"))
    assert cli.main(explicit.check_argv()) == 0, "the default floor, given or not, is the same input"
    assert cli.main(pbs.check_argv()) == 1, "the floor is one of the lock's inputs"
    other_os = Layer(workspace, "app", index_url=url, requirements=("modern",), extra=("--macos-minimum", "12.0"))
    assert cli.main(other_os.check_argv()) == 0, "a Linux lock does not depend on the macOS floor"
    bad = Layer(workspace, "app", index_url=url, requirements=("modern",), extra=("--glibc-minimum", "2.x"))
    assert "--glibc-minimum: '2.x' is not a version like 2.28" in lock_failure(bad, capsys)


@pytest.mark.usefixtures("resolver")
def test_one_lock_for_two_platforms_with_markers_and_platform_wheels(
    workspace: Path, index: tuple[WheelIndex, str]
) -> None:
    wheels, url = index
    app = Layer(
        workspace,
        "app",
        index_url=url,
        requirements=("tool", "native", 'windows-only; sys_platform == "win32"'),
        platforms=(LINUX, WINDOWS),
    )
    assert cli.main(app.lock_argv()) == 0
    locked = app.read_lock()
    assert locked.platforms == [WINDOWS, LINUX]
    native_linux, native_windows = (
        f"native-1.0-{CP}-{CP}-manylinux_2_17_x86_64.whl",
        f"native-1.0-{CP}-{CP}-win_amd64.whl",
    )
    windows_only = f"windows_only-1.0-{CP}-{CP}-win_amd64.whl"
    assert {p.name: p.platform_wheels for p in locked.packages} == {
        # Dependency with a marker (tool's Requires-Dist), then the requirement's own marker.
        "helper": {WINDOWS: "helper-1.0-py3-none-any.whl"},
        "native": {LINUX: native_linux, WINDOWS: native_windows},
        "tool": {LINUX: "tool-1.0-py3-none-any.whl", WINDOWS: "tool-1.0-py3-none-any.whl"},
        "windows-only": {WINDOWS: windows_only},
    }
    assert locked.packages[1].wheels == [wheel_of(wheels, url, native_linux), wheel_of(wheels, url, native_windows)]
    assert [p.marker for p in locked.packages] == [WINDOWS_MARKER, "", "", WINDOWS_MARKER]
    text = app.text()
    assert f'environments = [\n    "{LINUX_MARKER}",\n    "{WINDOWS_MARKER}",\n]\n' in text
    assert (
        f'[packages.tool.venvstacks.platform-wheels]\n{WINDOWS} = "{native_windows}"\n{LINUX} = "{native_linux}"\n'
    ) in text
    requirements = (workspace / "stacks" / "app.requirements.txt").read_text()
    assert f"helper==1.0 ; {WINDOWS_MARKER} \\\n" in requirements
    assert "native==1.0 \\\n    --hash=sha256:" in requirements
    assert cli.main(app.check_argv()) == 0


@pytest.mark.usefixtures("resolver")
def test_a_package_without_a_wheel_for_one_platform_names_package_platform_and_layer(
    workspace: Path, index: tuple[WheelIndex, str], capsys: pytest.CaptureFixture[str]
) -> None:
    _, url = index
    app = Layer(workspace, "app", index_url=url, requirements=("alpha", "windows-only"), platforms=(LINUX, WINDOWS))
    assert lock_failure(app, capsys) == (
        f"venvstacks: error: layer 'app': no wheel of 'windows-only' for linux_x86_64 (Python {PY}); layers are"
        " installed from wheels only, so a package with only an sdist, or only wheels for other platforms or"
        " Pythons, cannot be locked for it"
    )
    assert not (workspace / app.lock_path).exists()


def test_an_upper_layer_is_constrained_per_platform(
    workspace: Path, index: tuple[WheelIndex, str], capsys: pytest.CaptureFixture[str], resolver: str
) -> None:
    _, url = index
    both = (LINUX, WINDOWS)
    framework = Layer(
        workspace, "framework", kind="framework", index_url=url, requirements=("tool", "gamma<0.6"), platforms=both
    )
    assert cli.main(framework.lock_argv()) == 0
    assert {p.name: sorted(p.platform_wheels) for p in framework.read_lock().packages} == {
        "gamma": [WINDOWS, LINUX],
        "helper": [WINDOWS],
        "tool": [WINDOWS, LINUX],
    }

    # helper: provided by the framework on Windows, installed by the app on Linux only.
    app = Layer(
        workspace,
        "app",
        index_url=url,
        requirements=("helper", "delta"),
        lower=(("framework", framework.lock_path),),
        platforms=both,
    )
    assert cli.main(app.lock_argv()) == 0
    locked = app.read_lock()
    assert [(p.name, p.marker, sorted(p.platform_wheels)) for p in locked.packages] == [
        ("delta", "", [WINDOWS, LINUX]),
        ("helper", LINUX_MARKER, [LINUX]),
    ]
    assert locked.provided == [
        pylock.ProvidedPackage("gamma", "0.5", "framework"),
        pylock.ProvidedPackage("helper", "1.0", "framework"),
    ]
    assert "gamma==0.5: provided by layer 'framework'" in (workspace / "stacks" / "app.requirements.txt").read_text()
    assert capsys.readouterr().out.splitlines()[-1] == (
        "venvstacks: locked layer 'app' for 2 platform(s): 2 package(s), 2 provided by lower layers"
        " -> stacks/app.pylock.toml"
    )

    # A lower layer's new lock makes the upper one stale.
    assert cli.main(app.check_argv()) == 0
    framework.requirements = ("tool", "gamma<=0.6")
    assert cli.main(framework.lock_argv()) == 0
    assert cli.main(app.check_argv()) == 1

    # A transitive conflict with the lower pin fails at resolution, naming both layers.
    framework.requirements = ("tool", "gamma<0.6")
    assert cli.main(framework.lock_argv()) == 0
    capsys.readouterr()
    app.requirements = ("eps",)
    failure = lock_failure(app, capsys)
    assert failure.startswith(
        f"venvstacks: error: layer 'app': the requirements conflict on windows_x86_64 (Python {PY}): "
    )
    assert "layer 'framework' (stacks/framework.pylock.toml) pins gamma==0.5" in failure
    if resolver == "pip":
        assert failure.endswith(
            ": eps 1.0 depends on gamma>=0.6; layer 'framework' (stacks/framework.pylock.toml) pins gamma==0.5"
        )
    else:  # uv's own explanation follows the pin
        assert "eps depend on gamma>=0.6" in failure


def test_conflicting_requirements_of_one_layer(
    workspace: Path, index: tuple[WheelIndex, str], capsys: pytest.CaptureFixture[str], resolver: str
) -> None:
    _, url = index
    app = Layer(workspace, "app", index_url=url, requirements=("eps", "gamma < 0.6"))
    prefix = f"venvstacks: error: layer 'app': the requirements conflict on linux_x86_64 (Python {PY}): "
    expected = {
        "pip": "layer 'app' requires gamma<0.6; eps 1.0 depends on gamma>=0.6",
        "uv": "Because all versions of eps depend on gamma>=0.6 and you require eps, we can conclude that you require"
        " gamma>=0.6. And because you require gamma<0.6, we can conclude that your requirements are unsatisfiable.",
    }
    assert lock_failure(app, capsys) == prefix + expected[resolver]


@pytest.mark.usefixtures("resolver")
def test_a_package_with_only_an_sdist_fails_by_name(
    workspace: Path, index: tuple[WheelIndex, str], capsys: pytest.CaptureFixture[str]
) -> None:
    _, url = index
    app = Layer(workspace, "app", index_url=url, requirements=("alpha", "sdist-only"))
    assert lock_failure(app, capsys).startswith(
        f"venvstacks: error: layer 'app': no wheel of 'sdist-only' for linux_x86_64 (Python {PY}); layers are"
        " installed from wheels only"
    )


def test_no_version_satisfies_the_requirement(
    workspace: Path, index: tuple[WheelIndex, str], capsys: pytest.CaptureFixture[str], resolver: str
) -> None:
    _, url = index
    app = Layer(workspace, "app", index_url=url, requirements=("beta>=3",))
    why = {
        "pip": "versions with a wheel: 1.0, 2.0",
        "uv": "uv: Because only beta<=2.0 is available and you require beta>=3, we can conclude that your"
        " requirements are unsatisfiable.",
    }
    assert lock_failure(app, capsys) == (
        f"venvstacks: error: layer 'app': no version of 'beta' that satisfies 'beta>=3' has a wheel for"
        f" linux_x86_64 (Python {PY}) ({why[resolver]})"
    )


@pytest.mark.usefixtures("resolver")
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


@pytest.mark.usefixtures("resolver")
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
    uv_config = tmp_path / "uv.toml"
    uv_config.write_text('no-index = true\nconstraint-dependencies = ["gamma==0.5"]\n')
    monkeypatch.setenv("UV_CONFIG_FILE", str(uv_config))
    monkeypatch.setenv("UV_NO_INDEX", "1")
    monkeypatch.setenv("UV_CONSTRAINT", "/nonexistent/constraints.txt")
    credentialed = url.replace("http://", "http://alice:s3cret@")
    app = Layer(workspace, "app", index_url=credentialed, requirements=("delta",))
    assert cli.main(app.lock_argv()) == 0
    assert [(p.name, p.version) for p in app.read_lock().packages] == [("delta", "1.0"), ("gamma", "0.6")]
    for written in ("app.pylock.toml", "app.requirements.txt"):
        text = (workspace / "stacks" / written).read_text()
        assert "s3cret" not in text
        assert "alice" not in text
    assert app.read_lock().packages[0].wheels[0] == wheel_of(wheels, url, "delta-1.0-py3-none-any.whl")
    # This process' environment is left as it was.
    assert os.environ["PIP_CONFIG_FILE"] == str(config)
    assert os.environ["PIP_NO_INDEX"] == "1"


@pytest.mark.usefixtures("resolver")
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


@pytest.mark.usefixtures("resolver")
def test_find_links_outside_the_workspace_are_refused(
    workspace: Path, index: tuple[WheelIndex, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, url = index
    outside = WheelIndex(tmp_path / "outside")
    outside.add_wheel("local-tool", "0.1")
    app = Layer(
        workspace, "app", index_url=url, requirements=("local-tool",), extra=("--find-links", str(outside.files_dir))
    )
    assert "outside the workspace; put the find-links directory in the workspace" in lock_failure(app, capsys)


@pytest.mark.usefixtures("resolver")
def test_an_unreachable_index_is_reported(
    workspace: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIP_RETRIES", "0")  # a transport setting: kept while pip runs
    monkeypatch.setenv("UV_HTTP_RETRIES", "0")  # uv's
    app = Layer(workspace, "app", index_url="http://127.0.0.1:9/simple", requirements=("alpha",))
    assert lock_failure(app, capsys).startswith(
        "venvstacks: error: layer 'app': cannot read the package index for 'alpha' (linux_x86_64)"
    )


def test_an_empty_layer_locks_to_nothing(workspace: Path) -> None:
    app = Layer(workspace, "app", platforms=ALL)
    assert cli.main(app.lock_argv()) == 0
    locked = app.read_lock()
    assert (locked.packages, locked.provided, locked.requirements) == ([], [], [])
    assert locked.platforms == list(ALL)
    assert cli.main(app.check_argv()) == 0


# --- the real resolver, PyPI, five platforms -----------------------------------------------------

NUMPY_TAGS = {
    "x86_64-unknown-linux-gnu": r"manylinux\w*_x86_64",
    "aarch64-unknown-linux-gnu": r"manylinux\w*_aarch64",
    "x86_64-apple-darwin": r"macosx_\d+_\d+_(x86_64|universal2)",
    "aarch64-apple-darwin": r"macosx_\d+_\d+_(arm64|universal2)",
    "x86_64-pc-windows-msvc": r"win_amd64",
}


@dataclass(frozen=True)
class PyPIStack:
    workspace: Path
    framework: Layer
    app: Layer


@pytest.fixture(scope="module")
def pypi_stacks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, PyPIStack]:
    """The stack of `lock_pypi_stack`, locked once with each resolver."""
    return {resolver: lock_pypi_stack(tmp_path_factory, resolver) for resolver in RESOLVERS}


@pytest.fixture(params=RESOLVERS)
def pypi_stack(request: pytest.FixtureRequest, pypi_stacks: dict[str, PyPIStack]) -> PyPIStack:
    """The PyPI stack as locked by one resolver (each test runs with both)."""
    return pypi_stacks[request.param]


def lock_pypi_stack(tmp_path_factory: pytest.TempPathFactory, resolver: str) -> PyPIStack:
    """numpy_framework (`numpy>=2,<3`) and app (click, pywin32 on Windows, uvloop elsewhere, numpy): five platforms."""
    root = tmp_path_factory.mktemp(f"pypi-{resolver}") / "ws"
    (root / "stacks").mkdir(parents=True)
    framework = Layer(
        root, "numpy_framework", kind="framework", index_url=lock.DEFAULT_INDEX_URL, requirements=("numpy>=2,<3",)
    )
    framework.platforms = ALL
    assert cli.main(framework.lock_argv(*resolver_argv(resolver))) == 0
    app = Layer(
        root,
        "app",
        index_url=lock.DEFAULT_INDEX_URL,
        requirements=(
            "click==8.1.8",
            'pywin32; sys_platform == "win32"',
            'uvloop==0.23.0; sys_platform != "win32"',
            "numpy",
        ),
        lower=(("numpy_framework", str(root / framework.lock_path)),),
        platforms=ALL,
    )
    assert cli.main(app.lock_argv(*resolver_argv(resolver))) == 0
    return PyPIStack(root, framework, app)


def test_pypi_numpy_framework_has_one_version_and_a_wheel_per_platform(pypi_stack: PyPIStack) -> None:
    locked = pypi_stack.framework.read_lock()
    assert locked.platforms == list(ALL)
    (numpy,) = locked.packages
    assert numpy.name == "numpy" and numpy.version.startswith("2.")
    assert numpy.marker == ""
    assert sorted(numpy.platform_wheels) == list(ALL)
    assert len(numpy.wheels) == 5 == len(set(numpy.platform_wheels.values()))
    for triple, file_name in numpy.platform_wheels.items():
        assert re.search(rf"-{CP}-{CP}-.*{NUMPY_TAGS[triple]}\.whl$", file_name), (triple, file_name)
        wheel = numpy.wheel_for(triple)
        assert wheel is not None and wheel.url.startswith("https://") and wheel.url.endswith("/" + file_name)
        assert re.fullmatch(r"[0-9a-f]{64}", wheel.sha256)
    text = (pypi_stack.workspace / pypi_stack.framework.lock_path).read_text()
    assert f'requires-python = "=={sys.version_info.major}.{sys.version_info.minor}.*"\n' in text
    assert text.count("platform_machine") == 5  # the environments; numpy itself has no marker


def test_pypi_app_windows_only_packages_have_their_marker(pypi_stack: PyPIStack) -> None:
    locked = pypi_stack.app.read_lock()
    by_name = {p.name: p for p in locked.packages}
    assert sorted(by_name) == ["click", "colorama", "pywin32", "uvloop"]
    assert by_name["click"].version == "8.1.8" and by_name["click"].marker == ""
    assert set(by_name["click"].platform_wheels.values()) == {"click-8.1.8-py3-none-any.whl"}
    # click 8.1.8's `Requires-Dist: colorama; platform_system == "Windows"`, and a requirement's own marker.
    for name in ("colorama", "pywin32"):
        assert by_name[name].marker == WINDOWS_MARKER
        assert list(by_name[name].platform_wheels) == [WINDOWS]
    assert re.fullmatch(rf"pywin32-\d+-{CP}-{CP}-win_amd64\.whl", by_name["pywin32"].platform_wheels[WINDOWS])
    # `; sys_platform != "win32"`: the four other platforms, each with its own wheel.
    uvloop = by_name["uvloop"]
    assert sorted(uvloop.platform_wheels) == sorted(set(ALL) - {WINDOWS})
    assert uvloop.marker == pylock.platforms_marker(set(ALL) - {WINDOWS})
    assert len(set(uvloop.platform_wheels.values())) == 4
    numpy = pypi_stack.framework.read_lock().packages[0]
    assert locked.provided == [pylock.ProvidedPackage("numpy", numpy.version, "numpy_framework")]
    text = (pypi_stack.workspace / pypi_stack.app.lock_path).read_text()
    assert (
        '[[packages]]\nname = "colorama"\nversion = "0.4.6"\n'
        f'marker = "{WINDOWS_MARKER}"\n'
        'wheels = [\n    { name = "colorama-0.4.6-py2.py3-none-any.whl", url = "https://'
    ) in text
    assert (f'[packages.tool.venvstacks.platform-wheels]\n{WINDOWS} = "colorama-0.4.6-py2.py3-none-any.whl"\n') in text


def test_pypi_locks_are_fresh_and_stale(pypi_stack: PyPIStack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(pypi_stack.workspace)  # check-lock reads the staged paths, relative as under Bazel

    for layer in (pypi_stack.framework, pypi_stack.app):
        assert cli.main(layer.check_argv()) == 0
    assert cli.main(replace(pypi_stack.app, requirements=("click==8.1.8",)).check_argv()) == 1
    assert cli.main(replace(pypi_stack.app, platforms=ALL[:4]).check_argv()) == 1


def test_pypi_both_resolvers_write_the_same_locks(pypi_stacks: dict[str, PyPIStack]) -> None:
    """pip and uv lock the same versions and pick the same wheel per platform: the files are byte for byte equal."""
    pip, uv_ = pypi_stacks["pip"], pypi_stacks["uv"]
    for pip_layer, uv_layer in ((pip.framework, uv_.framework), (pip.app, uv_.app)):
        assert uv_layer.text() == pip_layer.text(), pip_layer.name
        uv_requirements = (uv_.workspace / "stacks" / f"{uv_layer.name}.requirements.txt").read_text()
        assert uv_requirements == (pip.workspace / "stacks" / f"{pip_layer.name}.requirements.txt").read_text()


# --- uv itself: missing, failing, limits ---------------------------------------------------------


def test_a_missing_uv_says_what_to_do(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    app = Layer(workspace, "app", requirements=("alpha",))
    assert cli.main([*app.lock_argv(), "--resolver", "uv"]) == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        "venvstacks: error: layer 'app': the uv resolver needs the uv binary (`--uv PATH`); the `.lock` targets"
        " pass the one pinned in rules_venvstacks, or lock with pip (--@rules_venvstacks//settings:resolver=pip)"
    )
    missing = workspace / "no-such-uv"
    assert cli.main([*app.lock_argv(), "--resolver", "uv", "--uv", str(missing)]) == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"venvstacks: error: layer 'app': the uv binary {missing} does not exist or is not executable; lock with"
        " pip instead (--@rules_venvstacks//settings:resolver=pip)"
    )


def test_a_failing_uv_is_reported_with_its_output(
    workspace: Path, index: tuple[WheelIndex, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "uv"
    broken.write_text("#!/bin/sh\necho 'error: this uv is broken' >&2\nexit 2\n")
    broken.chmod(0o755)
    app = Layer(workspace, "app", index_url=index[1], requirements=("alpha",))
    assert cli.main([*app.lock_argv(), "--resolver", "uv", "--uv", str(broken)]) == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"venvstacks: error: layer 'app': uv failed to resolve for linux_x86_64 (Python {PY}): this uv is broken"
    )
    assert not (workspace / app.lock_path).exists()


def test_uv_refuses_a_glibc_floor_it_cannot_name(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    app = Layer(workspace, "app", requirements=("alpha",), extra=("--glibc-minimum", "2.24"))
    assert cli.main([*app.lock_argv(), *resolver_argv("uv")]) == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        "venvstacks: error: layer 'app': uv cannot lock for glibc 2.24 (linux_x86_64); it knows the floors 2.17,"
        " 2.28, 2.31, 2.32, 2.33, 2.34, 2.35, 2.36, 2.37, 2.38, 2.39, 2.40: choose one of them, or lock with pip"
        " (--@rules_venvstacks//settings:resolver=pip)"
    )
