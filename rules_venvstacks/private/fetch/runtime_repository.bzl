"""Repository rules of runtimes: one per (runtime, platform) fetched by sha256, and the runtime's hub.

Downloads go through Bazel's downloader (`repository_ctx.download`), so mirrors,
`--experimental_downloader_config`, `--distdir`, the repository cache and credential helpers
all apply. The archive is kept as downloaded (the runtime layer is re-packed from it, which keeps
its symlinks and modes) and also unpacked (the tool runs on that interpreter in actions).
"""

load("//rules_venvstacks/private/common:platforms.bzl", "platform_name")
load(":download.bzl", "download_verified")
load(":pbs.bzl", "python_minor")
load(":render.bzl", "render")

# Kept out of the interpreter's action inputs: not needed to run the tool, and large.
_RUNTIME_GLOB_EXCLUDES = [
    "**/site-packages/**",
    "**/test/**",
    "**/tests/**",
    "**/idle_test/**",
    "**/__pycache__/**",
    "**/* *",
]

def _layout_error(rctx, what, archive_name, root_name, expected):
    found = sorted([entry.basename + ("/" if entry.is_dir else "") for entry in rctx.path("unpacked").readdir()])
    fail("%s: archive '%s' does not have the python-build-standalone install_only layout: expected %s (strip_prefix = '%s'); found top-level entries: %s" % (
        what,
        archive_name,
        " and ".join(["'%s'" % path for path in expected]),
        root_name,
        ", ".join(found) or "(none)",
    ))

def _check_layout(rctx, what, archive_name, strip_prefix, python_version, windows):
    """Fails unless the unpacked archive holds an install_only tree of exactly `python_version`.

    Its layout (interpreter and stdlib), the X.Y of its stdlib directory, then its full version
    (`_check_version`): a runtime is what it says when its repository is made, not later at lock
    or build time.
    """
    root_name = strip_prefix or "."
    root = rctx.path("unpacked/" + strip_prefix) if strip_prefix else rctx.path("unpacked")
    minor = python_minor(python_version)
    if windows:
        interpreter, stdlib = "python.exe", "Lib/os.py"
    else:
        interpreter, stdlib = "bin/python3", "lib/python%s/os.py" % minor
    expected = ["%s/%s" % (root_name, interpreter), "%s/%s" % (root_name, stdlib)]
    if not root.get_child(interpreter).exists:
        _layout_error(rctx, what, archive_name, root_name, expected)
    if not root.get_child(stdlib).exists:
        lib = root.get_child("Lib" if windows else "lib")
        found = [e.basename for e in lib.readdir() if e.basename.startswith("python3")] if lib.exists else []
        if found:
            fail("%s: archive '%s' holds %s, but python_version is %s" % (
                what,
                archive_name,
                ", ".join(sorted(["lib/" + name for name in found])),
                python_version,
            ))
        _layout_error(rctx, what, archive_name, root_name, expected)
    _check_version(rctx, what, archive_name, root, root_name, python_version, windows)
    return "unpacked/%s/%s" % (strip_prefix, interpreter) if strip_prefix else "unpacked/" + interpreter

def _patchlevel_candidates(minor, windows):
    """Where an install_only tree of Python `minor` keeps `patchlevel.h`, relative to its root.

    PBS ships CPython's headers in every install_only archive: `include/python3.X/` on Linux and
    macOS (`python3.Xt/` for a free-threaded build), `include/` on Windows (`Include/` as in a
    source tree, accepted too).
    """
    if windows:
        return ["include/patchlevel.h", "Include/patchlevel.h"]
    return ["include/python%s/patchlevel.h" % minor, "include/python%st/patchlevel.h" % minor]

def _patchlevel_version(text):
    """The `PY_VERSION` string a `patchlevel.h` defines (`#define PY_VERSION "3.11.2"`), or None."""
    for line in text.splitlines():
        words = [word for word in line.replace("\t", " ").split(" ") if word]
        if len(words) >= 3 and words[0] == "#define" and words[1] == "PY_VERSION" and words[2].startswith("\""):
            # A build from a CPython checkout between releases says "3.11.2+"; it is that release.
            return words[2].strip("\"").removesuffix("+")
    return None

def _check_version(rctx, what, archive_name, root, root_name, python_version, windows):
    """Fails unless the archive's CPython is exactly `python_version`, read from its `patchlevel.h`.

    The interpreter is not run: the archive may be another platform's. An archive without the
    header (a custom build without `include/`) is accepted on the X.Y of its stdlib directory
    alone, which `_check_layout` has checked; a header without `PY_VERSION` is no CPython header
    and fails.
    """
    for relative in _patchlevel_candidates(python_minor(python_version), windows):
        header = root.get_child(relative)
        if not header.exists:
            continue
        found = _patchlevel_version(rctx.read(header))
        if found == None:
            fail("%s: archive '%s' has %s/%s without a `#define PY_VERSION`, so its CPython version is unknown" % (
                what,
                archive_name,
                root_name,
                relative,
            ))
        if found != python_version:
            fail("%s: archive '%s' holds CPython %s (%s/%s), but python_version is %s" % (
                what,
                archive_name,
                found,
                root_name,
                relative,
                python_version,
            ))
        return

def _archive_file_name(rctx):
    if rctx.attr.archive:
        return rctx.attr.archive.name.rpartition("/")[2]
    return rctx.attr.urls[0].rpartition("/")[2].replace("%2B", "+").partition("?")[0]

def _runtime_repository_impl(rctx):
    what = "runtime '%s'" % rctx.attr.runtime_name
    archive_name = _archive_file_name(rctx)
    if rctx.attr.archive:
        urls = ["file://%s" % rctx.path(rctx.attr.archive)]
    else:
        urls = rctx.attr.urls
    archive_path = "archive/" + archive_name
    rctx.report_progress("Fetching %s from %s" % (what, urls[0]))
    sha256 = download_verified(rctx, what, urls, rctx.attr.sha256, archive_path)
    rctx.extract(archive = archive_path, output = "unpacked")
    windows = "windows" in rctx.attr.platform_triple
    interpreter = _check_layout(rctx, what, archive_name, rctx.attr.strip_prefix, rctx.attr.python_version, windows)

    launchers = _venv_launchers(rctx, interpreter) if windows else {}

    # Build actions get tool_site (zstandard) and tool_zips (installer); `.lock` targets also
    # lock_zips (pip, packaging, tomli), so a resolver bump never changes a layer's action
    # key; the loader check's validation action alone gets loader_zips (the binary parsers), and
    # the action that builds a wheel from an sdist alone gets sdist_zips (pyproject-hooks).
    # A pure-Python wheel stays one zip file on sys.path (zipimport): one action input instead
    # of hundreds, which the sandbox pays for per action, and nothing to unpack in every fresh
    # output base. Only binary wheels are unpacked.
    zips = {"build": [], "loader": [], "lock": [], "sdist": []}
    has_tool = bool(rctx.attr.tool_wheels)
    for wheel in json.decode(rctx.attr.tool_wheels or "[]"):
        file_name = wheel["url"].rpartition("/")[2]
        if file_name.endswith("-none-any.whl"):
            output = "%s_zips/%s" % ({"build": "tool"}.get(wheel["role"], wheel["role"]), file_name)
            rctx.download(url = wheel["url"], sha256 = wheel["sha256"], output = output)
            zips[wheel["role"]].append(output)
        elif wheel["role"] == "build":
            rctx.download_and_extract(url = wheel["url"], sha256 = wheel["sha256"], type = "zip", output = "tool_site")
        else:
            fail("%s: the %s-only tool wheel %s must be pure Python (it is used as a zip)" % (what, wheel["role"], file_name))

    root = "unpacked/" + rctx.attr.strip_prefix if rctx.attr.strip_prefix else "unpacked"
    rctx.file("BUILD.bazel", """\
load("{runtime_bzl}", "venvstacks_runtime")

venvstacks_runtime(
    name = "runtime",
    files = glob(["{root}/**"], exclude = {excludes}),
    interpreter = "{interpreter}",
    pbs_release = "{release}",
    platform_triple = "{platform_triple}",
    python_version = "{python_version}",
    runtime_name = "{name}",
    source_archive = "{archive}",
    source_date_epoch = {epoch},
    source_sha256 = "{sha256}",
    source_urls = {source_urls},
    strip_prefix = "{strip_prefix}",
    loader_zips = {loader_zips},
    lock_zips = {lock_zips},
    sdist_zips = {sdist_zips},
    tool_site = glob(["tool_site/**"], exclude = {excludes}),
    tool_site_marker = {tool_site_marker},
    tool_zips = {tool_zips},
    venv_launcher_names = {launcher_names},
    venv_launchers = {launcher_files},
    visibility = ["//visibility:public"],
)
""".format(
        runtime_bzl = str(Label("//rules_venvstacks/private/build:runtime.bzl")),
        name = rctx.attr.runtime_name,
        root = root,
        excludes = repr(_RUNTIME_GLOB_EXCLUDES),
        interpreter = interpreter,
        release = rctx.attr.release,
        platform_triple = rctx.attr.platform_triple,
        python_version = rctx.attr.python_version,
        archive = archive_path,
        epoch = rctx.attr.source_date_epoch,
        sha256 = sha256,
        # A local archive's absolute path stays out of the metadata: it names the machine.
        source_urls = repr([] if rctx.attr.archive else rctx.attr.urls),
        strip_prefix = rctx.attr.strip_prefix,
        tool_zips = repr(sorted(zips["build"])),
        lock_zips = repr(sorted(zips["lock"])),
        loader_zips = repr(sorted(zips["loader"])),
        sdist_zips = repr(sorted(zips["sdist"])),
        tool_site_marker = repr("tool_site/zstandard/__init__.py") if has_tool else "None",
        launcher_names = repr(sorted(launchers)),
        launcher_files = repr([launchers[name] for name in sorted(launchers)]),
    ))

# The Windows venv launchers a layer copies to `Scripts/` (as `python -m venv` does): their names
# in the runtime (3.13 renamed them) -> their names in a venv.
_VENV_LAUNCHERS = [
    ("python.exe", "python.exe"),
    ("pythonw.exe", "pythonw.exe"),
    ("venvlauncher.exe", "python.exe"),
    ("venvwlauncher.exe", "pythonw.exe"),
]

def _venv_launchers(rctx, interpreter):
    """{name in Scripts: repository path} of a Windows runtime's venv launchers; fails if it has none."""
    scripts = interpreter.rpartition("/")[0] + "/Lib/venv/scripts/nt"
    found = {}
    for source, name in _VENV_LAUNCHERS:
        if name not in found and rctx.path(scripts + "/" + source).exists:
            found[name] = scripts + "/" + source
    for name, names in (("python.exe", "python.exe or venvlauncher.exe"), ("pythonw.exe", "pythonw.exe or venvwlauncher.exe")):
        if name not in found:
            fail("runtime '%s' (%s): archive has no venv launcher %s in %s; layers for Windows copy it to Scripts/%s" % (
                rctx.attr.runtime_name,
                platform_name(rctx.attr.platform_triple),
                names,
                scripts.removeprefix("unpacked/"),
                name,
            ))
    return found

runtime_repository = repository_rule(
    implementation = _runtime_repository_impl,
    doc = "Fetches a python-build-standalone runtime archive; created by the `venvstacks` extension.",
    attrs = {
        "archive": attr.label(allow_single_file = True, doc = "A local archive instead of `urls`."),
        "platform_triple": attr.string(mandatory = True, doc = "PBS target triple of the archive."),
        "python_version": attr.string(mandatory = True, doc = "Exact CPython version."),
        "release": attr.string(doc = "PBS release tag, '' for a custom build."),
        "runtime_name": attr.string(mandatory = True, doc = "Name given in MODULE.bazel."),
        "sha256": attr.string(doc = "Expected sha256 of the archive."),
        "source_date_epoch": attr.int(mandatory = True, doc = "mtime for archive members."),
        "strip_prefix": attr.string(default = "python", doc = "Installation directory inside the archive."),
        "tool_wheels": attr.string(doc = "JSON list of {url, sha256, role} wheels for the tool; '' when none exist for this platform (then it can be a target, not run the tool)."),
        "urls": attr.string_list(doc = "Mirrors of the archive, tried in order."),
    },
)

def _runtime_hub_impl(rctx):
    name = rctx.attr.runtime_name
    targets = json.decode(rctx.attr.targets)
    settings = json.decode(rctx.attr.config_settings)

    def runtimes(repos):
        """A select of the runtime of each platform in `repos` (triple -> repository), else `:unavailable`."""
        return render.select({settings[triple]: "@%s//:runtime" % repo for triple, repo in repos.items()}, ":unavailable")

    rctx.file("BUILD.bazel", render.build_file([
        render.load_line(Label("//rules_venvstacks/private/build:runtime.bzl"), ["venvstacks_platform_runtime", "venvstacks_runtime_unavailable"]),
        render.call("venvstacks_platform_runtime", name, {
            "exec_runtime": ":exec_runtime",
            "glibc_minimum": rctx.attr.glibc_minimum,
            "lock_python_version": rctx.attr.lock_python_version,
            "macos_minimum": rctx.attr.macos_minimum,
            "platform_triples": sorted(targets),
            "runtime_name": name,
            "target": runtimes(targets),
            "visibility": ["//visibility:public"],
        }, comment = """`@%s`: the runtime of the target platform, with the execution platform's runtime to run
the tool. Generated by the `venvstacks` module extension.""" % name),
        render.call("alias", "runtime", {"actual": name, "visibility": ["//visibility:public"]}),
        render.call("alias", "exec_runtime", {"actual": runtimes(json.decode(rctx.attr.execs))}, comment = """\
Resolved in the execution configuration (the hub's `exec_runtime` has cfg = "exec"), so this
select sees the execution platform: a select on the hub's own attribute would see the target."""),
        render.call("venvstacks_runtime_unavailable", "unavailable", {
            "declared_triples": sorted(targets),
            "platform_name": render.select(
                {setting: short for short, setting in json.decode(rctx.attr.platform_names).items()},
                "(not one of rules_venvstacks' platforms)",
            ),
            "runtime_name": name,
        }),
    ]))

runtime_hub = repository_rule(
    implementation = _runtime_hub_impl,
    doc = "The runtime's hub `@NAME`: selects the per-platform runtime repositories; created by the `venvstacks` extension.",
    attrs = {
        "config_settings": attr.string(mandatory = True, doc = "JSON: triple -> label of its config_setting."),
        "execs": attr.string(mandatory = True, doc = "JSON: triple -> repository that can run the tool there."),
        "glibc_minimum": attr.string(doc = "The glibc floor of the runtime's locks, or '' for the default."),
        "lock_python_version": attr.string(mandatory = True, doc = "The version locks resolve for."),
        "macos_minimum": attr.string(doc = "The macOS floor of the runtime's locks, or '' for the default."),
        "platform_names": attr.string(mandatory = True, doc = "JSON: short platform name -> label of its config_setting."),
        "runtime_name": attr.string(mandatory = True, doc = "Name given in MODULE.bazel."),
        "targets": attr.string(mandatory = True, doc = "JSON: triple -> repository, for the declared target platforms."),
    },
)
