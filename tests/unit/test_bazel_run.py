"""venvstacks_maint/bazel_run.py: `import-venvstacks` as `bazel run @rules_venvstacks//tools:import_venvstacks` runs it.

The paths a user types are relative to where the command is typed (BUILD_WORKING_DIRECTORY),
the package is the output folder's in the workspace (BUILD_WORKSPACE_DIRECTORY), and an existing
BUILD file is kept unless --force, as the importer does when run with `python3 -m`.
tests/integration/test_import_venvstacks.py runs the real target in a real workspace.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from venvstacks_maint import bazel_run, import_venvstacks
from venvstacks_testing.venvstacks_sdist import sdist_tests_dir
from venvstacks_tool.core.errors import VenvstacksError


def environ(workspace: Path, working: Path) -> dict[str, str]:
    return {bazel_run.WORKSPACE_DIRECTORY: str(workspace), bazel_run.WORKING_DIRECTORY: str(working)}


def test_paths_are_relative_to_where_the_command_was_typed(tmp_path: Path) -> None:
    (tmp_path / "stacks" / "ml").mkdir(parents=True)
    working, argv = bazel_run.workspace_request(["ml/venvstacks.toml"], environ(tmp_path, tmp_path / "stacks"))
    assert working == tmp_path / "stacks"
    assert argv == ["ml/venvstacks.toml", "--package", "stacks/ml"]


def test_the_workspace_root_is_the_empty_package(tmp_path: Path) -> None:
    assert bazel_run.workspace_request(["venvstacks.toml"], environ(tmp_path, tmp_path))[1][-1] == ""
    argv = ["sub/venvstacks.toml", "--output-dir", "."]
    assert bazel_run.workspace_request(argv, environ(tmp_path, tmp_path))[1][-2:] == ["--package", ""]


def test_a_given_package_must_be_the_output_folders(tmp_path: Path) -> None:
    env = environ(tmp_path, tmp_path)
    assert bazel_run.workspace_request(["stacks/v.toml", "--package", "stacks"], env)[1] == [
        "stacks/v.toml",
        "--package",
        "stacks",
    ]
    with pytest.raises(VenvstacksError, match=r"--package 'other': the output folder .* is package 'stacks'"):
        bazel_run.workspace_request(["stacks/v.toml", "--package=other"], env)


def test_an_output_folder_outside_the_workspace_is_refused(tmp_path: Path) -> None:
    (tmp_path / "ws").mkdir()
    with pytest.raises(VenvstacksError, match="is outside the workspace"):
        bazel_run.workspace_request(["../elsewhere/venvstacks.toml"], environ(tmp_path / "ws", tmp_path / "ws"))


def test_outside_bazel_run_it_says_so() -> None:
    with pytest.raises(VenvstacksError, match="BUILD_WORKSPACE_DIRECTORY is not set: start this with `bazel run`"):
        bazel_run.workspace_request(["venvstacks.toml"], {})


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """venvstacks' minimal_project as a workspace, `bazel run`'s variables set, the directory restored after."""
    root = Path(shutil.copytree(sdist_tests_dir() / "minimal_project", tmp_path / "ws"))
    monkeypatch.setenv(bazel_run.WORKSPACE_DIRECTORY, str(root))
    monkeypatch.setenv(bazel_run.WORKING_DIRECTORY, str(root))
    monkeypatch.chdir(tmp_path)
    return root


def test_an_existing_build_file_is_kept_unless_force(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    build = workspace / import_venvstacks.BUILD_NAME
    assert bazel_run.main(["import-venvstacks", "venvstacks.toml"]) == 0
    assert Path.cwd() == workspace
    generated = build.read_text()
    build.write_text("# edited by hand\n")
    assert bazel_run.main(["import-venvstacks", "venvstacks.toml"]) == 1
    assert f"{build} already exists; pass --force to overwrite it" in capsys.readouterr().err
    assert build.read_text() == "# edited by hand\n"
    assert bazel_run.main(["import-venvstacks", "venvstacks.toml", "--force"]) == 0
    assert build.read_text() == generated


def test_a_plain_build_file_counts_too(workspace: Path) -> None:
    (workspace / "BUILD").write_text("")
    with pytest.raises(VenvstacksError, match="BUILD already exists"):
        import_venvstacks.main([str(workspace / "venvstacks.toml")])
    assert not (workspace / import_venvstacks.BUILD_NAME).exists()
    assert not (workspace / import_venvstacks.MODULE_FRAGMENT_NAME).exists()
