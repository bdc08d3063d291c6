"""Lower layers are full site directories: their `.pth` files run for the layers above.

Three layers are built in-process with the host Python (as in test_deploy.py) and deployed:

    app       nsapp: `nsroot/apppart` and a legacy `*-nspkg.pth` for `nsroot`
    fw_top    toppkg, on fw_base
    fw_base   basepkg with (a) a `.pth` appending a directory, (b) a `.pth` whose `import` line
              installs an import hook and records that it ran, (c) the other half of the legacy
              `nsroot` namespace package, with its `*-nspkg.pth`
    runtime   the host interpreter, with a `.pth` of its own in its site-packages

`app` lists both frameworks (fw_top, then fw_base: the C3 order). Its interpreter must process
fw_top's, fw_base's and the runtime's site-packages in that order, each once, as `site.addsitedir`
does, and `-S` and `-I` must behave as Python defines them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sysconfig
from pathlib import Path
from typing import Any

import pytest

from venvstacks_testing.layer_inputs import SITE, XY, build, build_argv, make_runtime_dir, sha256
from venvstacks_testing.wheel_index import build_wheel
from venvstacks_tool.core import cli

RUNTIME = "cpython_rt"

# What each `.pth` import line records, in the order they run.
_RECORD = "import sys; sys.__dict__.setdefault('_pth_order', []).append({!r})"


def _nspkg_line(package: str) -> bytes:
    """The `-nspkg.pth` line setuptools wrote for a namespace package portion (Python 3 form).

    It reads `sitedir` from the frame of `site.addpackage`, so it only works when `site` itself
    processes the directory.
    """
    return (
        "import sys, types, os;has_mfs = sys.version_info > (3, 5);"
        f"p = os.path.join(sys._getframe(1).f_locals['sitedir'], *('{package}',));"
        "importlib = has_mfs and __import__('importlib.util');"
        "has_mfs and __import__('importlib.machinery');"
        f"m = has_mfs and sys.modules.setdefault('{package}', importlib.util.module_from_spec("
        f"importlib.machinery.PathFinder.find_spec('{package}', [os.path.dirname(p)])));"
        f"m = m or sys.modules.setdefault('{package}', types.ModuleType('{package}'));"
        "mp = (m or []) and m.__dict__.setdefault('__path__',[]);"
        "(p not in mp) and mp.append(p)\n"
    ).encode()


_BASEHOOK = b'''"""An import hook: makes `virtualmod` importable, with nothing on disk."""
import importlib.abc
import importlib.machinery
import sys


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):
        return importlib.machinery.ModuleSpec(name, self) if name == "virtualmod" else None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        module.VALUE = "from the hook"


sys.meta_path.append(_Finder())
sys.__dict__.setdefault("_pth_order", []).append("fw_base hook")
'''

_PROBE = b"""import json, sys
import basepkg, toppkg, extramod, virtualmod
import nsroot.basepart, nsroot.apppart
print(json.dumps({
    "order": sys._pth_order,
    "path": sys.path,
    "extramod": extramod.__file__,
    "virtualmod": virtualmod.VALUE,
    "nsroot": [str(p) for p in sys.modules["nsroot"].__path__],
    "parts": [nsroot.basepart.WHERE, nsroot.apppart.WHERE],
    "top": toppkg.BASE,
}))
"""


def _wheels(directory: Path) -> dict[str, Path]:
    base = build_wheel(
        directory,
        "basepkg",
        "1.0",
        files={
            "basepkg/__init__.py": b"VALUE = 'base'\n",
            # (a) a directory appended to sys.path by a plain .pth line.
            "basepkg_extra.pth": b"basepkg_extra\n",
            "basepkg_extra/extramod.py": b"WHERE = 'extra'\n",
            # (b) an import line: an import hook, recording that it ran.
            "basehook.py": _BASEHOOK,
            "basepkg_hook.pth": b"import basehook\n",
            # (c) one portion of a legacy namespace package.
            "nsroot/basepart/__init__.py": b"WHERE = 'fw_base'\n",
            "basepkg-1.0-py3-nspkg.pth": _nspkg_line("nsroot"),
        },
    )
    top = build_wheel(
        directory, "toppkg", "1.0", files={"toppkg/__init__.py": b"import basepkg\nBASE = basepkg.VALUE\n"}
    )
    nsapp = build_wheel(
        directory,
        "nsapp",
        "1.0",
        files={
            "nsroot/apppart/__init__.py": b"WHERE = 'app'\n",
            "nsapp-1.0-py3-nspkg.pth": _nspkg_line("nsroot"),
        },
    )
    return {"base": base, "top": top, "nsapp": nsapp}


def make_runtime_with_pth(dest: Path) -> Path:
    """A runtime layer backed by the host interpreter (layer_inputs.make_runtime_dir), with a `.pth` of its own."""
    runtime = make_runtime_dir(dest, RUNTIME)
    site = runtime / "lib" / f"python{XY}" / "site-packages"
    (site / "runtime_marker.pth").write_text(_RECORD.format("runtime") + "\n")
    return runtime


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("stack")
    wheels = _wheels(root / "wheels")
    out = root / "out"
    build(build_argv(out, "fw_base", runtime=RUNTIME, wheels=[wheels["base"]]))
    build(
        build_argv(out, "fw_top", runtime=RUNTIME, wheels=[wheels["top"]], lower=("fw_base",)),
        required={"fw_base": sha256(out / "fw_base.tar.zst")},
    )
    (root / "src/probe").mkdir(parents=True)
    (root / "src/probe/__main__.py").write_bytes(_PROBE)
    (root / "src/probe/__init__.py").write_bytes(b"")
    build(
        build_argv(
            out,
            "app",
            kind="application",
            runtime=RUNTIME,
            wheels=[wheels["nsapp"]],
            lower=("fw_top", "fw_base"),
            app_files={
                "probe/__main__.py": root / "src/probe/__main__.py",
                "probe/__init__.py": root / "src/probe/__init__.py",
            },
            launch_module="probe",
        ),
        required={"fw_top": sha256(out / "fw_top.tar.zst"), "fw_base": sha256(out / "fw_base.tar.zst")},
    )
    dest = root / "dest"
    make_runtime_with_pth(dest)
    argv = ["deploy", "--dest", str(dest)]
    for layer in ("fw_base", "fw_top", "app"):
        argv += ["--archive", str(out / f"{layer}.tar.zst")]
    assert cli.main(argv) == 0
    return dest


def run(command: list[str | Path], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `command` without the host's Python environment variables (plus `env`)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    return subprocess.run(
        [str(c) for c in command], capture_output=True, text=True, env={**clean, **(env or {})}, cwd=cwd, check=False
    )


def probe(deployed: Path, *flags: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = run([deployed / "app/bin/python", *flags, "-m", "probe"], cwd=deployed.parent, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_lower_layers_pth_files_run_in_stack_order(deployed: Path) -> None:
    seen = probe(deployed)
    # Each lower layer's .pth files ran once, the frameworks' before the runtime's.
    assert seen["order"] == ["fw_base hook", "runtime"]
    # (a) The appended directory comes right after its layer's site-packages, before the runtime's.
    site_entries = [p for p in seen["path"] if "site-packages" in p]
    assert site_entries == [
        str(deployed / "app" / SITE),
        str(deployed / "fw_top" / SITE),
        str(deployed / "fw_base" / SITE),
        str(deployed / "fw_base" / SITE / "basepkg_extra"),
        str(deployed / RUNTIME / SITE),
    ]
    assert seen["extramod"] == str(deployed / "fw_base" / SITE / "basepkg_extra" / "extramod.py")
    # (b) The import hook a framework's .pth installed serves the application.
    assert seen["virtualmod"] == "from the hook"
    # (c) The legacy namespace package has both layers' portions, the application's first.
    assert seen["nsroot"] == [str(deployed / "app" / SITE / "nsroot"), str(deployed / "fw_base" / SITE / "nsroot")]
    assert seen["parts"] == ["fw_base", "app"]
    assert seen["top"] == "base"


def test_a_framework_sees_its_own_lower_layers(deployed: Path) -> None:
    code = "import basepkg, virtualmod, sys; print(sys._pth_order, basepkg.__file__)"
    result = run([deployed / "fw_top/bin/python", "-c", code], cwd=deployed.parent)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"['fw_base hook', 'runtime'] {deployed / 'fw_base' / SITE / 'basepkg/__init__.py'}\n"


def test_no_site_means_no_lower_layers(deployed: Path) -> None:
    """`-S`: `site` does not run, so no site-packages and no `.pth` file at all, as in any Python."""
    code = (
        "import importlib.util, json, sys; print(json.dumps([getattr(sys, '_pth_order', None),"
        " 'nsroot' in sys.modules, importlib.util.find_spec('basepkg') is None,"
        " [p for p in sys.path if 'site-packages' in p]]))"
    )
    result = run([deployed / "app/bin/python", "-S", "-c", code], cwd=deployed.parent)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [None, False, True, []]


def test_isolated_mode_keeps_the_stack_and_drops_the_user_site(deployed: Path, tmp_path: Path) -> None:
    """`-I`: `site` runs (the stack is there) without the user site or PYTHON* variables."""
    user_site = Path(sysconfig.get_path("purelib", f"{os.name}_user", vars={"userbase": str(tmp_path / "userbase")}))
    user_site.mkdir(parents=True)
    (user_site / "usermod.py").write_text("")
    (tmp_path / "pythonpath").mkdir()
    (tmp_path / "pythonpath" / "pathmod.py").write_text("")
    env = {"PYTHONUSERBASE": str(tmp_path / "userbase"), "PYTHONPATH": str(tmp_path / "pythonpath")}
    seen = probe(deployed, "-I", env=env)
    assert seen["order"] == ["fw_base hook", "runtime"]
    assert seen["virtualmod"] == "from the hook"
    assert str(user_site) not in seen["path"]
    assert str(tmp_path / "pythonpath") not in seen["path"]


def test_postinstall_again_changes_nothing(deployed: Path) -> None:
    """Running a deployed layer's postinstall.py again (a deployer may) leaves the stack as it is."""
    before = {p: p.read_bytes() for p in sorted((deployed / "app" / SITE).glob("_venvstacks_stack.*"))}
    result = run([deployed / RUNTIME / "bin/python3", "-I", deployed / "app/postinstall.py"], cwd=deployed.parent)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert {p: p.read_bytes() for p in before} == before
    assert probe(deployed)["order"] == ["fw_base hook", "runtime"]
