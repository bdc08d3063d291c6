"""The `venvstacks` module extension: declares python-build-standalone runtimes.

    venvstacks = use_extension("@rules_venvstacks//rules_venvstacks:extensions.bzl", "venvstacks")
    venvstacks.runtime(name = "cpython3_12", python_version = "3.12")
    use_repo(venvstacks, "cpython3_12")
"""

load(":pbs.bzl", "asset_urls", "host_platform", "python_minor", "release_epoch", "resolve_version")
load(":pylock.bzl", "parse_pylock")
load(":runtime_repository.bzl", "runtime_repository")
load(":wheel_repository.bzl", "wheel_repository", "wheels_hub")

_runtime_tag = tag_class(
    doc = """A CPython runtime from python-build-standalone, fetched for the host platform.

Three ways to say where it comes from:

* the built-in table of PBS releases (default): give `python_version`, "3.12" for the newest
  patch in the table or "3.12.7" to pin it; `base_urls` points at mirrors of the same files;
* a custom build: `urls` + `sha256` (+ `strip_prefix`), with the exact `python_version`;
* a local archive: `archive` (a label of a file in your repository), with the exact
  `python_version` and, optionally, `sha256`.
""",
    attrs = {
        "archive": attr.label(doc = "A local PBS-layout archive file, instead of downloading one."),
        "base_urls": attr.string_list(
            doc = "Mirrors of the PBS release assets (`<base>/<release>/<file>`), tried in order; the table's sha256 still applies.",
        ),
        "name": attr.string(mandatory = True, doc = "Repository name, e.g. 'cpython3_12'; also the target name in it."),
        "python_version": attr.string(mandatory = True, doc = "'3.12' (newest in the table) or an exact '3.12.7'."),
        "release": attr.string(doc = "PBS release tag of a custom build, recorded in metadata (optional)."),
        "sha256": attr.string(doc = "sha256 of the custom or local archive (required with `urls`)."),
        "strip_prefix": attr.string(default = "python", doc = "Directory inside a custom archive that holds the installation."),
        "urls": attr.string_list(doc = "Download URLs of a custom PBS-layout build, tried in order."),
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

def _repo_name(text):
    return "".join([char if char.isalnum() else "_" for char in text.elems()])

def _declare_locks(module_ctx):
    """Declares one repository per locked wheel and the hub repositories."""
    hubs = {}
    wheel_repos = {}
    for mod in module_ctx.modules:
        for tag in mod.tags.lock:
            hub = hubs.setdefault(tag.hub, {})
            if tag.name in hub:
                fail("venvstacks.lock(name = '%s'): declared twice in hub '%s'" % (tag.name, tag.hub))
            path = module_ctx.path(tag.file)
            module_ctx.watch(path)
            entry = {"lock": str(tag.file), "missing": not path.exists, "wheels": []}
            hub[tag.name] = entry
            if not path.exists:
                continue
            for package in parse_pylock(module_ctx.read(path), str(tag.file)):
                for wheel in package.wheels:
                    repo = "%s__%s_%s" % (tag.hub, _repo_name(package.name.lower()), wheel.sha256[:12])
                    if repo not in wheel_repos:
                        wheel_repos[repo] = True
                        url = wheel.url or "file://%s/%s" % (path.dirname, wheel.path)
                        wheel_repository(
                            name = repo,
                            file_name = wheel.name,
                            url = url,
                            sha256 = wheel.sha256,
                            package = "%s %s" % (package.name, package.version),
                            lock = str(tag.file),
                        )
                    entry["wheels"].append([repo, wheel.sha256])
    for hub, locks in hubs.items():
        wheels_hub(name = hub, locks = json.encode(locks))

def _read_json(module_ctx, label):
    return json.decode(module_ctx.read(module_ctx.path(label)))

def _tool_wheels(wheel_table, what, minor, platform):
    """The {url, sha256, role} wheels the tool needs on a runtime of `minor` on `platform`."""
    wheels = []
    for package, entry in sorted(wheel_table["packages"].items()):
        if "python" in entry and minor not in entry["python"]:
            continue
        wheel = entry["wheels"].get("any") or entry["wheels"].get(minor, {}).get(platform)
        if wheel == None:
            fail("%s: rules_venvstacks has no '%s' wheel for Python %s on %s (see rules_venvstacks/private/fetch/tool_wheels.json)" % (
                what,
                package,
                minor,
                platform,
            ))
        wheels.append({"role": entry.get("role", "build"), "sha256": wheel["sha256"], "url": wheel["url"]})
    return json.encode(wheels)

def _runtime_source(tag, table, platform, what):
    """Resolves a runtime tag to struct(version, urls, sha256, strip_prefix, release)."""
    if tag.urls or tag.archive:
        if tag.urls and tag.archive:
            fail("%s: give either `urls` or `archive`, not both" % what)
        if tag.urls and not tag.sha256:
            fail("%s: a custom build from `urls` needs its `sha256`" % what)
        if len(tag.python_version.split(".")) != 3:
            fail("%s: a custom build needs the exact python_version (e.g. '3.12.7'), got '%s'" % (what, tag.python_version))
        return struct(
            version = tag.python_version,
            urls = tag.urls,
            sha256 = tag.sha256,
            strip_prefix = tag.strip_prefix,
            release = tag.release,
        )
    resolved = resolve_version(table, tag.python_version)
    if resolved.error:
        fail("%s: %s" % (what, resolved.error))
    asset = asset_urls(table, resolved.version, platform, tag.base_urls)
    if asset.error:
        fail("%s: %s" % (what, asset.error))
    return struct(
        version = resolved.version,
        urls = asset.urls,
        sha256 = asset.sha256,
        strip_prefix = asset.strip_prefix,
        release = asset.release,
    )

def _venvstacks_impl(module_ctx):
    table = _read_json(module_ctx, Label(":pbs_releases.json"))
    wheel_table = _read_json(module_ctx, Label(":tool_wheels.json"))
    platform = host_platform(module_ctx.os.name, module_ctx.os.arch)
    declared = {}
    for mod in module_ctx.modules:
        for tag in mod.tags.runtime:
            what = "runtime '%s' (module '%s')" % (tag.name, mod.name)
            if tag.name in declared:
                fail("%s: the name is already declared by module '%s'; runtime names must be unique" % (what, declared[tag.name]))
            declared[tag.name] = mod.name
            if platform == None:
                fail("%s: unsupported host platform %s/%s; PBS runtimes are known for x86_64/aarch64 Linux (gnu), x86_64/arm64 macOS and x86_64 Windows" % (
                    what,
                    module_ctx.os.name,
                    module_ctx.os.arch,
                ))
            source = _runtime_source(tag, table, platform, what)
            runtime_repository(
                name = tag.name,
                runtime_name = tag.name,
                python_version = source.version,
                platform = platform,
                release = source.release,
                urls = source.urls,
                sha256 = source.sha256,
                strip_prefix = source.strip_prefix,
                archive = tag.archive,
                source_date_epoch = release_epoch(source.release),
                tool_wheels = _tool_wheels(wheel_table, what, python_minor(source.version), platform),
            )
    _declare_locks(module_ctx)
    return module_ctx.extension_metadata(reproducible = True)

venvstacks = module_extension(
    implementation = _venvstacks_impl,
    doc = "Declares the CPython runtimes that venvstacks layers are built on, and the wheels their locks pin.",
    tag_classes = {"lock": _lock_tag, "runtime": _runtime_tag},
)
