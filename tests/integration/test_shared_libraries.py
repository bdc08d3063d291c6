"""Shared libraries across layers, and shadowing across layers, through a real Bazel.

Wheels compiled here with gcc: a framework wheel (`vsdynlib`) ships a C library
`vsdynlib.libs/libvsdyn.so`, and an application wheel (`vsdynext`) holds an extension module
linked to it by name (`-lvsdyn`: DT_NEEDED, no RPATH), as torch's modules need the `nvidia-*`
libraries. Locked against the local index, built and deployed with Bazel, the deployed app calls
into the library; the runtime's interpreter started directly cannot load the module.

The loader check (a validation action of every layer) finds that library through the framework
below, so it says nothing of it; an application whose extension module needs a library nobody
ships (`vsneedy`, linked to a `libvsmissing.so` left out of every wheel) gets a warning naming the
file, the library and the platform, an error with `strict_libraries = True`, and builds again
when `allowed_libraries` names the library.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from venvstacks_testing.archives import archive_listing
from venvstacks_testing.stack_workspace import ExtraLayers, Stack, make_stack, serve_stack_sources

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        platform.machine() != "x86_64" or shutil.which("gcc") is None or shutil.which("readelf") is None,
        reason="needs gcc and readelf on x86_64 Linux",
    ),
]

LIBRARY_C = "int vsdyn_scale(int x) { return 6 * x; }\n"
EXTENSION_C = """\
#define PY_SSIZE_T_CLEAN
#include <Python.h>
int vsdyn_scale(int x);
static PyObject *answer(PyObject *self, PyObject *args) {
    int x;
    if (!PyArg_ParseTuple(args, "i", &x)) return NULL;
    return PyLong_FromLong(vsdyn_scale(x));
}
static PyMethodDef methods[] = {{"answer", answer, METH_VARARGS, "6 * x, computed by libvsdyn"}, {NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_ext", NULL, -1, methods};
PyMODINIT_FUNC PyInit__ext(void) { return PyModule_Create(&module); }
"""
LAYERS = ExtraLayers(
    build="""
framework_layer(
    name = "dynfw",
    index_url = "{index_url}",
    requirements = ["vsdynlib"],
    runtime = ":cpython",
)

application_layer(
    name = "dynapp",
    frameworks = [":dynfw", ":framework"],
    index_url = "{index_url}",
    launch_module = "dynapp.py",
    requirements = ["vsdynext", "altshared"],
    runtime = ":cpython",
)

# venvstacks' local_wheels_project "broken-publisher": the same wheel, its library not linked.
framework_layer(
    name = "dynfw_excluded",
    dynlib_exclude = ["*.so"],
    index_url = "{index_url}",
    requirements = ["vsdynlib"],
    runtime = ":cpython",
)
# The loader check's three cases: a warning, an error (strict), allowed.
[
    application_layer(
        name = name,
        allowed_libraries = allowed,
        frameworks = [":framework"],
        index_url = "{index_url}",
        launch_module = "fwpkg_app.py",
        requirements = ["vsneedy"],
        runtime = ":cpython",
        strict_libraries = strict,
    )
    for name, strict, allowed in [
        ("loadwarn", False, []),
        ("loadstrict", True, []),
        ("loadallowed", True, ["libvsmissing.so"]),
    ]
]

application_layer(
    name = "clashapp",
    frameworks = [":framework"],
    index_url = "{index_url}",
    launch_module = "fwpkg.py",
    runtime = ":cpython",
)
""",
    locks=("dynfw", "dynapp", "clashapp", "dynfw_excluded", "loadwarn", "loadstrict", "loadallowed"),
)
DYNAPP_MAIN = "import vsdynext\nprint('answer', vsdynext.answer(7))\n"
EXT_INIT = b"from vsdynext._ext import answer\n\n\ndef main():\n    print('answer', answer(7))\n"


def _compile(directory: Path, xy: str, name: str = "vsdyn") -> tuple[bytes, bytes]:
    """The library (soname lib<name>.so) and the extension module linked to it by name, without RPATH."""
    directory.mkdir(exist_ok=True)
    (directory / "libvsdyn.c").write_text(LIBRARY_C)
    (directory / "ext.c").write_text(EXTENSION_C)
    library = directory / f"lib{name}.so"
    extension = directory / "_ext.so"
    gcc = ["gcc", "-shared", "-fPIC", "-O2"]
    subprocess.run([*gcc, f"-Wl,-soname,lib{name}.so", "-o", library, directory / "libvsdyn.c"], check=True)
    include = f"/usr/include/python{xy}"
    subprocess.run(
        [*gcc, f"-I{include}", "-o", extension, directory / "ext.c", f"-L{directory}", f"-l{name}"], check=True
    )
    dynamic = subprocess.run(["readelf", "-d", extension], check=True, capture_output=True, text=True).stdout
    assert "(NEEDED)" in dynamic and f"[lib{name}.so]" in dynamic, dynamic
    assert "RPATH" not in dynamic and "RUNPATH" not in dynamic, dynamic
    return library.read_bytes(), extension.read_bytes()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Locked: framework (fwpkg, shared), dynfw (vsdynlib), dynapp (vsdynext, altshared) on both, clashapp on it."""
    with serve_stack_sources(tmp_path_factory.mktemp("sources")) as sources:
        xy = ".".join(sources.runtime.python_version.split(".")[:2])
        library, extension = _compile(tmp_path_factory.mktemp("cc"), xy)
        tag = f"cp{xy.replace('.', '')}-cp{xy.replace('.', '')}-manylinux_2_17_x86_64"
        sources.index.add_wheel(
            "vsdynlib",
            "1.0",
            tag=tag,
            files={"vsdynlib/__init__.py": b"", "vsdynlib.libs/libvsdyn.so": library},
        )
        suffix = f".cpython-{xy.replace('.', '')}-x86_64-linux-gnu.so"
        sources.index.add_wheel(
            "vsdynext",
            "1.0",
            ["vsdynlib"],
            tag=tag,
            files={"vsdynext/__init__.py": EXT_INIT, f"vsdynext/_ext{suffix}": extension},
            console_scripts={"vsdyn-answer": "vsdynext:main"},
        )
        # An extension module whose library no wheel ships (the loader check's case).
        _, needy = _compile(tmp_path_factory.mktemp("cc") / "needy", xy, "vsmissing")
        sources.index.add_wheel(
            "vsneedy", "1.0", tag=tag, files={"vsneedy/__init__.py": b"", f"vsneedy/_ext{suffix}": needy}
        )
        # Another distribution's `shared` module in the app hides the framework's `shared`
        # package: a warning (first-party code in its place would be an error: test_first_party).
        sources.index.add_wheel("altshared", "1.0", files={"shared.py": b""})
        result = make_stack(tmp_path_factory.mktemp("dyn_ws"), sources, extra=LAYERS)
        result.workspace.write("dynapp.py", DYNAPP_MAIN)
        result.workspace.write("fwpkg.py", "print('clash')\n")
        result.workspace.write("fwpkg_app.py", "import vsneedy\n")
        result.lock(
            "framework", "dynfw", "dynapp", "clashapp", "dynfw_excluded", "loadwarn", "loadstrict", "loadallowed"
        )
        try:
            yield result
        finally:
            result.workspace.shutdown()


def test_an_extension_module_loads_a_framework_library_by_name(stack: Stack, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    built = stack.workspace.bazel("build", "//:dynapp")
    # The stack check warns, naming both layers and files, and builds.
    output = built.stdout + built.stderr
    assert "top-level name 'shared'" in output and "from altshared 1.0" in output, output[-4000:]
    assert "dynapp/lib/python" in output and "site-packages/shared.py" in output, output[-4000:]
    assert "framework/lib/python" in output and "site-packages/shared/__init__.py" in output, output[-4000:]
    # The loader check finds libvsdyn.so through the framework's dynlib directory: no warning.
    assert "libvsdyn.so is needed" not in output, output[-4000:]
    report = stack.workspace.output("_dynapp.loader.txt").read_text()
    assert report.endswith("binaries read, 0 libraries found nowhere\n"), report
    stack.workspace.bazel("run", "//:dynapp.deploy", "--", str(dest))

    # The framework links its library; the app's config lists the frameworks' directories in order.
    link = dest / "dynfw" / "share" / "venv" / "dynlib" / "libvsdyn.so"
    assert link.is_symlink() and not os.path.isabs(os.readlink(link)), link
    assert link.resolve().name == "libvsdyn.so" and link.resolve().parent.name == "vsdynlib.libs"
    config = json.loads((dest / "dynapp/share/venv/metadata/venvstacks_layer.json").read_text())
    assert config["dynlib_dirs"] == ["../dynfw/share/venv/dynlib", "../framework/share/venv/dynlib"]
    assert config["lower_layers"] == ["dynfw", "framework"]

    python = dest / "dynapp" / "bin" / "python"
    env = {key: value for key, value in os.environ.items() if key != "LD_LIBRARY_PATH"}
    for flags in ([], ["-I"]):
        result = subprocess.run([python, *flags, "-m", "dynapp"], capture_output=True, text=True, env=env)
        assert result.returncode == 0 and result.stdout == "answer 42\n", result.stderr
    # Through the `python3` link too, and sys.executable is the wrapper (so children find the libraries).
    code = "import sys, subprocess; print(sys.executable); subprocess.run([sys.executable, '-m', 'dynapp'], check=True)"
    result = subprocess.run([python.with_name("python3"), "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [str(python), "answer 42"], result.stdout
    # A console script runs the layer's bin/python, hence the wrapper.
    result = subprocess.run([dest / "dynapp" / "bin" / "vsdyn-answer"], capture_output=True, text=True, env=env)
    assert result.returncode == 0 and result.stdout == "answer 42\n", result.stderr
    # A caller's own LD_LIBRARY_PATH stays first.
    code = "import os; print(os.environ['LD_LIBRARY_PATH'])"
    result = subprocess.run(
        [python, "-c", code], capture_output=True, text=True, env={**env, "LD_LIBRARY_PATH": "/caller"}, check=True
    )
    assert result.stdout == f"/caller:{dest}/dynapp/bin/../../dynfw/share/venv/dynlib\n"

    # Without the mechanism (the runtime's interpreter, started directly): the loader cannot find it.
    direct = subprocess.run(
        [dest / "dynapp" / "bin" / "python_", "-m", "dynapp"], capture_output=True, text=True, env=env
    )
    assert direct.returncode != 0
    assert "libvsdyn.so: cannot open shared object file" in direct.stderr, direct.stderr
    # A framework directly on the runtime has nothing to add: its interpreter is a plain link.
    assert (dest / "dynfw" / "bin" / "python").is_symlink()


def test_a_launch_module_that_a_framework_provides_fails_naming_both(stack: Stack) -> None:
    result = stack.workspace.bazel("build", "//:clashapp", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-4000:]
    lines = [line for line in output.splitlines() if "launch_module 'fwpkg'" in line]
    assert lines, output[-4000:]
    assert "clashapp/lib/python" in lines[0] and "site-packages/fwpkg.py" in lines[0], lines[0]
    assert "framework/lib/python" in lines[0] and "site-packages/fwpkg/__init__.py" in lines[0], lines[0]
    assert "fwpkg 1.0" in lines[0], lines[0]


def test_dynlib_exclude_keeps_a_library_installed_but_unlinked(stack: Stack) -> None:
    """The layer's `dynlib_exclude` reaches the archive action: the library is installed, not linked."""
    stack.workspace.bazel("build", "//:dynfw", "//:dynfw_excluded")
    linked = json.loads(stack.workspace.output("_dynfw.contents.json").read_text())["dynlibs"]
    assert list(linked) == ["libvsdyn.so"]
    assert json.loads(stack.workspace.output("_dynfw_excluded.contents.json").read_text())["dynlibs"] == {}
    listing = archive_listing(stack.workspace.output("dynfw_excluded.tar.zst"))
    assert any(name.endswith("/vsdynlib.libs/libvsdyn.so") for name in listing), sorted(listing)
    assert not any("share/venv/dynlib" in name for name in listing), sorted(listing)


def test_the_loader_check_warns_then_fails_when_strict_then_passes_when_allowed(stack: Stack) -> None:
    warned = stack.workspace.bazel("build", "//:loadwarn")
    output = warned.stdout + warned.stderr
    lines = [line for line in output.splitlines() if "libvsmissing.so is needed by" in line]
    assert len(lines) == 1 and lines[0].startswith("warning: layer 'loadwarn' (linux_x86_64): "), output[-4000:]
    assert "loadwarn/lib/python3" in lines[0] and "/site-packages/vsneedy/_ext.cpython-" in lines[0], lines[0]
    assert "(vsneedy 1.0)" in lines[0] and "allowed_libraries" in lines[0], lines[0]

    failed = stack.workspace.bazel("build", "//:loadstrict", check=False)
    output = failed.stdout + failed.stderr
    assert failed.returncode != 0, output[-4000:]
    assert "strict_libraries" in output and "layer 'loadstrict' (linux_x86_64): libvsmissing.so" in output, output
    assert not stack.workspace.output("_loadstrict.loader.txt").exists()

    allowed = stack.workspace.bazel("build", "//:loadallowed")
    assert "libvsmissing.so is needed" not in allowed.stdout + allowed.stderr
    report = stack.workspace.output("_loadallowed.loader.txt").read_text()
    assert "0 libraries found nowhere; allowed: libvsmissing.so (1 files)" in report, report
