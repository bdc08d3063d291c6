"""Locks, stacked layers, deployment and tests through a real Bazel, against a local PEP 503 index.

One workspace for the module: a runtime (the host CPython in PBS layout), a framework layer and
an application layer on it, resolved against wheels the test builds and serves on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from venvstacks_testing.stack_workspace import ExtraLayers, Stack, make_stack, serve_stack_sources
from venvstacks_testing.wheel_index import build_wheel
from venvstacks_tool.core.launch_module import module_hash

pytestmark = pytest.mark.integration

# A layer with a launch module given as a file, a wheel built by another rule, and find-links.
HELLO = ExtraLayers(
    build="""
# A wheel made by another rule of the build, installed into the app layer.
genrule(
    name = "localpkg_wheel",
    srcs = ["wheels/localpkg-1.0-py3-none-any.whl.in"],
    outs = ["localpkg-1.0-py3-none-any.whl"],
    cmd = "cp $< $@",
)

application_layer(
    name = "hello",
    srcs = [":localpkg_wheel"],
    find_links = ["findlinks"],
    frameworks = [":framework"],
    index_url = "{index_url}",
    requirements = ["localtool"],
    launch_module = "hello.py",
    runtime = ":cpython",
)
""",
    locks=("hello",),
    stack_layers=(":app", ":hello"),
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A locked workspace: framework (fwpkg, shared 1.0), app (apppkg, which needs shared), hello."""
    with serve_stack_sources(tmp_path_factory.mktemp("sources")) as sources:
        result = make_stack(tmp_path_factory.mktemp("stack_ws"), sources, extra=HELLO)
        workspace = result.workspace
        workspace.write(
            "hello.py", 'import fwpkg, localpkg, localtool\nprint("hello from", fwpkg.__name__, localpkg.__name__)\n'
        )
        build_wheel(workspace.root / "findlinks", "localtool", "1.0")
        wheel = build_wheel(workspace.root / "wheels", "localpkg", "1.0")
        wheel.rename(wheel.with_name(wheel.name + ".in"))
        result.lock()
        try:
            yield result
        finally:
            workspace.shutdown()


def _lock_packages(path: Path) -> dict[str, str]:
    import tomllib

    lock = tomllib.loads(path.read_text())
    return {package["name"]: package["version"] for package in lock.get("packages", [])}


@pytest.mark.parametrize("resolver", ["pip", "uv"])
def test_the_stack_locks_every_layer_in_one_command(stack: Stack, resolver: str) -> None:
    """`bazel run //:stack.lock`: lower layers first, unchanged ones kept, missing ones written.

    With either resolver (//settings:resolver), to the same files: the fixture's locks are pip's.
    """
    root = stack.workspace.root
    setting = f"--@rules_venvstacks//settings:resolver={resolver}"
    saved = {path: path.read_text() for path in sorted(root.glob("pylock.*.toml"))}
    assert {path.name for path in saved} == {"pylock.framework.toml", "pylock.app.toml", "pylock.hello.toml"}
    kept = stack.workspace.bazel("run", setting, "//:stack.lock")
    for layer in ("framework", "app", "hello"):
        assert f"layer '{layer}' is up to date" in kept.stdout, kept.stdout
    for path in saved:
        path.unlink()
    written = stack.workspace.bazel("run", setting, "//:stack.lock")
    order = [line.split("'")[1] for line in written.stdout.splitlines() if line.startswith("venvstacks: locked layer")]
    assert order[0] == "framework" and sorted(order) == ["app", "framework", "hello"], written.stdout
    assert written.stderr.count(f"with {resolver}...") == 3, written.stderr
    # One tool process locks the stack from the plan beside the script; both applications read
    # only the framework's lock, so both start once it is written (lock/lock_stack.py).
    script = stack.workspace.output("stack.lock.sh").read_text()
    assert script.count(" lock-stack '--plan' 'stack.lock.plan.json'") == 1, script
    # ... run from the byte-compiled tool tree (lock/tool_tree.py), not compiled at each start.
    assert "-I 'stack.lock.tool/bin/venvstacks_tool.py' lock-stack" in script, script
    plan = json.loads(stack.workspace.output("stack.lock.plan.json").read_text())
    lower = {layer["layer"]: [name for name, _ in layer["lower_locks"]] for layer in plan["layers"]}
    assert lower == {"framework": [], "app": ["framework"], "hello": ["framework"]}, plan
    # uv is the pinned wheel's binary, from its own repository (fetched by Bazel's downloader).
    uv = [a for layer in plan["layers"] for a in layer["arguments"] if "venvstacks_uv_linux_x86_64/unpacked/uv-" in a]
    assert len(uv) == (3 if resolver == "uv" else 0), plan
    for path, text in saved.items():
        assert path.read_text() == text, f"{path.name}: the same inputs resolve to the same lock"


def test_locks_pin_wheels_and_exclude_what_the_framework_provides(stack: Stack) -> None:
    root = stack.workspace.root
    assert _lock_packages(root / "pylock.framework.toml") == {"fwpkg": "1.0", "shared": "1.0"}
    assert _lock_packages(root / "pylock.app.toml") == {"apppkg": "1.0"}
    import tomllib

    app_lock = tomllib.loads((root / "pylock.app.toml").read_text())
    assert {"name": "shared", "version": "1.0", "layer": "framework"} in app_lock["tool"]["venvstacks"]["provided"]
    wheel = app_lock["packages"][0]["wheels"][0]
    assert wheel["url"].startswith(stack.index_url.removesuffix("/simple"))
    assert wheel["hashes"]["sha256"] == stack.index.sha256(stack.index.files_dir / wheel["name"])
    assert (root / "app.requirements.txt").exists()


def test_bazel_test_all_runs_lock_tests_and_the_deployed_app(stack: Stack) -> None:
    result = stack.workspace.bazel("test", "//:all", check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    for target in ("//:framework.lock_test", "//:app.lock_test", "//:app.test"):
        assert f"{target}" in output


def test_deployed_app_imports_framework_packages_from_the_framework_layer(stack: Stack, tmp_path: Path) -> None:
    dest = tmp_path / "deployed at another path"
    stack.workspace.bazel("run", "//:app.deploy", "--", str(dest))
    output = subprocess.run(
        [dest / "app" / "bin" / "python", "-m", "app"], check=True, capture_output=True, text=True
    ).stdout
    files = json.loads(output.strip().splitlines()[-1])
    assert files["shared"].startswith(str(dest / "framework")), files
    assert files["fwpkg"].startswith(str(dest / "framework")), files
    assert files["apppkg"].startswith(str(dest / "app")), files
    assert not list((dest / "app" / "lib").glob("python3*/site-packages/shared")), "installed twice"
    stack.workspace.bazel("build", "//:stack")
    metadata = json.loads(stack.workspace.output("stack.json").read_text())
    assert sorted(metadata["layers"]) == ["app", "cpython", "framework", "hello"]


def test_deployed_framework_site_packages_is_a_site_directory_for_the_app(stack: Stack, tmp_path: Path) -> None:
    """Bazel-built layers: a framework's `.pth` files run in the app's interpreter (not with -S)."""
    dest = tmp_path / "dest"
    stack.workspace.bazel("run", "//:app.deploy", "--", str(dest))
    # Every layer has the protocol's postinstall.py, the runtime's included (as venvstacks ships it).
    assert sorted(p.parent.name for p in dest.glob("*/postinstall.py")) == ["app", "cpython", "framework"]
    (framework_site,) = dest.glob("framework/lib/python3*/site-packages")
    (framework_site / "zz_hook.pth").write_text("import sys; sys.framework_hook_ran = True\n")
    code = "import sys; print(getattr(sys, 'framework_hook_ran', False))"
    python = dest / "app" / "bin" / "python"
    run = [
        subprocess.run([python, *flags, "-c", code], check=True, capture_output=True, text=True).stdout
        for flags in ([], ["-I"], ["-S"])
    ]
    assert run == ["True\n", "True\n", "False\n"]
    # The stack's files name no deploy path: the archive's bytes, relative to the layer.
    (app_site,) = dest.glob("app/lib/python3*/site-packages")
    assert str(dest) not in (app_site / "_venvstacks_stack.py").read_text()


def test_launch_module_file_a_wheel_built_by_another_rule_and_find_links(stack: Stack, tmp_path: Path) -> None:
    stack.workspace.bazel("run", "//:hello.deploy", "--", str(tmp_path))
    result = subprocess.run([tmp_path / "hello" / "bin" / "python", "-m", "hello"], capture_output=True, text=True)
    assert result.stdout == "hello from fwpkg localpkg\n", result.stderr
    # The find-links wheel is locked by its path beside the lock, not this machine's file:// URL.
    assert (
        'path = "findlinks/localtool-1.0-py3-none-any.whl"' in (stack.workspace.root / "pylock.hello.toml").read_text()
    )
    config = json.loads((tmp_path / "hello/share/venv/metadata/venvstacks_layer.json").read_text())
    assert config["launch_module"] == "hello"


def test_stale_lock_fails_its_test_with_the_command_to_run(stack: Stack) -> None:
    stack.set_app_requirements(["apppkg", "shared"])
    try:
        result = stack.workspace.bazel("test", "//:app.lock_test", "--test_output=errors", check=False)
        assert result.returncode != 0
        assert "bazel run //:app.lock" in result.stdout + result.stderr
    finally:
        stack.set_app_requirements(["apppkg"])


STALE_APP_LOCK = (
    "pylock.app.toml is stale against its inputs (requirements, Python, platforms, lower layers' locks,"
    " indexes): run `bazel run //:app.lock`"
)


def _layer_action_keys(stack: Stack) -> list[str]:
    """The action keys of the app layer's archive and metadata actions (aquery)."""
    query = 'mnemonic("VenvstacksLayer|VenvstacksLayerMetadata", //:app)'
    result = stack.workspace.bazel("aquery", query, "--output=jsonproto")
    actions = json.loads(result.stdout)["actions"]
    assert len(actions) == 2, actions
    return sorted(action["actionKey"] for action in actions)


def test_stale_lock_warns_at_build_time_and_fails_with_the_setting(stack: Stack) -> None:
    """`bazel build` says what `.lock_test` would: a warning naming the `.lock` command, by default;
    a failed build with `--@rules_venvstacks//settings:stale_lock=error`. The layer's own actions
    keep their keys: the check is a validation action beside them."""
    setting = "--@rules_venvstacks//settings:stale_lock"
    fresh = stack.workspace.bazel("build", "//:app")
    assert "is stale against" not in fresh.stderr, fresh.stderr[-3000:]
    keys = _layer_action_keys(stack)
    stack.set_app_requirements(["apppkg", "shared"])
    try:
        warned = stack.workspace.bazel("build", "//:app")
        assert f"warning: {STALE_APP_LOCK}" in warned.stderr.splitlines(), warned.stderr[-3000:]
        assert _layer_action_keys(stack) == keys
        failed = stack.workspace.bazel("build", f"{setting}=error", "//:app", check=False)
        assert failed.returncode != 0
        assert STALE_APP_LOCK in failed.stderr.splitlines(), failed.stderr[-3000:]
        quiet = stack.workspace.bazel("build", f"{setting}=off", "//:app")
        assert "is stale against" not in quiet.stderr, quiet.stderr[-3000:]
    finally:
        stack.set_app_requirements(["apppkg"])
    stack.workspace.bazel("build", f"{setting}=error", "//:app")


def test_requirement_conflicting_with_a_lower_layer_names_both_layers(stack: Stack) -> None:
    stack.set_app_requirements(["apppkg", "shared>=2"])
    try:
        result = stack.workspace.bazel("run", "//:app.lock", check=False)
        assert result.returncode != 0
        output = result.stdout + result.stderr
        assert "'app'" in output and "'framework'" in output and "shared" in output, output[-4000:]
    finally:
        stack.set_app_requirements(["apppkg"])


def test_package_without_a_wheel_fails_at_lock_time(stack: Stack) -> None:
    stack.set_app_requirements(["apppkg", "sdistonly"])
    try:
        result = stack.workspace.bazel("run", "//:app.lock", check=False)
        assert result.returncode != 0
        assert "sdistonly" in result.stdout + result.stderr
    finally:
        stack.set_app_requirements(["apppkg"])


def _fetched_wheels(output_base: Path) -> list[str]:
    """The wheel repositories (`<hub>__<package>_<sha256 prefix>`) fetched into `output_base`."""
    return sorted(path.name for path in (output_base / "external").iterdir() if "venvstacks_wheels__" in path.name)


def test_locking_fetches_no_wheel(stack: Stack, tmp_path: Path) -> None:
    """The lock targets reach the framework layers as written, in the lock-only configuration,
    where a layer selects away its wheels: on a fresh output base, locking and analysing the lock
    targets fetch no wheel repository, while analysing the layer fetches them (the control)."""
    output_base = tmp_path / "ob"
    startup = (f"--output_base={output_base}",)
    flags = ("--experimental_convenience_symlinks=ignore",)
    try:
        locked = stack.workspace.bazel("run", *flags, "//:app.lock", startup=startup)
        assert "layer 'app' is up to date" in locked.stdout, locked.stdout
        stack.workspace.bazel("build", *flags, "--nobuild", "//:app.lock_test", "//:stack.lock", startup=startup)
        assert _fetched_wheels(output_base) == []
        stack.workspace.bazel("build", *flags, "--nobuild", "//:app", startup=startup)
        fetched = _fetched_wheels(output_base)
        assert any("apppkg" in name for name in fetched) and any("fwpkg" in name for name in fetched), fetched
    finally:
        stack.workspace.bazel("shutdown", check=False, startup=startup)


def test_wheel_that_does_not_match_its_lock_hash_fails_naming_wheel_and_lock(stack: Stack) -> None:
    lock = stack.workspace.root / "pylock.app.toml"
    original = lock.read_text()
    wheel = stack.index.files_dir / "apppkg-1.0-py3-none-any.whl"
    real = stack.index.sha256(wheel)
    lock.write_text(original.replace(real, "f" * 64))
    try:
        result = stack.workspace.bazel("build", "//:app", check=False)
        assert result.returncode != 0
        output = result.stdout + result.stderr
        assert "apppkg-1.0-py3-none-any.whl" in output and "pylock.app.toml" in output, output[-4000:]
        assert f"Checksum was {real}" in output
    finally:
        lock.write_text(original)


def test_wheel_missing_from_the_index_fails_naming_wheel_and_lock(stack: Stack, tmp_path: Path) -> None:
    wheel = stack.index.files_dir / "apppkg-1.0-py3-none-any.whl"
    moved = tmp_path / wheel.name
    shutil.move(wheel, moved)
    try:
        # A fresh output base: the wheel must not come from the repository cache either.
        result = stack.workspace.bazel(
            "build", "--repository_cache=", "//:app", check=False, startup=(f"--output_base={tmp_path / 'ob'}",)
        )
        assert result.returncode != 0
        output = result.stdout + result.stderr
        assert "apppkg-1.0-py3-none-any.whl" in output and "pylock.app.toml" in output, output[-4000:]
    finally:
        shutil.move(moved, wheel)
        stack.workspace.bazel("shutdown", check=False, startup=(f"--output_base={tmp_path / 'ob'}",))


def test_size_first_compression_setting_changes_only_the_archive_bytes(stack: Stack) -> None:
    """`--@rules_venvstacks//settings:compression=size` repacks every archive smaller; bad values fail early."""
    workspace = stack.workspace
    flag = "--@rules_venvstacks//settings:compression"
    sizes = {}
    digests = {}
    for setting in ("size", "default"):  # default last: the other tests' outputs stay as they were
        workspace.bazel("build", f"{flag}={setting}", "//:framework", "//:cpython")
        archive = workspace.output("framework.tar.zst")
        sizes[setting] = archive.stat().st_size + workspace.output("cpython.tar.zst").stat().st_size
        digests[setting] = archive.read_bytes()
    assert digests["size"] != digests["default"]
    assert sizes["size"] < sizes["default"], sizes
    result = workspace.bazel("build", f"{flag}=smallest", "//:framework", check=False)
    assert result.returncode != 0
    assert "smallest" in result.stderr and "compression" in result.stderr, result.stderr[-3000:]


def test_layers_publish_venvstacks_metadata_beside_their_archives(stack: Stack) -> None:
    """`bazel build` of an app gives venvstacks' published metadata of it and of every layer below it."""
    stack.workspace.bazel("build", "//:hello")
    published = stack.workspace.output("__venvstacks__/linux_x86_64/env_metadata")
    # Earlier tests of this module built other layers of the same workspace into the same folder.
    assert {"cpython.json", "framework.json", "hello.json"} <= {path.name for path in published.iterdir()}
    for name in ("cpython", "framework", "hello"):
        ours = json.loads(stack.workspace.output(f"{name}.json").read_text())
        theirs = json.loads((published / f"{name}.json").read_text())
        assert theirs["archive_hashes"] == {"sha256": ours["archive"]["sha256"]}, name
        assert (theirs["layer_name"], theirs["runtime_layer"], theirs["target_platform"]) == (
            name,
            "cpython",
            "linux_x86_64",
        )
    hello = json.loads((published / "hello.json").read_text())
    assert hello["required_layers"] == ["framework"]
    assert (
        hello["requirements_hash"]
        == "sha256:" + hashlib.sha256((stack.workspace.root / "pylock.hello.toml").read_bytes()).hexdigest()
    )
    assert hello["app_launch_module_hash"] == module_hash("hello", {"hello.py": stack.workspace.root / "hello.py"})
