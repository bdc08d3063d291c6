"""Resolve one layer for one target platform with uv (`uv pip compile`), into the same results as pip's.

`resolve` runs this once per platform, all platforms at once, when the resolver is uv; the rounds
around it (the current lock's versions preferred, one version on every platform, the lower
layers' pins per platform) are `resolve`'s and the same for both resolvers.

One run is `uv pip compile REQUIREMENTS -c CONSTRAINTS --format pylock.toml` with:

- `--python-platform` the target (`x86_64-manylinux_2_17`, `aarch64-apple-darwin`,
  `x86_64-pc-windows-msvc`) and `--python-version` the runtime's full version: uv then evaluates
  markers for the target (not the host) and accepts only the wheels the target can install;
  `MACOSX_DEPLOYMENT_TARGET` is the macOS floor, the manylinux version of the platform the glibc
  floor (uv knows glibc 2.17, 2.28 and 2.31 to 2.40 only: another floor is refused with the
  advice to lock with pip);
- `--only-binary :all:`, so a package without a wheel for the target fails;
- `--python` the interpreter the tool runs on and `--no-python-downloads`: uv never fetches a
  Python (it would, from GitHub, for a version it does not find on the machine);
- no configuration of the machine (`--no-config`, every `UV_*` variable but the transport ones
  dropped), the index URLs through the environment (`UV_INDEX_URL`, `UV_EXTRA_INDEX_URL`,
  `UV_FIND_LINKS`), never the command line, as for pip; `~/.netrc` authenticates either;
- `--index-strategy unsafe-best-match`, pip's behaviour with extra indexes (the best version
  of all indexes), so both resolvers lock the same versions.

uv's pylock output lists, per package, the wheels of the chosen version that the target accepts
(one, or several such as `universal2` next to `x86_64`) with the index's URL and sha256; the
wheel the target installs is the one whose tag comes first in the target's tag order, as pip
picks it. No wheel is downloaded: uv reads metadata from PEP 658 files or range requests.
"""

from __future__ import annotations

import os
import posixpath
import re
import sys
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.core.fsutil import sha256_file
from venvstacks_tool.core.platforms import TargetPlatform, WheelFloors
from venvstacks_tool.core.process import output_tail, run_captured
from venvstacks_tool.core.project_names import normalize_name
from venvstacks_tool.core.protocol import is_sha256
from venvstacks_tool.lock import failures
from venvstacks_tool.lock.index_options import IndexOptions
from venvstacks_tool.lock.results import Failure, ResolvedWheel
from venvstacks_tool.lock.urls import file_url_path, is_url, strip_credentials

# The glibc floors uv's `--python-platform` can name (`x86_64-manylinux_2_28`, ...).
UV_GLIBC_FLOORS = ((2, 17), (2, 28), *((2, minor) for minor in range(31, 41)))
# UV_* variables kept for uv: how to reach an index (timeouts, retries, TLS roots), never what
# gets resolved. Proxies and certificates come through the standard variables, which are kept.
_UV_TRANSPORT_VARIABLES = frozenset(
    {"UV_HTTP_TIMEOUT", "UV_HTTP_RETRIES", "UV_REQUEST_TIMEOUT", "UV_NATIVE_TLS", "UV_CONCURRENT_DOWNLOADS"}
)
# The setting that chooses the resolver, for messages.
RESOLVER_SETTING = "--@rules_venvstacks//settings:resolver"


def uv_environ(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """`environ` (default: this process') for uv: no UV_* but transport ones, no configuration file."""
    result = {
        key: value
        for key, value in (os.environ if environ is None else environ).items()
        if (not key.startswith("UV_") or key in _UV_TRANSPORT_VARIABLES) and key != "MACOSX_DEPLOYMENT_TARGET"
    }
    result["UV_NO_CONFIG"] = "1"
    result["UV_PYTHON_DOWNLOADS"] = "never"
    result["NO_COLOR"] = "1"
    return result


def index_environ(index: IndexOptions) -> dict[str, str]:
    """`UV_INDEX_URL`, `UV_EXTRA_INDEX_URL` and `UV_FIND_LINKS` (URL find-links) from pip's variables.

    `IndexOptions.pip_environ` checks the URLs (no whitespace) and is the one place that decides
    what goes through the environment; uv reads the same lists under its own names (find-links
    comma-separated).
    """
    pip = index.pip_environ()
    environ = {"UV_INDEX_URL": pip["PIP_INDEX_URL"]}
    if "PIP_EXTRA_INDEX_URL" in pip:
        environ["UV_EXTRA_INDEX_URL"] = pip["PIP_EXTRA_INDEX_URL"]
    if "PIP_FIND_LINKS" in pip:
        environ["UV_FIND_LINKS"] = ",".join(pip["PIP_FIND_LINKS"].split())
    return environ


def python_platform(platform: TargetPlatform, floors: WheelFloors, layer: str) -> tuple[str, dict[str, str]]:
    """uv's `--python-platform` for `platform` under `floors`, and the variables it needs (macOS floor).

    Raises VenvstacksError for a glibc floor uv cannot name.
    """
    if platform.os == "linux":
        glibc = floors.floor_of(platform) or UV_GLIBC_FLOORS[0]
        if glibc not in UV_GLIBC_FLOORS:
            known = ", ".join(f"{major}.{minor}" for major, minor in UV_GLIBC_FLOORS)
            raise VenvstacksError(
                f"layer '{layer}': uv cannot lock for glibc {glibc[0]}.{glibc[1]} ({platform.name}); it knows the"
                f" floors {known}: choose one of them, or lock with pip ({RESOLVER_SETTING}=pip)"
            )
        return f"{platform.wheel_arch}-manylinux_{glibc[0]}_{glibc[1]}", {}
    if platform.os == "macos":
        macos = floors.floor_of(platform) or (11, 0)
        machine = "aarch64" if platform.wheel_arch == "arm64" else platform.wheel_arch
        return f"{machine}-apple-darwin", {"MACOSX_DEPLOYMENT_TARGET": f"{macos[0]}.{macos[1]}"}
    return platform.triple, {}


def _tag_order(platform: TargetPlatform, floors: WheelFloors, python_full_version: str) -> dict[Any, int]:
    """{tag -> rank} of every wheel tag the target accepts, best first (as pip orders them)."""
    from packaging import tags

    major, minor = (int(part) for part in python_full_version.split(".")[:2])
    platform_tags = list(floors.platform_tags(platform))
    ordered = [
        *tags.cpython_tags((major, minor), abis=[f"cp{major}{minor}"], platforms=platform_tags),
        *tags.compatible_tags((major, minor), f"cp{major}{minor}", platform_tags),
    ]
    return {tag: rank for rank, tag in reversed(list(enumerate(ordered)))}


@dataclass(frozen=True)
class UvRun:
    """One `uv pip compile` of a layer for one platform; files go beside `stem`."""

    uv: Path
    layer: str
    platform: TargetPlatform
    python_full_version: str
    floors: WheelFloors
    index: IndexOptions
    cache_dir: Path

    def resolve(
        self, requirements: Path, constraints: Path, stem: Path, whose: Callable[[str], str], pins: Mapping[str, str]
    ) -> dict[str, ResolvedWheel] | Failure:
        """{name -> wheel} for this platform with `constraints`, or why not (`whose(name)` names a pin's owner)."""
        target, variables = python_platform(self.platform, self.floors, self.layer)
        output = stem.parent / f"pylock.{stem.name.replace('.', '_')}.toml"
        output.unlink(missing_ok=True)
        command = [
            str(self.uv),
            "pip",
            "compile",
            str(requirements),
            "--constraints",
            str(constraints),
            "--output-file",
            str(output),
            "--format",
            "pylock.toml",
            "--python-platform",
            target,
            "--python-version",
            self.python_full_version,
            "--python",
            sys.executable,
            "--no-python-downloads",
            "--no-config",
            "--only-binary",
            ":all:",
            "--index-strategy",
            "unsafe-best-match",
            "--cache-dir",
            str(self.cache_dir),
            "--no-header",
            "--no-annotate",
            "--no-progress",
            "--color",
            "never",
            "--quiet",
            *[argument for link in self.index.find_links if not is_url(link) for argument in ("--find-links", link)],
        ]
        environ = {**uv_environ(), **variables, **index_environ(self.index)}
        try:
            process = run_captured(command, env=environ)
        except OSError as error:
            raise VenvstacksError(
                f"layer '{self.layer}': cannot run uv ({self.uv}): {error.strerror or error}; lock with pip"
                f" instead ({RESOLVER_SETTING}=pip)"
            ) from error
        text = process.stdout + "\n" + process.stderr
        stem.with_suffix(".log").write_text(text, encoding="utf-8")
        if process.returncode != 0:
            return self._failure(text, whose, pins)
        return self._wheels(output)

    def _where(self) -> str:
        return f"{self.platform.name} (Python {self.python_full_version})"

    def _wheels(self, output: Path) -> dict[str, ResolvedWheel]:
        """{name -> wheel} from uv's pylock output: per package the wheel the target ranks first."""
        from packaging.utils import parse_wheel_filename

        from venvstacks_tool.lock.pylock import load_toml

        ranks = _tag_order(self.platform, self.floors, self.python_full_version)
        wheels: dict[str, ResolvedWheel] = {}
        for package in load_toml(output.read_text(encoding="utf-8"), str(output)).get("packages", []):
            name, version = normalize_name(str(package["name"])), str(package["version"])
            candidates = []
            for wheel in package.get("wheels") or []:
                url = str(wheel.get("url") or "")
                location = url or str(wheel.get("path") or "")
                file_name = str(wheel.get("name") or posixpath.basename(urllib.parse.unquote(location)))
                _, _, _, wheel_tags = parse_wheel_filename(file_name)
                rank = min((ranks[tag] for tag in wheel_tags if tag in ranks), default=None)
                if rank is not None:
                    candidates.append((rank, file_name, url, wheel))
            if not candidates:
                raise VenvstacksError(
                    f"layer '{self.layer}': uv chose {name} {version} for {self._where()} without a wheel it can"
                    " install; layers are installed from wheels only"
                )
            _, file_name, url, wheel = min(candidates, key=lambda candidate: candidate[0])
            wheels[name] = self._resolved(name, version, file_name, url, wheel, output.parent)
        return wheels

    def _resolved(
        self, name: str, version: str, file_name: str, url: str, wheel: Mapping[str, Any], base: Path
    ) -> ResolvedWheel:
        """The ResolvedWheel of one pylock wheel entry; a local file is hashed from disk."""
        if not url or url.startswith("file:"):
            local = (file_url_path(url) if url else Path(base, str(wheel["path"]))).resolve()
            return ResolvedWheel(name, version, file_name, local.as_uri(), sha256_file(local), local)
        sha256 = str((wheel.get("hashes") or {}).get("sha256", "")).lower()
        if not is_sha256(sha256):
            raise VenvstacksError(
                f"layer '{self.layer}': the index gave no sha256 for {file_name} ('{name}' on {self.platform.name});"
                " a lock needs the hash of every wheel, so serve the index with hashes (PEP 503 #sha256= or PEP 691)"
            )
        return ResolvedWheel(name, version, file_name, strip_credentials(url), sha256)

    def _failure(self, output: str, whose: Callable[[str], str], pins: Mapping[str, str]) -> Failure:
        """The one-line error of a failed uv run (uv's own explanation kept, on one line)."""
        layer, where = self.layer, self._where()
        # uv's explanation on one line, without its headline and hints (said here in our words).
        explanation = " ".join(
            line.strip().removeprefix("cause: ")
            for line in output.splitlines()
            if line.strip() and not line.startswith(("hint:", "error: No solution found"))
        ).removeprefix("error: ")
        fetch = re.search(r"Failed to fetch: (\S+)", output)
        if fetch:
            project = normalize_name(urllib.parse.urlsplit(fetch.group(1)).path.rstrip("/").rpartition("/")[2])
            return Failure(
                f"layer '{layer}': cannot read the package index for '{project}' ({self.platform.name}):"
                f" {strip_credentials(fetch.group(1))}: {output_tail(explanation, 300)}",
                retryable=False,
            )
        missing = re.search(r"Because (\S+?) was not found in the package registry", output)
        if missing:
            return Failure(
                f"layer '{layer}': no project '{normalize_name(missing.group(1))}' on the package index"
                f" ({self.index.describe()})",
                retryable=False,
            )
        if "No solution found" not in output:
            return Failure(
                f"layer '{layer}': uv failed to resolve for {where}: {output_tail(explanation, 600)}", retryable=False
            )
        no_wheel = re.search(
            r"(?:Because|because|and) ([A-Za-z0-9][A-Za-z0-9._-]*)\S* has no (?:usable wheels|wheels with a matching"
            r" platform tag)",
            output,
        )
        if no_wheel and "you require" in output:
            name = normalize_name(no_wheel.group(1))
            if name in pins:
                return Failure(
                    f"layer '{layer}': {whose(name)} pins {name}=={pins[name]}, which has no wheel for {where}",
                    retryable=True,
                )
            return failures.no_wheel(layer, name, where)
        only = re.search(
            r"Because (?:only|there are no versions of) (\S+?) (?:is available )?and you require (\S+?),", output
        )
        if only:
            name = normalize_name(re.split(r"[<>=!~ ]", only.group(1))[0])
            return Failure(
                f"layer '{layer}': no version of '{name}' that satisfies '{only.group(2)}' has a wheel for {where}"
                f" (uv: {output_tail(explanation, 300)})",
                retryable=True,
                package=name,
            )
        pinned = [
            f"{whose(name)} pins {name}=={version}"
            for name, version in sorted(pins.items())
            if re.search(rf"(?i)\b{re.escape(name).replace('-', '[-_.]')}=={re.escape(version)}\b", output)
        ]
        detail = "; ".join([*pinned, output_tail(explanation, 600)])
        return Failure(f"layer '{layer}': the requirements conflict on {where}: {detail}", retryable=True)


def check_uv(uv: Path | None, layer: str) -> Path:
    """`uv` when it is an executable file; a VenvstacksError that says what to do otherwise."""
    if uv is None:
        raise VenvstacksError(
            f"layer '{layer}': the uv resolver needs the uv binary (`--uv PATH`); the `.lock` targets pass the one"
            f" pinned in rules_venvstacks, or lock with pip ({RESOLVER_SETTING}=pip)"
        )
    if not uv.is_file() or not os.access(uv, os.X_OK):
        raise VenvstacksError(
            f"layer '{layer}': the uv binary {uv} does not exist or is not executable; lock with pip instead"
            f" ({RESOLVER_SETTING}=pip)"
        )
    return uv
