"""Tests of `release` (venvstacks_maint.release) on small git repositories built here, and of the
registry templates in .bcr/ against the archive it names."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import tarfile
from pathlib import Path

import pytest

import venvstacks_maint.__main__ as cli
from venvstacks_maint.release import (
    RELEASE_MTIME,
    archive_name,
    archive_prefix,
    is_excluded,
    make_release,
    module_identity,
)
from venvstacks_testing.bazel_workspace import CHECKOUT
from venvstacks_testing.bcr_presubmit import PRESUBMIT, module_targets, presubmit_test_module
from venvstacks_tool.core.errors import VenvstacksError

MODULE = 'module(\n    name = "rules_demo",\n    version = "{version}",\n    compatibility_level = 1,\n)\n'
# Fixed identity and dates, so the commits themselves are the same on every run.
GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.invalid",
    "GIT_AUTHOR_DATE": "2001-02-03T04:05:06Z",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.invalid",
    "GIT_COMMITTER_DATE": "2001-02-03T04:05:06Z",
}


def _git(repo: Path, *args: str) -> str:
    env = dict(os.environ, **GIT_ENV)
    return subprocess.run(["git", "-C", str(repo), *args], env=env, check=True, capture_output=True, text=True).stdout


def _commit(repo: Path, message: str) -> None:
    _git(repo, "add", "--all")
    _git(repo, "commit", "-q", "-m", message)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A module repository: sources, an executable, a symlink, an ignored file and excluded folders."""
    root = tmp_path / "repo"
    files = {
        "MODULE.bazel": MODULE.format(version="1.2.3"),
        "BUILD.bazel": "",
        "rules/defs.bzl": "def rule():\n    pass\n",
        "tools/run.py": "#!/usr/bin/env python3\n",
        "tests/fixture.bin": "heavy\n",
        "bench/run_bench.py": "",
        "MODULE.bazel.lock": "{}\n",
        ".gitignore": "*.log\n",
        "build.log": "not tracked\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (root / "tools/run.py").chmod(0o775)
    (root / "tools/defs.bzl").symlink_to("../rules/defs.bzl")
    _git(root, "init", "-q")
    _commit(root, "first")
    return root


def _members(path: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(path) as tar:
        return {info.name: info for info in tar}


def _content(path: Path, name: str) -> bytes:
    with tarfile.open(path) as tar:
        member = tar.extractfile(name)
        assert member is not None
        return member.read()


def test_two_runs_give_the_same_bytes_from_a_commit_or_a_clean_working_tree(repo: Path, tmp_path: Path) -> None:
    first = make_release(repo, "1.2.3", tmp_path / "a")
    second = make_release(repo, "1.2.3", tmp_path / "b")
    from_tree = make_release(repo, "1.2.3", tmp_path / "c", commit=None)
    assert first.path.name == "rules_demo-1.2.3.tar.xz"
    assert first.path.read_bytes() == second.path.read_bytes() == from_tree.path.read_bytes()
    assert first.integrity == second.integrity == from_tree.integrity
    # The bytes follow the content: one changed file gives another archive.
    (repo / "rules/defs.bzl").write_text("def rule():\n    return 1\n")
    assert make_release(repo, "1.2.3", tmp_path / "d", commit=None).integrity != first.integrity


def test_members_are_under_the_prefix_with_fixed_metadata_and_without_the_excluded_paths(
    repo: Path, tmp_path: Path
) -> None:
    release = make_release(repo, "1.2.3", tmp_path)
    members = _members(release.path)
    prefix = "rules_demo-1.2.3"
    assert release.prefix == prefix
    assert sorted(members) == [
        prefix,
        f"{prefix}/.gitignore",
        f"{prefix}/BUILD.bazel",
        f"{prefix}/MODULE.bazel",
        f"{prefix}/rules",
        f"{prefix}/rules/defs.bzl",
        f"{prefix}/tools",
        f"{prefix}/tools/defs.bzl",
        f"{prefix}/tools/run.py",
    ]
    assert {(info.mtime, info.uid, info.gid, info.uname, info.gname) for info in members.values()} == {
        (RELEASE_MTIME, 0, 0, "", "")
    }
    assert members[f"{prefix}/tools/run.py"].mode == 0o755
    assert members[f"{prefix}/rules/defs.bzl"].mode == 0o644
    assert members[f"{prefix}/tools/defs.bzl"].issym() and members[f"{prefix}/tools/defs.bzl"].linkname == (
        "../rules/defs.bzl"
    )
    assert release.files == 6


def test_a_commit_is_archived_as_committed_and_the_working_tree_as_it_is(repo: Path, tmp_path: Path) -> None:
    (repo / "rules/defs.bzl").write_text("edited\n")
    (repo / "rules/new.bzl").write_text("new\n")
    committed = make_release(repo, "1.2.3", tmp_path / "commit")
    worktree = make_release(repo, "1.2.3", tmp_path / "worktree", commit=None)
    assert _content(committed.path, "rules_demo-1.2.3/rules/defs.bzl") == b"def rule():\n    pass\n"
    assert "rules_demo-1.2.3/rules/new.bzl" not in _members(committed.path)
    assert _content(worktree.path, "rules_demo-1.2.3/rules/defs.bzl") == b"edited\n"
    assert _content(worktree.path, "rules_demo-1.2.3/rules/new.bzl") == b"new\n"
    # Ignored files stay out, and git's own index is left as it was.
    assert "rules_demo-1.2.3/build.log" not in _members(worktree.path)
    assert _git(repo, "status", "--porcelain") == " M rules/defs.bzl\n?? rules/new.bzl\n"


def test_the_working_tree_keeps_a_tracked_file_that_gitignore_matches(repo: Path, tmp_path: Path) -> None:
    _git(repo, "add", "--force", "build.log")
    _commit(repo, "a tracked file that .gitignore matches")
    committed = make_release(repo, "1.2.3", tmp_path / "commit")
    worktree = make_release(repo, "1.2.3", tmp_path / "worktree", commit=None)
    assert "rules_demo-1.2.3/build.log" in _members(committed.path)
    assert worktree.path.read_bytes() == committed.path.read_bytes()
    # A deleted file is gone from the working tree's archive.
    (repo / "build.log").unlink()
    assert "rules_demo-1.2.3/build.log" not in _members(
        make_release(repo, "1.2.3", tmp_path / "gone", commit=None).path
    )


def test_the_integrity_is_the_sha256_of_the_archive_in_sri_form(repo: Path, tmp_path: Path) -> None:
    release = make_release(repo, "1.2.3", tmp_path)
    digest = hashlib.sha256(release.path.read_bytes()).digest()
    assert release.integrity == "sha256-" + base64.b64encode(digest).decode()
    assert len(base64.b64decode(release.integrity.removeprefix("sha256-"))) == 32


def test_a_version_that_module_bazel_does_not_declare_is_refused(repo: Path, tmp_path: Path) -> None:
    with pytest.raises(VenvstacksError, match=r"declares version '1\.2\.3', not '1\.3\.0'"):
        make_release(repo, "1.3.0", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    # The commit's MODULE.bazel counts, not the working tree's.
    (repo / "MODULE.bazel").write_text(MODULE.format(version="1.3.0"))
    with pytest.raises(VenvstacksError, match=r"not '1\.3\.0'"):
        make_release(repo, "1.3.0", tmp_path / "out")
    _commit(repo, "1.3.0")
    assert make_release(repo, "1.3.0", tmp_path / "out").path.name == "rules_demo-1.3.0.tar.xz"


def test_the_command_prints_the_module_lines_and_fails_on_a_mismatch(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = "https://example.invalid/releases/v1.2.3"
    argv = ["release", "--repo", str(repo), "--version", "1.2.3", "--output", str(tmp_path), "--base-url", base]
    assert cli.main(argv) == 0
    captured = capsys.readouterr()
    archive = tmp_path / "rules_demo-1.2.3.tar.xz"
    digest = base64.b64encode(hashlib.sha256(archive.read_bytes()).digest()).decode()
    assert captured.out == (
        'bazel_dep(name = "rules_demo", version = "1.2.3")\n'
        "archive_override(\n"
        '    module_name = "rules_demo",\n'
        f'    urls = ["{base}/rules_demo-1.2.3.tar.xz"],\n'
        f'    integrity = "sha256-{digest}",\n'
        '    strip_prefix = "rules_demo-1.2.3",\n'
        ")\n"
    )
    assert f"integrity sha256-{digest}" in captured.err
    # Without --base-url, the archive's own file:// URL.
    assert cli.main(argv[:-2]) == 0
    assert f'urls = ["{archive.as_uri()}"]' in capsys.readouterr().out
    assert cli.main([*argv[:3], "--version", "2.0.0", *argv[5:]]) == 1
    assert "declares version '1.2.3', not '2.0.0'" in capsys.readouterr().err


def test_module_identity_reads_the_module_call_only() -> None:
    text = '"""Doc."""\n\n' + MODULE.format(version="0.4.0") + 'bazel_dep(name = "other", version = "9.9")\n'
    assert module_identity(text) == ("rules_demo", "0.4.0")
    with pytest.raises(VenvstacksError, match="no module"):
        module_identity('bazel_dep(name = "other", version = "9.9")\n')


def test_this_module_declares_a_version_and_its_bazel_floor() -> None:
    module_bazel = (CHECKOUT / "MODULE.bazel").read_text()
    name, version = module_identity(module_bazel)
    assert name == "rules_venvstacks" and re.fullmatch(r"\d+\.\d+\.\d+", version)
    assert 'bazel_compatibility = [">=7.1.0"]' in module_bazel


def test_the_registry_templates_name_the_archive_the_release_writes() -> None:
    """.bcr/source.template.json, filled in as publish-to-bcr does, names this tool's archive and prefix."""
    source = json.loads((CHECKOUT / ".bcr" / "source.template.json").read_text())
    name, version = module_identity((CHECKOUT / "MODULE.bazel").read_text())
    values = {"OWNER": "someone", "REPO": name, "VERSION": version, "TAG": f"v{version}"}

    def fill(template: str) -> str:
        return re.sub(r"\{(OWNER|REPO|VERSION|TAG)\}", lambda match: values[match.group(1)], template)

    assert fill(source["strip_prefix"]) == archive_prefix(name, version)
    assert fill(source["url"]) == f"https://github.com/someone/{name}/releases/download/v{version}/" + archive_name(
        name, version
    )
    assert source["integrity"] == ""
    metadata = json.loads((CHECKOUT / ".bcr" / "metadata.template.json").read_text())
    assert metadata["versions"] == [] and metadata["repository"]
    assert all(re.fullmatch(rf"github:[\w.-]+/{name}", entry) for entry in metadata["repository"])


def test_the_presubmit_test_module_is_in_the_release_and_uses_the_module_from_it() -> None:
    presubmit = PRESUBMIT.read_text()
    module_path = presubmit_test_module(presubmit)
    assert not is_excluded(module_path)
    text = (CHECKOUT / module_path / "MODULE.bazel").read_text()
    # The registry's CI unpacks the release and runs the test module inside it: the module comes
    # from the archive's root, as many folders up as the test module is deep.
    up = "/".join([".."] * len(Path(module_path).parts))
    assert re.search(rf'local_path_override\(\s*module_name = "rules_venvstacks",\s*path = "{up}",\s*\)', text)
    assert module_targets(presubmit), "the module's own targets, built as a dependency"
    # Every task names its Bazel version (the registry requires it).
    assert presubmit.count("bazel: ${{ bazel }}") == presubmit.count("platform: ${{ platform }}") == 2
