"""Tests of shadowing across layers: a layer's contents (build.layer_contents), the stack check (build.stack_checks)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from venvstacks_testing.layer_inputs import SITE, XY
from venvstacks_testing.wheel_index import record_hash
from venvstacks_tool.build.layer_contents import (
    APPLICATION_SRCS,
    LayerContents,
    NameEntry,
    first_party_clash,
    read_contents,
    scan_layer,
    write_contents,
)
from venvstacks_tool.build.stack_checks import (
    first_party_errors,
    launch_module_error,
    missing_hub_imports,
    shadowing_warnings,
)
from venvstacks_tool.core import cli
from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.core.platforms import by_name

NODOT = XY.replace(".", "")
SUFFIXES = by_name("linux_x86_64").extension_suffixes(XY)


def _write(path: Path, data: bytes = b"") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_scan_names_what_the_path_finder_would_import(tmp_path: Path) -> None:
    layer = tmp_path / "fw"
    site = layer / SITE
    _write(site / "pkg/__init__.py")
    _write(site / "pkg.py")  # a package wins over a module of its name, as in importlib
    _write(site / f"fast.cpython-{NODOT}-x86_64-linux-gnu.so")
    _write(site / "fast.py")  # an extension module wins over a source module
    _write(site / "plain.py")
    _write(site / "compiled.pyc")
    _write(site / "google/protobuf/__init__.py")  # PEP 420 portion
    _write(site / "legacy/__init__.py", b"__path__ = __import__('pkgutil').extend_path(__path__, __name__)\n")
    _write(site / "nvidia/__init__.py")  # a regular package, even if empty
    _write(site / "fw.libs/libx.so")  # not an identifier: not importable
    _write(site / "_venvstacks_stack.py")  # the stacking module, in every layer
    _write(site / "hook.pth")
    _write(site / "mylib/__init__.py")  # first-party, from a library of `deps`
    record = f"pkg/__init__.py,{record_hash(b'')},0\npkg.py,,\n../../../bin/tool,,\n"
    _write(site / "pkg_dist-2.0.dist-info/RECORD", record.encode())
    first_party = {"plain.py": APPLICATION_SRCS, "mylib": "//libs/mylib:mylib"}
    contents = scan_layer(layer, SITE, SUFFIXES, first_party, {"libx.so": f"{SITE}/fw.libs/libx.so"}, ("base",))
    kinds = {name: (entry.kind, entry.path.removeprefix(f"fw/{SITE}/")) for name, entry in contents.names.items()}
    assert kinds == {
        "compiled": ("sourceless", "compiled.pyc"),
        "fast": ("extension", f"fast.cpython-{NODOT}-x86_64-linux-gnu.so"),
        "google": ("namespace", "google/"),
        "legacy": ("namespace", "legacy/__init__.py"),
        "mylib": ("package", "mylib/__init__.py"),
        "nvidia": ("package", "nvidia/__init__.py"),
        "pkg": ("package", "pkg/__init__.py"),
        "plain": ("module", "plain.py"),
    }
    assert contents.names["pkg"].owner == "pkg_dist 2.0"
    assert contents.names["plain"].owner == APPLICATION_SRCS
    assert contents.names["nvidia"].owner == ""
    assert contents.names["mylib"].owner == "//libs/mylib:mylib"
    assert {name for name, entry in contents.names.items() if entry.first_party} == {"mylib", "plain"}
    assert contents.dynlibs == {"libx.so": f"fw/{SITE}/fw.libs/libx.so"}
    path = tmp_path / "_fw.contents.json"
    write_contents(path, contents)
    assert read_contents(path, "up") == contents
    assert path.read_bytes() == json.dumps(json.loads(path.read_bytes()), indent=2, sort_keys=True).encode() + b"\n"


def _layer(
    name: str,
    lower: tuple[str, ...] = (),
    dynlibs: dict[str, str] | None = None,
    first_party: tuple[str, ...] = (),
    **names: str,
) -> LayerContents:
    """Contents of `name`: keyword NAME="kind" gives a top-level name of that kind (first-party if listed)."""
    entries = {
        top: NameEntry(
            kind,
            f"{name}/{SITE}/{top}" + ("/" if kind == "namespace" else ".py"),
            f"//libs:{top}" if top in first_party else f"{top}-{name} 1.0",
            top in first_party,
        )
        for top, kind in names.items()
    }
    return LayerContents(name, lower, entries, {lib: f"{name}/{path}" for lib, path in (dynlibs or {}).items()})


def test_namespace_portions_merge_without_a_warning() -> None:
    stack = [_layer("app", google="namespace"), _layer("fw", google="namespace")]
    assert shadowing_warnings(stack) == []


def test_a_name_in_two_layers_warns_naming_both_files_and_which_wins() -> None:
    stack = [_layer("app", ("fw",), cv2="module"), _layer("fw", cv2="package")]
    (warning,) = shadowing_warnings(stack)
    assert warning == (
        f"top-level name 'cv2': 'app/{SITE}/cv2.py' (layer 'app', from cv2-app 1.0) hides"
        f" 'fw/{SITE}/cv2.py' (layer 'fw', from cv2-fw 1.0) in layer 'app' and the layers above it"
    )


def test_a_regular_package_below_a_namespace_portion_wins_and_hides_it() -> None:
    stack = [_layer("app", google="namespace"), _layer("fw", google="package")]
    (warning,) = shadowing_warnings(stack)
    assert warning.startswith(
        f"top-level name 'google': 'fw/{SITE}/google.py' (layer 'fw', from google-fw 1.0) hides 'app/"
    )


def test_a_clash_between_frameworks_is_reported_once_by_the_lowest_layer_that_sees_both() -> None:
    a, b = _layer("a", foo="package"), _layer("b", foo="package")
    both = _layer("both", ("a", "b"))
    # `both` sits on a and b: its own check reports the clash; an app above `both` does not repeat it.
    assert len(shadowing_warnings([both, a, b])) == 1
    assert shadowing_warnings([_layer("app", ("both", "a", "b")), both, a, b]) == []
    # Two sibling frameworks that no lower layer joins: the app is the first to see both.
    (warning,) = shadowing_warnings([_layer("app", ("a", "b")), a, b])
    assert "'a/" in warning and "'b/" in warning


def test_a_shared_library_in_two_layers_warns() -> None:
    stack = [_layer("app", ("fw",), {"libz.so": "x/libz.so"}), _layer("fw", dynlibs={"libz.so": "y/libz.so"})]
    (warning,) = shadowing_warnings(stack)
    assert warning.startswith(
        "shared library 'libz.so' is in several layers: 'app/x/libz.so' (layer 'app'), 'fw/y/libz.so'"
    )


def test_a_launch_module_that_a_lower_layer_provides_is_an_error_naming_both() -> None:
    app, fw = _layer("app", ("fw",), tool="module"), _layer("fw", tool="package")
    error = launch_module_error(app, [fw], "tool.main")
    assert error == (
        f"application layer 'app': launch_module 'tool.main' is 'app/{SITE}/tool.py' (layer 'app', from tool-app 1.0),"
        f" and 'fw/{SITE}/tool.py' (layer 'fw', from tool-fw 1.0) has the same top-level name 'tool': one hides"
        " the other from the whole stack; rename the launch module"
    )
    assert launch_module_error(app, [_layer("fw", other="package")], "tool") is None
    both_namespaces = _layer("app", tool="namespace"), _layer("fw", tool="namespace")
    assert launch_module_error(both_namespaces[0], [both_namespaces[1]], "tool.main") is None


def test_the_command_fails_on_an_error_and_writes_the_warnings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = {}
    for contents in (_layer("app", ("fw",), tool="module", cv2="module"), _layer("fw", tool="package", cv2="package")):
        paths[contents.layer_name] = tmp_path / f"_{contents.layer_name}.contents.json"
        write_contents(paths[contents.layer_name], contents)
    argv = ["check-layer-stack", "--layer-name", "app", "--contents", str(paths["app"])]
    argv += ["--lower-contents", str(paths["fw"]), "--output", str(tmp_path / "report.txt")]
    assert cli.main([*argv, "--launch-module", "tool"]) == 1
    assert "launch_module 'tool'" in capsys.readouterr().err
    assert not (tmp_path / "report.txt").exists()
    assert cli.main([*argv, "--launch-module", "app_main"]) == 0
    report = (tmp_path / "report.txt").read_text()
    assert capsys.readouterr().out == report
    assert [line.split(":")[0:3] for line in report.splitlines()] == [
        ["warning", " layer 'app'", " top-level name 'cv2'"],
        ["warning", " layer 'app'", " top-level name 'tool'"],
    ]


def test_contents_of_another_layer_or_not_contents_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    write_contents(path, _layer("fw"))
    with pytest.raises(VenvstacksError, match="is layer 'fw''s contents"):
        from venvstacks_tool.build.stack_checks import StackCheck, check_stack

        check_stack(StackCheck("app", path, (), "", (), "", tmp_path / "out"))
    path.write_text("{}")
    with pytest.raises(VenvstacksError, match="is not a layer contents file"):
        read_contents(path, "app")


def test_first_party_code_sharing_a_name_with_another_layer_is_an_error_naming_both() -> None:
    # First-party above a locked package, and a locked package above first-party code.
    for app_first, fw_first in ((("shared",), ()), ((), ("shared",))):
        stack = [
            _layer("app", ("fw",), first_party=app_first, shared="package"),
            _layer("fw", first_party=fw_first, shared="package"),
        ]
        assert shadowing_warnings(stack) == []
        (error,) = first_party_errors(stack)
        assert error.startswith(f"top-level name 'shared': 'app/{SITE}/shared.py' (layer 'app', from "), error
        assert f"'fw/{SITE}/shared.py' (layer 'fw', from " in error and "//libs:shared" in error, error
        assert "rename the first-party module" in error
    # Namespace portions on every side still merge, first-party or not.
    merging = [_layer("app", first_party=("acme",), acme="namespace"), _layer("fw", acme="namespace")]
    assert first_party_errors(merging) == [] and shadowing_warnings(merging) == []
    # Between two frameworks: reported by the lowest layer that sees both, once.
    a, b = _layer("a", first_party=("foo",), foo="package"), _layer("b", foo="package")
    assert len(first_party_errors([_layer("app", ("a", "b")), a, b])) == 1
    assert first_party_errors([_layer("top", ("app", "a", "b")), _layer("app", ("a", "b")), a, b]) == []


def test_hub_imports_are_provided_by_a_locked_package_of_the_layer_or_of_a_layer_below() -> None:
    own = _layer("app", ("fw",), first_party=("mine",), apppkg="package", mine="package")
    stack = [own, _layer("fw", first_party=("fwlib",), shared="package", fwlib="package")]
    needed = (("apppkg", "//a:a -> @@hub//apppkg:pkg"), ("shared", "//a:a -> @@hub//shared:pkg"))
    assert missing_hub_imports(stack, needed, "//stacks:app.lock") == []
    # First-party code never stands in for a third-party package, in this layer or below.
    (mine, fwlib, absent) = missing_hub_imports(
        stack,
        (("mine", "//a:a -> @@hub//mine:pkg"), ("fwlib", "//b:b"), ("numpy", "//a:a -> @@hub//numpy:pkg")),
        "//stacks:app.lock",
    )
    assert "'mine'" in mine and "'fwlib'" in fwlib
    assert absent == (
        "//a:a -> @@hub//numpy:pkg needs the import name 'numpy', which no locked package of this layer or of a"
        " layer below provides (third-party packages come from the lock); add the requirement to //stacks:app's"
        " requirements and run `bazel run //stacks:app.lock`"
    )


def test_the_command_reports_every_error_and_checks_its_hub_arguments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "_app.contents.json"
    write_contents(path, _layer("app", first_party=("mylib",), mylib="package"))
    argv = ["check-layer-stack", "--layer-name", "app", "--contents", str(path), "--output", str(tmp_path / "r.txt")]
    assert (
        cli.main([*argv, "--hub-import", "mylib=//libs:mylib -> @@hub//mylib:pkg", "--hub-import", "numpy=//x:x"]) == 1
    )
    assert "--hub-import needs --lock-target" in capsys.readouterr().err
    argv += ["--lock-target", "//stacks:app.lock"]
    assert cli.main([*argv, "--hub-import", "numpy"]) == 1
    assert "--hub-import 'numpy' is not of the form NAME=PATH" in capsys.readouterr().err
    assert (
        cli.main([*argv, "--hub-import", "mylib=//libs:mylib -> @@hub//mylib:pkg", "--hub-import", "numpy=//x:x"]) == 1
    )
    err = capsys.readouterr().err
    assert "needs the import name 'mylib'" in err and "needs the import name 'numpy'" in err, err
    assert not (tmp_path / "r.txt").exists()
    assert cli.main(argv) == 0 and (tmp_path / "r.txt").read_text() == ""


def _site_with_wheel(tmp_path: Path, files: dict[str, bytes]) -> Path:
    site = tmp_path / SITE
    for name, data in files.items():
        _write(site / name, data)
    record = "".join(f"{name},,\n" for name in files)
    _write(site / "dist-1.0.dist-info/RECORD", record.encode())
    return site


def test_first_party_code_with_the_name_of_a_locked_package_of_the_same_layer(tmp_path: Path) -> None:
    site = _site_with_wheel(tmp_path, {"shared/__init__.py": b"", "acme/tools/__init__.py": b"", "six.py": b""})
    owners = {"shared": "//libs:fake_shared", "six.py": "//libs:six"}
    error = first_party_clash(site, ["shared/extra.py"], owners, "fw")
    assert error == (
        "layer 'fw': the first-party package 'shared' ('shared', from //libs:fake_shared) has the top-level name"
        " of the locked package dist 1.0 ('shared') of the same layer: one would overwrite or hide the other;"
        " rename the first-party module or drop the requirement"
    )
    assert "first-party module 'six' ('six.py', from //libs:six)" in str(
        first_party_clash(site, ["six.py"], owners, "fw")
    )
    # A first-party package against the wheel's module of one name, from the application's srcs.
    assert "module 'six'" not in str(first_party_clash(site, ["six/__init__.py"], {}, "app"))
    assert f"from {APPLICATION_SRCS}" in str(first_party_clash(site, ["six/__init__.py"], {}, "app"))
    # Two namespace portions are one directory: they merge. Other names are the layer's own.
    assert first_party_clash(site, ["acme/mine/__init__.py", "mylib/__init__.py"], {}, "fw") is None
    assert first_party_clash(site, ["acme/__init__.py"], {}, "fw") is not None
