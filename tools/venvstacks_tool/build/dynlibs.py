"""Shared libraries across layers, as venvstacks shares them.

A wheel in a framework layer may ship a plain shared library (`libfoo.so` under `pkg.libs/`)
that an extension module of a layer *above* loads by name (`DT_NEEDED`, no RPATH into the
framework). Those layers' interpreters must find it:

* **Linux and macOS targets.** `link_shared_libraries` gives the layer a directory
  `share/venv/dynlib` of relative links to the shared libraries its site-packages holds, found
  by `find_shared_libraries` with venvstacks' rule: a file whose last suffix is `.so` or
  `.dylib` and whose suffixes are not those of an extension module of the target's CPython
  (`.cpython-312-x86_64-linux-gnu.so`, `.abi3.so`; the bare `.so`, which both share, counts as a
  library, as in venvstacks). Versioned names (`libcudart.so.12`) end in a number and are not
  linked, as in venvstacks; nor is a library the layer's `dynlib_exclude` patterns match
  (build/dynlib_exclude.py, applied by build/layer.py). The layers above list that directory in their config's
  `dynlib_dirs`, and their `bin/python` is `python_wrapper`'s script: it appends each lower
  directory that exists to `LD_LIBRARY_PATH` (`DYLD_LIBRARY_PATH` on macOS), after what the
  caller set so a caller can still override, then `exec -a`s the runtime's interpreter under the
  wrapper's own name (`bin/python_`, a symlink beside it), so that `sys.executable` is the
  wrapper and `pyvenv.cfg` is found next to `bin/` as before.
* **Windows targets.** Nothing is linked (no symlinks in Windows archives); the directory is
  each layer's `Library/bin`, where conda-style wheels put DLLs (venvstacks' choice), and the
  stacking module passes each one that exists to `os.add_dll_directory`
  (`core/postinstall_template.py`).

The wrapper is written by the build, into the archive, for a layer with at least one framework
below it; a layer directly on its runtime keeps the plain symlink (a runtime layer carries no
wheels, so there is nothing to add). Whether a lower framework ships a library is not known to
the archive action, which reads no lower layer's output so that the layers of a stack build in
parallel; the wrapper checks at each start which directories exist.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.core.platforms import TargetPlatform
from venvstacks_tool.core.protocol import POSIX_DYNLIB_DIR

# The last suffix of a shared library venvstacks links (never `.dll`: see the module doc).
LIBRARY_SUFFIXES = (".so", ".dylib")
# The name of the runtime's interpreter beside a wrapped `bin/python` (venvstacks' name too).
WRAPPED_PYTHON = "python_"


def _extension_suffixes(platform: TargetPlatform, xy: str) -> set[tuple[str, ...]]:
    """The suffix tuples (`('.cpython-312-darwin', '.so')`) of the target's extension modules, bare `.so` excepted."""
    return {tuple(PurePosixPath(f"x{ext}").suffixes) for ext in platform.extension_suffixes(xy) if ext != ".so"}


def is_shared_library(name: str, extension_suffixes: set[tuple[str, ...]]) -> bool:
    """Whether a file `name` is a shared library to link, by venvstacks' rule (see the module doc)."""
    path = PurePosixPath(name)
    return path.suffix in LIBRARY_SUFFIXES and tuple(path.suffixes) not in extension_suffixes


def find_shared_libraries(site: Path, platform: TargetPlatform, xy: str) -> list[Path]:
    """The shared libraries under `site` to link for the layers above, sorted; none on Windows targets."""
    if platform.os == "windows":
        return []
    suffixes = _extension_suffixes(platform, xy)
    found = []
    for dirpath, dirnames, filenames in os.walk(site):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(filenames):
            path = Path(dirpath, name)
            if is_shared_library(name, suffixes) and not path.is_symlink():
                found.append(path)
    return sorted(found, key=lambda p: os.fsencode(p))


def link_shared_libraries(
    layer_dir: Path, libraries: list[Path], layer: str, fold: Callable[[str], str] = str
) -> dict[str, str]:
    """Link each library as `share/venv/dynlib/NAME` (relative); return {NAME: path below the layer root}.

    Two libraries of one name (compared with `fold`: `str.casefold` on a case-insensitive target)
    would make a load by name ambiguous, so that is an error naming both.
    """
    chosen: dict[str, Path] = {}
    for library in libraries:
        other = chosen.get(fold(library.name))
        if other is not None:
            first, second = (p.relative_to(layer_dir.parent).as_posix() for p in (other, library))
            raise VenvstacksError(
                f"layer {layer!r}: two shared libraries are named {library.name!r}: {first!r} and {second!r};"
                " an extension module that loads it by name could get either (keep one out with the layer's"
                " `dynlib_exclude`, or move one to another layer)"
            )
        chosen[fold(library.name)] = library
    if not chosen:
        return {}
    directory = layer_dir.joinpath(*POSIX_DYNLIB_DIR.split("/"))
    if os.path.lexists(directory):
        raise VenvstacksError(f"layer {layer!r}: a wheel installs {POSIX_DYNLIB_DIR!r}, which the build writes")
    directory.mkdir(parents=True)
    up = "../" * len(POSIX_DYNLIB_DIR.split("/"))
    linked = {}
    for library in sorted(chosen.values(), key=lambda p: p.name):
        relative = library.relative_to(layer_dir).as_posix()
        os.symlink(up + relative, directory / library.name)
        linked[library.name] = relative
    return linked


def python_wrapper(dynlib_dirs: list[str], platform: TargetPlatform) -> str:
    """The `bin/python` script of a layer whose config lists `dynlib_dirs` (relative to the layer root).

    Start-up cost is one shell: no command is run unless the wrapper was reached through a symlink
    from outside its `bin/` (then `readlink -f` finds it), and the environment variable is only
    touched for directories that exist.
    """
    variable = "DYLD_LIBRARY_PATH" if platform.os == "macos" else "LD_LIBRARY_PATH"
    # Shells with `exec -a` at fixed paths (dash, Debian's /bin/sh, has none), as venvstacks picks
    # them; started without the user's start-up files (`-f`: no ~/.zshenv; `-p`: no $BASH_ENV).
    shell = "/bin/zsh -f" if platform.os == "macos" else "/bin/bash -p"
    dirs = " ".join(shlex.quote(f"../{path}") for path in dynlib_dirs)
    return f"""#!{shell}
# Written by rules_venvstacks: the layer's interpreter, with the shared libraries of the layers
# below it findable by name. Appends each of their `share/venv/dynlib` that exists to
# {variable} (after what the caller set), then runs the runtime's interpreter ({WRAPPED_PYTHON})
# under this script's name, so sys.executable is this script and pyvenv.cfg is found as usual.
here=${{0%/*}}
[ "$here" = "$0" ] && here=.
if [ -L "$0" ] && ! {{ [ "$here/python" -ef "$0" ] && [ -L "$here/{WRAPPED_PYTHON}" ]; }}; then
    here=$(readlink -f -- "$0") && here=${{here%/*}} || exit 1
fi
case $here in
    /*) ;;
    .) here=$PWD ;;
    *) here=$PWD/${{here#./}} ;;
esac
for dir in {dirs}; do
    dir=$here/$dir
    [ -d "$dir" ] || continue
    case ":${{{variable}-}}:" in
        *":$dir:"*) ;;
        *) export {variable}="${{{variable}:+${variable}:}}$dir" ;;
    esac
done
exec -a "$here/python" "$here/{WRAPPED_PYTHON}" "$@"
"""
