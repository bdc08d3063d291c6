"""The child process `resolve` runs pip in: pip's CLI with markers evaluated for another platform.

`python -I -c <bootstrap> MARKER_ENVIRONMENT_JSON PIP_ARGUMENT...`: the bootstrap puts the parent's
`sys.path` first (so the tool's pinned pip is imported) and calls `main`. pip's `--platform`,
`--python-version`, `--implementation` and `--abi` choose which wheels are compatible, but pip
still evaluates environment markers (`; sys_platform == "win32"`, `Requires-Dist: colorama;
platform_system == "Windows"`) against the interpreter it runs on (pip issue 11664). `main`
therefore replaces the marker environment of pip's vendored `packaging` before pip runs.

Why this is sound for pip 26.3: every marker pip evaluates - requirement lines
(`InstallRequirement.match_markers`), dependencies from wheel metadata (both metadata backends,
`importlib` and `pkg_resources`), extras - goes through `pip._vendor.packaging.markers.Marker.evaluate`,
which builds its environment by calling the module-level `default_environment()` at each call
(itself a copy of the cached `_cached_default_environment()`). Replacing both module globals
changes every evaluation; the report's `environment` (`installation_report.default_environment`,
imported by name) is replaced too so the report states what was evaluated. `main` then checks a
marker naming the target, so a pip that evaluates markers some other way fails loudly instead of
resolving for the host.

`main` also copies two of pip's debug messages to stderr, prefixed with `INDEX_PREFIX`: which
project pages pip fetched and which it could not (404, connection refused, TLS). At pip's default
verbosity "from versions: none" reads the same for an unknown project, a network failure and a
project without a wheel for the target; these lines tell them apart without `-vv`, whose output
lists every file of every project (megabytes for numpy).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping

# Exit status of the child when the marker environment could not be installed (pip's own statuses are 0-23).
PATCH_FAILED = 90
# Prefix of the index diagnostics `main` writes to stderr.
INDEX_PREFIX = "venvstacks-index: "
_INDEX_MESSAGES = ("Fetching project page", "Could not fetch URL")


def patch_marker_environment(environment: Mapping[str, str]) -> None:
    """Make pip (this process' `pip._vendor.packaging`) evaluate every marker against `environment`.

    Raises RuntimeError when the patch does not take (a pip whose marker evaluation changed).
    """
    from pip._vendor.packaging import markers

    target = dict(environment)

    def default_environment() -> dict[str, str]:
        # A fresh copy each call, as packaging's own: Marker.evaluate updates it in place.
        return dict(target)

    markers.default_environment = default_environment  # type: ignore[assignment]
    if hasattr(markers, "_cached_default_environment"):
        # packaging >= 26.3 caches the host's environment here; anything calling it gets the target's.
        markers._cached_default_environment = lambda: target  # type: ignore[assignment]

    from pip._internal.models import installation_report

    installation_report.default_environment = default_environment  # type: ignore[attr-defined,assignment]

    probe = " and ".join(
        f"{key} == {json.dumps(target[key])}" for key in ("sys_platform", "platform_machine", "python_full_version")
    )
    if not markers.Marker(probe).evaluate():
        raise RuntimeError(f"pip still evaluates markers for the host after patching ({probe} is false)")


class _IndexMessages(logging.Filter):
    """Passes the debug records that say which index pages were fetched or failed."""

    def filter(self, record: logging.LogRecord) -> bool:
        return str(record.msg).startswith(_INDEX_MESSAGES)


def report_index_fetches() -> None:
    """Copy pip's "Fetching project page" and "Could not fetch URL" debug records to stderr.

    pip configures logging with `disable_existing_loggers=False` and only sets levels on
    `pip._vendor`, so a handler and level set here on pip's index loggers survive its setup;
    the records still reach pip's own handlers, which drop them below their level.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.DEBUG)
    handler.addFilter(_IndexMessages())
    handler.setFormatter(logging.Formatter(INDEX_PREFIX + "%(message)s"))
    for name in ("pip._internal.index.collector", "pip._internal.index.package_finder"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)


def main(argv: list[str]) -> int:
    """Run pip's CLI with `argv[1:]`, markers evaluated for the JSON marker environment `argv[0]`."""
    environment = json.loads(argv[0])
    try:
        patch_marker_environment(environment)
    except Exception as error:  # any failure here means markers would be evaluated for the host
        print(f"ERROR: cannot set pip's marker environment: {error}", file=sys.stderr)
        return PATCH_FAILED
    report_index_fetches()
    from pip._internal.cli.main import main as pip_main

    return pip_main(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
