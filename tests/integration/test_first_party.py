"""First-party `py_library` code (`deps`) in a framework and an application, through a real Bazel.

The stack workspace of `stack_workspace` (runtime, locked against wheels served on 127.0.0.1)
with two more layers: `fpfw`, a framework on the runtime whose `deps` are a library laid out
under `libs/mylib/src/` (a chain of three: mylib -> mycore -> mybase, the last without
`imports`), a library of a genrule's output and a hub wheel its own lock provides; and `fpapp`,
an application on it whose library depends on mylib (held by the framework, so not copied) and
on two hub wheels, one provided by its lock and one by the framework's. The hub is a small module
standing in for a rules_python pip hub (`site-packages/<pkg>/` in a repository of its own, a
`py_library` with `imports = ["site-packages"]`, an alias as `@pypi//pkg` is in rules_python 1.x):
rules_python's pip extension needs the network and a toolchain.
"""

from __future__ import annotations

import json
import re
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from venvstacks_testing.archives import archive_listing
from venvstacks_testing.bazel_workspace import Workspace
from venvstacks_testing.layer_inputs import SITE, XY
from venvstacks_testing.stack_workspace import (
    ExtraLayers,
    Stack,
    describe_spawns,
    layer_spawns,
    make_stack,
    read_execution_log,
    serve_stack_sources,
)

pytestmark = pytest.mark.integration

PYC_TAG = f"cpython-{XY.replace('.', '')}"
LAYERS = ExtraLayers(
    build="""
framework_layer(
    name = "fpfw",
    deps = ["//libs/mylib", "//libs/gen:genlib", "@fakehub//:shared"],
    index_url = "{index_url}",
    requirements = ["shared==1.0"],
    runtime = ":cpython",
)

application_layer(
    name = "fpapp",
    deps = ["//apps/fpapp"],
    frameworks = [":fpfw"],
    index_url = "{index_url}",
    launch_module = "fpapp",
    requirements = ["apppkg"],
    runtime = ":cpython",
)
""",
    locks=("fpfw", "fpapp"),
    stack_layers=(":fpapp",),
)

PY_LIBRARY = (
    'load("@rules_python//python:defs.bzl", "py_library")\n\npackage(default_visibility = ["//visibility:public"])\n'
)
FAKE_SHARED = "# the hub's copy: never copied into a layer\n"
HUB_FILES = {
    "MODULE.bazel": 'module(name = "fakehub")\n\nbazel_dep(name = "rules_python", version = "0.22.1")\n'
    + 'bazel_dep(name = "fakehub_dep")\n',
    "BUILD.bazel": PY_LIBRARY
    + textwrap.dedent("""
        # What rules_python's whl_library makes of a wheel: its files below site-packages/.
        py_library(
            name = "shared_pkg",
            srcs = ["site-packages/shared/__init__.py"],
            data = ["site-packages/shared-1.0.dist-info/METADATA"],
            imports = ["site-packages"],
        )

        # `@pypi//shared` in rules_python 1.x: an alias to the wheel's library.
        alias(name = "shared", actual = ":shared_pkg")

        py_library(
            name = "apppkg",
            srcs = ["site-packages/apppkg/__init__.py"],
            imports = ["site-packages"],
            deps = [":shared_pkg", "@fakehub_dep//:hubdep"],
        )

        py_library(name = "missingpkg", srcs = ["site-packages/missingpkg/__init__.py"], imports = ["site-packages"])
        """),
    "site-packages/shared/__init__.py": FAKE_SHARED,
    "site-packages/shared-1.0.dist-info/METADATA": "Name: shared\n",
    "site-packages/apppkg/__init__.py": FAKE_SHARED,
    "site-packages/missingpkg/__init__.py": FAKE_SHARED,
}
# A wheel another wheel depends on, in a repository of its own as in a real hub: neither
# copied nor required (what a locked package needs, its lock brings).
HUB_DEP_FILES = {
    "MODULE.bazel": 'module(name = "fakehub_dep")\n\nbazel_dep(name = "rules_python", version = "0.22.1")\n',
    "BUILD.bazel": PY_LIBRARY
    + 'py_library(name = "hubdep", srcs = ["site-packages/hubdep/__init__.py"], imports = ["site-packages"])\n',
    "site-packages/hubdep/__init__.py": FAKE_SHARED,
}

APP_LIBRARY = """
py_library(
    name = "fpapp",
    srcs = ["src/fpapp/__init__.py", "src/fpapp/__main__.py"],
    imports = ["src"],
    deps = ["//libs/mylib", "@fakehub//:apppkg", "@fakehub//:shared"{more}],
)
"""
APP_MAIN = """\
import importlib.resources
import json

import apppkg
import genmod
import mybase
import mycore
import mylib
import shared

print(json.dumps({
    "modules": {m.__name__: m.__file__ for m in (apppkg, genmod, mybase, mycore, mylib, shared)},
    "fpapp": __file__,
    "greeting": importlib.resources.files("mylib").joinpath("resources/greeting.txt").read_text(),
    "chain": mylib.CHAIN,
    "generated": genmod.VALUE,
}))
"""
SOURCES = {
    "libs/mylib/BUILD.bazel": PY_LIBRARY
    + """
py_library(
    name = "mylib",
    srcs = ["src/mylib/__init__.py"],
    # Package data comes along; a file outside every package does not.
    data = ["src/mylib/resources/greeting.txt", "README.md"],
    imports = ["src"],
    deps = ["//libs/mycore"],
)
""",
    "libs/mylib/src/mylib/__init__.py": "import mycore\n\nCHAIN = ['mylib', *mycore.CHAIN]\n",
    "libs/mylib/src/mylib/resources/greeting.txt": "hello from mylib\n",
    "libs/mylib/README.md": "not package data\n",
    "libs/mycore/BUILD.bazel": PY_LIBRARY
    + 'py_library(name = "mycore", srcs = ["src/mycore/__init__.py"], imports = ["src"], deps = ["//mybase"])\n',
    "libs/mycore/src/mycore/__init__.py": "import mybase\n\nCHAIN = ['mycore', *mybase.CHAIN]\n",
    # No `imports`: at its path in the repository, as the runfiles root is on py_binary's sys.path.
    "mybase/BUILD.bazel": PY_LIBRARY + 'py_library(name = "mybase", srcs = ["__init__.py"])\n',
    "mybase/__init__.py": "CHAIN = ['mybase']\n",
    "libs/gen/BUILD.bazel": PY_LIBRARY
    + textwrap.dedent("""
        genrule(name = "gen_src", outs = ["genmod/__init__.py"], cmd = "echo 'VALUE = 42' > $@")

        py_library(name = "genlib", srcs = [":gen_src"], imports = ["."])
        """),
    "apps/fpapp/BUILD.bazel": PY_LIBRARY + APP_LIBRARY.format(more=""),
    "apps/fpapp/src/fpapp/__init__.py": "",
    "apps/fpapp/src/fpapp/__main__.py": APP_MAIN,
    # For the error cases: a first-party module named like the framework's locked package,
    # two libraries with one destination, and a target that is not a Python library.
    "libs/clash/BUILD.bazel": PY_LIBRARY
    + textwrap.dedent("""
        py_library(name = "shared", srcs = ["src/shared.py"], imports = ["src"])

        py_library(name = "dup_a", srcs = ["a/dup/__init__.py"], imports = ["a"])

        py_library(name = "dup_b", srcs = ["b/dup/__init__.py"], imports = ["b"])

        filegroup(name = "not_python", srcs = ["src/shared.py"])
        """),
    "libs/clash/src/shared.py": "",
    "libs/clash/a/dup/__init__.py": "A = 1\n",
    "libs/clash/b/dup/__init__.py": "B = 1\n",
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The locked stack workspace with the fake hub beside it and the two layers' libraries."""
    hubs = {}
    for module, files in (("fakehub", HUB_FILES), ("fakehub_dep", HUB_DEP_FILES)):
        hubs[module] = Workspace(tmp_path_factory.mktemp(module))
        for name, text in files.items():
            hubs[module].write(name, text)
    with serve_stack_sources(tmp_path_factory.mktemp("sources")) as sources:
        result = make_stack(tmp_path_factory.mktemp("fp_ws"), sources, extra=LAYERS)
        workspace = result.workspace
        for name, text in SOURCES.items():
            workspace.write(name, text)
        module = workspace.root / "MODULE.bazel"
        module.write_text(
            module.read_text()
            + 'bazel_dep(name = "rules_python", version = "0.22.1")\n'
            + "".join(
                f'bazel_dep(name = "{name}")\nlocal_path_override(module_name = "{name}", path = "{hub.root}")\n'
                for name, hub in hubs.items()
            )
        )
        result.lock("fpfw", "fpapp")
        try:
            yield result
        finally:
            workspace.shutdown()


def _site_files(archive: Path, layer: str) -> dict[str, bytes]:
    prefix = f"{layer}/{SITE}/"
    return {
        name.removeprefix(prefix): content
        for name, (kind, _, content) in archive_listing(archive).items()
        if kind == "file" and name.startswith(prefix)
    }


def _with_app_deps(stack: Stack, more: str) -> tuple[Path, str]:
    """Rewrites the application's library with `more` dependencies; returns the file and its text."""
    path = stack.root / "apps/fpapp/BUILD.bazel"
    original = path.read_text()
    path.write_text(PY_LIBRARY + APP_LIBRARY.format(more=more))
    return path, original


def test_archives_hold_first_party_code_at_its_import_roots(stack: Stack) -> None:
    stack.workspace.bazel("build", "//:fpapp")
    framework = _site_files(stack.workspace.output("fpfw.tar.zst"), "fpfw")
    for module in ("mylib/__init__.py", "mycore/__init__.py", "mybase/__init__.py", "genmod/__init__.py"):
        assert module in framework, sorted(framework)
        assert module.replace("__init__.py", f"__pycache__/__init__.{PYC_TAG}.pyc") in framework, "compiled"
    assert framework["genmod/__init__.py"] == b"VALUE = 42\n"
    assert framework["mylib/resources/greeting.txt"] == b"hello from mylib\n"
    assert not [name for name in framework if name.startswith(("libs/", "README"))], sorted(framework)
    # The hub wheel is the lock's package, not the hub's files.
    assert framework["shared/__init__.py"] == b'__version__ = "1.0"\n'
    app = _site_files(stack.workspace.output("fpapp.tar.zst"), "fpapp")
    assert "fpapp/__main__.py" in app and f"fpapp/__pycache__/__main__.{PYC_TAG}.pyc" in app
    # mylib is the framework's: the application's library depends on it, and finds it there.
    copied = ("mylib", "mycore", "mybase", "shared", "hubdep")
    assert not [name for name in app if name.split("/")[0] in copied], sorted(app)
    assert app["apppkg/__init__.py"] == b'__version__ = "1.0"\n'


def test_the_deployed_app_imports_first_party_code_from_the_layers(stack: Stack, tmp_path: Path) -> None:
    dest = tmp_path / "deployed"
    stack.workspace.bazel("run", "//:fpapp.deploy", "--", str(dest))
    result = subprocess.run([dest / "fpapp" / "bin" / "python", "-m", "fpapp"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    framework_site = next((dest / "fpfw").glob("lib/python3*/site-packages"))
    for name in ("mylib", "mycore", "mybase", "genmod", "shared"):
        assert report["modules"][name] == str(framework_site / name / "__init__.py"), report
    assert report["modules"]["apppkg"].startswith(str(dest / "fpapp")), report
    assert report["fpapp"].startswith(str(dest / "fpapp")), report
    assert report["greeting"] == "hello from mylib\n"
    assert report["chain"] == ["mylib", "mycore", "mybase"] and report["generated"] == 42


def test_a_hub_wheel_no_locked_package_provides_fails_naming_the_path_and_the_fix(stack: Stack) -> None:
    path, original = _with_app_deps(stack, ', "@fakehub//:missingpkg"')
    try:
        result = stack.workspace.bazel("build", "//:fpapp", check=False)
    finally:
        path.write_text(original)
    assert result.returncode != 0
    output = result.stderr
    # The hub wheel by its canonical label (`fakehub~` in Bazel 7, `fakehub+` from Bazel 8 on).
    expected = r"//apps/fpapp:fpapp -> @@fakehub[~+]//:missingpkg needs the import name 'missingpkg'"
    assert re.search(expected, output), output[-3000:]
    assert "add the requirement to //:fpapp's requirements and run `bazel run //:fpapp.lock`" in output
    # The wheels a lock provides were mapped: only the missing one is named.
    assert "'shared'" not in output and "'apppkg'" not in output and "'hubdep'" not in output


def test_first_party_clashes_and_bad_deps_fail_naming_both_sides(stack: Stack) -> None:
    path, original = _with_app_deps(stack, ', "//libs/clash:shared"')
    try:
        result = stack.workspace.bazel("build", "//:fpapp", check=False)
        assert result.returncode != 0
        assert (
            f"top-level name 'shared': 'fpapp/{SITE}/shared.py' (layer 'fpapp', from //libs/clash:shared) hides"
            f" 'fpfw/{SITE}/shared/__init__.py' (layer 'fpfw', from shared 1.0)" in result.stderr
        ), result.stderr[-3000:]
        path.write_text(PY_LIBRARY + APP_LIBRARY.format(more=', "//libs/clash:dup_a", "//libs/clash:dup_b"'))
        result = stack.workspace.bazel("build", "--nobuild", "//:fpapp", check=False)
        assert result.returncode != 0
        assert (
            "two first-party files land at dup/__init__.py in site-packages:"
            " libs/clash/a/dup/__init__.py (from //libs/clash:dup_a) and libs/clash/b/dup/__init__.py"
            " (from //libs/clash:dup_b)" in result.stderr
        ), result.stderr[-3000:]
        path.write_text(original)
        layers = stack.root / "BUILD.bazel"
        build = layers.read_text()
        try:
            # In the layer whose lock installs `shared`: refused before a file is copied.
            layers.write_text(build.replace('"@fakehub//:shared"]', '"@fakehub//:shared", "//libs/clash:shared"]'))
            result = stack.workspace.bazel("build", "//:fpfw", check=False)
            assert result.returncode != 0
            assert (
                "layer 'fpfw': the first-party module 'shared' ('shared.py', from //libs/clash:shared) has the"
                " top-level name of the locked package shared 1.0 ('shared') of the same layer" in result.stderr
            ), result.stderr[-3000:]
            not_python = 'deps = ["//apps/fpapp", "//libs/clash:not_python"]'
            layers.write_text(build.replace('deps = ["//apps/fpapp"]', not_python))
            result = stack.workspace.bazel("build", "--nobuild", "//:fpapp", check=False)
        finally:
            layers.write_text(build)
        assert result.returncode != 0
        assert "'//libs/clash:not_python' does not have mandatory providers: 'PyInfo'" in result.stderr, result.stderr
    finally:
        path.write_text(original)


def test_a_change_to_a_framework_library_rebuilds_only_the_framework(stack: Stack, tmp_path: Path) -> None:
    workspace = stack.workspace
    workspace.bazel("build", "//:fpapp")
    source = stack.root / "libs/mylib/src/mylib/__init__.py"
    original = source.read_text()
    log = tmp_path / "exec.json"
    source.write_text(original + "EDITED = True\n")
    try:
        workspace.bazel("build", f"--execution_log_json_file={log}", "//:fpapp")
    finally:
        source.write_text(original)
    spawns = [spawn for spawn in layer_spawns(read_execution_log(log)) if not spawn.get("cacheHit")]
    assert {spawn["targetLabel"] for spawn in spawns} == {"//:fpfw"}, describe_spawns(spawns)
    assert b"EDITED = True" in _site_files(workspace.output("fpfw.tar.zst"), "fpfw")["mylib/__init__.py"]


def test_a_change_to_an_application_library_rebuilds_only_that_application(stack: Stack, tmp_path: Path) -> None:
    """Issue 26's target at a small size: with two applications built (`app` and `fpapp`, the
    stack of the latter), an edit of fpapp's own library runs fpapp's two actions (its archive and
    its metadata, which writes its `bazel run` key too), plus the stack's combined metadata when
    the `layer_stack` is built; nothing of the other application, the frameworks, the runtime,
    and no validation action (the layer's contents, the names it provides, are unchanged).
    bench/bench_scale.py measures the same at 10 to 80 applications."""
    workspace = stack.workspace
    stack.lock("framework", "app")  # the other application and its framework (the fixture locks fpfw, fpapp)
    workspace.bazel("build", "//:stack", "//:app")
    source = stack.root / "apps/fpapp/src/fpapp/__init__.py"
    original = source.read_text()
    ran = {}
    try:
        for edit, targets in (("stack", ("//:stack", "//:app")), ("layer", ("//:fpapp",))):
            log = tmp_path / f"{edit}.exec.json"
            source.write_text(f"{original}EDITED = {edit!r}\n")
            workspace.bazel("build", f"--execution_log_json_file={log}", *targets)
            ran[edit] = sorted(f"{e['mnemonic']} {e['targetLabel']}" for e in read_execution_log(log))
    finally:
        source.write_text(original)
    app_actions = ["VenvstacksLayer //:fpapp", "VenvstacksLayerMetadata //:fpapp"]
    assert ran["layer"] == app_actions, ran
    assert ran["stack"] == [*app_actions, "VenvstacksStackMetadata //:stack"], ran
