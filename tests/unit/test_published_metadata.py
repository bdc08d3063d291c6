"""build/published_metadata.py: venvstacks' published layer metadata, held to venvstacks' field list."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from venvstacks_testing.layer_inputs import write_lower_record
from venvstacks_testing.venvstacks_sdist import sdist_tests_dir
from venvstacks_tool.build.published_metadata import published_metadata
from venvstacks_tool.core import cli
from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.core.launch_module import SupportModule, module_hash, support_modules
from venvstacks_tool.core.platforms import PLATFORMS, by_name, by_venvstacks_name
from venvstacks_tool.core.protocol import ArchiveRecord

ROOT = Path(__file__).resolve().parents[2]
FIELDS = ROOT / "tests/golden/venvstacks_published_fields.txt"
TYPES = {"str": str, "int": int, "bool": bool, "list": list, "dict": dict}
RECORD = ArchiveRecord("app", "app.tar.zst", "tar.zst", "ab" * 32, 1234)


def documented_fields() -> dict[str, tuple[type, str, str]]:
    """name -> (type, layers, presence) from the golden field list."""
    fields = {}
    for line in FIELDS.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            name, type_name, layers, presence = line.split()
            fields[name] = (TYPES[type_name], layers, presence)
    return fields


HELPERS = (SupportModule("helpers", "sha256/" + "01" * 32),)


def metadata_of(
    kind: str, platform: str = "linux_x86_64", support: tuple[SupportModule, ...] = HELPERS
) -> dict[str, object]:
    return published_metadata(
        record=RECORD,
        kind=kind,
        requirements_hash="sha256:" + "cd" * 32,
        locked_at_epoch=1756252800,
        runtime_layer="cpython3_12",
        python_version="3.12.7",
        platform=by_name(platform),
        required_layers=[] if kind == "runtime" else ["numpy", "base"],
        launch_module="app.cli" if kind == "application" else "",
        launch_module_hash="sha256:" + "ef" * 32 if kind == "application" else None,
        support_modules=support if kind == "application" else (),
    )


@pytest.mark.parametrize("kind", ["runtime", "framework", "application"])
def test_fields_are_venvstacks_documented_ones(kind: str) -> None:
    """Every documented field a layer of this kind may have is written, with its type; no other field."""
    metadata = metadata_of(kind)
    expected = {
        name
        for name, (_, layers, _) in documented_fields().items()
        if layers == "all" or (layers == "layered" and kind != "runtime") or (layers == kind)
    }
    assert set(metadata) == expected
    for name, value in metadata.items():
        assert isinstance(value, documented_fields()[name][0]), name


def test_values_follow_venvstacks_conventions() -> None:
    app = metadata_of("application")
    assert app["locked_at"] == "2025-08-27T00:00:00+00:00"
    assert app["python_implementation"] == "cpython@3.12.7"
    assert app["target_platform"] == "linux_x86_64"
    assert app["archive_hashes"] == {"sha256": "ab" * 32}
    assert app["install_target"] == app["layer_name"] == "app"
    assert app["required_layers"] == ["numpy", "base"]
    assert app["bound_to_implementation"] is False
    assert metadata_of("framework", "windows_x86_64")["bound_to_implementation"] is True
    assert metadata_of("runtime")["bound_to_implementation"] is True


def versioned_app(install_target: str, lock_version: int) -> dict[str, object]:
    return published_metadata(
        record=ArchiveRecord(install_target, f"{install_target}.tar.zst", "tar.zst", "ab" * 32, 1234),
        kind="application",
        requirements_hash="sha256:" + "cd" * 32,
        locked_at_epoch=0,
        runtime_layer="cpython3_12",
        python_version="3.12.7",
        platform=by_name("linux_x86_64"),
        required_layers=["numpy@2"],
        lock_version=lock_version,
    )


def test_a_versioned_layer_is_named_with_its_lock_version() -> None:
    """`install_target` NAME@N, `layer_name` NAME, `lock_version` N: venvstacks' implicitly versioned layer."""
    app = versioned_app("app@3", 3)
    assert (app["layer_name"], app["install_target"], app["lock_version"]) == ("app", "app@3", 3)
    assert (app["archive_name"], app["required_layers"]) == ("app@3.tar.zst", ["numpy@2"])
    assert metadata_of("application")["lock_version"] == 1, "an unversioned layer is version 1"
    with pytest.raises(VenvstacksError, match="a layer of lock version 4 is named NAME@4"):
        versioned_app("app@3", 4)


def test_platform_names_match_venvstacks_and_starlark() -> None:
    text = (ROOT / "rules_venvstacks/private/build/published_metadata.bzl").read_text(encoding="utf-8")
    starlark = dict(re.findall(r'"([a-z0-9_-]+)": "([a-z0-9_]+)",', text))
    assert starlark == {platform.triple: platform.venvstacks_name for platform in PLATFORMS}
    assert {p.venvstacks_name for p in PLATFORMS} == {
        "linux_x86_64",
        "linux_aarch64",
        "macosx_x86_64",
        "macosx_arm64",
        "win_amd64",
    }
    assert by_venvstacks_name("win_arm64") is None
    assert by_venvstacks_name("win_amd64") == by_name("windows_x86_64")


def _files_below(root: Path) -> dict[str, Path]:
    return {path.relative_to(root).as_posix(): path for path in root.rglob("*") if path.is_file()}


def test_launch_module_hashes_match_what_venvstacks_published() -> None:
    """A module file and a package hash as venvstacks hashed its sample project's launch modules."""
    sample = sdist_tests_dir() / "sample_project"
    app_files = _files_below(sample / "launch_modules")
    manifests = sample / "expected_manifests"
    for manifest, module in [
        ("linux_x86_64/env_metadata/app-scipy-import.json", "scipy_import"),
        ("macosx_arm64/env_metadata/app-scipy-client.json", "scipy_client"),
    ]:
        expected = json.loads((manifests / manifest).read_text(encoding="utf-8"))
        assert expected["app_launch_module"] == module
        assert module_hash(module, app_files) == expected["app_launch_module_hash"], manifest
    assert module_hash("absent", app_files) is None


def test_support_modules_match_what_venvstacks_published() -> None:
    """The sample project's support modules (`empty.py`, `app_support.py`) get venvstacks' names and hashes.

    venvstacks lists them in the order of their paths in its specification (`../minimal_project/empty.py`
    before `support_modules/app_support.py`); here there are no such paths, and the order is by name.
    """
    tests = sdist_tests_dir()
    sample = tests / "sample_project"
    app_files = {
        "scipy_import.py": sample / "launch_modules/scipy_import.py",
        "app_support.py": sample / "support_modules/app_support.py",
        "empty.py": tests / "minimal_project/empty.py",
    }
    expected = json.loads((sample / "expected_manifests/linux_x86_64/env_metadata/app-scipy-import.json").read_text())
    found = [module.as_json() for module in support_modules("scipy_import", app_files, layer="app-scipy-import")]
    assert found == sorted(expected["app_support_modules"], key=lambda module: module["name"])
    assert [module["name"] for module in found] == ["app_support", "empty"]


def test_support_modules_are_the_other_top_level_modules_and_packages(tmp_path: Path) -> None:
    """Every top-level module file and package but the launch module's; data files are no modules."""
    for name in ("app/__main__.py", "app/cli.py", "helpers.py", "tools/__init__.py", "tools/x/y.py", "data.json"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    files = _files_below(tmp_path)
    found = support_modules("app.cli", files, layer="app")
    assert found == (
        SupportModule("helpers", module_hash("helpers", files) or ""),
        SupportModule("tools", module_hash("tools", files) or ""),
    )
    assert found[1].hash.startswith("sha256/") and found[0].hash.startswith("sha256:")
    assert support_modules("app", {"app.py": tmp_path / "helpers.py"}, layer="app") == ()
    (tmp_path / "tools.py").write_text("")
    with pytest.raises(VenvstacksError, match=r"application layer 'app': 'tools.py' and 'tools/' are both"):
        support_modules("app", _files_below(tmp_path), layer="app")


def test_support_modules_are_written_only_when_there_are_some() -> None:
    assert metadata_of("application")["app_support_modules"] == [{"name": "helpers", "hash": "sha256/" + "01" * 32}]
    assert "app_support_modules" not in metadata_of("application", support=())


def test_venvstacks_own_metadata_has_only_documented_fields() -> None:
    """The golden list is venvstacks' real schema: its own published files use those fields and no other."""
    documented = set(documented_fields())
    for path in (sdist_tests_dir() / "sample_project/expected_manifests").rglob("env_metadata/*.json"):
        assert set(json.loads(path.read_text(encoding="utf-8"))) <= documented, path


def _layer_metadata_in(directory: Path) -> bytes:
    """`layer-metadata --published-metadata` of one fixed application, its inputs written below `directory`."""
    directory.mkdir(parents=True)
    lock = directory / "pylock.app.toml"
    lock.write_text("lock\n")
    app = directory / "src" / "app"
    app.mkdir(parents=True)
    (app / "__main__.py").write_text("print('hi')\n")
    (directory / "src" / "helpers.py").write_text("X = 1\n")
    records = [write_lower_record(directory, name, digest * 64) for name, digest in (("rt", "1"), ("fw", "2"))]
    own = write_lower_record(directory, "app", "3" * 64)
    published = directory / "out.json"
    argv = ["layer-metadata", "--layer-name", "app", "--layer-kind", "application", "--python-version", "3.12.7"]
    argv += ["--platform", "x86_64-unknown-linux-gnu", "--archive-format", "tar.zst", "--launch-module", "app"]
    argv += ["--lock-file", str(lock), "--archive-record", str(own), "--output", str(directory / "app.json")]
    argv += [arg for record in records for arg in ("--lower-record", str(record))]
    argv += ["--published-metadata", str(published), "--runtime-layer", "rt", "--source-date-epoch", "315532800"]
    argv += [
        "--app-file",
        f"app/__main__.py={app / '__main__.py'}",
        "--app-file",
        f"helpers.py={app.parent / 'helpers.py'}",
    ]
    assert cli.main(argv) == 0
    return published.read_bytes()


def test_the_published_file_depends_on_the_inputs_only(tmp_path: Path) -> None:
    """Inputs at two other paths give the same bytes: no path, clock or machine in the file."""
    one, two = _layer_metadata_in(tmp_path / "a"), _layer_metadata_in(tmp_path / "elsewhere" / "b")
    assert one == two
    metadata = json.loads(one)
    assert metadata["required_layers"] == ["fw"]
    assert metadata["locked_at"] == "1980-01-01T00:00:00+00:00"
    assert metadata["app_launch_module_hash"].startswith("sha256/")
    assert [module["name"] for module in metadata["app_support_modules"]] == ["helpers"]
    assert one == json.dumps(metadata, indent=2, sort_keys=True).encode() + b"\n"
