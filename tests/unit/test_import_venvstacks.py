"""venvstacks_maint import-venvstacks (and venvstacks_spec): venvstacks' own specifications, from its sdist.

Every specification venvstacks 0.8.0b2 ships in its tests is taken here: the valid ones convert
(what cannot be said is listed, never dropped), the `error_*` ones are refused as venvstacks
refuses them. tests/integration/test_import_venvstacks.py locks and builds a converted one.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from venvstacks_maint import import_venvstacks
from venvstacks_maint.venvstacks_spec import c3_linearize, read_stack_spec
from venvstacks_testing.venvstacks_sdist import sdist_tests_dir
from venvstacks_tool.core.errors import VenvstacksError

# venvstacks' pin of minimal_project's runtime is not a release the built-in PBS table has.
PIN_NOTE = (
    "CPython 3.11.11 is not in the built-in PBS table: python_version = '3.11' takes its newest 3.11"
    " (pin 3.11.11 with venvstacks.runtime_archive tags, docs/runtimes.md)"
)

# What each of venvstacks' invalid specifications is refused for.
ERRORS = {
    "error_inconsistent_app_indexes": "application layer 'invalid': package 'Torch' comes from index 'pytorch-cu128'",
    "error_inconsistent_framework_indexes": "application layer 'invalid': package 'torch' comes from index",
    "error_inconsistent_platforms": "platform 'win_amd64' is not built by the layers below it",
    "error_inconsistent_runtime_indexes": "application layer 'invalid': package 'Torch' comes from index",
    "error_inconsistent_runtimes": "its frameworks are on different runtimes (cpython-3.11, cpython-3.12)",
    "error_invalid_linux_target_variant": "linux_target 'unknown' is not 'glibc' or 'glibc@X.Y'",
    "error_invalid_linux_target_version": "linux_target 'glibc@235' is not",
    "error_invalid_requirement_syntax": "requirement 'name<>' is not a PEP 508 dependency specifier",
    "error_launch_support_conflict": "modules 'name.py' and 'conflicting/name' are both named 'name'",
    "error_layer_dep_C3_conflict": "frameworks ['layerC', 'layerD'] have no consistent import order",
    "error_layer_dep_cycle": "framework layer 'layerB': unknown framework 'layerD'",
    "error_layer_dep_forward_reference": "framework layer 'layerC': unknown framework 'layerB'",
    "error_missing_launch_module": "module 'no_such_module.py' does not exist",
    "error_missing_layer_name": "runtimes #1: a layer needs a `name`",
    "error_missing_support_modules": "module 'no_such_module.py' does not exist",
    "error_support_modules_conflict": "are both named 'name'",
    "error_unknown_framework": "unknown framework 'framework'",
    "error_unknown_package_index": "index 'pytorch-cpu' is not declared in [[tool.uv.index]]",
    "error_unknown_platform": "unknown platform 'win32_x86_64'",
    "error_unknown_priority_index": "index 'pytorch-cpu' is not declared in [[tool.uv.index]]",
    "error_unknown_runtime": "unknown runtime 'cpython-3.11'",
}


@pytest.fixture(scope="module")
def specs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the sdist's tests folder (conversions write beside the specification); tests add, never change."""
    return Path(shutil.copytree(sdist_tests_dir(), tmp_path_factory.mktemp("sdist") / "tests"))


def test_every_error_spec_of_venvstacks_is_tested_here(specs: Path) -> None:
    assert sorted(path.stem for path in (specs / "stack_specs").glob("error_*.toml")) == sorted(ERRORS)


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_invalid_specs_are_refused_naming_file_and_layer(specs: Path, name: str) -> None:
    spec = specs / "stack_specs" / f"{name}.toml"
    with pytest.raises(VenvstacksError) as error:
        import_venvstacks.main([str(spec)])
    assert f"{spec}: " in str(error.value) and ERRORS[name] in str(error.value)
    assert not (spec.parent / import_venvstacks.BUILD_NAME).exists(), "nothing is written"


def _buildifier_problems(directory: Path) -> str:
    """What `buildifier -mode=check -lint=warn` says of the written files ('' when clean or absent)."""
    if shutil.which("buildifier") is None:
        return ""
    build = subprocess.run(
        ["buildifier", "-mode=check", "-lint=warn", str(directory / "BUILD.bazel")], capture_output=True, text=True
    )
    module = subprocess.run(
        ["buildifier", "-mode=check", "-type=module", str(directory / import_venvstacks.MODULE_FRAGMENT_NAME)],
        capture_output=True,
        text=True,
    )
    return build.stdout + build.stderr + module.stdout + module.stderr


@pytest.mark.parametrize(
    "spec",
    [
        "minimal_project/venvstacks.toml",
        "sample_project/venvstacks.toml",
        "local_wheels_project/venvstacks.toml",
        "stack_specs/lock_failure_conflict_between_layers.toml",
        "stack_specs/lock_failure_conflict_within_layer.toml",
        "stack_specs/warning_build_requirements.toml",
        "stack_specs/warning_fully_versioned.toml",
        "stack_specs/at_symbol.toml",
    ],
)
def test_valid_specs_convert_to_clean_bazel_files(specs: Path, spec: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = specs / "out" / spec
    assert import_venvstacks.main([str(specs / spec), "--output-dir", str(out), "--package", "stacks"]) == 0
    build = (out / "BUILD.bazel").read_text()
    module = (out / import_venvstacks.MODULE_FRAGMENT_NAME).read_text()
    assert "runtime_layer(" in build and "venvstacks.runtime(" in module
    assert _buildifier_problems(out) == ""
    # Whatever was printed as not converted is also written at the top of BUILD.bazel.
    for line in capsys.readouterr().err.splitlines():
        if line.startswith("import-venvstacks: not converted: "):
            assert "# - " + line.removeprefix("import-venvstacks: not converted: ") in build


def test_minimal_project_converts_with_every_gap_listed(specs: Path) -> None:
    spec = read_stack_spec(specs / "minimal_project/venvstacks.toml")
    conversion = import_venvstacks.convert(spec, "")
    assert conversion.not_converted == [
        "runtime 'cpython-3.11': platform 'win_arm64' is not supported by rules_venvstacks",
        f"runtime 'cpython-3.11': {PIN_NOTE}",
        "application layer 'disabled': `platforms = []` disables it in venvstacks: no target",
    ]
    assert conversion.locks == [
        "framework-layerA",
        "framework-layerB",
        "framework-layerC",
        "framework-layerD",
        "framework-layerE",
        "framework-layerF@1",  # '@' in a name, as venvstacks allows it
        "app-empty",
        "app-no-framework",
    ]
    build = import_venvstacks.render_build(conversion, "venvstacks.toml")
    assert 'frameworks = [\n        ":framework-layerB",\n        ":framework-layerC",\n    ],' in build
    assert 'srcs = ["empty.py"],' in build and 'launch_module = "empty",' in build
    # Named indexes: declared once in MODULE.bazel; the runtime's package_indexes go on the layers
    # right on it (those above inherit them in Bazel as in venvstacks), priority_indexes as written.
    layer_a = build[build.index('name = "framework-layerA"') :].partition("\n)")[0]
    assert 'package_indexes = {"venvstacks": "pypi-named"},' in layer_a
    assert 'priority_indexes = ["pypi-named"],' in layer_a
    layer_b = build[build.index('name = "framework-layerB"') :].partition("\n)")[0]
    assert "package_indexes" not in layer_b and "priority_indexes" not in layer_b
    module = import_venvstacks.render_module(conversion, "venvstacks.toml")
    assert 'python_version = "3.11",' in module and 'glibc_minimum = "2.28",' in module
    assert 'venvstacks.index(\n    name = "pypi-named",\n    url = "https://pypi.org/simple/",\n)' in module
    assert 'file = "//:pylock.app-no-framework.toml",' in module


SPEC_WITH_MODULE_FOLDERS = """
[[runtimes]]
name = "cpython-3.11"
python_implementation = "cpython@3.11.11"
requirements = []
platforms = ["linux_x86_64"]

[[applications]]
name = "client"
launch_module = "launch_modules/scipy_client"
support_modules = ["support_modules/app_support.py"]
runtime = "cpython-3.11"
requirements = []
versioned = true

[[applications]]
name = "other"
launch_module = "launch_modules/scipy_import.py"
support_modules = ["support_modules/app_support.py"]
runtime = "cpython-3.11"
requirements = []
"""


def test_launch_modules_in_folders_become_libraries_at_the_top_of_site_packages(specs: Path) -> None:
    """sample_project's modules (its own apps also use a module outside its folder: those are listed)."""
    spec = specs / "sample_project/folders.toml"
    spec.write_text(SPEC_WITH_MODULE_FOLDERS)
    conversion = import_venvstacks.convert(read_stack_spec(spec), "")
    build = import_venvstacks.render_build(conversion, "folders.toml")
    assert 'srcs = glob(["launch_modules/scipy_client/**/*.py"]),' in build
    assert build.count('name = "module.support_modules_app_support",') == 1, "one library shared by both apps"
    assert 'imports = ["launch_modules"],' in build and 'launch_module = "scipy_client",' in build
    assert conversion.not_converted == [f"runtime 'cpython-3.11': {PIN_NOTE}"]
    client = build[build.index('name = "app-client"') :].partition("\n)")[0]
    assert "versioned = True," in client, "venvstacks' `versioned = true` is carried over"
    assert "versioned" not in build[build.index('name = "app-other"') :]
    sample = import_venvstacks.convert(read_stack_spec(specs / "sample_project/venvstacks.toml"), "")
    assert (
        "application layer 'scipy-import': modules ['../minimal_project/empty.py'] are outside the"
        " specification's folder (its Bazel package)" in sample.not_converted
    )


SPEC_WITH_NARROWER_LAYERS = """
[[runtimes]]
name = "cpython-3.11"
python_implementation = "cpython@3.11.11"
requirements = []
platforms = ["linux_x86_64", "macosx_arm64", "win_amd64", "win_arm64"]

[[frameworks]]
name = "mlx"
runtime = "cpython-3.11"
requirements = []
platforms = ["macosx_arm64", "win_arm64"]

[[frameworks]]
name = "mlx-tools"
frameworks = ["mlx"]
requirements = []
platforms = ["macosx_arm64"]

[[frameworks]]
name = "everywhere"
runtime = "cpython-3.11"
requirements = []
platforms = ["linux_x86_64", "macosx_arm64", "win_amd64", "win_arm64"]

[[frameworks]]
name = "arm-windows-only"
runtime = "cpython-3.11"
requirements = []
platforms = ["win_arm64"]
"""


def test_a_layers_narrower_platforms_convert_to_its_platforms(specs: Path) -> None:
    """venvstacks' per-layer `platforms`, narrower than the runtime's: the layer's `platforms` here."""
    spec = specs / "sample_project/narrower.toml"
    spec.write_text(SPEC_WITH_NARROWER_LAYERS)
    conversion = import_venvstacks.convert(read_stack_spec(spec), "")
    build = import_venvstacks.render_build(conversion, "narrower.toml")

    def block(target: str) -> str:
        return build[build.index(f'name = "{target}"') :].partition("\n)")[0]

    # win_arm64 has no PBS target here: the runtime's conversion lists it, once.
    assert 'platforms = ["macos_arm64"],' in block("framework-mlx")
    assert 'platforms = ["macos_arm64"],' in block("framework-mlx-tools")
    assert "platforms" not in block("framework-everywhere"), "the runtime's platforms: nothing to say"
    assert conversion.not_converted == [
        "runtime 'cpython-3.11': platform 'win_arm64' is not supported by rules_venvstacks",
        f"runtime 'cpython-3.11': {PIN_NOTE}",
        "framework layer 'arm-windows-only': platforms ['win_arm64']: none is a platform rules_venvstacks builds for",
    ]


def test_a_uv_settings_file_is_listed_not_dropped(specs: Path, tmp_path: Path) -> None:
    project = Path(shutil.copytree(specs / "minimal_project", tmp_path / "project"))
    (project / "venvstacks.uv.toml").write_text('exclude-newer = "2025-01-01T00:00:00Z"\n')
    conversion = import_venvstacks.convert(read_stack_spec(project / "venvstacks.toml"), "")
    assert "venvstacks.uv.toml: ignored, as venvstacks ignores it beside [tool.uv]" in conversion.not_converted


def test_names_with_at_convert_and_a_versioned_runtime_is_listed(specs: Path) -> None:
    """venvstacks' at_symbol.toml: runtimes named `cpython@3.11` and a versioned `cpython@3.12`."""
    conversion = import_venvstacks.convert(read_stack_spec(specs / "stack_specs/at_symbol.toml"), "")
    build = import_venvstacks.render_build(conversion, "at_symbol.toml")
    assert 'name = "cpython@3.11",' in build and 'name = "cpython@3.12",' in build
    assert (
        "runtime 'cpython@3.12': versioned = True: a runtime layer is not versioned here (it has no lock to count"
        " versions of)" in conversion.not_converted
    )
    assert not any("cpython@3.11': versioned" in item for item in conversion.not_converted)


def test_strict_writes_nothing_when_something_is_not_converted(specs: Path) -> None:
    with pytest.raises(VenvstacksError, match="not converted"):
        import_venvstacks.main([str(specs / "minimal_project/venvstacks.toml"), "--strict"])
    assert not (specs / "minimal_project/BUILD.bazel").exists()


def test_c3_linearization_is_venvstacks_order() -> None:
    """minimal_project's expectations: D on B and C (both on A); F on E on B."""
    below = {"A": [], "B": ["A"], "C": ["A"], "E": ["B", "A"]}
    assert c3_linearize(["B", "C"], below) == ["B", "C", "A"]
    below["D"], below["F"] = ["B", "C", "A"], ["E", "B", "A"]
    assert c3_linearize(["D", "F"], below) == ["D", "F", "E", "B", "C", "A"]
    assert c3_linearize(["C", "D"], {"C": ["A", "B"], "D": ["B", "A"]}) is None
