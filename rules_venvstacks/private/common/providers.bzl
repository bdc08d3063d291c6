"""Providers shared by the rules_venvstacks rules."""

# What the runtime of one platform (the per-platform repository's `venvstacks_runtime`) knows and
# the hub `@NAME` takes from the target platform's runtime as it is (`build` of the constructor).
_BUILD_FIELDS = [
    "python_version",
    "platform_triple",
    "venv_launchers",
    "pbs_release",
    "source_archive",
    "source_urls",
    "source_sha256",
    "strip_prefix",
    "interpreter",
    "files",
    "tool_site",
    "tool_zips",
    "lock_zips",
    "loader_zips",
    "sdist_zips",
    "tool_site_marker",
    "source_date_epoch",
]

def _runtime_info_init(
        name,
        python_version = "",
        platform_triple = "",
        unavailable = "",
        platform_triples = None,
        lock_python_version = None,
        wheel_floors = None,
        exec_runtime = None,
        venv_launchers = [],
        pbs_release = "",
        source_archive = None,
        source_urls = [],
        source_sha256 = "",
        strip_prefix = "",
        interpreter = None,
        files = None,
        tool_site = None,
        tool_zips = [],
        lock_zips = [],
        loader_zips = [],
        sdist_zips = [],
        tool_site_marker = None,
        source_date_epoch = 0,
        build = None):
    """The one constructor of VenvstacksRuntimeInfo: every field, its default filled in.

    A runtime of one platform gives its own fields; `platform_triples` defaults to its triple,
    `lock_python_version` to its version. The hub gives `build`, the target platform's runtime,
    whose build fields it takes as they are, and its own declared platforms, floors and
    execution runtime; a hub whose runtime has no build for the target gives `unavailable` and
    nothing of a build.

    Args:
      name: the field (below).
      python_version: the field; taken from `build` when given.
      platform_triple: the field; taken from `build` when given.
      unavailable: the field; not with `build`.
      platform_triples: the field; default: `[platform_triple]`.
      lock_python_version: the field; default: `python_version`.
      wheel_floors: the field; default: `struct(glibc = "", macos = "")`, the default floors.
      exec_runtime: the field; None for the runtime of one platform, which runs the tool itself.
      venv_launchers: the field; taken from `build` when given.
      pbs_release: the field; taken from `build` when given.
      source_archive: the field; taken from `build` when given.
      source_urls: the field; taken from `build` when given.
      source_sha256: the field; taken from `build` when given.
      strip_prefix: the field; taken from `build` when given.
      interpreter: the field; taken from `build` when given.
      files: the field; default: an empty depset; taken from `build` when given.
      tool_site: the field; default: an empty depset; taken from `build` when given.
      tool_zips: the field; taken from `build` when given.
      lock_zips: the field; taken from `build` when given.
      loader_zips: the field; taken from `build` when given.
      sdist_zips: the field; taken from `build` when given.
      tool_site_marker: the field; taken from `build` when given.
      source_date_epoch: the field; taken from `build` when given.
      build: a VenvstacksRuntimeInfo of one platform whose build fields (the archive, the
        interpreter, its files and the tool's wheels) this one takes as they are.

    Returns:
      The fields.
    """
    fields = {
        "name": name,
        "python_version": python_version,
        "platform_triple": platform_triple,
        "unavailable": unavailable,
        "venv_launchers": venv_launchers,
        "pbs_release": pbs_release,
        "source_archive": source_archive,
        "source_urls": source_urls,
        "source_sha256": source_sha256,
        "strip_prefix": strip_prefix,
        "interpreter": interpreter,
        "files": files if files != None else depset(),
        "tool_site": tool_site if tool_site != None else depset(),
        "tool_zips": tool_zips,
        "lock_zips": lock_zips,
        "loader_zips": loader_zips,
        "sdist_zips": sdist_zips,
        "tool_site_marker": tool_site_marker,
        "source_date_epoch": source_date_epoch,
    }
    if build != None:
        if unavailable or platform_triple:
            fail("VenvstacksRuntimeInfo: `build` comes with neither `unavailable` nor `platform_triple`")
        fields.update({key: getattr(build, key) for key in _BUILD_FIELDS})
    if not fields["python_version"]:
        fail("VenvstacksRuntimeInfo of runtime '%s': no `python_version`" % name)
    fields.update(
        platform_triples = platform_triples if platform_triples != None else [fields["platform_triple"]],
        lock_python_version = lock_python_version or fields["python_version"],
        wheel_floors = wheel_floors or struct(glibc = "", macos = ""),
        exec_runtime = exec_runtime,
    )
    return fields

VenvstacksRuntimeInfo, _new_runtime_info = provider(
    doc = """A CPython runtime in python-build-standalone layout (from the PBS table, a custom build or a local archive), as declared with `venvstacks.runtime`.

`@NAME` (the runtime's hub) gives the runtime of the target platform (`--platforms`), with the
build machine's runtime of the same Python X.Y as `exec_runtime`: the layer archives hold the
target's files, the tool runs on the execution platform's interpreter.""",
    fields = {
        "name": "The runtime's name in MODULE.bazel, e.g. 'cpython3_12'.",
        "python_version": "The exact CPython version, e.g. '3.12.7'.",
        "platform_triple": "The PBS target triple the runtime was built for ('' when the runtime has no build for the target platform: see `unavailable`).",
        "unavailable": "'' or why the runtime cannot serve the target platform (a message naming the runtime, the platform and the declared ones).",
        "platform_triples": "list of the PBS triples the runtime's stacks target (what every lock covers).",
        "lock_python_version": "The CPython version locks are resolved for (markers), e.g. '3.12.7'.",
        "wheel_floors": "struct(glibc, macos): the oldest glibc and macOS ('2.17', '12.0') the locks' wheels must run on, '' for the default floors (constants.bzl DEFAULT_GLIBC_MINIMUM, DEFAULT_MACOS_MINIMUM).",
        "exec_runtime": "VenvstacksRuntimeInfo of the execution platform's runtime that runs the tool (None for a per-platform runtime, which runs the tool itself).",
        "venv_launchers": "list of struct(name, file): Windows targets' venv launchers for `Scripts/` (python.exe, pythonw.exe); [] elsewhere.",
        "pbs_release": "The PBS release tag, or '' for a custom build.",
        "source_archive": "File: the archive exactly as downloaded (sha256-verified).",
        "source_urls": "list of the URLs it was fetched from ([] for a local archive).",
        "source_sha256": "The archive's sha256 (hex).",
        "strip_prefix": "Directory inside the archive that holds the installation, e.g. 'python'.",
        "interpreter": "File: the unpacked interpreter, used to run the tool in actions.",
        "files": "depset of File: what the interpreter needs at run time (stdlib).",
        "tool_site": "depset of File: the unpacked binary wheels build actions need (zstandard).",
        "tool_zips": "list of File: pure-Python wheels for build actions, put on sys.path as zip files (installer).",
        "lock_zips": "list of File: pure-Python wheels only locking needs, as zip files (pip, packaging, tomli).",
        "loader_zips": "list of File: pure-Python wheels only the loader check needs, as zip files (macholib, altgraph, pefile).",
        "sdist_zips": "list of File: pure-Python wheels only the action building a wheel from an sdist needs, as zip files (pyproject-hooks).",
        "tool_site_marker": "File: `zstandard/__init__.py` in the directory of the tool's unpacked wheels, which locates that directory.",
        "source_date_epoch": "int: the mtime of every archive member, from the PBS release date.",
    },
    init = _runtime_info_init,
)

VenvstacksLayerInfo = provider(
    doc = "A built layer: its archive and its metadata JSON.",
    fields = {
        "label": "Label of the layer target, for error messages.",
        "layer_name": "The layer's install target: its directory name inside the archive and when deployed (`NAME@N` for a versioned layer, N its lock version).",
        "kind": "'runtime', 'framework' or 'application'.",
        "archive": "File: the deterministic layer archive.",
        "metadata": "File: the layer's metadata JSON.",
        "published_metadata": "File: the layer's metadata in venvstacks' published schema, `__venvstacks__/<platform>/env_metadata/<name>.json` (build/published_metadata.bzl).",
        "archive_record": "File: JSON `{layer_name, archive: {file, format, sha256, size}}`, written with the archive; what the metadata of the layers above reads (the runtime layer's is its metadata JSON).",
        "contents": "File: JSON of the layer's top-level import names and the shared libraries it links for the layers above, written with the archive and read by the shadowing check of the layers above (build/layer_contents.py); None for a runtime layer.",
        "python_version": "The exact CPython version of the layer's runtime.",
        "runtime": "VenvstacksRuntimeInfo of the runtime the layer is built on.",
        "runtime_layer_name": "layer_name of the runtime layer this layer runs on (itself for a runtime).",
        "lower_layers": "list of VenvstacksLayerInfo below this one, in deployment order: the runtime, then the frameworks in reverse sys.path order (each after the layers it needs).",
        "frameworks": "list of layer_name of every framework layer whose site-packages this layer sees, in sys.path order (the C3 linearization of its `frameworks`).",
        "launch_module": "The module `python -m` runs for an application layer, else ''.",
        "first_party": "depset of File: the first-party files (`deps`) this layer and the frameworks below it hold, which the layers above do not copy again (build/first_party.bzl); empty for a runtime layer.",
        "libraries": "File: JSON of the library names the layers above find of this layer by name (its dynlibs; on Windows its DLL directories), written by its loader check (build/loader_check.bzl); None for a runtime layer.",
    },
)

VenvstacksLockInfo = provider(
    doc = "What a layer's lock is resolved from; carries no wheels, so locking never fetches them.",
    fields = {
        "label": "The layer's label as a string, e.g. '//stacks:app' (not a dependency).",
        "layer_name": "The layer's name.",
        "kind": "'framework' or 'application'.",
        "runtime_layer": "VenvstacksLayerInfo of the runtime layer.",
        "lock": "File: the checked-in lock, or None before the first `bazel run <layer>.lock`.",
        "lock_path": "Workspace-relative path of the lock file (where `.lock` writes it).",
        "platform_triples": "list of the PBS triples the layer is locked and built for: its `platforms`, or its runtime's when it names none (in the runtime's order).",
        "versioned": "True when the layer is versioned: its lock carries a lock version (`lock` and `check-lock` take `--versioned`).",
        "requirements": "list of requirement strings given inline.",
        "requirements_in": "list of File: requirements.in files.",
        "lower": "list of VenvstacksLockInfo of every framework below, in sys.path order: the C3 linearization of the layer's `frameworks` (each framework before those it sits on; private/common/c3.bzl).",
        "named_indexes": "struct(package_indexes = {normalized project: index name}, origins = {project: label string of the layer that set it}, priority = [index names]): the layer's own and inherited named-index routing (private/lock/named_indexes.bzl).",
        "index_urls": "dict of index name -> URL: every declared named index (`venvstacks.index` tags).",
        "index": "struct(index_url, extra_index_urls, find_links, build_from_sdist) for the resolver: where packages come from, and which are built from their sdists.",
        "app_modules": "VenvstacksAppModulesInfo of a versioned application (its lock records its launch and support modules' hashes), else None.",
    },
)

VenvstacksAppModulesInfo = provider(
    doc = "An application's launch module and the layer's own module files (`NAME.app_modules`, for a versioned application's lock).",
    fields = {
        "module": "The launch module, as `python -m` takes it (`app.main`).",
        "files": "dict of destination below site-packages -> File: the layer's own files from `srcs` (wheels aside) and `deps`, whose top-level modules are the launch module's and the support modules.",
    },
)

VenvstacksAbsentLayerInfo = provider(
    doc = "What a layer's `NAME.in_stack` gives on a platform outside the layer's `platforms`: a stack leaves it out there (build/absent_layer.bzl).",
    fields = [],
)

VenvstacksIndexesInfo = provider(
    doc = "The named indexes declared with `venvstacks.index` tags in MODULE.bazel (`@venvstacks_indexes//:indexes`).",
    fields = {"urls": "dict of index name -> simple index URL."},
)

VenvstacksWheelsInfo = provider(
    doc = "The wheels one lock file pins, fetched by the `venvstacks` extension's hub repository.",
    fields = {
        "lock": "Label string of the lock file the wheels come from.",
        "lock_version": "int: the lock's lock version (`lock-version`, written for a versioned layer), 0 when it has none.",
        "missing": "True when the lock file does not exist yet.",
        "platform_triples": "list of the PBS triples the lock covers.",
        "wheels": "list of struct(file = File, sha256 = hex string): the target platform's wheels.",
        "built": "list of struct(file = File, sdist_sha256 = hex string): the target platform's wheels built from sdists (in the execution configuration), with the sha256 of each one's sdist.",
    },
)

VenvstacksImageLayerInfo = provider(
    doc = "A layer as one OCI image layer, deployed and post-installed under a prefix (docs/images.md).",
    fields = {
        "label": "Label of the image layer target, for error messages.",
        "layer": "VenvstacksLayerInfo of the layer it holds.",
        "prefix": "The absolute directory the stack's layers are deployed to in the image, e.g. '/opt/venvstacks'.",
        "blob": "File: the compressed layer tar (what an image's manifest names by its digest).",
        "descriptor": "File: JSON `{digest, diff_id, mediaType, size, layer_name, prefix, platform}` of the blob.",
        "lower": "list of VenvstacksImageLayerInfo: the image layers of every layer below, in deployment order (an image's layers are `lower`, then this one).",
    },
)
