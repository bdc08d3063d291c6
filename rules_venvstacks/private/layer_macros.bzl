"""`framework_layer`, `application_layer` and `layer_stack`: one call, the targets a layer (or a stack) needs.

    NAME               the stack's archives + metadata JSON (bazel build); runs the layer (bazel run)
    NAME.lock          re-resolve the requirements into the lock (bazel run)
    NAME.lock_test     fails when the lock is stale (bazel test)
    NAME.deploy        unpack the stack into a directory (bazel run ... -- DIR); for a layer_stack, every layer
    NAME.test          deploy into a temporary directory and run the launch module (applications)
    NAME.image_layer   the layer as one OCI image layer under the stack's image prefix (docs/images.md)
    NAME.in_stack      what a `layer_stack` builds of the layer: the layer on its `platforms`, nothing elsewhere
    NAME.lock_inputs   internal: what the lock is resolved from
    NAME.app_modules   internal, versioned applications: the app's own module files, hashed into the lock

`runtime_layer` is the rule of the same name plus its `NAME.image_layer`.
"""

load("@platforms//host:constraints.bzl", "HOST_CONSTRAINTS")
load("//rules_venvstacks/private/build:app_modules.bzl", "venvstacks_app_modules")
load("//rules_venvstacks/private/build:layer.bzl", "venvstacks_layer")
load("//rules_venvstacks/private/build:runtime_layer.bzl", _runtime_layer_rule = "runtime_layer")
load("//rules_venvstacks/private/build:stack.bzl", "DEFAULT_PUBLISHED_SUMMARY", "check_published_summary", "venvstacks_stack")
load("//rules_venvstacks/private/common:constants.bzl", "DEFAULT_ARCHIVE_FORMAT", "DEFAULT_BYTECODE", "DEFAULT_INDEX_URL")
load("//rules_venvstacks/private/common:platforms.bzl", "config_setting_label", "platform_triples")
load("//rules_venvstacks/private/deploy:deploy_rules.bzl", "venvstacks_deploy", "venvstacks_test")
load("//rules_venvstacks/private/image:image_layer.bzl", "layer_image_layer")
load("//rules_venvstacks/private/image:prefix.bzl", "DEFAULT_IMAGE_COMPRESSION", "DEFAULT_IMAGE_PREFIX")
load("//rules_venvstacks/private/lock:lock_rules.bzl", "venvstacks_lock", "venvstacks_lock_all", "venvstacks_lock_inputs", "venvstacks_lock_test")

# Testing a deployed stack runs its interpreters: only where the target platform is this machine's.
# Elsewhere the `.test` targets are incompatible, so `bazel test //...` for another platform skips
# them. `.deploy` (manual, never in `//...`) fails at analysis instead, naming both platforms.
# Label(): the constraints resolve in this module's repository mapping, not the caller's.
_HOST_ONLY = [Label(constraint) for constraint in HOST_CONSTRAINTS]

# Container images are Linux images: for another target platform the `.image_layer` targets are
# incompatible, so `bazel build //...` skips them and asking for one names the constraint.
_LINUX_ONLY = [Label("@platforms//os:linux")]

def _image_layer(name, layer, lower, image_prefix, image_compression, visibility, tags):
    """`NAME.image_layer`: the layer `layer` as an OCI image layer on the image layers `lower`."""
    layer_image_layer(
        name = name + ".image_layer",
        layer = layer,
        lower = lower,
        prefix = image_prefix,
        compression = image_compression,
        target_compatible_with = _LINUX_ONLY,
        visibility = visibility,
        # Built by name or through an image that uses it, as `.deploy` and `.lock` are: most
        # builds of `//...` ship archives, not images, and need not pay for every layer twice.
        tags = tags + ["manual"],
    )

# A layer target analysed for a `.lock_inputs` target (lock_rules.bzl `lock_only_transition`):
# the attributes that could reach a wheel (the hub, first-party `deps` on pip hubs, `srcs` built
# by other rules, the frameworks' own) select to nothing, so locking fetches no wheel.
_LOCK_ONLY = Label("//rules_venvstacks/private/lock:is_lock_only")
_NO_WHEELS = Label("//rules_venvstacks/private/lock:no_wheels")

def _unless_lock_only(value, lock_only_value):
    """`value`, but `lock_only_value` in the lock-only configuration.

    A value that is already a `select()` is passed as it is (selects do not nest): it is then
    analysed for the lock too.
    """
    if type(value) == "select":
        return value
    return select({_LOCK_ONLY: lock_only_value, "//conditions:default": value})

# What a layer narrowed by `platforms` is on the other target platforms: incompatible, so
# `bazel build //...` skips it (and its `.deploy`, `.test`, `.image_layer`, which depend on it)
# and asking for it by name says so; and, in a stack, left out (`_in_stack`).
_INCOMPATIBLE = Label("@platforms//:incompatible")
_NOT_ON_THIS_PLATFORM = Label("//rules_venvstacks/private/build:not_on_this_platform")

def _on_platforms(platforms, value, otherwise, also = []):
    """A select() giving `value` on the target platforms `platforms` (short names) and the conditions `also`, `otherwise` elsewhere."""
    cases = {config_setting_label(platform): value for platform in platforms}
    for condition in also:
        cases[condition] = value
    cases["//conditions:default"] = otherwise
    return select(cases)

def _compatible_with(platforms):
    """`target_compatible_with` of a layer narrowed to `platforms`.

    Compatible in the lock-only configuration whatever the platform: the layers above and a
    stack's `.lock` reach it there for its lock inputs, and locking covers every platform.
    """
    return _on_platforms(platforms, [], [_INCOMPATIBLE], also = [_LOCK_ONLY])

def _in_stack(name, platforms, visibility, tags):
    """`NAME.in_stack`: the layer on its platforms (all of its runtime's when `platforms` is empty), nothing elsewhere."""
    native.alias(
        name = name + ".in_stack",
        actual = _on_platforms(platforms, ":" + name, _NOT_ON_THIS_PLATFORM) if platforms else ":" + name,
        visibility = visibility,
        tags = tags,
    )

def _sibling(label, suffix):
    """The label of `label`'s generated `<name><suffix>` target, as a string."""
    label = str(label)
    if ":" in label:
        return label + suffix
    if label.startswith("//") or label.startswith("@"):
        return "%s:%s%s" % (label, label.rpartition("/")[2], suffix)
    return ":" + label + suffix

def _layer(
        kind,
        name,
        runtime,
        frameworks = [],
        requirements = [],
        requirements_in = [],
        lock = None,
        wheels = None,
        index_url = DEFAULT_INDEX_URL,
        extra_index_urls = [],
        find_links = [],
        package_indexes = {},
        priority_indexes = [],
        index_overrides = {},
        build_from_sdist = [],
        layer_name = None,
        versioned = False,
        archive_format = DEFAULT_ARCHIVE_FORMAT,
        bytecode = DEFAULT_BYTECODE,
        srcs = [],
        deps = [],
        launch_module = "",
        test_script = None,
        image_prefix = DEFAULT_IMAGE_PREFIX,
        image_compression = DEFAULT_IMAGE_COMPRESSION,
        platforms = [],
        **kwargs):
    lock = lock or "pylock.%s.toml" % name
    package = native.package_name()
    visibility = kwargs.pop("visibility", None)
    tags = kwargs.pop("tags", [])
    if platforms:
        # An unknown or repeated name fails while the BUILD file loads, naming the valid ones.
        platform_triples(platforms, "%s_layer '%s': `platforms`" % (kind, name))
        kwargs["target_compatible_with"] = kwargs.pop("target_compatible_with", []) + _compatible_with(platforms)

    # A versioned application's lock records its launch and support modules' hashes (venvstacks
    # bumps the lock version when one of them changes): the lock inputs get the app's own files.
    app_modules = None
    if kind == "application" and versioned == True:
        app_modules = ":%s.app_modules" % name
        venvstacks_app_modules(
            name = name + ".app_modules",
            launch_module = launch_module,
            srcs = srcs,
            deps = deps,
            visibility = ["//visibility:private"],
            tags = tags,
        )
    venvstacks_lock_inputs(
        name = name + ".lock_inputs",
        layer = "//%s:%s" % (package, name),
        layer_name = layer_name or name,
        kind = kind,
        runtime = runtime,
        frameworks = frameworks,
        requirements = requirements,
        requirements_in = requirements_in,
        lock = (native.glob([lock], allow_empty = True) or [None])[0],
        lock_path = (package + "/" if package else "") + lock,
        index_url = index_url,
        extra_index_urls = extra_index_urls,
        find_links = find_links,
        package_indexes = package_indexes,
        priority_indexes = priority_indexes,
        index_overrides = index_overrides,
        versioned = versioned,
        app_modules = app_modules,
        build_from_sdist = build_from_sdist,
        platforms = platforms,
        visibility = visibility,
        tags = tags,
    )
    venvstacks_lock(name = name + ".lock", inputs = ":%s.lock_inputs" % name, tags = tags + ["manual"])
    venvstacks_lock_test(name = name + ".lock_test", inputs = ":%s.lock_inputs" % name, tags = tags)
    venvstacks_layer(
        name = name,
        kind = kind,
        layer_name = layer_name or name,
        versioned = versioned,
        runtime = runtime,
        frameworks = _unless_lock_only(frameworks, []),
        wheels = _unless_lock_only(wheels or "@venvstacks_wheels//:" + name, _NO_WHEELS),
        lock_inputs = ":%s.lock_inputs" % name,
        srcs = _unless_lock_only(srcs, []),
        deps = _unless_lock_only(deps, []),
        launch_module = launch_module,
        archive_format = archive_format,
        bytecode = bytecode,
        visibility = visibility,
        tags = tags,
        **kwargs
    )
    _in_stack(name, platforms, visibility, tags)
    venvstacks_deploy(
        name = name + ".deploy",
        layers = [":" + name],
        tags = tags + ["manual"],
    )
    _image_layer(
        name,
        layer = ":" + name,
        lower = [_sibling(runtime, ".image_layer")] + [_sibling(f, ".image_layer") for f in frameworks],
        image_prefix = image_prefix,
        image_compression = image_compression,
        visibility = visibility,
        tags = tags,
    )
    if kind == "application" or test_script:
        venvstacks_test(
            name = name + ".test",
            layer = ":" + name,
            script = test_script,
            tags = tags,
            target_compatible_with = _HOST_ONLY,
        )

def framework_layer(
        name,
        runtime,
        frameworks = [],
        requirements = [],
        requirements_in = [],
        lock = None,
        wheels = None,
        index_url = DEFAULT_INDEX_URL,
        extra_index_urls = [],
        find_links = [],
        package_indexes = {},
        priority_indexes = [],
        index_overrides = {},
        build_from_sdist = [],
        layer_name = None,
        versioned = False,
        archive_format = DEFAULT_ARCHIVE_FORMAT,
        bytecode = DEFAULT_BYTECODE,
        test_script = None,
        deps = [],
        dynlib_exclude = [],
        image_prefix = DEFAULT_IMAGE_PREFIX,
        image_compression = DEFAULT_IMAGE_COMPRESSION,
        strict_libraries = False,
        allowed_libraries = [],
        platforms = [],
        **kwargs):
    """A framework layer: a virtual environment of shared packages on one runtime.

    Creates NAME (`bazel build`: the archive and NAME.json, and every lower layer's archive and
    metadata; `bazel run NAME -- ARGS`: the framework's interpreter with ARGS, from the stack
    deployed once into the per-user run cache), NAME.lock (`bazel run`: resolve the requirements
    into the lock), NAME.lock_test (fails when the lock is stale), NAME.deploy (`bazel run ...
    -- DIR`: unpack the stack into DIR), NAME.test (with `test_script`), NAME.image_layer (the
    layer as one OCI image layer, deployed under `image_prefix`: docs/images.md) and
    NAME.lock_inputs (internal). The arrows say which target an argument goes to.

    Args:
      name: target name; also the layer's name unless `layer_name` is given.
      runtime: a `runtime_layer` target (-> NAME, NAME.lock_inputs).
      frameworks: the framework layers this one uses directly, in sys.path order; the
        frameworks below those come along, and the full order is derived as venvstacks derives
        it (the C3 linearization: each framework before the frameworks it sits on, listed ones
        in their listed order). An order that contradicts the frameworks' own fails at analysis
        naming them (-> NAME, NAME.lock_inputs).
      requirements: top-level requirements, e.g. `["numpy>=2"]` (-> NAME.lock_inputs).
      requirements_in: requirements.in files (-> NAME.lock_inputs).
      lock: the checked-in lock, default `pylock.NAME.toml` in this package; NAME.lock writes it
        and a `NAME.requirements.txt` beside it (-> NAME.lock_inputs).
      wheels: the hub target of the lock's wheels, default `@venvstacks_wheels//:NAME`; declare
        the lock in MODULE.bazel with `venvstacks.lock(name = NAME, file = ...)` (-> NAME).
      index_url: the index the lock resolves against (-> NAME.lock_inputs).
      extra_index_urls: more indexes (-> NAME.lock_inputs).
      find_links: local wheel directories (workspace-relative) or URLs (-> NAME.lock_inputs).
      package_indexes: `{"torch": "pytorch_cpu"}`: each project comes only from that named index
        (declared with `venvstacks.index(name, url)` in MODULE.bazel), never from another index;
        inherited by the layers above, and a conflict with a framework's fails at analysis naming
        both layers (docs/locking.md, "Named indexes") (-> NAME.lock_inputs).
      priority_indexes: named indexes searched first for every project, in order: the first that
        has a project answers alone; not inherited (-> NAME.lock_inputs).
      index_overrides: `{"pytorch_cpu": "pytorch_cu128"}`: an inherited `package_indexes` entry
        naming the first index is accepted where this layer or a framework with priority says
        the second (-> NAME.lock_inputs).
      build_from_sdist: top-level requirements installed from a wheel built from their sdist, in
        a sandboxed action, for the packages with no wheel (`["docopt"]`): locked with the
        sdist's hash and its build requirements' pure-Python wheels, built once for every
        platform when the wheel is pure Python; one with extension modules is built for each
        platform with the target's C toolchain, only where the target is the execution
        platform (another platform's build fails at analysis, saying so; docs/locking.md,
        "Packages with no wheel") (-> NAME.lock_inputs).
      layer_name: the layer's directory name when deployed (default: `name`).
      versioned: venvstacks' `versioned`: the lock carries a lock version N, bumped by a relock
        that changes the lock and kept by one that changes nothing; the layer deploys as
        `layer_name@N`, its archive is `NAME@N.<format>`, and the layers above are built on
        `layer_name@N`, so two versions deploy side by side (docs/layers.md, "Versioned
        layers"); a versioned application's lock also records the hashes of its launch module
        and of its support modules (its other top-level modules and packages), so a relock
        after one of them changed bumps N, as venvstacks does (-> NAME,
        NAME.lock_inputs, and NAME.app_modules for an application).
      archive_format: `tar.zst`, `tar.xz` or `zip` (-> NAME).
      bytecode: `compiled` (deterministic .pyc files) or `none` (-> NAME).
      test_script: a Python script that NAME.test runs with the layer's interpreter after
        deploying the stack into a temporary directory.
      deps: first-party Python libraries (`py_library` of rules_python or rules_py, anything
        that provides `PyInfo`): their transitive sources land in site-packages at their import
        roots, as `py_binary` sees them (a library with `imports = ["src"]` under
        `libs/mylib/src/mylib/` gives `mylib/`; a source under no root lands at its path in its
        repository), compiled like the rest, with the package data among their `data`. Files a
        framework below already holds are not copied again. A pip-hub wheel among them
        (`@pypi//numpy`) is not copied: the lock owns third-party packages, and the build fails
        unless this layer's lock or a layer below provides its import names. A first-party
        module that a locked package or a lower layer's module also provides fails the build,
        naming both (-> NAME).
      dynlib_exclude: glob patterns of shared libraries not to link into the layer's
        `share/venv/dynlib` for the layers above, as venvstacks' `dynlib_exclude`: matched
        against the end of each library's path (`libfoo.so`, `pkg.libs/*.so`,
        `**/libcuda*.so`); the way out when two wheels ship libraries of one name (-> NAME).
      image_prefix: the absolute directory the stack's layers are deployed to in a container
        image, `/opt/venvstacks` by default; every layer of a stack must use the same one
        (-> NAME.image_layer).
      image_compression: `gzip` (default) or `zstd`, the image layer's compression
        (-> NAME.image_layer).
      strict_libraries: make the loader check fail the build, instead of warning, when an
        extension module or shared library of the layer needs a library that neither the layer,
        the layers below, the runtime nor the target platform's system libraries provide
        (docs/platforms.md, "The loader check") (-> NAME).
      allowed_libraries: library names the targets are known to provide although the check does
        not count them (`libGL.so.1` on desktops, a GPU driver's `libcuda.so.1`): never reported
        (-> NAME).
      platforms: venvstacks' per-layer `platforms`: the short names of the platforms the layer is
        built for (`["macos_arm64"]`), among its runtime's and every framework's below (checked
        at analysis, naming the layer that lacks one); empty (default): the runtime's. Its lock
        covers these only; on the other target platforms NAME and the targets built from it are
        incompatible (`bazel build //...` skips them), and a `layer_stack` leaves the layer out
        there (docs/layers.md, "Narrower platforms") (-> NAME, NAME.lock_inputs, NAME.in_stack).
      **kwargs: common attributes (visibility, tags) for the generated targets.
    """
    _layer(
        "framework",
        name,
        runtime,
        frameworks = frameworks,
        requirements = requirements,
        requirements_in = requirements_in,
        lock = lock,
        wheels = wheels,
        index_url = index_url,
        extra_index_urls = extra_index_urls,
        find_links = find_links,
        package_indexes = package_indexes,
        priority_indexes = priority_indexes,
        index_overrides = index_overrides,
        build_from_sdist = build_from_sdist,
        layer_name = layer_name,
        versioned = versioned,
        archive_format = archive_format,
        bytecode = bytecode,
        test_script = test_script,
        deps = deps,
        dynlib_exclude = dynlib_exclude,
        image_prefix = image_prefix,
        image_compression = image_compression,
        strict_libraries = strict_libraries,
        allowed_libraries = allowed_libraries,
        platforms = platforms,
        **kwargs
    )

def application_layer(name, runtime, frameworks, launch_module, srcs = [], deps = [], **kwargs):
    """An application layer: the application's code and its own packages, on frameworks.

    Creates the same targets as `framework_layer`, and always NAME.test: it deploys the stack
    into a temporary directory and runs `python -m <launch_module>` (or `test_script`).
    `bazel run NAME -- ARGS` runs `python -m <launch_module> ARGS` as `py_binary` would (the
    caller's working directory, stdin and exit code), from the stack deployed once into the
    per-user run cache (docs/monorepo.md).

    Args:
      name: target name; also the layer's name unless `layer_name` is given.
      runtime: a `runtime_layer` target (-> NAME, NAME.lock_inputs).
      frameworks: the framework layers it uses directly, in sys.path order; the rest of the
        stack's order is derived as for `framework_layer` (-> NAME, NAME.lock_inputs).
      launch_module: the module `python -m` runs (-> NAME, NAME.test; and NAME.app_modules when
        versioned); or a `.py` file of this
        package, which is added to `srcs` and becomes that module (`main.py` -> `main`,
        `cli/run.py` -> `cli.run`).
      srcs: application code (files or targets); each file lands in site-packages at its path
        below this package (a `py_library`'s `imports` are not read here: use `deps`); a `.whl`
        file (a wheel built by another rule) is installed like the locked wheels, its
        dependencies coming from the lock (-> NAME; and NAME.app_modules when versioned).
      deps: first-party Python libraries (anything that provides `PyInfo`), placed at their
        import roots as for `framework_layer`; the launch module may be one of their modules
        (-> NAME; and NAME.app_modules when versioned).
      **kwargs: any optional argument of `framework_layer` (requirements, requirements_in,
        lock, wheels, index_url, extra_index_urls, find_links, package_indexes, priority_indexes,
        index_overrides, build_from_sdist, layer_name, versioned, archive_format,
        bytecode, test_script, dynlib_exclude, image_prefix, image_compression, strict_libraries,
        allowed_libraries, platforms), and common
        attributes (visibility, tags).
    """
    if launch_module.endswith(".py"):
        srcs = srcs + [launch_module]
        launch_module = launch_module.removeprefix(":").removesuffix(".py").replace("/", ".")
    _layer("application", name, runtime, frameworks = frameworks, launch_module = launch_module, srcs = srcs, deps = deps, **kwargs)

def runtime_layer(name, image_prefix = DEFAULT_IMAGE_PREFIX, image_compression = DEFAULT_IMAGE_COMPRESSION, **kwargs):
    """A runtime layer (the `runtime_layer_rule` rule, its attributes in `kwargs`) and its NAME.image_layer.

    Creates NAME (`bazel build`: the runtime's archive and NAME.json; `bazel run`: its
    interpreter) and NAME.image_layer (the runtime as one OCI image layer under
    `image_prefix`, docs/images.md).

    Args:
      name: target name; also the layer's name unless `layer_name` is given.
      image_prefix: the absolute directory the stack's layers are deployed to in a container
        image (-> NAME.image_layer); the layers on this runtime must use the same one.
      image_compression: `gzip` (default) or `zstd` (-> NAME.image_layer).
      **kwargs: the attributes of `runtime_layer_rule` (runtime, layer_name, archive_format,
        bytecode, source_date_epoch) and common attributes (visibility, tags).
    """
    _runtime_layer_rule(name = name, **kwargs)
    _image_layer(
        name,
        layer = ":" + name,
        lower = [],
        image_prefix = image_prefix,
        image_compression = image_compression,
        visibility = kwargs.get("visibility"),
        tags = kwargs.get("tags", []),
    )

def layer_stack(name, layers, published_summary = DEFAULT_PUBLISHED_SUMMARY, **kwargs):
    """A set of stacks: every layer below the given layers, their metadata in one file, and one `.lock`.

    Creates NAME (`bazel build`: every layer's archive, `NAME.json`, all their metadata keyed
    by layer name, and venvstacks' stack summary `__venvstacks__/<platform>/venvstacks.json`,
    every layer's venvstacks metadata by category, as `venvstacks publish` writes it), NAME.lock
    (`bazel run`: lock every layer of the stack in one command and one tool process, each layer
    as soon as the layers below it are locked; `bazel run NAME.lock -- --upgrade` passes
    `--upgrade` to each; a layer whose inputs are unchanged is kept as it is) and NAME.deploy
    (`bazel run NAME.deploy -- DIR [--force]`: deploy every layer of the stacks into DIR, each
    once, lower layers first, as a layer's `.deploy` does).

    A layer narrowed by `platforms` is in the stack only on its platforms: built for another
    target platform, the stack (its archives, `NAME.json`, venvstacks' summary, `NAME.deploy`)
    leaves it out, with the layers only it brings; `NAME.lock` locks every layer whatever the
    platform (docs/layers.md, "Narrower platforms").

    Args:
      name: target name.
      layers: the top layers (framework or application layer targets); the layers below them
        come along (-> NAME, NAME.deploy, NAME.lock).
      published_summary: the file name of venvstacks' stack summary in `__venvstacks__/<platform>/`
        (-> NAME); two `layer_stack`s of one package need two names, which fails early otherwise.
      **kwargs: common attributes (visibility, tags) for the generated targets.
    """
    tags = kwargs.pop("tags", [])
    check_published_summary(name, published_summary)
    stacked = [_sibling(layer, ".in_stack") for layer in layers]
    venvstacks_stack(name = name, layers = layers, stacked = stacked, published_summary = published_summary, tags = tags, **kwargs)
    venvstacks_deploy(
        name = name + ".deploy",
        layers = stacked,
        tags = tags + ["manual"],
        **kwargs
    )
    venvstacks_lock_all(
        name = name + ".lock",
        layers = layers,
        tags = tags + ["manual"],
        **kwargs
    )
