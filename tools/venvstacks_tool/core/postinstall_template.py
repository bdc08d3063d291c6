"""rules_venvstacks layer post-installation script (venvstacks' deployment protocol).

`build-layer` and `pack-runtime` copy this file verbatim to `<layer>/postinstall.py`. After a
layer archive is unpacked next to its runtime and lower layers, run it with the runtime's
interpreter (venvstacks' deployers run it with any Python 3):

    <runtime>/bin/python3 <layer>/postinstall.py

It finds its own directory, reads `share/venv/metadata/venvstacks_layer.json` and, for a
framework or application layer:

* writes `pyvenv.cfg`, which needs the absolute deployed path of the runtime and so cannot ship
  in the archive (`home` is the runtime's `bin` directory);
* (re)writes the stacking files in the layer's site-packages, which the archive already holds:
  `_venvstacks_stack.py`, a standard-library-only module naming each lower layer's site-packages
  (the frameworks in stack order, then the runtime) relative to its own directory, and
  `_venvstacks_stack.pth`, whose one `import` line runs it when `site` processes the layer's
  site-packages. The module hands each lower site-packages to `site.addsitedir`, so their own
  `.pth` files run too (import hooks, legacy `*-nspkg.pth`, `distutils-precedence.pth`), in the
  sorted order `site` uses, exactly as for a site directory. venvstacks' own post-install does
  the same with a generated `sitecustomize.py` holding absolute paths; relative paths keep the
  archive free of any deployment path, and leave `sitecustomize` to the application.

On a Windows layer the module first hands each lower layer's DLL directory that exists (the
config's `dynlib_dirs`, relative like the rest) to `os.add_dll_directory`, as venvstacks'
`sitecustomize.py` does, so an extension module finds a DLL a lower layer ships. On Linux and
macOS that job is the `bin/python` wrapper's, which the build writes (the library search path
must be set before the interpreter starts); this script leaves it alone.

`python -S` skips all of it (no `site`, no `.pth` files, as Python defines it); `python -I` keeps
the stack (it drops only the user site and the environment variables).

Running it again is harmless: files already holding the right content are left alone. For a
runtime layer (whose `python` is its own `base_python`) it changes nothing.

Standard library only, and compatible with every Python the runtimes provide (3.10 and later).
"""

from __future__ import annotations

import json
import os
import posixpath
import sys
from typing import Any

# Where venvstacks' deployment protocol keeps a layer's config, relative to the layer root.
LAYER_CONFIG_PATH = "share/venv/metadata/venvstacks_layer.json"
# The stacking file written into a layered environment's site-packages.
STACK_PTH_NAME = "_venvstacks_stack.pth"
# The module the stacking file imports, beside it in site-packages.
STACK_MODULE_NAME = "_venvstacks_stack"
_PTH_TEXT = (
    "# Written by rules_venvstacks: adds the lower layers' site-packages as site directories"
    f" (see {STACK_MODULE_NAME}.py).\nimport {STACK_MODULE_NAME}\n"
)
# Filled with the paths of the lower layers' site-packages, relative to the module's directory.
_MODULE_TEMPLATE = '''"""Written by rules_venvstacks: adds the lower layers' site-packages as site directories.

`{pth}` imports this module while `site` processes this layer's site-packages.
Each lower layer's site-packages (frameworks in stack order, then the runtime's) then goes
through `site.addsitedir`, as a site directory does: on sys.path, and its `.pth` files run. The
paths are relative to this file, so the layer works wherever it is deployed.

Only the running layer's copy acts: a lower layer's `{pth}`, processed with its
site-packages, imports this module again, which is then already imported.

Windows: each lower layer's DLL directory that exists goes to `os.add_dll_directory` first, so
that the lower layers' `.pth` files and modules find the DLLs those layers ship.
"""

import os as _os
import site as _site

LOWER_SITE_DIRS = {dirs}
LOWER_DLL_DIRS = {dll_dirs}
# The handles `os.add_dll_directory` returns: a DLL directory stays added while its handle is open.
_DLL_DIRECTORIES = []


def _add_lower_site_dirs():
    here = _os.path.dirname(_os.path.abspath(__file__))
    for relative in LOWER_DLL_DIRS:
        path = _os.path.normpath(_os.path.join(here, relative))
        # `os.add_dll_directory` refuses a missing directory: a lower layer without DLLs has none.
        if _os.path.isdir(path):
            _DLL_DIRECTORIES.append(_os.add_dll_directory(path))
    for relative in LOWER_SITE_DIRS:
        path = _os.path.normpath(_os.path.join(here, relative))
        # As `site` itself treats a missing directory: nothing to add.
        if _os.path.isdir(path):
            _site.addsitedir(path)


_add_lower_site_dirs()
'''


class PostInstallError(Exception):
    """The layer cannot be finished where it was deployed (the message says why)."""


def load_layer_config(layer_dir: str) -> dict[str, Any]:
    """Read the layer config of the layer rooted at `layer_dir`."""
    path = os.path.join(layer_dir, *LAYER_CONFIG_PATH.split("/"))
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as error:
        raise PostInstallError(f"cannot read the layer config {path!r}: {error.strerror}") from error
    except ValueError as error:
        raise PostInstallError(f"the layer config {path!r} is not valid JSON: {error}") from error
    return parse_layer_config(text, path)


def parse_layer_config(text: str, path: str) -> dict[str, Any]:
    """The layer config in `text`, checked; `path` names it in errors."""
    try:
        config = json.loads(text)
    except ValueError as error:
        raise PostInstallError(f"the layer config {path!r} is not valid JSON: {error}") from error
    if not isinstance(config, dict):
        raise PostInstallError(f"the layer config {path!r} is not a JSON object")
    missing = [key for key in ("python", "base_python") if key not in config]
    if not missing and is_layered(config):
        # A runtime layer is finished as it is; a layered environment needs the rest.
        missing = [key for key in ("py_version", "site_dir", "pylib_dirs") if key not in config]
    if missing:
        raise PostInstallError(f"the layer config {path!r} has no {missing[0]!r}")
    return config


def is_layered(config: dict[str, Any]) -> bool:
    """Whether the layer is a virtual environment on a runtime (not the runtime itself)."""
    python, base_python = str(config["python"]), str(config["base_python"])
    return posixpath.normpath(python) != posixpath.normpath(base_python)


def lower_site_dirs(config: dict[str, Any], key: str = "pylib_dirs") -> list[str]:
    """Each `pylib_dirs` entry (lower layers' site-packages), or of another list `key`, relative to `site_dir`."""
    site_dir = posixpath.normpath(config["site_dir"])
    # Both are relative to the layer root: anchor them at a dummy root to relate them.
    return [
        posixpath.relpath(posixpath.normpath(posixpath.join("layer", pylib_dir)), posixpath.join("layer", site_dir))
        for pylib_dir in config.get(key, [])
    ]


def lower_dll_dirs(config: dict[str, Any]) -> list[str]:
    """A Windows layer's `dynlib_dirs` relative to `site_dir` (none elsewhere: the wrapper's job there)."""
    return lower_site_dirs(config, "dynlib_dirs") if str(config.get("python", "")).endswith(".exe") else []


def _tuple_text(values: list[str]) -> str:
    listed = "".join(f"\n    {value!r}," for value in values)
    return f"({listed}\n)" if values else "()"


def stack_pth_text() -> str:
    """The stacking `.pth`: one `import` line running the stacking module (the same in every layer)."""
    return _PTH_TEXT


def stack_module_text(config: dict[str, Any]) -> str:
    """The stacking module: the lower layers' site-packages, relative to the module, as site directories."""
    return _MODULE_TEMPLATE.format(
        pth=STACK_PTH_NAME,
        dirs=_tuple_text(lower_site_dirs(config)),
        dll_dirs=_tuple_text(lower_dll_dirs(config)),
    )


def pyvenv_cfg_text(layer_dir: str, config: dict[str, Any]) -> str:
    """`pyvenv.cfg` for the layer deployed at the absolute `layer_dir`."""
    base_python = os.path.abspath(os.path.join(layer_dir, *config["base_python"].split("/")))
    return (
        f"home = {os.path.dirname(base_python)}\n"
        "include-system-site-packages = false\n"
        f"version = {config['py_version']}\n"
        f"executable = {base_python}\n"
    )


def _write_text(path: str, text: str) -> bool:
    """Write `text` to `path` unless it already holds it; return whether it was written."""
    data = text.encode("utf-8")
    try:
        with open(path, "rb") as f:
            if f.read() == data:
                return False
    except OSError:
        pass
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)
    return True


def finished_files(layer_dir: str, config: dict[str, Any]) -> list[tuple[str, str]]:
    """The files post-install writes for a layered environment deployed at the absolute `layer_dir`.

    Each is (path relative to the layer root, with `/`; text), in the order they are written:
    `pyvenv.cfg`, then the stacking module before the `.pth` that imports it. The one place
    that decides them: `run` writes them into a deployed layer, and the tool's `image-layer`
    puts them into an image layer built for a fixed `layer_dir` (docs/images.md).
    """
    site_dir = posixpath.normpath(config["site_dir"])
    return [
        ("pyvenv.cfg", pyvenv_cfg_text(layer_dir, config)),
        (posixpath.join(site_dir, STACK_MODULE_NAME + ".py"), stack_module_text(config)),
        (posixpath.join(site_dir, STACK_PTH_NAME), stack_pth_text()),
    ]


def run(layer_dir: str) -> list[str]:
    """Finish the layer deployed at `layer_dir`; return the paths written (empty if none)."""
    layer_dir = os.path.abspath(layer_dir)
    config = load_layer_config(layer_dir)
    if not is_layered(config):
        return []
    base_python = os.path.abspath(os.path.join(layer_dir, *config["base_python"].split("/")))
    if not os.path.exists(base_python):
        raise PostInstallError(
            f"the runtime interpreter {base_python!r} does not exist: deploy the runtime layer"
            f" {config.get('runtime_name', '?')!r} next to this layer first"
        )
    site_dir = os.path.join(layer_dir, *config["site_dir"].split("/"))
    for pylib_dir in config["pylib_dirs"]:
        # A lower layer must be deployed; its site-packages may be missing (a runtime without one).
        parts = pylib_dir.split("/")
        if len(parts) > 1 and parts[0] == "..":
            lower = os.path.normpath(os.path.join(layer_dir, "..", parts[1]))
            if not os.path.isdir(lower):
                raise PostInstallError(f"the lower layer {lower!r} does not exist: deploy that layer first")
    os.makedirs(site_dir, exist_ok=True)
    written = []
    for relative, text in finished_files(layer_dir, config):
        path = os.path.join(layer_dir, *relative.split("/"))
        if _write_text(path, text):
            written.append(path)
            if relative.endswith(STACK_MODULE_NAME + ".py"):
                _drop_cached_bytecode(site_dir, STACK_MODULE_NAME)
    return written


def _drop_cached_bytecode(site_dir: str, module: str) -> None:
    """Remove `module`'s cached bytecode, which may predate a source just rewritten."""
    cache = os.path.join(site_dir, "__pycache__")
    try:
        names = os.listdir(cache)
    except OSError:
        return
    for name in names:
        if is_cached_bytecode(name, module):
            os.unlink(os.path.join(cache, name))


def is_cached_bytecode(file_name: str, module: str) -> bool:
    """Whether `file_name` in a `__pycache__` directory is cached bytecode of `module`."""
    return file_name.startswith(module + ".") and file_name.endswith(".pyc")


def main(argv: list[str] | None = None) -> int:
    """Finish the layer this script belongs to (or the layer directory given as the argument)."""
    args = sys.argv[1:] if argv is None else argv
    layer_dir = args[0] if args else os.path.dirname(os.path.abspath(__file__))
    try:
        run(layer_dir)
    except PostInstallError as error:
        print(f"postinstall: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
