"""Checks of a layer's first-party code, made when its archive is built (not only by `.test`).

* A module and a package of one name (`name.py` beside `name/__init__.py`, from the
  first-party files or a wheel of the layer) shadow each other: which one Python imports
  depends on the directory order of site-packages, never what the author meant.
* An application's launch module must be in the layer: `python -m <launch_module>` in a
  deployed stack would otherwise fail at the first start, far from the build that could have
  said so.
"""

from __future__ import annotations

import os
from pathlib import Path

from venvstacks_tool.core.errors import VenvstacksError


def _module_forms(site: Path, dotted: str) -> list[Path]:
    """The files or directories that make `dotted` importable from `site`, and what is there of them."""
    base = site.joinpath(*dotted.split("."))
    candidates = [base.with_name(base.name + ".py"), base / "__init__.py", base]
    return [path for path in candidates if os.path.lexists(path)]


def check_no_shadowing(site: Path, names: list[str], where: str) -> None:
    """Fail if a top-level module of site-packages is both `name.py` and a package `name/`.

    `names` are the first-party files' destinations (relative POSIX paths): each `x.py` or
    `x/...` among them is checked against what the wheels installed too. `where` names the layer
    in the message ("application layer 'app'").
    """
    tops = sorted({name.split("/")[0].removesuffix(".py") for name in names if name.split("/")[0] != "__pycache__"})
    for top in tops:
        module, package = site / f"{top}.py", site / top
        if module.is_file() and package.is_dir():
            raise VenvstacksError(
                f"{where}: {top}.py and the package {top}/ are both in site-packages and"
                " shadow each other; rename one of them"
            )


def check_launch_module(site: Path, launch_module: str, layer: str) -> None:
    """Fail unless `launch_module` (dotted) is a module or package inside the layer's site-packages."""
    found = _module_forms(site, launch_module)
    if not any(path.is_file() or (path / "__main__.py").is_file() for path in found):
        relative = launch_module.replace(".", "/")
        raise VenvstacksError(
            f"application layer {layer!r}: launch_module {launch_module!r} is in none of its srcs and none of"
            f" its wheels (looked for {relative}.py and {relative}/__init__.py in site-packages)"
        )
