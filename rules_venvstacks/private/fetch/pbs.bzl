"""Pure helpers for resolving python-build-standalone (PBS) runtimes; no repository access.

Exported as `pbs_testlib` for the Starlark unit tests in //tests/starlark.
"""

load("//rules_venvstacks/private/common:platforms.bzl", "platform_name")

# The five platforms the built-in table covers, keyed by (os, arch) as Bazel reports them.
_HOST_PLATFORMS = {
    ("linux", "amd64"): "x86_64-unknown-linux-gnu",
    ("linux", "x86_64"): "x86_64-unknown-linux-gnu",
    ("linux", "aarch64"): "aarch64-unknown-linux-gnu",
    ("linux", "arm64"): "aarch64-unknown-linux-gnu",
    ("macos", "x86_64"): "x86_64-apple-darwin",
    ("macos", "amd64"): "x86_64-apple-darwin",
    ("macos", "aarch64"): "aarch64-apple-darwin",
    ("macos", "arm64"): "aarch64-apple-darwin",
    ("windows", "amd64"): "x86_64-pc-windows-msvc",
    ("windows", "x86_64"): "x86_64-pc-windows-msvc",
}

# Used as the archive mtime when no PBS release date is known (custom builds): the earliest
# time a zip archive can hold, so all three formats agree.
DEFAULT_SOURCE_DATE_EPOCH = 315532800  # 1980-01-01T00:00:00Z

def host_platform(os_name, arch):
    """Maps Bazel's `os.name`/`os.arch` to a PBS target triple.

    Args:
      os_name: `repository_ctx.os.name` or `module_ctx.os.name`, e.g. "linux", "mac os x".
      arch: `os.arch`, e.g. "amd64", "aarch64".

    Returns:
      The PBS triple, e.g. "x86_64-unknown-linux-gnu", or None when unsupported.
    """
    name = os_name.lower()
    if name.startswith("mac"):
        name = "macos"
    elif name.startswith("windows"):
        name = "windows"
    return _HOST_PLATFORMS.get((name, arch.lower()))

def _version_key(version):
    return [int(part) for part in version.split(".")]

def resolve_version(table, requested):
    """Resolves a requested version ("3.12" or "3.12.7") against the PBS table.

    Args:
      table: the decoded pbs_releases.json.
      requested: a minor ("3.12", the newest patch in the table) or an exact version.

    Returns:
      A struct(version, error): the full version, or None and an error message.
    """
    parts = requested.split(".")
    if len(parts) == 2 and requested in table["latest"]:
        return struct(version = table["latest"][requested], error = None)
    if len(parts) == 3 and requested in table["versions"]:
        return struct(version = requested, error = None)
    known = sorted(table["versions"].keys(), key = _version_key)
    return struct(
        version = None,
        error = "python_version '%s' is not in the built-in PBS table; known: %s (or give urls + sha256 for a custom build)" % (
            requested,
            ", ".join(known),
        ),
    )

def asset_urls(table, version, triple, base_urls):
    """Builds the download URLs and metadata of one PBS asset.

    Args:
      table: the decoded pbs_releases.json.
      version: an exact version present in the table.
      triple: the PBS triple of the platform.
      base_urls: mirrors to use instead of the table's download base (same bytes, same path
        layout `<base>/<release>/<file>`); empty for the default.

    Returns:
      A struct(urls, sha256, strip_prefix, release, file, error).
    """
    entry = table["versions"][version]
    asset = entry["assets"].get(triple)
    if asset == None:
        return struct(
            urls = None,
            sha256 = None,
            strip_prefix = None,
            release = None,
            file = None,
            error = "no PBS build of Python %s for platform %s; this version has: %s" % (
                version,
                platform_name(triple),
                ", ".join(sorted([platform_name(key) for key in entry["assets"]])),
            ),
        )
    quoted = asset["file"].replace("+", "%2B")
    bases = base_urls or [table["download_base"]]
    return struct(
        urls = ["%s/%s/%s" % (base.rstrip("/"), entry["release"], quoted) for base in bases],
        sha256 = asset["sha256"],
        strip_prefix = asset["strip_prefix"],
        release = entry["release"],
        file = asset["file"],
        error = None,
    )

def _days_from_civil(year, month, day):
    # Howard Hinnant's days-from-civil: days since 1970-01-01 for a proleptic Gregorian date.
    year = year - 1 if month <= 2 else year
    era = (year if year >= 0 else year - 399) // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468

def release_epoch(release):
    """Seconds since the epoch at midnight UTC of a PBS release tag like "20241016".

    The archive mtime comes from this: fixed by the input, never by the clock.

    Args:
      release: a PBS release tag (YYYYMMDD), or "" for a custom build.

    Returns:
      The epoch seconds, or DEFAULT_SOURCE_DATE_EPOCH when the tag is not a date.
    """
    if len(release) != 8 or not release.isdigit():
        return DEFAULT_SOURCE_DATE_EPOCH
    year, month, day = int(release[0:4]), int(release[4:6]), int(release[6:8])
    return max(_days_from_civil(year, month, day) * 86400, DEFAULT_SOURCE_DATE_EPOCH)

def python_minor(version):
    """Returns "3.12" for "3.12.7"."""
    return ".".join(version.split(".")[0:2])

pbs_testlib = struct(
    asset_urls = asset_urls,
    host_platform = host_platform,
    python_minor = python_minor,
    release_epoch = release_epoch,
    resolve_version = resolve_version,
)
