"""`lock` and `check-lock`: resolve a layer's requirements into its lock file, and check it is fresh.

`lock` runs (through `bazel run //stacks:<layer>.lock`) on the layer's own runtime interpreter, so
environment markers evaluate for the layer's Python:

1. reads the locks of the layers below (in stacking order) and fails early, naming both layers and
   the package, when a top-level requirement excludes a version that a lower layer pins;
2. resolves the requirements with pip-tools (`pip-compile --generate-hashes`, in this process),
   binary-only, with the lower layers' pins as constraints and pip isolated from the host's pip
   configuration; a package without a compatible wheel fails here, by name;
3. picks the exact wheel of every package with pip's own installer logic (`pip install --dry-run
   --report`, in a child process) and writes the lock (`venvstacks_tool.pylock`) and a
   requirements.txt with `--hash` lines for people into the source tree. Packages a lower layer
   pins are listed as `provided` by that layer, not as packages of this one.

`check-lock` (a `bazel test`, no network) recomputes `inputs_hash` from the staged inputs and
compares it with the lock's `inputs-hash`.

`cli` maps `check-lock` to `check_lock_main` here.
pip and pip-tools are imported only inside the functions that run them.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import posixpath
import re
import sys
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from venvstacks_tool.core.cli import add_repeatable, subcommand_parser
from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.core.fsutil import write_bytes_atomic
from venvstacks_tool.core.process import pip_command, run_captured
from venvstacks_tool.lock import pylock

if TYPE_CHECKING:
    from packaging.requirements import Requirement

DEFAULT_INDEX_URL = "https://pypi.org/simple"
# Bump when what `inputs_hash` covers changes, so every lock reads as stale once.
_INPUTS_SCHEMA = "rules_venvstacks.lock-inputs.1"
# PIP_* variables kept while pip runs: they choose how to reach an index (certificates, proxy,
# timeouts), never what gets resolved. Every other PIP_* variable and every pip config file is
# ignored, so a lock does not depend on the machine it was made on.
_PIP_TRANSPORT_VARIABLES = frozenset(
    {"PIP_CERT", "PIP_CLIENT_CERT", "PIP_PROXY", "PIP_TIMEOUT", "PIP_DEFAULT_TIMEOUT", "PIP_RETRIES"}
)
_PIP_ONLY_BINARY = "--only-binary=:all:"


# --- arguments -------------------------------------------------------------------------------


def _lower_lock(value: str) -> tuple[str, str]:
    layer, sep, path = value.partition("=")
    if not sep or not layer or not path:
        raise argparse.ArgumentTypeError(f"expected LAYER=PATH, got {value!r}")
    return layer, path


def add_layer_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments `lock` and `check-lock` share (everything `inputs_hash` covers)."""
    parser.add_argument("--layer-name", required=True, help="the layer's name, e.g. app")
    parser.add_argument("--layer-kind", required=True, choices=pylock.LAYER_KINDS, help="the layer's kind")
    add_repeatable(
        parser, "--requirement", "requirements", "REQ", "a top-level requirement (PEP 508); repeatable, order kept"
    )
    add_repeatable(
        parser,
        "--requirements-in",
        "requirements_in",
        "PATH",
        "a requirements.in file (one requirement a line, no options); repeatable",
        type=Path,
    )
    add_repeatable(
        parser,
        "--lower-lock",
        "lower_locks",
        "LAYER=PATH",
        "the lock of a layer below this one; repeatable, in stacking order (lowest first)",
        type=_lower_lock,
    )
    parser.add_argument("--python-version", required=True, help="the runtime's full version, e.g. 3.12.7")
    parser.add_argument("--platform", required=True, help="target triple, e.g. x86_64-unknown-linux-gnu")
    parser.add_argument("--index-url", default=DEFAULT_INDEX_URL, help="the package index (PEP 503)")
    add_repeatable(parser, "--extra-index-url", "extra_index_urls", "URL", "another package index; repeatable")
    add_repeatable(
        parser,
        "--find-links",
        "find_links",
        "PATH_OR_URL",
        "a directory of wheels (relative to the workspace) or a URL; repeatable",
    )
    parser.add_argument("--lock-target", default="", help="the layer's lock target, e.g. //stacks:app.lock")


def _layer_parser(subcommand: str, description: str) -> argparse.ArgumentParser:
    """A parser for `subcommand` (reads `@paramfile` arguments) holding the shared layer arguments."""
    parser = subcommand_parser(subcommand, description)
    add_layer_arguments(parser)
    return parser


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of `lock` (reads `@paramfile` arguments)."""
    parser = _layer_parser("lock", "Resolve a layer's requirements into its lock file in the source tree.")
    parser.add_argument(
        "--workspace-dir",
        type=Path,
        default=None,
        help="the source tree (default: $BUILD_WORKSPACE_DIRECTORY, set by `bazel run`)",
    )
    parser.add_argument("--output-lock", help="the lock file to write, relative to the workspace")
    parser.add_argument(
        "--output-requirements",
        help="the requirements.txt to write, relative to the workspace (default: next to the lock)",
    )
    parser.add_argument("--lock", help="same as --output-lock (when --output-lock is not given)")
    parser.add_argument(
        "--upgrade",
        action="store_true",
        help="re-resolve from scratch instead of keeping the current lock's versions where they still fit",
    )
    return parser


def build_check_parser() -> argparse.ArgumentParser:
    """Return the argument parser of `check-lock` (reads `@paramfile` arguments)."""
    parser = _layer_parser(
        "check-lock", "Fail, with the command to run, when a layer's lock is stale against its inputs."
    )
    parser.add_argument("--lock", required=True, type=Path, help="the lock file (need not exist)")
    return parser


# --- inputs hash -----------------------------------------------------------------------------


def strip_credentials(url: str) -> str:
    """`url` without a `user:password@` part (anything that is not a URL is returned as is)."""
    parts = urllib.parse.urlsplit(url)
    if not parts.scheme or "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def inputs_hash(
    *,
    layer_name: str,
    layer_kind: str,
    requirements: Sequence[str],
    requirements_in: Sequence[bytes],
    python_version: str,
    platform: str,
    lower_locks: Sequence[tuple[str, bytes]],
    index_url: str,
    extra_index_urls: Sequence[str],
    find_links: Sequence[str],
) -> str:
    """`sha256:<hex>` of everything a lock is resolved from.

    Covers the layer's name and kind, the inline requirements (in order), the content of each
    requirements.in file (not its path), the Python version, the platform, each lower layer's name
    and the sha256 of its lock file's bytes, and the index configuration as given (credentials
    in URLs left out, so they neither leak through the hash nor make it differ between users).
    """
    document = {
        "schema": _INPUTS_SCHEMA,
        "layer": {"name": layer_name, "kind": layer_kind},
        "requirements": list(requirements),
        "requirements_in": [hashlib.sha256(content).hexdigest() for content in requirements_in],
        "python_version": python_version,
        "platform": platform,
        "lower_layers": [[name, hashlib.sha256(data).hexdigest()] for name, data in lower_locks],
        "index": {
            "index_url": strip_credentials(index_url),
            "extra_index_urls": [strip_credentials(url) for url in extra_index_urls],
            "find_links": [strip_credentials(link) for link in find_links],
        },
    }
    blob = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def _read_input(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as error:
        raise VenvstacksError(f"{path}: {what} does not exist") from error
    except OSError as error:
        raise VenvstacksError(f"{path}: cannot read {what}: {error.strerror}") from error


@dataclass(frozen=True)
class _Inputs:
    """The staged inputs of a lock, read once."""

    requirements_in: list[tuple[Path, bytes]]
    lower_locks: list[tuple[str, Path, bytes]]

    def hash(self, args: argparse.Namespace) -> str:
        return inputs_hash(
            layer_name=args.layer_name,
            layer_kind=args.layer_kind,
            requirements=args.requirements,
            requirements_in=[data for _, data in self.requirements_in],
            python_version=args.python_version,
            platform=args.platform,
            lower_locks=[(name, data) for name, _, data in self.lower_locks],
            index_url=args.index_url,
            extra_index_urls=args.extra_index_urls,
            find_links=args.find_links,
        )


def _read_inputs(args: argparse.Namespace) -> _Inputs:
    requirements_in = [(path, _read_input(path, "the requirements file")) for path in args.requirements_in]
    lower_locks = []
    for layer, path in args.lower_locks:
        lower_locks.append((layer, Path(path), _read_input(Path(path), f"the lock of layer '{layer}'")))
    return _Inputs(requirements_in, lower_locks)


# --- check-lock ------------------------------------------------------------------------------


def check_lock(args: argparse.Namespace) -> int:
    """Print one line and return 1 when the lock is missing or stale; return 0 when it is fresh."""
    digest = _read_inputs(args).hash(args)
    target = args.lock_target or f"{args.layer_name}.lock"
    hint = f"run `bazel run {target}`"
    path: Path = args.lock
    if not path.is_file():
        print(f"{path} does not exist: {hint}", file=sys.stderr)
        return 1
    try:
        recorded = pylock.read_lock(path).inputs_hash
    except VenvstacksError as error:
        print(f"{path} is not a valid lock ({error}): {hint}", file=sys.stderr)
        return 1
    if recorded != digest:
        print(
            f"{path} is stale against its inputs (requirements, runtime, lower layers' locks): {hint}",
            file=sys.stderr,
        )
        return 1
    return 0


def check_lock_main(argv: list[str]) -> int:
    """Run `check-lock` with `argv`."""
    return check_lock(build_check_parser().parse_args(argv))


# --- requirements ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _TopLevel:
    """A top-level requirement and where it was declared."""

    written: str  # as the user wrote it (recorded in the lock and given to pip-compile)
    requirement: Requirement
    origin: str

    @property
    def text(self) -> str:
        """The normalized form, for messages."""
        return str(self.requirement)


def _parse_requirement(text: str, origin: str) -> Requirement:
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        return Requirement(text)
    except InvalidRequirement as error:
        raise VenvstacksError(f"{origin}: invalid requirement {text!r}: {error}") from error


def _requirements_in_lines(path: Path, data: bytes) -> list[tuple[int, str]]:
    """(line number, requirement) of a requirements.in file: comments, blank lines and `\\` joins handled."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise VenvstacksError(f"{path}: not UTF-8 text: {error}") from error
    result: list[tuple[int, str]] = []
    pending = ""
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not pending:
            start = number
        line = re.sub(r"(^|\s)#.*$", "", raw).rstrip()
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = (pending + line).strip()
        pending = ""
        if not line:
            continue
        if line.startswith("-"):
            option = line.split()[0].split("=")[0]
            raise VenvstacksError(
                f"{path}:{start}: options such as {option!r} are not supported in a layer's requirements"
                " file; list requirements only (indexes and find-links are set on the layer)"
            )
        result.append((start, line))
    if pending.strip():
        result.append((start, pending.strip()))
    return result


def _top_level_requirements(args: argparse.Namespace, inputs: _Inputs) -> list[_TopLevel]:
    origin = f"layer '{args.layer_name}' --requirement"
    result = [_TopLevel(text.strip(), _parse_requirement(text.strip(), origin), origin) for text in args.requirements]
    for path, data in inputs.requirements_in:
        for number, text in _requirements_in_lines(path, data):
            origin = f"{path}:{number}"
            result.append(_TopLevel(text, _parse_requirement(text, origin), origin))
    return result


def _applies(requirement: Requirement) -> bool:
    """Whether a requirement's marker holds for the running interpreter (the layer's Python)."""
    return requirement.marker is None or requirement.marker.evaluate({"extra": ""})


# --- lower layers ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Pin:
    """A package that a lower layer installs."""

    version: str
    layer: str
    source: str  # the lock file that pins it


def _lower_pins(inputs: _Inputs) -> dict[str, _Pin]:
    """Normalized name -> pin, from the lower layers' locks (the lowest layer that installs it wins)."""
    pins: dict[str, _Pin] = {}
    provided_elsewhere: list[tuple[str, _Pin]] = []
    for layer, path, data in inputs.lower_locks:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise VenvstacksError(f"{path}: not UTF-8 text: {error}") from error
        lock = pylock.parse_lock(text, str(path))
        if lock.layer != layer:
            raise VenvstacksError(f"{path}: the lock of layer '{lock.layer}' was given as the lock of layer '{layer}'")
        for package in lock.packages:
            name = pylock.normalize_name(package.name)
            pin = _Pin(package.version, layer, str(path))
            previous = pins.setdefault(name, pin)
            if previous.version != pin.version:
                raise VenvstacksError(
                    f"layers '{previous.layer}' and '{layer}' both install {name}, at versions"
                    f" {previous.version} ({previous.source}) and {pin.version} ({path}); re-lock '{layer}'"
                )
        for provided in lock.provided:
            provided_elsewhere.append(
                (pylock.normalize_name(provided.name), _Pin(provided.version, provided.layer, str(path)))
            )
    # A lower lock's own `provided` list covers layers further down that were not passed.
    for name, pin in provided_elsewhere:
        pins.setdefault(name, pin)
    return pins


def _check_against_lower_pins(layer: str, requirements: Sequence[_TopLevel], pins: dict[str, _Pin]) -> None:
    """Fail, naming both layers and the package, when a requirement excludes a lower layer's pin."""
    from packaging.utils import canonicalize_name

    for top in requirements:
        requirement = top.requirement
        if not _applies(requirement):
            continue
        name = str(canonicalize_name(requirement.name))
        pin = pins.get(name)
        if pin is None:
            continue
        if requirement.url or not requirement.specifier.contains(pin.version, prereleases=True):
            raise VenvstacksError(
                f"layer '{layer}' requires '{top.text}' but layer '{pin.layer}' pins"
                f" {name}=={pin.version} ({pin.source})"
            )


# --- pip environment -------------------------------------------------------------------------


@contextlib.contextmanager
def isolated_pip_environment() -> Iterator[None]:
    """For the duration: no pip config file, no PIP_* variable but transport ones, no prompts."""
    saved = dict(os.environ)
    try:
        for key in list(os.environ):
            if key.startswith("PIP_") and key not in _PIP_TRANSPORT_VARIABLES:
                del os.environ[key]
        os.environ["PIP_CONFIG_FILE"] = os.devnull  # pip then reads no config file at all
        os.environ["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
        os.environ["PIP_NO_INPUT"] = "1"
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@dataclass(frozen=True)
class _Index:
    """Index options for pip and pip-compile."""

    index_url: str
    extra_index_urls: list[str]
    find_links: list[str]  # absolute paths or URLs

    def pip_arguments(self) -> list[str]:
        arguments = ["--index-url", self.index_url]
        for url in self.extra_index_urls:
            arguments += ["--extra-index-url", url]
        for link in self.find_links:
            arguments += ["--find-links", link]
        hosts: list[str] = []
        for url in [self.index_url, *self.extra_index_urls, *self.find_links]:
            parts = urllib.parse.urlsplit(url)
            if parts.scheme == "http" and parts.hostname:
                host = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
                if host not in hosts:
                    hosts.append(host)
        for host in hosts:
            arguments += ["--trusted-host", host]
        return arguments


def _index(args: argparse.Namespace, workspace: Path) -> _Index:
    links = []
    for link in args.find_links:
        if "://" in link or link.startswith("file:") or os.path.isabs(link):
            links.append(link)
        else:
            links.append(str(workspace / link))
    return _Index(args.index_url, list(args.extra_index_urls), links)


# --- pip-compile -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Compiled:
    """One line of pip-compile's output."""

    name: str  # normalized
    version: str
    requirement: str  # the line without its hashes, e.g. `numpy==2.1.2`
    hashes: list[str]  # `sha256:<hex>`


def _logical_lines(text: str) -> list[str]:
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", raw).rstrip()
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = (pending + line).strip()
        pending = ""
        if line:
            lines.append(line)
    if pending.strip():
        lines.append(pending.strip())
    return lines


def _parse_compiled(text: str, layer: str) -> list[_Compiled]:
    from packaging.utils import canonicalize_name

    result = []
    for line in _logical_lines(text):
        if line.startswith("-"):
            continue  # an option line; none are emitted with the flags used
        tokens = line.split()
        hashes = [token.partition("=")[2] for token in tokens if token.startswith("--hash=")]
        requirement_text = " ".join(token for token in tokens if not token.startswith("--hash"))
        requirement = _parse_requirement(requirement_text, f"layer '{layer}': pip-compile output")
        specifiers = list(requirement.specifier)
        version = ""
        if len(specifiers) == 1 and specifiers[0].operator in ("==", "==="):
            version = specifiers[0].version
        result.append(_Compiled(str(canonicalize_name(requirement.name)), version, requirement_text, hashes))
    return result


@contextlib.contextmanager
def _captured_pip_logging() -> Iterator[io.StringIO]:
    """Collect what pip logs (pip-tools leaves pip's loggers without handlers) for error messages."""
    import logging

    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setLevel(logging.DEBUG)  # pip logs why it could not read an index page at debug level
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    logger = logging.getLogger("pip._internal")
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False  # piptools calls logging.basicConfig(): keep pip's debug lines off stderr
    try:
        yield buffer
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


def _requirement_name(text: str) -> str:
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    try:
        return str(canonicalize_name(Requirement(text).name))
    except InvalidRequirement:
        return text


def _resolution_error(
    args: argparse.Namespace, message: str, log: str, pins: dict[str, _Pin], top_level: Sequence[_TopLevel]
) -> VenvstacksError:
    """A one-line VenvstacksError from a failed pip-compile, naming the layer and the package."""
    from packaging.utils import canonicalize_name

    layer = args.layer_name
    where = f"Python {args.python_version} on {args.platform}"
    missing = re.search(r"No matching distribution found for (.+?)\s*$", message, re.MULTILINE)
    if missing:
        requirement = missing.group(1).strip()
        name = _requirement_name(requirement)
        pages = {
            url
            for url in re.findall(r"Fetching project page and analyzing links: (\S+)", log)
            if url.rstrip("/").rpartition("/")[2] == name
        }
        failed = dict(re.findall(r"Could not fetch URL (\S+?): (.*?)(?: - skipping)?$", log, re.MULTILINE))
        unreadable = [f"{url}: {reason}" for url, reason in failed.items() if not reason.startswith("404 ")]
        if unreadable:
            return VenvstacksError(f"layer '{layer}': cannot read the package index for '{name}': {unreadable[0]}")
        if pages and pages <= set(failed) and not args.find_links:
            indexes = ", ".join(strip_credentials(url) for url in [args.index_url, *args.extra_index_urls])
            return VenvstacksError(f"layer '{layer}': no project '{name}' on the package index ({indexes})")
        pattern = "Could not find a version that satisfies the requirement " + re.escape(requirement)
        versions = re.search(pattern + r" \(from versions: (.*?)\)", log)
        if versions is None or versions.group(1).strip() == "none":
            return VenvstacksError(
                f"layer '{layer}': no compatible wheel of '{name}' for {where}; layers are installed from"
                " wheels only, so a package with only an sdist, or only wheels for other Pythons or"
                " platforms, cannot be locked"
            )
        return VenvstacksError(
            f"layer '{layer}': no version of '{name}' that satisfies '{requirement}' has a wheel for"
            f" {where} (versions with a compatible wheel: {versions.group(1)})"
        )
    causes_block = re.search(r"The conflict is caused by:\n(.*?)(?:\n\s*\n|\Z)", log, re.DOTALL)
    if causes_block:
        top_names = {str(canonicalize_name(t.requirement.name)): t.text for t in top_level}
        causes = []
        for line in causes_block.group(1).splitlines():
            line = line.strip()
            constraint = re.fullmatch(r"The user requested \(constraint\) (.+?)==(\S+)", line)
            requested = re.fullmatch(r"The user requested (.+)", line)
            if constraint:
                name = _requirement_name(constraint.group(1))
                pin = pins.get(name)
                if pin is not None:
                    line = f"layer '{pin.layer}' pins {name}=={pin.version} ({pin.source})"
            elif requested:
                name = _requirement_name(requested.group(1))
                line = f"layer '{layer}' requires '{top_names.get(name, requested.group(1))}'"
            if line:
                causes.append(line)
        return VenvstacksError(f"layer '{layer}': the requirements conflict: {'; '.join(causes)}")
    errors = [line.strip() for line in log.splitlines() if re.match(r"\s*(ERROR|CRITICAL):", line)]
    detail = f" ({errors[-1]})" if errors else ""
    return VenvstacksError(f"layer '{layer}': pip-compile failed: {message.strip()}{detail}")


def _run_pip_compile(
    args: argparse.Namespace,
    argv: list[str],
    pins: dict[str, _Pin],
    top_level: Sequence[_TopLevel],
) -> None:
    """Run pip-compile in this process with `argv`; failures become a VenvstacksError."""
    import click
    from pip._internal.exceptions import PipError
    from piptools.scripts.compile import cli as compile_cli

    output = io.StringIO()
    with _captured_pip_logging() as log:
        try:
            with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
                result = compile_cli.main(argv, standalone_mode=False)
        except SystemExit as error:
            result = error.code
        except click.exceptions.ClickException as error:
            raise VenvstacksError(f"layer '{args.layer_name}': pip-compile: {error.format_message()}") from error
        except click.exceptions.Abort as error:
            raise VenvstacksError(f"layer '{args.layer_name}': pip-compile was interrupted") from error
        except PipError as error:
            text = output.getvalue() + "\n" + log.getvalue()
            raise _resolution_error(args, str(error), text, pins, top_level) from error
    if result not in (None, 0):
        text = output.getvalue() + "\n" + log.getvalue()
        raise _resolution_error(args, f"exit status {result}", text, pins, top_level)


# --- choosing wheels -------------------------------------------------------------------------


def _report_hash(item: dict[str, Any]) -> str:
    info = item.get("download_info") or {}
    archive = info.get("archive_info") or {}
    sha256 = (archive.get("hashes") or {}).get("sha256")
    if not sha256:
        algorithm, _, value = str(archive.get("hash") or "").partition("=")
        sha256 = value if algorithm == "sha256" else ""
    return str(sha256).lower()


def _locked_wheel(layer: str, url: str, sha256: str, workspace: Path, lock_dir: Path) -> pylock.LockedWheel:
    """The lock entry of a picked wheel; a local file (find-links) becomes a path beside the lock.

    PEP 751 paths are relative to the lock file, so a checked-in lock names no machine's
    directories; a wheel outside the workspace could not be fetched elsewhere and is refused.
    """
    file_name = posixpath.basename(urllib.parse.unquote(urllib.parse.urlsplit(url).path))
    if not url.startswith("file:"):
        return pylock.LockedWheel(file_name, url, sha256)
    local = Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path)).resolve()
    if not local.is_relative_to(workspace.resolve()):
        raise VenvstacksError(
            f"layer '{layer}': {file_name} would be locked as {local}, outside the workspace; put the"
            " find-links directory in the workspace or serve it over HTTP"
        )
    return pylock.LockedWheel(file_name, "", sha256, path=os.path.relpath(local, lock_dir.resolve()))


def _choose_wheels(
    args: argparse.Namespace, own: Sequence[_Compiled], index: _Index, tmp: Path, workspace: Path, lock_dir: Path
) -> list[pylock.LockedPackage]:
    """The exact wheel of each package, as pip's installer would pick it for this interpreter."""
    if not own:
        return []
    layer = args.layer_name
    requirements = tmp / "install.txt"
    requirements.write_text(
        "".join(f"{c.requirement} " + " ".join(f"--hash={h}" for h in c.hashes) + "\n" for c in own),
        encoding="utf-8",
    )
    report_path = tmp / "report.json"
    command = pip_command(
        [
            "install",
            "--dry-run",
            "--ignore-installed",
            "--no-deps",
            _PIP_ONLY_BINARY,
            "--require-hashes",
            "--no-cache-dir",
            "--disable-pip-version-check",
            "--no-input",
            "--report",
            str(report_path),
            "-r",
            str(requirements),
            *index.pip_arguments(),
        ]
    )
    process = run_captured(command)
    if process.returncode != 0:
        lines = [line.strip() for line in (process.stderr + process.stdout).splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("ERROR")] or lines[-3:]
        raise VenvstacksError(f"layer '{layer}': pip could not pick the wheels to lock: {' '.join(errors)}")
    report = json.loads(report_path.read_text(encoding="utf-8"))

    from packaging.utils import canonicalize_name

    wanted = {c.name: c for c in own}
    packages: dict[str, pylock.LockedPackage] = {}
    for item in report.get("install", []):
        metadata = item.get("metadata") or {}
        name = str(canonicalize_name(str(metadata.get("name", ""))))
        version = str(metadata.get("version", ""))
        url = strip_credentials(str((item.get("download_info") or {}).get("url", "")))
        file_name = posixpath.basename(urllib.parse.unquote(urllib.parse.urlsplit(url).path))
        sha256 = _report_hash(item)
        if name not in wanted:
            raise VenvstacksError(f"layer '{layer}': pip picked {name} {version}, which pip-compile did not pin")
        if not file_name.endswith(".whl"):
            raise VenvstacksError(f"layer '{layer}': pip picked {file_name!r} for {name}, which is not a wheel")
        if not re.fullmatch(r"[0-9a-f]{64}", sha256):
            raise VenvstacksError(f"layer '{layer}': the index gave no sha256 for {file_name}")
        wheel = _locked_wheel(layer, url, sha256, workspace, lock_dir)
        packages[name] = pylock.LockedPackage(name, version, [wheel])
    missing = sorted(set(wanted) - set(packages))
    if missing:
        raise VenvstacksError(f"layer '{layer}': pip picked no wheel for {', '.join(missing)}")
    return [packages[name] for name in sorted(packages)]


# --- lock ------------------------------------------------------------------------------------


def default_requirements_path(lock_path: str) -> str:
    """`stacks/app.pylock.toml` (or `stacks/pylock.app.toml`) -> `stacks/app.requirements.txt`."""
    directory, _, name = lock_path.rpartition("/")
    stem = name.removesuffix(".toml").removesuffix(".pylock").removeprefix("pylock.")
    return (directory + "/" if directory else "") + stem + ".requirements.txt"


def _workspace_dir(args: argparse.Namespace) -> Path:
    if args.workspace_dir is not None:
        return Path(args.workspace_dir)
    workspace = os.environ.get("BUILD_WORKSPACE_DIRECTORY")
    if not workspace:
        raise VenvstacksError(
            "lock: no --workspace-dir and BUILD_WORKSPACE_DIRECTORY is not set; run it with"
            f" `bazel run {args.lock_target or '<layer>.lock'}`"
        )
    return Path(workspace)


def _check_interpreter(args: argparse.Namespace) -> None:
    import platform

    running = platform.python_version()
    if running != args.python_version:
        raise VenvstacksError(
            f"layer '{args.layer_name}' is locked for Python {args.python_version}, but this is Python"
            f" {running}: the lock must run on the layer's runtime interpreter, so markers evaluate for it"
        )


def _existing_pins(path: Path, pins: dict[str, _Pin]) -> str:
    """`name==version` lines of the current lock, as pip-compile's starting point ('' if none)."""
    try:
        lock = pylock.read_lock(path)
    except VenvstacksError:
        return ""
    lines = [
        f"{package.name}=={package.version}\n"
        for package in lock.packages
        if pylock.normalize_name(package.name) not in pins
    ]
    return "".join(sorted(lines))


def render_requirements(lock: pylock.Lock, lock_path: str, lock_target: str) -> str:
    """The requirements.txt written next to the lock: this layer's wheels with `--hash`, for people."""
    command = f"`bazel run {lock_target}`" if lock_target else "`bazel run` of the layer's .lock target"
    lines = [
        f"# This file is generated by {command} with {lock_path}; do not edit.",
        f"# Layer '{lock.layer}' ({lock.kind}), Python {lock.python_version} on {lock.platform}; the wheels"
        " of this layer only, with the hash of the exact file locked.",
    ]
    for provided in sorted(lock.provided, key=lambda p: pylock.normalize_name(p.name)):
        lines.append(f"# {provided.name}=={provided.version}: provided by layer '{provided.layer}'")
    for package in sorted(lock.packages, key=lambda p: pylock.normalize_name(p.name)):
        hashes = sorted(wheel.sha256 for wheel in package.wheels)
        lines.append(f"{package.name}=={package.version} \\")
        lines += [f"    --hash=sha256:{h}" + (" \\" if i < len(hashes) - 1 else "") for i, h in enumerate(hashes)]
    return "\n".join(lines) + "\n"


def lock(args: argparse.Namespace) -> pylock.Lock:
    """Resolve the layer, write its lock and requirements.txt into the workspace; return the lock."""
    layer = args.layer_name
    output_lock = args.output_lock or args.lock
    if not output_lock:
        raise VenvstacksError(f"lock: layer '{layer}': --output-lock is required")
    output_requirements = args.output_requirements or default_requirements_path(output_lock)
    workspace = _workspace_dir(args)
    _check_interpreter(args)

    inputs = _read_inputs(args)
    digest = inputs.hash(args)
    top_level = _top_level_requirements(args, inputs)
    pins = _lower_pins(inputs)
    _check_against_lower_pins(layer, top_level, pins)
    index = _index(args, workspace)
    lock_file = workspace / output_lock

    print(f"venvstacks: resolving {len(top_level)} requirement(s) of layer '{layer}'...", file=sys.stderr)
    with isolated_pip_environment(), tempfile.TemporaryDirectory(prefix="venvstacks-lock-") as tmp_name:
        tmp = Path(tmp_name)
        compiled: list[_Compiled] = []
        if top_level:
            source = tmp / "requirements.in"
            source.write_text("".join(t.written + "\n" for t in top_level), encoding="utf-8")
            output = tmp / "requirements.txt"
            output.write_text("" if args.upgrade else _existing_pins(lock_file, pins), encoding="utf-8")
            argv = [
                str(source),
                "--output-file",
                str(output),
                "--generate-hashes",
                "--allow-unsafe",
                "--strip-extras",
                "--no-header",
                "--no-annotate",
                "--no-emit-index-url",
                "--no-emit-find-links",
                "--no-emit-trusted-host",
                "--no-emit-options",
                "--resolver=backtracking",
                "--newline=lf",
                "--no-config",
                "--cache-dir",
                str(tmp / "pip-tools-cache"),
                *index.pip_arguments(),
                "--pip-args",
                f"{_PIP_ONLY_BINARY} --no-cache-dir",
            ]
            if pins:
                constraints = tmp / "lower-layers.txt"
                constraints.write_text(
                    "".join(f"{name}=={pin.version}\n" for name, pin in sorted(pins.items())), encoding="utf-8"
                )
                argv += ["--constraint", str(constraints)]
            if args.upgrade:
                argv.append("--upgrade")
            _run_pip_compile(args, argv, pins, top_level)
            compiled = _parse_compiled(output.read_text(encoding="utf-8"), layer)

        provided = []
        own = []
        for entry in compiled:
            pin = pins.get(entry.name)
            if pin is None:
                own.append(entry)
            else:
                provided.append(pylock.ProvidedPackage(entry.name, pin.version, pin.layer))
        packages = _choose_wheels(args, own, index, tmp, workspace, lock_file.parent)

    result = pylock.Lock(
        layer=layer,
        kind=args.layer_kind,
        inputs_hash=digest,
        python_version=args.python_version,
        platform=args.platform,
        requirements=[t.written for t in top_level],
        packages=packages,
        provided=sorted(provided, key=lambda p: p.name),
    )
    pylock.write_lock(lock_file, result, args.lock_target or None)
    write_bytes_atomic(
        workspace / output_requirements,
        render_requirements(result, output_lock, args.lock_target).encode("utf-8"),
    )
    print(
        f"venvstacks: locked layer '{layer}': {len(packages)} package(s), {len(provided)} provided by lower"
        f" layers -> {output_lock}"
    )
    return result


def main(argv: list[str]) -> int:
    """Run `lock` with `argv`; errors are raised as VenvstacksError."""
    lock(build_parser().parse_args(argv))
    return 0
