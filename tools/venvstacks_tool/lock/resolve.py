"""Resolve a layer's requirements for several target platforms at once, from any host, with pip or uv.

With `uv` given, each platform's resolution is one `uv pip compile` run (`uv_resolver`) instead
of a pip child; everything else here (concurrency, preferred versions, one version everywhere,
per-platform lower pins) is the same for both resolvers. The rest of this note describes pip's.

`resolve()` runs pip's own resolver (`pip install --dry-run --report`), binary-only, once per
target platform, each in a child process (`pip_child`) whose marker environment is the target's,
so `; sys_platform == "win32"` and `Requires-Dist: colorama; platform_system == "Windows"` hold
on Windows only whatever the host is. `--platform`/`--python-version`/`--implementation`/`--abi`
make pip accept exactly the wheels the target's PBS runtime can load. The platforms run
concurrently, one child each, so N platforms cost about one.

No wheel is downloaded: pip reads each candidate's metadata from the index's PEP 658 file (PyPI)
or, on an index without it, from the wheel's zip directory through HTTP range requests
(`--use-feature=fast-deps`, a few kB per wheel); the sha256 of every picked wheel comes from the
index's link (`download_info.archive_info.hashes` in pip's report). Local find-links wheels are
hashed from disk.

After a first round the versions are made consistent: a package whose versions differ between
platforms is re-resolved pinned to the lowest version seen, and a platform keeps its own versions
only where that pin cannot be resolved; `MultiResolution.divergent()` lists what still differs.
A lower layer's pins are per platform (`constraints[triple]`) and are never moved by that
unification: a package a lower layer provides on a platform keeps the lower layer's version there.

`lock_command` calls `resolve()`; pip is only ever imported in the children.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import os
import posixpath
import re
import sys
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.core.fsutil import sha256_file
from venvstacks_tool.core.platforms import DEFAULT_FLOORS, TargetPlatform, WheelFloors, platforms_problem
from venvstacks_tool.core.process import output_tail, run_captured
from venvstacks_tool.core.project_names import normalize_name
from venvstacks_tool.core.protocol import is_sha256
from venvstacks_tool.lock import failures, pip_child, uv_resolver
from venvstacks_tool.lock.index_options import IndexOptions
from venvstacks_tool.lock.results import Failure, ResolvedWheel
from venvstacks_tool.lock.urls import file_url_path, strip_credentials

# At most this many pip children at once. A child spends most of its ~0.6 s of CPU starting pip
# and parsing index pages, so more children than cores only queue (measured on 2 cores: 5
# platforms take 5.2 s one at a time, 3.0 s two at a time, 3.5 s five at a time).
DEFAULT_MAX_WORKERS = max(2, min(5, os.cpu_count() or 1))
# At most this many uv runs at once: every platform of a layer (there are five). A uv run is
# native code that mostly waits for the index, so on 2 cores five at once beat two at a time:
# the bench's five-platform `stack.lock` run by hand, 2.9 s against 3.75 s (medians of four
# rounds, load 16 to 19; docs/performance.md, run 13).
UV_MAX_WORKERS = 5
# Rounds of "pin what differs to its lowest version" after the first resolution; each round can
# only add pins or give a platform up, so a few suffice (a dependency moved by one pin may differ).
_CONSISTENCY_ROUNDS = 3
# PIP_* variables kept in the children: they choose how to reach an index (certificates, proxy,
# timeouts, retries), never what gets resolved. Every other PIP_* variable and every pip config
# file is ignored, so a lock does not depend on the machine it was made on (as `lock_command`).
_PIP_TRANSPORT_VARIABLES = frozenset(
    {"PIP_CERT", "PIP_CLIENT_CERT", "PIP_PROXY", "PIP_TIMEOUT", "PIP_DEFAULT_TIMEOUT", "PIP_RETRIES"}
)
# The child: the parent's sys.path first (the tool's pinned pip and this package), then pip_child.
_CHILD_BOOTSTRAP = "; ".join(
    [
        "import sys",
        "sys.path[0:0] = {paths!r}",
        "from venvstacks_tool.lock.pip_child import main",
        "sys.exit(main(sys.argv[1:]))",
    ]
)


# --- public types ----------------------------------------------------------------------------


@dataclass(frozen=True)
class MultiResolution:
    """A layer resolved for several platforms.

    `wheels` maps each platform's triple to {normalized name -> ResolvedWheel}: what that
    platform installs (packages whose markers are false there are absent). Versions are the same
    on every platform except where `divergent()` says otherwise. `without_preferred` lists the
    triples where the preferred pins (the current lock) could not be kept and were dropped.
    """

    layer: str
    python_full_version: str
    platforms: tuple[TargetPlatform, ...]
    wheels: Mapping[str, Mapping[str, ResolvedWheel]]
    without_preferred: tuple[str, ...] = ()

    def for_platform(self, platform: TargetPlatform | str) -> Mapping[str, ResolvedWheel]:
        """{name -> wheel} of one platform, given as a TargetPlatform or its triple."""
        triple = platform if isinstance(platform, str) else platform.triple
        return self.wheels[triple]

    def names(self) -> list[str]:
        """Every package name installed on at least one platform, sorted."""
        return sorted({name for wheels in self.wheels.values() for name in wheels})

    def versions(self, name: str) -> dict[str, str]:
        """{triple -> version} of package `name` on the platforms that install it."""
        return {triple: wheels[name].version for triple, wheels in self.wheels.items() if name in wheels}

    def divergent(self) -> dict[str, dict[str, str]]:
        """{name -> {triple -> version}} of the packages whose version is not the same everywhere."""
        result = {}
        for name in self.names():
            versions = self.versions(name)
            if len(set(versions.values())) > 1:
                result[name] = versions
        return result


def resolve(
    layer: str,
    platforms: Sequence[TargetPlatform],
    python_full_version: str,
    requirements: Sequence[str],
    constraints: Mapping[str, Mapping[str, str]],
    index: IndexOptions,
    preferred: Mapping[str, str],
    workdir: Path,
    *,
    pinned_by: Mapping[str, str] | None = None,
    max_workers: int | None = None,
    floors: WheelFloors = DEFAULT_FLOORS,
    uv: Path | None = None,
    uv_cache_dir: Path | None = None,
) -> MultiResolution:
    """Resolve `requirements` of layer `layer` for each of `platforms` on CPython `python_full_version`.

    - `requirements`: PEP 508 requirement strings (no pip options); markers are evaluated for
      each platform, so a requirement may apply to some platforms only.
    - `constraints`: {triple -> {name -> exact version}} that must hold on that platform (the
      lower layers' pins, which differ per platform when a lower layer installs a package on some
      platforms only); a triple that is absent has none. A package the lower layers install is
      resolved at that version, and still appears in the result.
    - `preferred`: {name -> version} to keep where possible (the current lock): tried first as
      constraints; a platform where they make the resolution impossible is resolved without them.
    - `workdir`: an existing or creatable directory for pip's inputs, reports and logs (one
      `<round>-<platform>.log` per pip run, kept for diagnosis).
    - `pinned_by`: {name -> who pins it, e.g. "layer 'framework' (stacks/pylock.framework.toml)"}
      for conflict messages; a constrained package not in it is said to be pinned by "a lower layer".
    - `floors`: the oldest glibc and macOS the wheels must run on (default: `DEFAULT_FLOORS`).
    - `uv`: the uv binary to resolve with (`uv_resolver`) instead of pip children; the rounds
      around each platform's resolution are the same for both.
    - `uv_cache_dir`: uv's cache (index pages, the interpreter's description), for several
      layers locked in one command to share; default: a new one in `workdir`.
    - `max_workers`: how many platforms are resolved at once (default: `DEFAULT_MAX_WORKERS`
      pip children, `UV_MAX_WORKERS` uv runs).

    Returns a MultiResolution with, per platform, the exact wheel of each package and its sha256
    (no wheel is downloaded). Raises VenvstacksError, one line naming the layer, the platform's
    short name and the package, when a package has no wheel for a platform, the requirements
    conflict, a project does not exist, or the index cannot be read.
    """
    if not platforms:
        raise VenvstacksError(f"layer '{layer}': no target platform to resolve for")
    triples = [platform.triple for platform in platforms]
    problem = platforms_problem(triples)
    if problem is not None:
        raise VenvstacksError(f"layer '{layer}': {problem.message}")
    unknown = sorted(set(constraints) - set(triples))
    if unknown:
        # Also catches a flat {name -> version} mapping passed by mistake: its keys are no triples.
        raise VenvstacksError(f"layer '{layer}': constraints for platforms not resolved: {', '.join(unknown)}")
    for platform in platforms:
        platform.marker_environment(python_full_version)  # validates the version before any pip runs
    lines = [requirement.strip() for requirement in requirements]
    for line in lines:
        if not line or line.startswith("-") or "\n" in line:
            raise VenvstacksError(f"layer '{layer}': {line!r} is not a requirement (PEP 508, no pip options)")
    if not lines:
        return MultiResolution(layer, python_full_version, tuple(platforms), {triple: {} for triple in triples})

    workdir.mkdir(parents=True, exist_ok=True)
    lower = {
        triple: {normalize_name(name): version for name, version in constraints.get(triple, {}).items()}
        for triple in triples
    }
    whose = {normalize_name(name): text for name, text in (pinned_by or {}).items()}
    workers = max_workers or (DEFAULT_MAX_WORKERS if uv is None else UV_MAX_WORKERS)
    run = _Runner(layer, python_full_version, index, workdir, lower, whose, workers, floors, uv, uv_cache_dir)
    run.requirements.write_text("".join(line + "\n" for line in lines), encoding="utf-8")

    # The current lock's versions, where no lower layer pins the package on that platform.
    with_preferred = {
        triple: {
            **{
                normalize_name(name): version
                for name, version in preferred.items()
                if normalize_name(name) not in lower[triple]
            },
            **lower[triple],
        }
        for triple in triples
    }
    base: dict[str, dict[str, str]] = {triple: dict(lower[triple]) for triple in triples}
    without_preferred: list[str] = []
    if any(with_preferred[triple] != base[triple] for triple in triples):
        first = run.round("preferred", platforms, with_preferred)
        retry = [p for p in platforms if _retryable(first[p.triple])]
        first.update(run.round("fresh", retry, base))
        for platform in platforms:
            if platform not in retry:
                base[platform.triple] = with_preferred[platform.triple]
        without_preferred = [platform.triple for platform in retry]
    else:
        first = run.round("fresh", platforms, base)
    failing = failures.failed(first, platforms)
    if failing:  # every failing platform in one message, in the caller's platform order
        raise VenvstacksError(run.describe(failing, base))
    results: dict[str, dict[str, ResolvedWheel]] = {
        triple: outcome for triple, outcome in first.items() if not isinstance(outcome, Failure)
    }
    _make_consistent(run, platforms, results, base)
    return MultiResolution(
        layer,
        python_full_version,
        tuple(platforms),
        {triple: dict(sorted(results[triple].items())) for triple in triples},
        tuple(without_preferred),
    )


def isolated_pip_environ(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """`environ` (default: this process') for a pip child: no config file, no PIP_* but transport ones, no prompts."""
    result = {
        key: value
        for key, value in (os.environ if environ is None else environ).items()
        if not key.startswith("PIP_") or key in _PIP_TRANSPORT_VARIABLES
    }
    result["PIP_CONFIG_FILE"] = os.devnull  # pip then reads no config file at all
    result["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    result["PIP_NO_INPUT"] = "1"
    return result


# --- consistency -----------------------------------------------------------------------------


def _make_consistent(
    run: _Runner,
    platforms: Sequence[TargetPlatform],
    results: dict[str, dict[str, ResolvedWheel]],
    base: Mapping[str, Mapping[str, str]],
) -> None:
    """Pin every package whose versions differ to the lowest one seen and re-resolve, in place.

    A platform whose re-resolution fails keeps its last result and takes no part in later
    rounds (its versions stay explicit in the result); the others converge on shared versions.
    """
    from packaging.version import Version

    pins: dict[str, str] = {}
    given_up: set[str] = set()
    for number in range(1, _CONSISTENCY_ROUNDS + 1):
        active = [platform for platform in platforms if platform.triple not in given_up]
        seen: dict[str, set[str]] = {}
        for platform in active:
            for name, wheel in results[platform.triple].items():
                # A lower layer's pin on this platform is fixed: it is provided there, not chosen here.
                if name not in run.lower[platform.triple]:
                    seen.setdefault(name, set()).add(wheel.version)
        lowest = {name: min(versions, key=Version) for name, versions in seen.items() if len(versions) > 1}
        if not lowest:
            return
        pins.update(lowest)
        stale = [
            platform
            for platform in active
            if any(
                name in results[platform.triple]
                and name not in run.lower[platform.triple]
                and results[platform.triple][name].version != version
                for name, version in pins.items()
            )
        ]
        # A pin overrides a preferred version of the same package (both are only preferences
        # here), never a lower layer's pin on that platform.
        round_pins = {p.triple: {**base[p.triple], **pins, **run.lower[p.triple]} for p in stale}
        outcomes = run.round(f"consistent{number}", stale, round_pins)
        for platform in stale:
            outcome = outcomes[platform.triple]
            if isinstance(outcome, Failure):
                given_up.add(platform.triple)
            else:
                results[platform.triple] = outcome


# --- running pip -----------------------------------------------------------------------------


@dataclass
class _Runner:
    """Runs pip children for one layer; files go to `workdir`."""

    layer: str
    python_full_version: str
    index: IndexOptions
    workdir: Path
    lower: dict[str, dict[str, str]]  # triple -> {name -> version} the lower layers pin there
    pinned_by: dict[str, str]  # name -> who pins it, for messages
    max_workers: int
    floors: WheelFloors
    uv: Path | None = None  # the uv binary when uv resolves, else None (pip children)
    uv_cache_dir: Path | None = None  # uv's cache, when shared with other layers' runs
    requirements: Path = field(init=False)

    def __post_init__(self) -> None:
        self.requirements = self.workdir / "requirements.txt"

    def round(
        self, tag: str, platforms: Sequence[TargetPlatform], pins: Mapping[str, Mapping[str, str]]
    ) -> dict[str, dict[str, ResolvedWheel] | Failure]:
        """{triple -> wheels or failure} of resolving every platform with its `pins[triple]`, concurrently."""
        if not platforms:
            return {}
        workers = max(1, min(self.max_workers, len(platforms)))
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
            futures = {p.triple: pool.submit(self.one, tag, p, pins[p.triple]) for p in platforms}
            return {triple: future.result() for triple, future in futures.items()}

    def one(self, tag: str, platform: TargetPlatform, pins: Mapping[str, str]) -> dict[str, ResolvedWheel] | Failure:
        """Resolve for one platform with `pins` as constraints (one pip child, or one uv run)."""
        stem = self.workdir / f"{tag}-{platform.name}"
        constraints = stem.with_suffix(".constraints.txt")
        constraints.write_text("".join(f"{name}=={version}\n" for name, version in sorted(pins.items())), "utf-8")
        if self.uv is not None:
            run = uv_resolver.UvRun(
                self.uv,
                self.layer,
                platform,
                self.python_full_version,
                self.floors,
                self.index,
                self.uv_cache_dir or self.workdir / "uv-cache",
            )
            return run.resolve(self.requirements, constraints, stem, lambda name: self._whose(platform, name), pins)
        report = stem.with_suffix(".report.json")
        report.unlink(missing_ok=True)
        major, minor = self.python_full_version.split(".")[:2]
        arguments = [
            "install",
            "--dry-run",
            "--ignore-installed",
            "--only-binary=:all:",
            *[argument for tag_ in self.floors.platform_tags(platform) for argument in ("--platform", tag_)],
            # The full version, so Requires-Python such as ">=3.11.4" is checked exactly.
            "--python-version",
            self.python_full_version,
            "--implementation",
            "cp",
            "--abi",
            f"cp{major}{minor}",
            "--abi",
            "abi3",
            "--abi",
            "none",
            # Metadata from the index's PEP 658 files, else from range requests into the wheel's
            # zip; never a whole wheel (pip only falls back to that when neither is possible).
            "--use-feature=fast-deps",
            "--report",
            str(report),
            "--no-cache-dir",
            "--disable-pip-version-check",
            "--no-input",
            "-r",
            str(self.requirements),
            "-c",
            str(constraints),
            *self.index.pip_arguments(),
        ]
        paths = [os.path.abspath(entry) for entry in sys.path if entry]
        command = [
            sys.executable,
            "-I",
            "-X",
            "utf8",
            "-c",
            _CHILD_BOOTSTRAP.format(paths=paths),
            json.dumps(platform.marker_environment(self.python_full_version)),
            *arguments,
        ]
        # The index URLs go through the environment, never argv (see IndexOptions.pip_environ).
        process = run_captured(command, env={**isolated_pip_environ(), **self.index.pip_environ()})
        output = process.stdout + "\n" + process.stderr
        stem.with_suffix(".log").write_text(output, encoding="utf-8")
        if process.returncode != 0:
            return self._failure(platform, process.returncode, output, pins)
        try:
            data = json.loads(report.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise VenvstacksError(
                f"layer '{self.layer}': pip wrote no readable report for {platform.name}: {error}"
            ) from error
        return self._wheels(platform, data)

    def describe(self, failing: Sequence[tuple[TargetPlatform, Failure]], pins: Mapping[str, Mapping[str, str]]) -> str:
        """The one error of `failing`: where a package lacks a wheel, whether a raised floor fixes it.

        Those platforms are resolved again (fresh, `pins[triple]` the lower layers' pins) at the
        probe floors of `failures`; only a failing lock pays for it.
        """
        probed = [p for p, failure in failing if failure.package and failures.probe_floors(p, self.floors)]
        fixed: list[TargetPlatform] = []
        if probed:
            raised = WheelFloors(
                glibc=max(self.floors.glibc or (0, 0), failures.PROBE_GLIBC),
                macos=max(self.floors.macos or (0, 0), failures.PROBE_MACOS),
            )
            outcomes = dataclasses.replace(self, floors=raised).round("floor", probed, pins)
            fixed = [p for p in probed if not isinstance(outcomes[p.triple], Failure)]
        return failures.combined_message(self.layer, self.python_full_version, failing, fixed)

    def _whose(self, platform: TargetPlatform, name: str) -> str:
        """Who pins `name` on `platform`: a lower layer (named when known) or the current lock."""
        if name in self.lower[platform.triple]:
            return self.pinned_by.get(name, "a lower layer")
        return "the current lock"

    def _where(self, platform: TargetPlatform) -> str:
        return f"{platform.name} (Python {self.python_full_version})"

    def _wheels(self, platform: TargetPlatform, report: dict[str, Any]) -> dict[str, ResolvedWheel]:
        """{name -> wheel} from pip's installation report for `platform`."""
        wheels: dict[str, ResolvedWheel] = {}
        for item in report.get("install", []):
            metadata = item.get("metadata") or {}
            name = normalize_name(str(metadata.get("name", "")))
            version = str(metadata.get("version", ""))
            info = item.get("download_info") or {}
            raw_url = str(info.get("url", "")).partition("#")[0]
            file_name = posixpath.basename(urllib.parse.unquote(urllib.parse.urlsplit(raw_url).path))
            if not file_name.endswith(".whl"):
                raise VenvstacksError(
                    f"layer '{self.layer}': pip picked {file_name or raw_url!r} for '{name}' on"
                    f" {self._where(platform)}, which is not a wheel"
                )
            local_path = None
            if raw_url.startswith("file:"):
                # Find-links files carry no hash from an index: hash the file itself.
                local_path = file_url_path(raw_url).resolve()
                sha256 = sha256_file(local_path)
            else:
                sha256 = _report_sha256(info)
                if not is_sha256(sha256):
                    raise VenvstacksError(
                        f"layer '{self.layer}': the index gave no sha256 for {file_name} ('{name}' on"
                        f" {platform.name}); a lock needs the hash of every wheel, so serve the index with"
                        " hashes (PEP 503 #sha256= or PEP 691)"
                    )
            wheels[name] = ResolvedWheel(name, version, file_name, strip_credentials(raw_url), sha256, local_path)
        return wheels

    def _failure(self, platform: TargetPlatform, status: int, output: str, pins: Mapping[str, str]) -> Failure:
        """The one-line error of a failed pip child."""
        layer, where = self.layer, self._where(platform)
        if status == pip_child.PATCH_FAILED:
            lines = _error_lines(output) or [output_tail(output, 300)]
            raise VenvstacksError(f"layer '{layer}': cannot resolve for {platform.name}: {' '.join(lines)}")
        missing = re.search(r"No matching distribution found for (.+?)\s*$", output, re.MULTILINE)
        if missing:
            requirement = missing.group(1).strip()
            name = _requirement_name(requirement)
            fetched = {m.group(1) for m in _index_matches(output, "Fetching project page and analyzing links: (\\S+)")}
            failed = {
                m.group(1): m.group(2)
                for m in _index_matches(output, r"Could not fetch URL (\S+?): (.*?)(?: - skipping)?$")
            }
            pages = {url for url in fetched | set(failed) if _page_project(url) == name}
            broken = [f"{strip_credentials(url)}: {failed[url]}" for url in sorted(pages & set(failed))]
            broken = [text for text in broken if ": 404 " not in text]
            if broken:
                return Failure(
                    f"layer '{layer}': cannot read the package index for '{name}' ({platform.name}): {broken[0]}",
                    retryable=False,
                )
            if pages and pages <= set(failed) and not self.index.find_links:
                return Failure(
                    f"layer '{layer}': no project '{name}' on the package index ({self.index.describe()})",
                    retryable=False,
                )
            versions = re.search(re.escape(requirement) + r" \(from versions: (.*?)\)", output)
            if name in pins:
                return Failure(
                    f"layer '{layer}': {self._whose(platform, name)} pins {name}=={pins[name]}, which has no"
                    f" wheel for {where}",
                    retryable=True,
                )
            if versions is None or versions.group(1).strip() == "none":
                return failures.no_wheel(layer, name, where)
            return Failure(
                f"layer '{layer}': no version of '{name}' that satisfies '{requirement}' has a wheel for"
                f" {where} (versions with a wheel: {versions.group(1)})",
                retryable=True,
                package=name,
            )
        if "ResolutionImpossible" in output:
            block = re.search(r"The conflict is caused by:\n(.*?)(?:\n\s*\n|\n\S|\Z)", output, re.DOTALL)
            causes = []
            for line in (block.group(1) if block else "").splitlines():
                line = line.strip()
                pinned = re.fullmatch(r"The user requested \(constraint\) (.+?)==(\S+)", line)
                if pinned:
                    pin_name = normalize_name(pinned.group(1))
                    line = f"{self._whose(platform, pin_name)} pins {pin_name}=={pinned.group(2)}"
                elif line.startswith("The user requested "):
                    line = f"layer '{layer}' requires {line.removeprefix('The user requested ')}"
                if line:
                    causes.append(line)
            detail = "; ".join(causes) or " ".join(_error_lines(output))
            return Failure(f"layer '{layer}': the requirements conflict on {where}: {detail}", retryable=True)
        detail = " ".join(_error_lines(output)) or output_tail(output, 300).replace("\n", " ")
        return Failure(f"layer '{layer}': pip failed to resolve for {where}: {detail}", retryable=False)


# --- helpers ---------------------------------------------------------------------------------


def _requirement_name(text: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", text)
    return normalize_name(match.group(1)) if match else text


def _page_project(url: str) -> str:
    """The project an index page URL is for (`https://pypi.org/simple/foo/` -> `foo`)."""
    return normalize_name(urllib.parse.urlsplit(url).path.rstrip("/").rpartition("/")[2])


def _index_matches(output: str, pattern: str) -> Iterator[re.Match[str]]:
    """The matches of `pattern` on the index lines pip_child copied into `output`."""
    return re.finditer("^" + re.escape(pip_child.INDEX_PREFIX) + pattern, output, re.MULTILINE)


def _retryable(outcome: dict[str, ResolvedWheel] | Failure) -> bool:
    """Whether a failed outcome may succeed without the preferred pins."""
    return isinstance(outcome, Failure) and outcome.retryable


def _error_lines(output: str) -> list[str]:
    return [line.strip() for line in output.splitlines() if line.startswith("ERROR:")]


def _report_sha256(info: Mapping[str, Any]) -> str:
    archive = info.get("archive_info") or {}
    sha256 = (archive.get("hashes") or {}).get("sha256")
    if not sha256:
        algorithm, _, value = str(archive.get("hash") or "").partition("=")
        sha256 = value if algorithm == "sha256" else ""
    return str(sha256).lower()
