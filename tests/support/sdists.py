"""Sdists whose build backend is a module inside them (`backend-path`): built offline, with no build requirement.

`backend_sdist` writes one. Its backend writes its wheel as badly as a backend may (clock
timestamps, members in a random order, modes of its own), so `build-sdist` must make the bytes
deterministic; `wheel_tag` makes it claim extension modules (`cp311-cp311-linux_x86_64`) without
compiling anything, and `extra_requires` is what `get_requires_for_build_wheel` asks for.
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from pathlib import Path

from venvstacks_testing.archives import Member, tar_bytes

PYPROJECT = """\
[build-system]
requires = []
build-backend = "backend"
backend-path = ["."]
"""

BACKEND = """\
import os, random, time, zipfile

EXTRA_REQUIRES = {extra!r}
NAME = "{name}-{version}-{tag}.whl"
FILES = {{
    "{name}/__init__.py": b"VALUE = 1\\n",
    "{name}-{version}.dist-info/METADATA": b"Metadata-Version: 2.1\\nName: {name}\\nVersion: {version}\\n",
    "{name}-{version}.dist-info/WHEEL": b"Wheel-Version: 1.0\\nRoot-Is-Purelib: true\\nTag: {tag}\\n",
    "{name}-{version}.dist-info/RECORD": b"",
}}

def get_requires_for_build_wheel(config_settings=None):
    return list(EXTRA_REQUIRES)

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    names = list(FILES)
    random.shuffle(names)
    with zipfile.ZipFile(os.path.join(wheel_directory, NAME), "w") as out:
        for name in names:
            info = zipfile.ZipInfo(name, time.localtime(time.time() + random.randint(0, 10**6))[:6])
            info.external_attr = random.choice([0o600, 0o644, 0o664]) << 16
            out.writestr(info, FILES[name])
    return NAME
"""


def sdist_file(directory: Path, members: list[Member], name: str) -> Path:
    """A .tar.gz named `name` in `directory` holding `members`, written without any checks."""
    path = directory / name
    path.write_bytes(gzip.compress(tar_bytes(members), mtime=0))
    return path


def backend_sdist(
    directory: Path,
    name: str = "tiny",
    version: str = "1.0",
    wheel_tag: str = "py3-none-any",
    extra_requires: Sequence[str] = (),
    backend_imports: str = "",
) -> Path:
    """`<name>-<version>.tar.gz` in `directory`, built by its own backend (see the module docstring).

    `backend_imports`: modules the backend imports first (a build requirement it needs).
    """
    backend = BACKEND.format(extra=tuple(extra_requires), name=name, version=version, tag=wheel_tag)
    if backend_imports:
        backend = f"import {backend_imports}\n" + backend
    top = f"{name}-{version}"
    members: list[Member] = [
        (f"{top}/pyproject.toml", "file", PYPROJECT.encode()),
        (f"{top}/backend.py", "file", backend.encode()),
    ]
    return sdist_file(directory, members, f"{top}.tar.gz")


COMPILED_SETUP = """\
from setuptools import Extension, setup

setup(
    name="{name}",
    version="{version}",
    packages=["{name}"],
    ext_modules=[Extension("{name}._speed", ["{name}/_speed.c"])],
)
"""

COMPILED_PYPROJECT = """\
[build-system]
requires = ["setuptools>=70.1"]
build-backend = "setuptools.build_meta"
"""

# A C extension module with one function, add(a, b), and the file name of its source in
# `__file__` terms (`__FILE__`), which the build must not leave as a sandbox path.
COMPILED_SOURCE = """\
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyObject *add(PyObject *self, PyObject *args) {{
    long a, b;
    if (!PyArg_ParseTuple(args, "ll", &a, &b)) return NULL;
    return PyLong_FromLong(a + b);
}}

static PyObject *source(PyObject *self, PyObject *args) {{ return PyUnicode_FromString(__FILE__); }}

static PyMethodDef methods[] = {{
    {{"add", add, METH_VARARGS, "a + b"}},
    {{"source", source, METH_NOARGS, "the C file it was compiled from"}},
    {{NULL, NULL, 0, NULL}},
}};

static struct PyModuleDef module = {{PyModuleDef_HEAD_INIT, "_speed", NULL, -1, methods}};

PyMODINIT_FUNC PyInit__speed(void) {{ return PyModule_Create(&module); }}
"""


def compiled_sdist(directory: Path, name: str = "fastext", version: str = "1.0") -> Path:
    """`<name>-<version>.tar.gz`: a setuptools sdist with one C extension module, `<name>._speed`."""
    top = f"{name}-{version}"
    pkg_info = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    members: list[Member] = [
        (f"{top}/PKG-INFO", "file", pkg_info.encode()),
        (f"{top}/pyproject.toml", "file", COMPILED_PYPROJECT.encode()),
        (f"{top}/setup.py", "file", COMPILED_SETUP.format(name=name, version=version).encode()),
        (f"{top}/{name}/__init__.py", "file", b"from ._speed import add, source\n"),
        (f"{top}/{name}/_speed.c", "file", COMPILED_SOURCE.format().encode()),
    ]
    return sdist_file(directory, members, f"{top}.tar.gz")
