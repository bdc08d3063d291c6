"""Scratch Bazel workspaces that use this checkout's rules_venvstacks, run through tests/bazel.sh."""

from __future__ import annotations

import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[2]
BAZEL_SH = CHECKOUT / "tests" / "bazel.sh"


@dataclass
class Workspace:
    """A Bazel module in `root` whose rules_venvstacks is the checkout at `rules_path`.

    `rules_dependency`, if given, replaces the `bazel_dep` + `local_path_override` lines that
    bring in the rules (e.g. an `archive_override` of a release archive); `rules_path` is then
    unused.
    """

    root: Path
    rules_path: Path = CHECKOUT
    rules_dependency: str | None = None

    def write_module(self, body: str) -> None:
        """Writes MODULE.bazel: the rules_venvstacks dependency, then `body`."""
        dependency = self.rules_dependency or (
            'bazel_dep(name = "rules_venvstacks")\n'
            f'local_path_override(module_name = "rules_venvstacks", path = "{self.rules_path}")\n'
        )
        header = 'module(name = "scratch")\n\n' + dependency + "\n"
        extension = 'venvstacks = use_extension("@rules_venvstacks//rules_venvstacks:extensions.bzl", "venvstacks")\n'
        self.write("MODULE.bazel", header + extension + textwrap.dedent(body))
        self.write(".bazelrc", (CHECKOUT / ".bazelrc").read_text())

    def write(self, relative: str, text: str) -> Path:
        """Writes a file of the workspace, creating its directory."""
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def bazel(self, *args: str, check: bool = True, startup: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
        """Runs `bazel STARTUP... ARGS...` in the workspace; output captured as text."""
        result = subprocess.run(
            [str(BAZEL_SH), *startup, *args],
            cwd=self.root,
            capture_output=True,
            text=True,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"bazel {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-6000:]}")
        return result

    def output(self, relative: str) -> Path:
        """A file under bazel-bin."""
        return self.root / "bazel-bin" / relative

    def shutdown(self) -> None:
        """Stops this workspace's Bazel server."""
        self.bazel("shutdown", check=False)
