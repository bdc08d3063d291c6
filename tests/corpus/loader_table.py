"""The loader check on the full corpus, for all five platforms: does every binary find its libraries?

    python3 tests/corpus/loader_table.py [--write-docs] [--cache DIR] [--platforms NAME,...]

The corpus' locks (tests/corpus/stacks/pylock.<layer>.toml) pin every package of its three layers
for linux_x86_64 (the platform the corpus builds and runs). For each of the five platforms, this
takes the same version of every locked package (the lock's own wheel, sha256 checked, on
linux_x86_64; PyPI's wheel of that version for the platform's tags on the others, with pip), then
runs the loader check of each layer (`build/loader_check.py`, in process, no Bazel) on those
wheels, lowest layer first, each on the libraries documents of the layers below, with a CPython
3.11 runtime's library files in python-build-standalone's layout (`PBS_RUNTIME_LIBRARIES`: the
runtimes themselves are on GitHub). The table says, for each of the corpus' 20 packages and each
platform: resolved (and how many binaries), pure Python, no wheel of that version, or what is
missing. `--write-docs` puts it into docs/compatibility.md. About 1.1 GB of wheels (torch for
three more platforms) are fetched once into the cache (default ~/.cache/rules_venvstacks/
corpus-wheels).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import runpy
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from venvstacks_tool.build import loader_check
from venvstacks_tool.core.platforms import PLATFORMS, TargetPlatform, by_name
from venvstacks_tool.core.project_names import normalize_name
from venvstacks_tool.lock.pylock import LockedPackage, parse_lock

CHECKOUT = Path(__file__).resolve().parents[2]
STACKS = CHECKOUT / "tests" / "corpus" / "stacks"
DOCS = CHECKOUT / "docs" / "compatibility.md"
LAYERS = ("sci_framework", "services_framework", "corpus_app")
PYTHON = "3.11.9"
GLIBC_FLOOR = (2, 28)  # the corpus runtime's floor (tests/corpus/MODULE.bazel)
# scipy 1.17 and torch 2.13 ship macOS wheels for 14.0 and later only: the floor a stack of them sets.
MACOS_FLOOR = (14, 0)
TORCH_DIR = Path(os.environ.get("VENVSTACKS_CORPUS_TORCH_WHEELS", "/opt/wheels"))
CACHE = Path.home() / ".cache" / "rules_venvstacks" / "corpus-wheels"
# The library files of a PBS CPython 3.11 runtime (install_only), below its `python/` root.
PBS_RUNTIME_LIBRARIES = {
    "linux": ("lib/libpython3.11.so.1.0", "lib/libpython3.so"),
    "macos": ("lib/libpython3.11.dylib",),
    "windows": (
        "python3.dll",
        "python311.dll",
        "vcruntime140.dll",
        "vcruntime140_1.dll",
        "DLLs/libcrypto-3.dll",
        "DLLs/libffi-8.dll",
        "DLLs/libssl-3.dll",
        "DLLs/sqlite3.dll",
    ),
}
_TABLE_BLOCK = re.compile(r"<!-- loader-table-begin -->.*?<!-- loader-table-end -->", re.DOTALL)


def log(message: str) -> None:
    print(f"loader_table: {message}", file=sys.stderr, flush=True)


def locked_packages(layer: str) -> list[LockedPackage]:
    path = STACKS / f"pylock.{layer}.toml"
    return parse_lock(path.read_text(encoding="utf-8"), str(path)).packages


def _cached(package: LockedPackage, directory: Path) -> Path | None:
    """The wheel of `package`'s name and version (its local label aside) in `directory`, or None."""
    for wheel in sorted(directory.glob("*.whl")):
        name, version = wheel.name.split("-")[:2]
        if (
            normalize_name(name) == normalize_name(package.name)
            and version.split("+")[0] == package.version.split("+")[0]
        ):
            return wheel
    return None


def fetch(package: LockedPackage, platform: TargetPlatform, cache: Path) -> Path | None:
    """The wheel of `package`'s version for `platform` in `cache` (fetched with pip), or None if PyPI has none."""
    directory = cache / platform.name
    directory.mkdir(parents=True, exist_ok=True)
    found = _cached(package, directory)
    if found is not None:
        return found
    version = package.version if platform.name == "linux_x86_64" else package.version.split("+")[0]
    requirement = f"{package.name}=={version}"
    command = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "-d", directory]
    command += ["--python-version", PYTHON.rpartition(".")[0], "--implementation", "cp"]
    tags = platform.platform_tags(glibc_minimum=GLIBC_FLOOR, macos_minimum=MACOS_FLOOR)
    command += [f"--platform={tag}" for tag in tags]
    if platform.name == "linux_x86_64":
        # The lock's own wheel: pip takes the file with the lock's sha256 (torch from its find_links).
        hashes = " ".join(f"--hash=sha256:{wheel.sha256}" for wheel in package.wheels)
        (requirements := directory / f"{normalize_name(package.name)}.txt").write_text(f"{requirement} {hashes}\n")
        command += ["--require-hashes", "-r", requirements, "--find-links", TORCH_DIR]
    else:
        command.append(requirement)
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        log(f"{platform.name}: no wheel for {requirement}: {result.stderr.strip().splitlines()[-1:]}")
        return None
    return _cached(package, directory)


def cell(owner: str, findings: loader_check.Findings, binaries: dict[str, int]) -> str:
    """One package's result on one platform, from its layer's findings."""
    missing = sorted({name for name, users in findings.missing.items() if any(o == owner for _, o in users)})
    foreign = [path for path, o, _ in findings.foreign if o == owner]
    if missing or foreign:
        return "missing: " + ", ".join(f"`{name}`" for name in missing + foreign)
    count = binaries.get(owner, 0)
    return f"resolved ({count} binar{'y' if count == 1 else 'ies'})" if count else "pure Python"


def run(platforms: list[TargetPlatform], cache: Path) -> dict[str, dict[str, str]]:
    """{package: {platform: cell}} for the corpus' 20 packages."""
    corpus = runpy.run_path(str(STACKS / "corpus_probe" / "checks.py"))["CORPORA"]["corpus_app"]
    rows: dict[str, dict[str, str]] = {name: {} for name in corpus}
    for platform in platforms:
        with tempfile.TemporaryDirectory(prefix="loader-table-docs-") as scratch:
            lower: list[Path] = []
            for layer in LAYERS:
                packages = {normalize_name(p.name): p for p in locked_packages(layer)}
                wheels = {name: fetch(package, platform, cache) for name, package in packages.items()}
                present = [wheel for wheel in wheels.values() if wheel is not None]
                log(f"{platform.name}: {layer}: checking {len(present)} wheels")
                findings = _findings(layer, platform, present, lower, Path(scratch))
                lower.append(Path(scratch) / f"{layer}.libraries.json")
                for name, home in corpus.items():
                    if home != layer:
                        continue
                    wheel = wheels[normalize_name(name)]
                    rows[name][platform.name] = (
                        "no wheel of this version" if wheel is None else cell(_owner(wheel), *findings)
                    )
    return rows


def _owner(wheel: Path) -> str:
    name, version = wheel.name.split("-")[:2]
    return f"{name} {version}"


def _findings(
    layer: str, platform: TargetPlatform, wheels: list[Path], lower: list[Path], scratch: Path
) -> tuple[loader_check.Findings, dict[str, int]]:
    """The layer's findings, and the number of binaries of each owner."""
    request = loader_check.LoaderCheck(
        layer_name=layer,
        platform=platform,
        python_version=PYTHON,
        glibc=GLIBC_FLOOR if platform.os == "linux" else None,
        wheels=tuple(wheels),
        app_files=(),
        runtime_root="python",
        runtime_files=PBS_RUNTIME_LIBRARIES[platform.os],
        lower_libraries=tuple(lower),
        allowed=(),
        strict=False,
        output=scratch / f"{layer}.txt",
        libraries=scratch / f"{layer}.libraries.json",
    )
    with tempfile.TemporaryDirectory(prefix="loader-table-") as temporary:
        binaries, files = loader_check.read_layer(request, Path(temporary))
    request.libraries.write_text(json.dumps(loader_check.libraries_document(request, files), sort_keys=True))
    counts: dict[str, int] = {}
    for binary in binaries:
        counts[binary.owner] = counts.get(binary.owner, 0) + 1
    return loader_check.find_problems(binaries, loader_check.stack_view(request, files)), counts


def table(rows: dict[str, dict[str, str]], platforms: list[TargetPlatform]) -> Iterator[str]:
    yield "| package | " + " | ".join(p.name for p in platforms) + " |"
    yield "| --- |" + " --- |" * len(platforms)
    for name, cells in rows.items():
        yield f"| {name} | " + " | ".join(cells.get(p.name, "not run") for p in platforms) + " |"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write-docs", action="store_true", help="put the table into docs/compatibility.md")
    parser.add_argument("--cache", type=Path, default=CACHE, help="where the wheels are kept")
    parser.add_argument("--platforms", default=",".join(p.name for p in PLATFORMS), help="comma-separated names")
    args = parser.parse_args(argv)
    platforms = [by_name(name) for name in args.platforms.split(",")]
    lines = list(table(run(platforms, args.cache), platforms))
    print("\n".join(lines))
    if args.write_docs:
        block = "<!-- loader-table-begin -->\n" + "\n".join(lines) + "\n<!-- loader-table-end -->"
        DOCS.write_text(_TABLE_BLOCK.sub(lambda _: block, DOCS.read_text(encoding="utf-8")), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
