"""Repository rules for locked wheels: one repository per wheel file, and the hub that groups them.

Each wheel is its own repository so that Bazel fetches it lazily: only the layers being built
pull their wheels, and a wheel shared by several locks is downloaded once. A package built from
its sdist has a repository for the sdist and for each build requirement's wheel (the same rule:
one verified file), and an `sdist_wheel` target in the hub that builds it (a native sdist, with
extension modules: a `native_sdist_wheel` target per platform).
"""

load(":download.bzl", "download_verified")
load(":render.bzl", "render")

def _wheel_repository_impl(rctx):
    what = "wheel '%s' (package %s, lock %s)" % (rctx.attr.file_name, rctx.attr.package, rctx.attr.lock)
    download_verified(rctx, what, [rctx.attr.url], rctx.attr.sha256, "wheel/" + rctx.attr.file_name)
    rctx.file("BUILD.bazel", render.call("filegroup", "wheel", {"srcs": ["wheel/" + rctx.attr.file_name], "visibility": ["//visibility:public"]}))

wheel_repository = repository_rule(
    implementation = _wheel_repository_impl,
    doc = "Downloads one locked wheel file, verified by its sha256; created by the `venvstacks` extension.",
    attrs = {
        "file_name": attr.string(mandatory = True, doc = "The wheel's file name."),
        "lock": attr.string(mandatory = True, doc = "The lock file that pins it (for messages)."),
        "package": attr.string(mandatory = True, doc = "'name version' (for messages)."),
        "sha256": attr.string(mandatory = True, doc = "The sha256 recorded in the lock."),
        "url": attr.string(mandatory = True, doc = "Where the lock says the wheel is."),
    },
)

def _wheels_hub_impl(rctx):
    settings = json.decode(rctx.attr.config_settings)
    targets = [
        render.load_line(Label("//rules_venvstacks/private/build:locked_wheels.bzl"), ["locked_wheels"]),
        render.load_line(Label("//rules_venvstacks/private/build:sdist_wheel.bzl"), ["native_sdist_wheel", "sdist_wheel"]),
    ]
    builds = {}
    for name, entry in sorted(json.decode(rctx.attr.locks).items()):
        builds.update(entry.get("sdist_builds", {}))

        # One branch per platform the lock covers: only the built platform's wheels are fetched.
        wheels = {
            settings[triple]: {"@%s//:wheel" % repo: sha256 for repo, sha256 in repos}
            for triple, repos in entry["wheels"].items()
        }
        built = {
            settings[triple]: {":" + target: sha256 for target, sha256 in targets_of}
            for triple, targets_of in entry.get("built", {}).items()
        }
        built_native = {
            settings[triple]: {":" + target: sha256 for target, sha256 in targets_of}
            for triple, targets_of in entry.get("built_native", {}).items()
        }
        attrs = {
            "lock": entry["lock"],
            "missing": entry["missing"],
            "platform_triples": entry["platform_triples"],
            "wheels": render.select(wheels, {}),
            "visibility": ["//visibility:public"],
        }
        if entry["lock_version"]:
            # Only a versioned layer's lock has one: an unversioned hub's BUILD text is unchanged.
            attrs["lock_version"] = entry["lock_version"]
        if built:
            attrs["built_wheels"] = render.select(built, {})
        if built_native:
            attrs["built_native_wheels"] = render.select(built_native, {})
        targets.append(render.call("locked_wheels", name, attrs))
    for _, build in sorted(builds.items()):
        keys = ["build_wheels", "lock", "package", "platform_triple", "runtime", "sdist", "sdist_sha256", "wheel_name"]
        rule_name = "native_sdist_wheel" if "platform_triple" in build else "sdist_wheel"
        targets.append(render.call(rule_name, build["name"], {key: build[key] for key in keys if key in build}))
    rctx.file("BUILD.bazel", render.build_file(targets))

wheels_hub = repository_rule(
    implementation = _wheels_hub_impl,
    doc = "The hub repository: one `locked_wheels` target per lock, named as in `venvstacks.lock`, selecting the target platform's wheels.",
    attrs = {
        "config_settings": attr.string(mandatory = True, doc = "JSON: triple -> label of its config_setting."),
        "locks": attr.string(mandatory = True, doc = "JSON: name -> {lock, lock_version (0: none), missing, platform_triples, wheels: {triple: [[repo, sha256]]}, built: {triple: [[sdist_wheel target, sdist sha256]]}, built_native: the same of native_sdist_wheel targets, sdist_builds: {target: its attributes}}."),
    },
)
