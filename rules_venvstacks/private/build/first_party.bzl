"""First-party `py_library` code in a layer (`deps`): which files go where in site-packages.

A layer's `deps` are Python libraries (anything that provides `PyInfo`: rules_python's or
rules_py's `py_library`, a library of generated files). The layer holds what `py_binary` would
see of them, at the same import paths, computed here at analysis time:

* the sources are `PyInfo.transitive_sources` (the API rules_python 0.22 and 1.x/2.x share);
* `PyInfo.imports` entries are runfiles-root-relative directories (`_main/libs/mylib/src`), each
  on a `py_binary`'s sys.path; a source under one or more of them lands at its path below the
  longest (the one Python finds first among the entries that hold the file as a module), and a
  source under none at its path inside its repository, because `py_binary` puts each
  repository's runfiles root on sys.path too;
* a library's `data` file comes along when it lands inside a package directory of those sources
  (`mylib/templates/a.html` beside `mylib/__init__.py`): package data, read with
  `importlib.resources`. Other data (a top-level file, a directory without sources) is dropped:
  a layer is site-packages, not a runfiles tree;
* third-party packages come from the lock only. A pip-hub wheel target (rules_python's
  `whl_library` `py_library`, whose files live under `site-packages/` of its own repository; a
  hub label such as `@pypi//numpy` is an alias to one) is not copied: the layer records the
  top-level import names it installs, with the path of targets that reached it, and the layer's
  stack check fails unless the layer's own locked wheels or a layer below provide them;
* files that a framework below already holds from its own `deps` are not copied again: an
  application's library may depend on the framework's library, as its `py_library` says.

An aspect along `deps` records, per target, the target that owns each file (for messages) and
the hub wheels it reaches; the sources themselves come from `PyInfo`.
"""

load("@rules_python//python:defs.bzl", "PyInfo")
load("//rules_venvstacks/private/common:paths.bzl", "normalized_path")

FirstPartyInfo = provider(
    doc = "What the `deps` aspect found below one target: owners of first-party files, hub wheels.",
    fields = {
        "owners": "depset of struct(file = File, label = string): each first-party source and data file with the library that lists it.",
        "data": "depset of File: the `data` files of the first-party libraries (hub wheels' left out).",
        "hubs": "list of struct(label, root, names, path): each pip-hub wheel reached through first-party libraries, once: its label, its site-packages directory (runfiles path), the top-level import names it installs, and the labels from the dependency to it.",
        "hub_roots": "depset of the site-packages directories (runfiles paths) of every hub wheel below, those a hub wheel depends on included: their files are never copied.",
    },
)

_SITE_PACKAGES = "site-packages"

# The suffixes a top-level module file below site-packages may end with.
_MODULE_EXTENSIONS = ("py", "pyc", "so", "pyd")

def _runfiles_path(file, workspace_name):
    """The path of `file` below the runfiles root (`_main/libs/x.py`, `other_repo/x.py`)."""
    if file.short_path.startswith("../"):
        return file.short_path[3:]
    return workspace_name + "/" + file.short_path

def _normalize_import(entry):
    """A `PyInfo.imports` entry without `.` and `..` components (some rules leave `_main/../repo`)."""
    return normalized_path(entry)

def _destination(path, roots):
    """Where a file at runfiles path `path` lands below site-packages, given the import roots.

    Below the longest root that holds it; under no root, at its path inside its repository.
    """
    best = ""
    for root in roots:
        if path.startswith(root + "/") and len(root) > len(best):
            best = root
    if best:
        return path[len(best) + 1:]
    return path.partition("/")[2]

def _is_identifier(text):
    """Whether `text` is an ASCII Python identifier (Starlark strings have no `isidentifier`)."""
    return bool(text) and not text[0].isdigit() and text.replace("_", "a").isalnum()

def _top_level_name(relative):
    """The import name a path below site-packages installs, or None (metadata, scripts, data)."""
    first, sep, _ = relative.partition("/")
    if sep:
        return first if _is_identifier(first) else None
    stem, dot, extension = first.partition(".")
    if dot and _is_identifier(stem) and extension.rpartition(".")[2] in _MODULE_EXTENSIONS:
        return stem
    return None

def _hub_wheel(target, rule):
    """struct(root, names) if `target` is a pip-hub wheel library, else None.

    A wheel library lives in a repository of its own with every file under `site-packages/`
    there (rules_python's `whl_library` since 0.2x, through 2.x).
    """
    if not target.label.workspace_name:
        return None
    files = getattr(rule.files, "srcs", []) + getattr(rule.files, "data", [])
    if not files:
        return None
    repo = files[0].short_path.removeprefix("../").partition("/")[0]
    prefix = "../%s/%s/" % (repo, _SITE_PACKAGES)
    names = {}
    for file in files:
        if not file.short_path.startswith(prefix):
            return None
        name = _top_level_name(file.short_path[len(prefix):])
        if name:
            names[name] = True
    return struct(root = "%s/%s" % (repo, _SITE_PACKAGES), names = sorted(names))

def _label_text(label):
    """A label as users write it: `//pkg:name` in the main repository, `@@repo//pkg:name` elsewhere."""
    if label.workspace_name:
        return "@@%s//%s:%s" % (label.workspace_name, label.package, label.name)
    return "//%s:%s" % (label.package, label.name)

def _first_party_aspect_impl(target, ctx):
    label = _label_text(target.label)
    hub = _hub_wheel(target, ctx.rule)
    below = [dep[FirstPartyInfo] for dep in getattr(ctx.rule.attr, "deps", []) if FirstPartyInfo in dep]
    hub_roots = depset([hub.root] if hub != None else [], transitive = [info.hub_roots for info in below])
    if hub != None:
        # The wheels a hub wheel needs are its lock's business: their files come along in its
        # PyInfo, so their roots are excluded, but their names are not required here.
        return [FirstPartyInfo(
            owners = depset(),
            data = depset(),
            hubs = [struct(label = label, root = hub.root, names = hub.names, path = [label])],
            hub_roots = hub_roots,
        )]
    own_files = getattr(ctx.rule.files, "srcs", []) + getattr(ctx.rule.files, "data", [])
    hubs = {}
    for info in below:
        for reached in info.hubs:
            if reached.label not in hubs:
                hubs[reached.label] = struct(
                    label = reached.label,
                    root = reached.root,
                    names = reached.names,
                    path = [label] + reached.path,
                )
    return [FirstPartyInfo(
        owners = depset(
            [struct(file = file, label = label) for file in own_files],
            transitive = [info.owners for info in below],
        ),
        data = depset(getattr(ctx.rule.files, "data", []), transitive = [info.data for info in below]),
        hubs = [hubs[key] for key in sorted(hubs)],
        hub_roots = hub_roots,
    )]

first_party_aspect = aspect(
    implementation = _first_party_aspect_impl,
    attr_aspects = ["deps"],
    doc = "Along `deps`: which library lists each first-party file, and which pip-hub wheels are reached.",
)

def _is_below(path, roots):
    for root in roots:
        if path.startswith(root + "/"):
            return True
    return False

def _package_dirs(destinations):
    """The directories below site-packages that hold a first-party file directly."""
    return {dest.rpartition("/")[0]: True for dest in destinations if "/" in dest}

def _inside_package(dest, packages):
    """Whether `dest` lies in one of `packages` or in a directory below one."""
    parts = dest.split("/")[:-1]
    for i in range(1, len(parts) + 1):
        if "/".join(parts[:i]) in packages:
            return True
    return False

def _describe(file, owners):
    return "%s (from %s)" % (file.short_path, owners.get(file, _label_text(file.owner)))

def _place(label, placement, files, packages = None):
    """Adds `files` to `placement.chosen` at their destinations; fails on two files at one.

    With `packages`, a file is kept only inside one of those directories (package data).
    """
    for file in files:
        path = _runfiles_path(file, placement.workspace)
        if file in placement.held or _is_below(path, placement.hub_roots):
            continue
        dest = _destination(path, placement.roots)
        if packages != None and not _inside_package(dest, packages):
            continue
        other = placement.chosen.get(dest)
        if other != None and other != file:
            fail("%s: two first-party files land at %s in site-packages: %s and %s" % (
                label,
                dest,
                _describe(other, placement.owners),
                _describe(file, placement.owners),
            ))
        placement.chosen[dest] = file

def srcs_destination(ctx, file):
    """Where a file of a layer's `srcs` goes in site-packages: its path below the layer's package.

    Args:
      ctx: the rule context of a target in the layer's package (the layer, its launch module files).
      file: a File of `srcs`.

    Returns:
      Its path below site-packages.
    """
    path = file.short_path
    prefix = ctx.label.package + "/" if ctx.label.package else ""
    if file.owner.workspace_name == ctx.label.workspace_name and path.startswith(prefix):
        return path[len(prefix):]
    return path.removeprefix("../").partition("/")[2] if path.startswith("../") else path

def first_party_files(ctx, deps, lower_files, srcs_files):
    """The first-party files of `deps` for one layer, and the hub wheels they need.

    Args:
      ctx: the layer's rule context (its label for messages, its workspace name for paths).
      deps: the layer's `deps` targets (each with `PyInfo` and `FirstPartyInfo`).
      lower_files: depsets of File that the frameworks below already hold from their own `deps`.
      srcs_files: {destination: File} of the layer's `srcs`, which no `deps` file may land on.

    Returns:
      struct(files = {destination: File} of the `deps` files only, owners = {File: label
      string}, hubs = the hub structs of `FirstPartyInfo`, one per wheel, held = depset of the
      `deps` files of this layer and of the frameworks below, for the layers above).
    """
    infos = [dep[FirstPartyInfo] for dep in deps]
    hubs = {}
    for info in infos:
        for hub in info.hubs:
            hubs.setdefault(hub.label, hub)
    hub_roots = depset(transitive = [info.hub_roots for info in infos]).to_list()
    roots = [_normalize_import(entry) for dep in deps for entry in dep[PyInfo].imports.to_list()]
    owners = {file: "the srcs of %s" % _label_text(ctx.label) for file in srcs_files.values()}
    for info in infos:
        for entry in info.owners.to_list():
            owners.setdefault(entry.file, entry.label)
    placement = struct(
        workspace = ctx.workspace_name,
        roots = [root for root in roots if root and root not in hub_roots],
        hub_roots = hub_roots,
        held = {file: True for file in depset(transitive = lower_files).to_list()},
        owners = owners,
        chosen = dict(srcs_files),
    )
    sources = depset(transitive = [dep[PyInfo].transitive_sources for dep in deps]).to_list()
    _place(_label_text(ctx.label), placement, sources)
    packages = _package_dirs(placement.chosen.keys())
    data = depset(transitive = [info.data for info in infos]).to_list()
    _place(_label_text(ctx.label), placement, data, packages)
    files = {dest: file for dest, file in placement.chosen.items() if srcs_files.get(dest) != file}
    return struct(
        files = files,
        owners = {file: owners.get(file, _label_text(file.owner)) for file in files.values()},
        hubs = [hubs[key] for key in sorted(hubs)],
        held = depset(files.values(), transitive = lower_files),
    )

def first_party_owners(first_party):
    """The library each top-level entry of the `deps` files comes from, for the tool's messages.

    A top-level package is owned by the library of its `__init__.py`, else of its first file.

    Args:
      first_party: what `first_party_files` returned.

    Returns:
      A sorted list of (first path component below site-packages, library label).
    """
    owners = {}
    for dest in sorted(first_party.files):
        entry = dest.partition("/")[0]
        owner = first_party.owners[first_party.files[dest]]
        if entry not in owners or dest in (entry, entry + "/__init__.py"):
            owners[entry] = owner
    return sorted(owners.items())

# The pure helpers, for tests/starlark/first_party_test.bzl.
first_party_testlib = struct(
    destination = _destination,
    normalize_import = _normalize_import,
    top_level_name = _top_level_name,
    inside_package = _inside_package,
    package_dirs = _package_dirs,
)
