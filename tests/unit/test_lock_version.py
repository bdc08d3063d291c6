"""tools/venvstacks_tool/lock/lock_version.py: a versioned layer's lock version, and `lock`/`check-lock` using it.

The rules as pure functions first, then the real `lock` (pip's resolver, an index served on
127.0.0.1 by tests/support/wheel_index.py): the first lock is version 1, a relock that changes
nothing keeps it (with or without `--upgrade`), a changed requirement bumps it, a newer release
found by `--upgrade` bumps it, and `check-lock` holds the lock to the layer's `versioned`; a
versioned application's changed launch module bumps it too (venvstacks' `app_launch_module_hash`)
and makes the lock stale, while an unversioned application's lock records nothing of it.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from venvstacks_testing.wheel_index import WheelIndex
from venvstacks_tool.core import cli
from venvstacks_tool.core.launch_module import SupportModule, module_hash
from venvstacks_tool.lock import pylock
from venvstacks_tool.lock.lock_version import FIRST_LOCK_VERSION, next_lock_version, versioning_problem

PY = f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"
LINUX = "x86_64-unknown-linux-gnu"
LOCK_PATH = "stacks/pylock.framework.toml"


def a_lock(requirements: list[str], lock_version: int | None = None) -> pylock.Lock:
    return pylock.Lock(
        layer="framework",
        kind="framework",
        inputs_hash="sha256:" + "0" * 64,
        python_version=PY,
        platforms=[LINUX],
        requirements=requirements,
        lock_version=lock_version,
    )


# --- the rules -----------------------------------------------------------------------------------


def test_an_unversioned_layer_has_no_lock_version() -> None:
    assert next_lock_version(None, a_lock(["a"]), versioned=False) is None
    assert next_lock_version(a_lock(["a"], 4), a_lock(["b"]), versioned=False) is None


def test_the_first_lock_and_the_first_versioned_lock_are_version_1() -> None:
    assert next_lock_version(None, a_lock(["a"]), versioned=True) == FIRST_LOCK_VERSION == 1
    assert next_lock_version(a_lock(["a"]), a_lock(["b"]), versioned=True) == 1, "the old lock had no version"


def test_a_changed_lock_bumps_and_an_unchanged_one_keeps_its_version() -> None:
    previous = a_lock(["a"], 4)
    assert next_lock_version(previous, a_lock(["a"]), versioned=True) == 4
    assert next_lock_version(previous, a_lock(["a"], 9), versioned=True) == 4, "the new lock's own version is ignored"
    assert next_lock_version(previous, a_lock(["a", "b"]), versioned=True) == 5
    other_hash = dataclasses.replace(a_lock(["a"]), inputs_hash="sha256:" + "1" * 64)
    assert next_lock_version(previous, other_hash, versioned=True) == 5, "any change of the lock counts"


def test_a_changed_launch_module_bumps_even_when_the_resolution_is_the_same() -> None:
    previous = dataclasses.replace(a_lock(["a"], 4), launch_module_hash="sha256:" + "a" * 64)
    same = dataclasses.replace(a_lock(["a"]), launch_module_hash="sha256:" + "a" * 64)
    changed = dataclasses.replace(a_lock(["a"]), launch_module_hash="sha256/" + "b" * 64)
    assert next_lock_version(previous, same, versioned=True) == 4
    assert next_lock_version(previous, changed, versioned=True) == 5
    recorded_before = a_lock(["a"], 4)  # written before locks recorded the launch module's hash
    assert next_lock_version(recorded_before, same, versioned=True) == 4, "recorded for the first time: kept"


def test_versioning_problem_says_which_way_the_lock_does_not_fit() -> None:
    assert versioning_problem(a_lock(["a"], 2), versioned=True) is None
    assert versioning_problem(a_lock(["a"]), versioned=False) is None
    assert "has no lock version, but the layer is versioned" in str(versioning_problem(a_lock(["a"]), versioned=True))
    assert versioning_problem(a_lock(["a"], 2), versioned=False) == "has lock version 2, but the layer is not versioned"


def test_the_lock_version_round_trips_and_a_bad_one_is_refused() -> None:
    text = pylock.render_lock(a_lock(["a"], 7))
    assert "\nlock-version = 7\n" in text
    assert pylock.parse_lock(text, "x.toml").lock_version == 7
    assert "lock-version = " not in pylock.render_lock(a_lock(["a"])).partition("[tool.venvstacks]")[2]
    for bad in ("0", '"7"', "-1", "1.5"):
        with pytest.raises(Exception, match="'lock-version' must be a positive integer"):
            pylock.parse_lock(text.replace("lock-version = 7", f"lock-version = {bad}"), "x.toml")


def test_the_launch_module_hash_round_trips_and_a_bad_one_is_refused() -> None:
    digest = "sha256/" + "c" * 64
    text = pylock.render_lock(dataclasses.replace(a_lock(["a"], 2), launch_module_hash=digest))
    assert f'\nlock-version = 2\nlaunch-module-hash = "{digest}"\n' in text
    assert pylock.parse_lock(text, "x.toml").launch_module_hash == digest
    assert "launch-module-hash" not in pylock.render_lock(a_lock(["a"], 2))
    for bad in ('"sha256:abc"', '"md5:' + "c" * 64 + '"', "7"):
        with pytest.raises(Exception, match="'launch-module-hash' must be"):
            pylock.parse_lock(text.replace(f'"{digest}"', bad), "x.toml")


# --- `lock` and `check-lock` -----------------------------------------------------------------------


@pytest.fixture
def index(tmp_path: Path) -> Iterator[tuple[WheelIndex, str]]:
    wheels = WheelIndex(tmp_path / "index")
    wheels.add_wheel("alpha", "1.0")
    wheels.add_wheel("beta", "1.0")
    with wheels.serve() as url:
        yield wheels, url


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """The source tree the lock is written into (`--workspace-dir`)."""
    (tmp_path / "ws" / "stacks").mkdir(parents=True)
    return tmp_path / "ws"


def shared(url: str, requirements: list[str], versioned: bool) -> list[str]:
    argv = ["--layer-name", "framework", "--layer-kind", "framework", "--python-version", PY]
    argv += ["--index-url", url, "--platform", LINUX, "--lock-target", "//stacks:framework.lock"]
    for requirement in requirements:
        argv += ["--requirement", requirement]
    return argv + (["--versioned"] if versioned else [])


def lock(workspace: Path, url: str, requirements: list[str], *more: str, versioned: bool = True) -> int | None:
    """Lock the framework; return the lock version written."""
    argv = ["lock", *shared(url, requirements, versioned), "--workspace-dir", str(workspace)]
    assert cli.main([*argv, "--output-lock", LOCK_PATH, *more]) == 0
    return pylock.read_lock(workspace / LOCK_PATH).lock_version


def check(workspace: Path, url: str, requirements: list[str], versioned: bool = True) -> int:
    return cli.main(["check-lock", *shared(url, requirements, versioned), "--lock", str(workspace / LOCK_PATH)])


def test_relocking_bumps_the_version_only_when_the_lock_changes(
    workspace: Path, index: tuple[WheelIndex, str], capsys: pytest.CaptureFixture[str]
) -> None:
    wheels, url = index
    assert lock(workspace, url, ["alpha"]) == 1
    assert "lock version 1 ->" in capsys.readouterr().out
    text = (workspace / LOCK_PATH).read_text()
    assert lock(workspace, url, ["alpha"]) == 1, "same inputs: kept"
    assert lock(workspace, url, ["alpha"], "--upgrade") == 1, "--upgrade finding nothing new: kept"
    assert (workspace / LOCK_PATH).read_text() == text, "byte for byte"
    assert check(workspace, url, ["alpha"]) == 0

    assert check(workspace, url, ["alpha", "beta"]) == 1, "a changed requirement makes the lock stale"
    assert lock(workspace, url, ["alpha", "beta"]) == 2
    assert lock(workspace, url, ["alpha", "beta"]) == 2
    wheels.add_wheel("alpha", "1.1")
    assert lock(workspace, url, ["alpha", "beta"]) == 2, "without --upgrade the current pins are kept"
    assert lock(workspace, url, ["alpha", "beta"], "--upgrade") == 3, "a newer release found by --upgrade"
    assert [(p.name, p.version) for p in pylock.read_lock(workspace / LOCK_PATH).packages] == [
        ("alpha", "1.1"),
        ("beta", "1.0"),
    ]
    assert check(workspace, url, ["alpha", "beta"]) == 0


def test_check_lock_holds_the_lock_to_versioned_and_lock_writes_it(
    workspace: Path, index: tuple[WheelIndex, str], capsys: pytest.CaptureFixture[str]
) -> None:
    _, url = index
    assert lock(workspace, url, ["alpha"], versioned=False) is None
    assert check(workspace, url, ["alpha"], versioned=False) == 0
    capsys.readouterr()
    assert check(workspace, url, ["alpha"], versioned=True) == 1
    assert capsys.readouterr().err == (
        f"{workspace / LOCK_PATH} has no lock version, but the layer is versioned (`versioned = True`; locked"
        " before it was): run `bazel run //stacks:framework.lock`\n"
    )
    # The inputs are unchanged: relocking writes the version without resolving again.
    assert lock(workspace, url, ["alpha"]) == 1
    assert "is up to date" in capsys.readouterr().out
    assert check(workspace, url, ["alpha"], versioned=True) == 0
    assert check(workspace, url, ["alpha"], versioned=False) == 1
    assert "has lock version 1, but the layer is not versioned" in capsys.readouterr().err
    assert lock(workspace, url, ["alpha"], versioned=False) is None


def app_argv(url: str, main: Path, versioned: bool, support: dict[str, Path] | None = None) -> list[str]:
    """An application layer whose launch module `app` is the file `main`, with `support` files beside it.

    `support` maps destinations below site-packages to files, as `NAME.app_modules` passes the
    application's own files.
    """
    argv = ["--layer-name", "app", "--layer-kind", "application", "--python-version", PY, "--index-url", url]
    argv += ["--platform", LINUX, "--lock-target", "//stacks:app.lock", "--requirement", "alpha"]
    argv += ["--launch-module", "app", "--app-module-file", f"app.py={main}"]
    argv += [arg for dest, path in (support or {}).items() for arg in ("--app-module-file", f"{dest}={path}")]
    return argv + (["--versioned"] if versioned else [])


@dataclasses.dataclass
class AppLock:
    """`lock` and `check-lock` of the application of `app_argv` in `workspace`, its lock at `path`."""

    workspace: Path
    url: str
    main: Path
    support: dict[str, Path] = dataclasses.field(default_factory=dict)

    @property
    def path(self) -> Path:
        return self.workspace / "stacks/pylock.app.toml"

    def relock(self, versioned: bool = True) -> pylock.Lock:
        argv = ["lock", *app_argv(self.url, self.main, versioned, self.support), "--workspace-dir", str(self.workspace)]
        assert cli.main([*argv, "--output-lock", "stacks/pylock.app.toml"]) == 0
        return pylock.read_lock(self.path)

    def check(self) -> int:
        return cli.main(["check-lock", *app_argv(self.url, self.main, True, self.support), "--lock", str(self.path)])

    def locked_fresh(self, capsys: pytest.CaptureFixture[str]) -> pylock.Lock:
        """The first lock, once a second lock kept it and it checked fresh."""
        first = self.relock()
        assert self.relock() == first, "nothing changed: version kept"
        assert self.check() == 0
        capsys.readouterr()
        return first

    def stale_then_relocked(self, capsys: pytest.CaptureFixture[str], problem: str) -> pylock.Lock:
        """The lock checked stale for `problem` (the words after 'is stale: '), then relocked."""
        assert self.check() == 1
        assert capsys.readouterr().err == f"{self.path} is stale: {problem}: run `bazel run //stacks:app.lock`\n"
        return self.relock()


@pytest.fixture
def app(workspace: Path, tmp_path: Path, index: tuple[WheelIndex, str]) -> AppLock:
    """The application of `app_argv`, its launch module `tmp_path/app.py`, on the test index."""
    main = tmp_path / "app.py"
    main.write_text("print('hello')\n")
    return AppLock(workspace, index[1], main)


def test_a_versioned_application_follows_its_launch_module(app: AppLock, capsys: pytest.CaptureFixture[str]) -> None:
    main, relock, check_app, lock_path = app.main, app.relock, app.check, app.path

    first = app.locked_fresh(capsys)
    assert (first.lock_version, first.launch_module_hash) == (1, module_hash("app", {"app.py": main}))

    main.write_text("print('hello, world')\n")
    second = app.stale_then_relocked(
        capsys,
        "the launch module 'app' of versioned application layer 'app' changed since it was locked"
        " (its lock version follows it)",
    )
    assert (second.lock_version, second.launch_module_hash) == (2, module_hash("app", {"app.py": main}))
    assert second.packages == first.packages, "the same resolution"
    assert relock().lock_version == 2
    assert check_app() == 0

    # A lock written before locks recorded the hash: stale, and relocked without a bump.
    text = lock_path.read_text()
    lock_path.write_text("".join(line for line in text.splitlines(True) if not line.startswith("launch-module-hash")))
    capsys.readouterr()
    assert check_app() == 1
    assert (
        "launch module 'app' of versioned application layer 'app' is not recorded in it yet" in capsys.readouterr().err
    )
    assert relock() == second

    # Unversioned, the launch module leaves no trace: the lock an application without it would get.
    unversioned = relock(versioned=False)
    assert (unversioned.lock_version, unversioned.launch_module_hash) == (None, None)
    assert "launch-module" not in lock_path.read_text()


def test_a_versioned_application_follows_its_support_modules(app: AppLock, capsys: pytest.CaptureFixture[str]) -> None:
    """A changed, added or removed support module alone bumps N; a lock that predates them relocks without a bump."""
    helpers = app.main.parent / "helpers.py"
    helpers.write_text("X = 1\n")
    (app.main.parent / "tools").mkdir()
    tools = app.main.parent / "tools" / "__init__.py"
    tools.write_text("")
    support = app.support
    support["helpers.py"] = helpers
    relock, check_app, lock_path = app.relock, app.check, app.path

    first = app.locked_fresh(capsys)
    assert first.lock_version == 1
    assert first.support_modules == (SupportModule("helpers", module_hash("helpers", support) or ""),)
    assert f'support-modules = [\n    {{ name = "helpers", hash = "{first.support_modules[0].hash}" }},\n]\n' in (
        lock_path.read_text()
    )

    helpers.write_text("X = 2\n")
    second = app.stale_then_relocked(
        capsys,
        "the support module(s) 'helpers' changed since it was locked, in versioned application layer 'app'"
        " (its lock version follows them)",
    )
    assert (second.lock_version, second.launch_module_hash) == (2, first.launch_module_hash), (
        "the launch module is the same"
    )
    assert second.packages == first.packages, "the same resolution"
    assert check_app() == 0

    support["tools/__init__.py"] = tools  # a package added: a new support module
    assert check_app() == 1
    assert "the support module(s) 'tools' changed" in capsys.readouterr().err
    third = relock()
    assert [m.name for m in third.support_modules or ()] == ["helpers", "tools"]
    assert third.lock_version == 3
    del support["tools/__init__.py"], support["helpers.py"]  # none left: recorded as none, and a bump
    fourth = relock()
    assert (fourth.support_modules, fourth.lock_version) == ((), 4)
    assert "support-modules = [\n]\n" in lock_path.read_text()

    # A lock written before locks recorded support modules: stale, and relocked without a bump.
    support["helpers.py"] = helpers
    fifth = relock()
    text = lock_path.read_text()
    start = text.index("support-modules = [")
    lock_path.write_text(text[:start] + text[text.index("]\n", start) + 2 :])
    assert pylock.read_lock(lock_path).support_modules is None
    capsys.readouterr()
    assert check_app() == 1
    assert "the support modules are not recorded in it yet" in capsys.readouterr().err
    assert relock() == fifth

    # Unversioned: no trace in the lock.
    unversioned = relock(versioned=False)
    assert unversioned.support_modules is None
    assert "support-modules" not in lock_path.read_text()


def test_support_modules_in_a_lock_are_checked() -> None:
    """A hand-edited entry fails naming the lock and what is wrong."""
    digest = "sha256:" + "c" * 64
    lock = dataclasses.replace(
        a_lock(["a"], 2), support_modules=(SupportModule("b", digest), SupportModule("a", digest))
    )
    text = pylock.render_lock(lock)
    assert '\nsupport-modules = [\n    { name = "a", hash = "' in text, "sorted by name"
    assert pylock.parse_lock(text, "x.toml").support_modules == tuple(sorted(lock.support_modules or ()))
    with pytest.raises(Exception, match=r"support-modules\[0\]: 'hash' must be 'sha256:' or 'sha256/'"):
        pylock.parse_lock(text.replace(digest, "sha256:abc", 1), "x.toml")
    with pytest.raises(Exception, match=r"x.toml:\d+: unknown key 'size' in a support-modules entry"):
        pylock.parse_lock(text.replace(" }", ', size = "1" }', 1), "x.toml")
