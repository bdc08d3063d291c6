"""The `venvstacks` module extension: python-build-standalone runtimes and the wheels of locks.

    venvstacks = use_extension("@rules_venvstacks//rules_venvstacks:extensions.bzl", "venvstacks")
    venvstacks.runtime(name = "cpython3_12", python_version = "3.12", platforms = ["linux_x86_64", "macos_arm64"])
    venvstacks.lock(name = "app", file = "//stacks:pylock.app.toml")
    use_repo(venvstacks, "cpython3_12", "venvstacks_wheels")

Per runtime it declares one repository per platform with a build (`NAME_PLATFORM`, fetched only
when that platform is built or runs the tool) and the hub `@NAME`, which selects the target's
and the execution platform's. Per lock it declares one repository per wheel file and the hub of
locked wheels, which selects each target platform's wheels. The named indexes
(`venvstacks.index(name, url)`) go into `@venvstacks_indexes`, which every layer's lock reads.
locked wheels, which selects each target platform's wheels. A package the lock builds from its
sdist (`build_from_sdist`) gets a repository for the sdist and for each of its build wheels, and
an `sdist_wheel` target in the hub that builds it with the execution platform's interpreter of the
first declared runtime of the lock's Python X.Y; a native sdist (extension modules) gets a
`native_sdist_wheel` target per platform of its lock instead, built in the target configuration.
"""

load("//rules_venvstacks/private/common:constants.bzl", "DEFAULT_GLIBC_MINIMUM", "DEFAULT_MACOS_MINIMUM")
load("//rules_venvstacks/private/common:platforms.bzl", "PLATFORMS", "config_setting_label", "platform_name", "platform_triples", "wheel_floor_problem")
load("//rules_venvstacks/private/common:versions.bzl", "is_python_version")
load(":host_runtime.bzl", "host_runtime_repository", "pick_host_runtime")
load(":indexes_repository.bzl", "indexes_repository")
load(":pbs.bzl", "asset_urls", "host_platform", "python_minor", "release_epoch", "resolve_version")
load(":pylock.bzl", "lock_depth", "parse_pylock")
load(":runtime_repository.bzl", "runtime_hub", "runtime_repository")
load(":uv_repository.bzl", "uv_repository")
load(":wheel_repository.bzl", "wheel_repository", "wheels_hub")

_runtime_tag = tag_class(
    doc = """A CPython runtime from python-build-standalone, for the platforms its stacks target.

`platforms` lists the target platforms by short name (`linux_x86_64`, `linux_aarch64`,
`macos_x86_64`, `macos_arm64`, `windows_x86_64`); empty (the default) means the host platform
only. Every lock of a stack on this runtime covers all of them, and
`bazel build --platforms=@rules_venvstacks//platforms:NAME` builds that platform's archives from
any host. The tool always runs on the build machine's own PBS build of the same Python X.Y.

Where the archives come from:

* the built-in table of PBS releases (default): give `python_version`, "3.12" for the newest
  patch in the table or "3.12.7" to pin it; `base_urls` points at mirrors of the same files;
* a custom build for the host platform: `urls` + `sha256` (+ `strip_prefix`), or a local
  `archive`, with the exact `python_version`;
* a custom build for any platform: `venvstacks.runtime_archive(runtime = NAME, platform = ...)`.
""",
    attrs = {
        "archive": attr.label(doc = "A local PBS-layout archive file for the host platform, instead of downloading one."),
        "base_urls": attr.string_list(
            doc = "Mirrors of the PBS release assets (`<base>/<release>/<file>`), tried in order; the table's sha256 still applies.",
        ),
        "glibc_minimum": attr.string(doc = "Linux wheels must run on this glibc or newer; default: '" + DEFAULT_GLIBC_MINIMUM + "' (manylinux_2_28: RHEL 8 and newer; what numpy 2.3+, PyTorch and pyarrow publish). '2.17' is PBS' own floor (older distributions, fewer and older wheels). The Linux archives need the glibc of the floor. A glibc release from 2.17 to 2.44; another value fails when the extension runs."),
        "macos_minimum": attr.string(doc = "macOS wheels must run on this release or newer; default: '" + DEFAULT_MACOS_MINIMUM + "' (what PyTorch's and onnxruntime's arm64 wheels need). '10.15' gives PBS' own floors (10.15 on x86_64, 11.0 on arm64). The macOS archives need the release of the floor. 10.9 to 10.15, or MAJOR.MINOR of macOS 11 to 15 or 26; another value fails when the extension runs."),
        "name": attr.string(mandatory = True, doc = "Repository name, e.g. 'cpython3_12'; also the target name in it."),
        "platforms": attr.string_list(doc = "Target platforms by short name, e.g. ['linux_x86_64', 'windows_x86_64']; [] = the host only."),
        "python_version": attr.string(mandatory = True, doc = "'3.12' (newest in the table) or an exact '3.12.7'."),
        "release": attr.string(doc = "PBS release tag of a custom build, recorded in metadata (optional)."),
        "sha256": attr.string(doc = "sha256 of the custom or local archive (required with `urls`)."),
        "strip_prefix": attr.string(default = "python", doc = "Directory inside a custom archive that holds the installation."),
        "urls": attr.string_list(doc = "Download URLs of a custom PBS-layout build for the host platform, tried in order."),
    },
)

_runtime_archive_tag = tag_class(
    doc = """A custom PBS-layout archive of a runtime for one platform, instead of the table's.

For a mirror with other file names, your own builds, or archives served in tests.
""",
    attrs = {
        "archive": attr.label(doc = "A local archive file instead of `urls`."),
        "platform": attr.string(mandatory = True, doc = "The platform's short name, e.g. 'windows_x86_64': one of the runtime's `platforms`, or the host's (then it runs the tool); another fails when the extension runs."),
        "python_version": attr.string(mandatory = True, doc = "The archive's exact CPython version, e.g. '3.12.7'."),
        "release": attr.string(doc = "PBS release tag, recorded in metadata (optional)."),
        "runtime": attr.string(mandatory = True, doc = "The `name` of the `venvstacks.runtime` it belongs to."),
        "sha256": attr.string(doc = "sha256 of the archive (required with `urls`)."),
        "strip_prefix": attr.string(default = "python", doc = "Directory inside the archive that holds the installation."),
        "urls": attr.string_list(doc = "Download URLs, tried in order."),
    },
)

_lock_tag = tag_class(
    doc = """A layer's lock file, whose wheels the extension declares as repositories.

Each wheel becomes a repository fetched by Bazel's downloader with the lock's sha256, lazily
(only the layers being built pull their wheels). The hub repository (`hub`, default
`venvstacks_wheels`) has one target per lock, named `name`, that the layer's `wheels` attribute
points at (`@venvstacks_wheels//:<name>` by default). A lock that does not exist yet gives an
empty target; building the layer then says to run `bazel run <layer>.lock`.
""",
    attrs = {
        "file": attr.label(mandatory = True, doc = "The layer's pylock.toml, e.g. '//stacks:pylock.app.toml'."),
        "hub": attr.string(default = "venvstacks_wheels", doc = "Name of the hub repository."),
        "name": attr.string(mandatory = True, doc = "Target name in the hub; by convention the layer's name."),
    },
)

_index_tag = tag_class(
    doc = """A named package index, for layers' `package_indexes` and `priority_indexes`.

Declared once, usable from every layer, as venvstacks' `[[tool.uv.index]]` with a `name`:

    venvstacks.index(name = "pytorch_cpu", url = "https://download.pytorch.org/whl/cpu")

Put credentials in a netrc file (or Bazel's credential helper, for the wheel downloads), not in
`url`: the locks never record them either way (docs/locking.md, "Named indexes").
""",
    attrs = {
        "name": attr.string(mandatory = True, doc = "The index's name, as layers write it, e.g. 'pytorch_cpu'."),
        "url": attr.string(mandatory = True, doc = "The index's simple API URL (PEP 503 or PEP 691)."),
    },
)

def _declare_indexes(module_ctx):
    """The `venvstacks_indexes` repository, from every module's `index` tags; one name, one URL."""
    urls, declared_by = {}, {}
    for mod in module_ctx.modules:
        for tag in mod.tags.index:
            if not tag.name or not tag.url:
                fail("venvstacks.index(name = '%s') (module '%s'): `name` and `url` must not be empty" % (tag.name, mod.name))
            if urls.get(tag.name, tag.url) != tag.url:
                fail("venvstacks.index(name = '%s'): declared with two URLs, by module '%s' and by module '%s'" % (tag.name, declared_by[tag.name], mod.name))
            urls[tag.name], declared_by[tag.name] = tag.url, mod.name
    indexes_repository(name = "venvstacks_indexes", urls = json.encode(urls))

def _repo_name(text):
    return "".join([char if char.isalnum() else "_" for char in text.elems()])

def _declare_file(wheel_repos, hub, package, lock_label, lock_dir, wheel, kind = ""):
    """Declares the repository of one locked file (wheel or sdist) once per hub; returns its name."""
    repo = "%s__%s%s_%s" % (hub, _repo_name(package.name.lower()), kind, wheel.sha256[:12])
    if repo not in wheel_repos:
        wheel_repos[repo] = True
        wheel_repository(
            name = repo,
            file_name = wheel.name,
            url = wheel.url or "file://%s/%s" % (lock_dir, wheel.path),
            sha256 = wheel.sha256,
            package = "%s %s" % (package.name, package.version),
            lock = lock_label,
        )
    return repo

def _sdist_build(wheel_repos, hub, package, lock_label, lock_dir, runtime, triple = None):
    """The hub's `sdist_wheel` target (as a dict) that builds `package` from its sdist, its repositories declared.

    With `triple`, the `native_sdist_wheel` target that builds the wheel of that platform (a
    native sdist: extension modules), named for the platform.
    """
    sdist_repo = _declare_file(wheel_repos, hub, package, lock_label, lock_dir, package.sdist, "_sdist")
    build_wheels = {}
    for wheel in package.build_wheels:
        build_package = struct(name = wheel.name.partition("-")[0], version = package.name + " build requirement")
        build_wheels["@%s//:wheel" % _declare_file(wheel_repos, hub, build_package, lock_label, lock_dir, wheel)] = wheel.sha256
    name = "%s_built_%s" % (_repo_name(package.name.lower()), package.sdist.sha256[:12])
    build = {
        "name": name + ("_" + platform_name(triple) if triple else ""),
        "build_wheels": build_wheels,
        "lock": lock_label,
        "package": "%s %s" % (package.name, package.version),
        "runtime": "@" + runtime if runtime else None,
        "sdist": "@%s//:wheel" % sdist_repo,
        "sdist_sha256": package.sdist.sha256,
        "wheel_name": package.platform_wheels[triple] if triple else package.built_wheel,
    }
    if triple:
        build["platform_triple"] = triple
    return build

def _declare_locks(module_ctx, runtimes_by_minor):
    """Declares one repository per locked file and the hub repositories.

    `runtimes_by_minor`: {"3.12" -> the name of a runtime of that Python}, whose execution
    platform's interpreter builds the sdists of locks for that Python.
    """
    hubs = {}
    wheel_repos = {}
    for mod in module_ctx.modules:
        for tag in mod.tags.lock:
            hub = hubs.setdefault(tag.hub, {})
            if tag.name in hub:
                fail("venvstacks.lock(name = '%s'): declared twice in hub '%s'" % (tag.name, tag.hub))
            path = module_ctx.path(tag.file)
            module_ctx.watch(path)
            entry = {"built": {}, "built_native": {}, "lock": str(tag.file), "lock_version": 0, "missing": not path.exists, "platform_triples": [], "sdist_builds": {}, "wheels": {}}
            hub[tag.name] = entry
            if not path.exists:
                continue
            lock = parse_pylock(module_ctx.read(path), str(tag.file), lock_depth(tag.file.package, tag.file.name))
            entry["platform_triples"] = lock.platform_triples
            entry["lock_version"] = lock.lock_version or 0

            # The runtime whose interpreter builds the lock's sdists: the first declared of its Python X.Y.
            sdist_runtime = runtimes_by_minor.get(python_minor(lock.python_version) if lock.python_version else "")
            for package in lock.packages:
                if package.native:
                    # Built per platform, in the target configuration, with the target's C toolchain.
                    for triple in package.platform_wheels:
                        build = _sdist_build(wheel_repos, tag.hub, package, str(tag.file), path.dirname, sdist_runtime, triple)
                        entry["sdist_builds"][build["name"]] = build
                        entry["built_native"].setdefault(triple, []).append([build["name"], package.sdist.sha256])
                    continue
                if package.sdist != None:
                    # Built once, in the execution configuration, whatever the target platform.
                    build = _sdist_build(wheel_repos, tag.hub, package, str(tag.file), path.dirname, sdist_runtime)
                    entry["sdist_builds"][build["name"]] = build
                    for triple in package.platform_wheels:
                        entry["built"].setdefault(triple, []).append([build["name"], package.sdist.sha256])
                    continue
                repos = {}
                for wheel in package.wheels:
                    repo = _declare_file(wheel_repos, tag.hub, package, str(tag.file), path.dirname, wheel)
                    repos[wheel.name] = (repo, wheel.sha256)
                for triple, wheel_name in package.platform_wheels.items():
                    repo, sha256 = repos[wheel_name]
                    entry["wheels"].setdefault(triple, []).append([repo, sha256])
    settings = {entry.triple: str(config_setting_label(name)) for name, entry in PLATFORMS.items()}
    for hub, locks in hubs.items():
        wheels_hub(name = hub, locks = json.encode(locks), config_settings = json.encode(settings))

def _declare_uv(wheel_table):
    """One repository per platform with the uv binary the uv resolver runs there (fetched only then).

    rules_venvstacks' own MODULE.bazel names them (`use_repo`): `//rules_venvstacks/private/lock:uv`
    selects the execution platform's when //settings:resolver is uv.
    """
    uv = wheel_table["uv"]
    for triple, wheel in sorted(uv["wheels"].items()):
        uv_repository(
            name = "venvstacks_uv_" + platform_name(triple),
            platform = triple,
            sha256 = wheel["sha256"],
            url = wheel["url"],
            version = uv["version"],
        )

def _read_json(module_ctx, label):
    return json.decode(module_ctx.read(module_ctx.path(label)))

def _tool_wheels(wheel_table, minor, triple):
    """The {url, sha256, role} wheels the tool needs on a runtime of `minor` on the platform `triple`, or None."""
    wheels = []
    for _, entry in sorted(wheel_table["packages"].items()):
        if "python" in entry and minor not in entry["python"]:
            continue
        wheel = entry["wheels"].get("any") or entry["wheels"].get(minor, {}).get(triple)
        if wheel == None:
            return None
        wheels.append({"role": entry.get("role", "build"), "sha256": wheel["sha256"], "url": wheel["url"]})
    return json.encode(wheels)

def _custom_source(tag, what):
    """struct(version, urls, sha256, strip_prefix, release, archive) of a custom build."""
    if tag.urls and tag.archive:
        fail("%s: give either `urls` or `archive`, not both" % what)
    if tag.urls and not tag.sha256:
        fail("%s: a custom build from `urls` needs its `sha256`" % what)
    if not is_python_version(tag.python_version):
        fail("%s: a custom build needs the exact python_version (e.g. '3.12.7'), got '%s'" % (what, tag.python_version))
    return struct(
        version = tag.python_version,
        urls = tag.urls,
        sha256 = tag.sha256,
        strip_prefix = tag.strip_prefix,
        release = tag.release,
        archive = tag.archive,
    )

def _table_source(table, version, triple, base_urls):
    """The table's source of `version` on the platform `triple`, or None when the table has no build."""
    asset = asset_urls(table, version, triple, base_urls)
    if asset.error:
        return None
    return struct(
        version = version,
        urls = asset.urls,
        sha256 = asset.sha256,
        strip_prefix = asset.strip_prefix,
        release = asset.release,
        archive = None,
    )

def _module_file(mod):
    """The MODULE.bazel a tag of `mod` is written in, for messages."""
    return "the MODULE.bazel of module '%s'" % mod.name if mod.name else "the root MODULE.bazel"

def _runtime_archives(module_ctx):
    """{runtime name: {triple: tag}} from `venvstacks.runtime_archive`."""
    archives = {}
    for mod in module_ctx.modules:
        for tag in mod.tags.runtime_archive:
            what = "runtime_archive(runtime = '%s', platform = '%s')" % (tag.runtime, tag.platform)
            triple = platform_triples([tag.platform], what)[0]
            if triple in archives.get(tag.runtime, {}):
                fail("%s: declared twice" % what)
            if not tag.urls and not tag.archive:
                fail("%s: give `urls` + `sha256` or `archive`" % what)
            archives.setdefault(tag.runtime, {})[triple] = struct(tag = tag, what = "venvstacks.%s in %s" % (what, _module_file(mod)))
    return archives

def _check_archive_platforms(name, archives, targets, host):
    """Fails on a `runtime_archive` of runtime `name` for a platform it neither targets nor runs the tool on.

    Such an archive would never be used: only a target platform's archive is packed, and only the
    host's runs the tool (an archive for the host alone, as `local-runtime` prints, is fine).
    """
    for triple, archive in sorted(archives.items()):
        if triple not in targets and triple != host:
            fail("%s: runtime '%s' does not target %s (its platforms: %s), so this archive would never be used; add '%s' to the runtime's `platforms`, or remove the tag" % (
                archive.what,
                name,
                platform_name(triple),
                ", ".join([platform_name(t) for t in targets]),
                platform_name(triple),
            ))

def _runtime_sources(tag, table, host, archives, what):
    """{triple: source} for every platform the runtime has a build for, and the version to lock for."""
    resolved = resolve_version(table, tag.python_version)
    sources = {}
    for entry in PLATFORMS.values():
        triple = entry.triple
        if triple in archives:
            sources[triple] = _custom_source(archives[triple].tag, archives[triple].what)
        elif (tag.urls or tag.archive) and triple == host:
            sources[triple] = _custom_source(tag, what)
        elif not resolved.error:
            source = _table_source(table, resolved.version, triple, tag.base_urls)
            if source != None:
                sources[triple] = source
    if not resolved.error:
        lock_version = resolved.version
    elif is_python_version(tag.python_version) and (tag.urls or tag.archive or archives):
        lock_version = tag.python_version
    else:
        fail("%s: %s" % (what, resolved.error))
    return sources, lock_version

def _floor(value, attribute, what):
    """`value` ("2.28", "12.0" or "") checked to be a MAJOR.MINOR version of a known release."""
    parts = value.split(".")
    if value and (len(parts) != 2 or not parts[0].isdigit() or not parts[1].isdigit()):
        fail("%s: %s = '%s' is not a version like '2.28' or '12.0'" % (what, attribute, value))
    problem = wheel_floor_problem(attribute, value) if value else ""
    if problem:
        fail("%s: %s" % (what, problem))
    return value

def _venvstacks_impl(module_ctx):
    table = _read_json(module_ctx, Label(":pbs_releases.json"))
    wheel_table = _read_json(module_ctx, Label(":tool_wheels.json"))
    host = host_platform(module_ctx.os.name, module_ctx.os.arch)
    archives = _runtime_archives(module_ctx)
    settings = {entry.triple: str(config_setting_label(name)) for name, entry in PLATFORMS.items()}
    declared = {}
    runtimes_by_minor = {}
    host_candidates = []
    for mod in module_ctx.modules:
        for tag in mod.tags.runtime:
            what = "runtime '%s' (module '%s')" % (tag.name, mod.name)
            if tag.name in declared:
                fail("%s: the name is already declared by module '%s'; runtime names must be unique" % (what, declared[tag.name]))
            declared[tag.name] = mod.name
            targets = platform_triples(tag.platforms, what)
            if not targets:
                if host == None:
                    fail("%s: unsupported host platform %s/%s and no `platforms`; PBS runtimes are known for: %s" % (
                        what,
                        module_ctx.os.name,
                        module_ctx.os.arch,
                        ", ".join(sorted(PLATFORMS)),
                    ))
                targets = [host]
            _check_archive_platforms(tag.name, archives.get(tag.name, {}), targets, host)
            sources, lock_version = _runtime_sources(tag, table, host, archives.get(tag.name, {}), what)
            for triple in targets:
                if triple not in sources:
                    fail("%s: no build of Python %s for platform '%s' in the built-in PBS table; give one with venvstacks.runtime_archive(runtime = '%s', platform = '%s', ...)" % (
                        what,
                        lock_version,
                        platform_name(triple),
                        tag.name,
                        platform_name(triple),
                    ))
            repos, execs = {}, {}
            for triple, source in sorted(sources.items()):
                repo = "%s_%s" % (tag.name, platform_name(triple))
                tool_wheels = _tool_wheels(wheel_table, python_minor(source.version), triple)
                runtime_repository(
                    name = repo,
                    runtime_name = tag.name,
                    python_version = source.version,
                    platform_triple = triple,
                    release = source.release,
                    urls = source.urls,
                    sha256 = source.sha256,
                    strip_prefix = source.strip_prefix,
                    archive = source.archive,
                    source_date_epoch = release_epoch(source.release),
                    tool_wheels = tool_wheels or "",
                )
                repos[triple] = repo
                if tool_wheels != None and python_minor(source.version) == python_minor(lock_version):
                    execs[triple] = repo
            runtimes_by_minor.setdefault(python_minor(lock_version), tag.name)
            if host in execs:
                host_candidates.append((mod.is_root, tag.name))
            runtime_hub(
                name = tag.name,
                runtime_name = tag.name,
                targets = json.encode({triple: repos[triple] for triple in targets}),
                execs = json.encode(execs),
                config_settings = json.encode(settings),
                platform_names = json.encode({name: str(config_setting_label(name)) for name in PLATFORMS}),
                lock_python_version = lock_version,
                glibc_minimum = _floor(tag.glibc_minimum, "glibc_minimum", what),
                macos_minimum = _floor(tag.macos_minimum, "macos_minimum", what),
            )
    for runtime in archives:
        if runtime not in declared:
            fail("venvstacks.runtime_archive(runtime = '%s'): no venvstacks.runtime of that name" % runtime)
    host_runtime_repository(name = "venvstacks_host_runtime", runtime = pick_host_runtime(host_candidates))
    _declare_uv(wheel_table)
    _declare_indexes(module_ctx)
    _declare_locks(module_ctx, runtimes_by_minor)
    return module_ctx.extension_metadata(reproducible = True)

venvstacks = module_extension(
    implementation = _venvstacks_impl,
    doc = "Declares the CPython runtimes that venvstacks layers are built on, for their target platforms, the wheels their locks pin, and the named indexes their `package_indexes` and `priority_indexes` name.",
    tag_classes = {"index": _index_tag, "lock": _lock_tag, "runtime": _runtime_tag, "runtime_archive": _runtime_archive_tag},
)
