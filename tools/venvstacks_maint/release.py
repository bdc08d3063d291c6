"""`release`: the module's source archive for a release, and the MODULE.bazel lines that use it.

    python3 -m venvstacks_maint release --version 0.2.0 --output dist --commit v0.2.0 \\
        --base-url https://github.com/OWNER/rules_venvstacks/releases/download/v0.2.0

Writes `dist/rules_venvstacks-0.2.0.tar.xz`: the files of a commit (default `HEAD`; `--worktree`
takes the working tree as it is, tracked and untracked files that git does not ignore), under the
top-level directory `rules_venvstacks-0.2.0/`, less what only contributors use (`EXCLUDED`). It
refuses a `--version` that the archived MODULE.bazel does not declare. It prints the
`bazel_dep` + `archive_override` lines that use the archive (its `integrity`, sha256 in Subresource
Integrity form, is what a registry's source.json holds) on stdout; a summary goes to stderr.

The archive is deterministic: the core archive writer's sorted members, fixed mtime, modes reduced
to 0644/0755 and owners 0, so the same tree gives the same bytes (and the same integrity) on any
machine, from a commit or from a clean working tree alike. xz rather than gzip because the writer
the layers use has it; Bazel's `archive_override` and `http_archive` read both.
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from venvstacks_tool.core.archive import ArchiveEntry, write_archive
from venvstacks_tool.core.cli import subcommand_parser
from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.core.fsutil import sha256_file

# What a user of the module never needs: the test suite (its corpus locks and fixtures are most of
# the repository's bytes), the bench, CI scripts, the registry templates, the doc generator, the
# root module's lockfile (ignored when the module is a dependency), the Python development install
# (it names tests/support) and the example driver (it runs tests/bazel.sh). Everything a rule
# loads or labels stays: rules_venvstacks/, tools/ (the actions' tool), platforms/, settings/, and
# examples/stack, the registry's test module.
EXCLUDED = (
    ".bcr",
    ".ci",
    "bench",
    "docs/gen",
    "examples/run_example.py",
    "MODULE.bazel.lock",
    "pyproject.toml",
    "tests",
)
# Every member's timestamp: 1980-01-01, the earliest a zip can hold, as the local runtime uses.
RELEASE_MTIME = 315532800
ARCHIVE_FORMAT = "tar.xz"
# git's modes for a regular file, an executable and a symlink; a gitlink (submodule) is refused.
_GIT_FILE_MODES = {"100644": 0o644, "100755": 0o755}
_GIT_SYMLINK = "120000"
_MODULE_CALL = re.compile(r"^module\((?P<body>.*?)^\)", re.DOTALL | re.MULTILINE)


@dataclass(frozen=True)
class Release:
    """A written release archive: its file, module name and version, integrity, source and size."""

    path: Path
    module: str
    version: str
    integrity: str
    source: str
    files: int

    @property
    def prefix(self) -> str:
        """The archive's top-level directory, which `strip_prefix` removes: `rules_venvstacks-X.Y.Z`."""
        return archive_prefix(self.module, self.version)


@dataclass(frozen=True)
class _TreeFile:
    """One blob of a git tree: its path, git mode and object id."""

    path: str
    mode: str
    oid: str


def archive_prefix(module: str, version: str) -> str:
    """The top-level directory of `module`'s release `version` (the registry's `{REPO}-{VERSION}`)."""
    return f"{module}-{version}"


def archive_name(module: str, version: str) -> str:
    """The release archive's file name: `rules_venvstacks-X.Y.Z.tar.xz`."""
    return f"{archive_prefix(module, version)}.{ARCHIVE_FORMAT}"


def is_excluded(path: str) -> bool:
    """Whether `path` (relative, POSIX) is left out of release archives: in or equal to an `EXCLUDED` entry."""
    return any(path == entry or path.startswith(entry + "/") for entry in EXCLUDED)


def integrity(path: Path) -> str:
    """The Subresource Integrity value of a file, as Bazel and registries write it: `sha256-<base64>`."""
    digest = bytes.fromhex(sha256_file(path))
    return "sha256-" + base64.b64encode(digest).decode("ascii")


def module_identity(module_bazel: str) -> tuple[str, str]:
    """The `name` and `version` of the `module(...)` call in a MODULE.bazel text."""
    call = _MODULE_CALL.search(module_bazel)
    if call is None:
        raise VenvstacksError("MODULE.bazel has no module(...) call")
    fields = dict(re.findall(r'^\s*(name|version)\s*=\s*"([^"]*)"', call.group("body"), re.MULTILINE))
    if "name" not in fields or "version" not in fields:
        raise VenvstacksError("MODULE.bazel's module(...) call names no name or no version")
    return fields["name"], fields["version"]


def _git(repo: Path, *args: str, stdin: bytes | None = None, env: dict[str, str] | None = None) -> bytes:
    try:
        return subprocess.run(
            ["git", "-C", str(repo), *args], input=stdin, env=env, check=True, capture_output=True
        ).stdout
    except FileNotFoundError:
        raise VenvstacksError("git is not installed") from None
    except subprocess.CalledProcessError as error:
        message = error.stderr.decode(errors="replace").strip()
        raise VenvstacksError(f"git {' '.join(args)} failed in {repo}: {message}") from None


def _worktree_tree(repo: Path) -> str:
    """A tree object of the working tree as it is, written through a scratch index (git's own is untouched).

    The scratch index starts from HEAD, so a tracked file stays even where .gitignore matches it,
    as in a commit; `add --all` then takes edits, new files that are not ignored, and deletions.
    """
    with tempfile.TemporaryDirectory(prefix="release-index-") as scratch:
        env = dict(os.environ, GIT_INDEX_FILE=str(Path(scratch) / "index"))
        _git(repo, "read-tree", "HEAD", env=env)
        _git(repo, "add", "--all", env=env)
        return _git(repo, "write-tree", env=env).decode().strip()


def _source_tree(repo: Path, commit: str | None) -> tuple[str, str]:
    """(a tree-ish for `git ls-tree`, how to name it): the commit, or the working tree's tree when `commit` is None."""
    if commit is None:
        return _worktree_tree(repo), "the working tree"
    commit_id = _git(repo, "rev-parse", "--verify", f"{commit}^{{commit}}").decode().strip()
    return commit_id, f"commit {commit_id[:12]}"


def _tree_files(repo: Path, tree: str) -> list[_TreeFile]:
    """Every blob of `tree` that goes into the archive, sorted by path; a submodule is an error."""
    files = []
    for record in _git(repo, "ls-tree", "-r", "-z", "--full-tree", tree).split(b"\0"):
        if not record:
            continue
        meta, _, raw_path = record.partition(b"\t")
        mode, kind, oid = meta.decode().split()
        path = raw_path.decode("utf-8", "surrogateescape")
        if is_excluded(path):
            continue
        if kind != "blob":
            raise VenvstacksError(f"{path}: a {kind} (submodule) cannot go into a source archive")
        files.append(_TreeFile(path, mode, oid))
    return sorted(files, key=lambda item: item.path)


def _blobs(repo: Path, oids: list[str]) -> dict[str, bytes]:
    """The contents of `oids`, read with one `git cat-file --batch`."""
    unique = sorted(set(oids))
    output = _git(repo, "cat-file", "--batch", stdin="".join(f"{oid}\n" for oid in unique).encode())
    contents: dict[str, bytes] = {}
    position = 0
    for oid in unique:
        header_end = output.index(b"\n", position)
        found, _, size = output[position:header_end].decode().split()
        if found != oid:
            raise VenvstacksError(f"git cat-file returned {found} for {oid}")
        start = header_end + 1
        contents[oid] = output[start : start + int(size)]
        position = start + int(size) + 1  # the newline after each object
    return contents


def _entries(prefix: str, files: list[_TreeFile], contents: dict[str, bytes]) -> Iterator[ArchiveEntry]:
    yield ArchiveEntry(prefix, "dir", 0o755)
    for item in files:
        name = f"{prefix}/{item.path}"
        data = contents[item.oid]
        if item.mode == _GIT_SYMLINK:
            yield ArchiveEntry(name, "symlink", 0o777, link_target=data.decode("utf-8", "surrogateescape"))
        else:
            yield ArchiveEntry(name, "file", _GIT_FILE_MODES.get(item.mode, 0o644), data=data)


def make_release(repo: Path, version: str, output_dir: Path, commit: str | None = "HEAD") -> Release:
    """Writes the release archive of `repo` at `commit` (None: the working tree) into `output_dir`.

    Raises VenvstacksError when the archived MODULE.bazel does not declare `version`, naming both.
    """
    tree, source = _source_tree(repo, commit)
    files = _tree_files(repo, tree)
    contents = _blobs(repo, [item.oid for item in files])
    module_file = next((item for item in files if item.path == "MODULE.bazel"), None)
    if module_file is None:
        raise VenvstacksError(f"{source} of {repo} has no MODULE.bazel")
    module, declared = module_identity(contents[module_file.oid].decode())
    if declared != version:
        raise VenvstacksError(
            f"MODULE.bazel of {source} declares version {declared!r}, not {version!r}: set "
            f'version = "{version}" in its module(...) call (and commit it) before making the release'
        )
    path = output_dir / archive_name(module, version)
    entries = _entries(archive_prefix(module, version), files, contents)
    write_archive(entries, path, ARCHIVE_FORMAT, RELEASE_MTIME)
    return Release(path, module, version, integrity(path), source, len(files))


def module_lines(release: Release, url: str) -> str:
    """The MODULE.bazel lines that use the archive at `url` until the module is in a registry."""
    return (
        f'bazel_dep(name = "{release.module}", version = "{release.version}")\n'
        "archive_override(\n"
        f'    module_name = "{release.module}",\n'
        f'    urls = ["{url}"],\n'
        f'    integrity = "{release.integrity}",\n'
        f'    strip_prefix = "{release.prefix}",\n'
        ")\n"
    )


def _checkout() -> Path:
    """The checkout this tool is part of (tools/venvstacks_maint/ -> the repository root)."""
    return Path(__file__).resolve().parents[2]


def build_parser() -> argparse.ArgumentParser:
    """The `release` command line."""
    parser = subcommand_parser("release", __doc__.splitlines()[0])
    parser.prog = "python -m venvstacks_maint release"
    parser.add_argument("--version", required=True, help="the release's version, as MODULE.bazel declares it")
    parser.add_argument("--output", required=True, type=Path, help="the directory to write the archive into")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--commit", default="HEAD", help="the commit or tag to archive (default: HEAD)")
    source.add_argument(
        "--worktree", action="store_true", help="archive the working tree as it is (to try a release before committing)"
    )
    parser.add_argument("--repo", type=Path, default=_checkout(), help="the git checkout (default: this tool's)")
    parser.add_argument(
        "--base-url",
        help="print BASE_URL/FILE as the archive's URL (where it will be published) instead of its file:// URL",
    )
    return parser


def main(argv: list[str]) -> int:
    """Writes the archive, summarizes it on stderr, and prints the MODULE.bazel lines on stdout."""
    args = build_parser().parse_args(argv)
    output = args.output.resolve()
    release = make_release(args.repo.resolve(), args.version, output, None if args.worktree else args.commit)
    url = f"{args.base_url.rstrip('/')}/{release.path.name}" if args.base_url else release.path.as_uri()
    size = release.path.stat().st_size
    print(f"release: {release.path}: {release.files} files of {release.source}, {size:,} bytes", file=sys.stderr)
    print(f"release: integrity {release.integrity}", file=sys.stderr)
    print(module_lines(release, url), end="")
    return 0
