"""Container images of the example stack (docs/images.md), checked with real OCI tools.

Builds on the example that test_example built (`example_run`, one per session): the base image is
made here from the host libraries the stack needs (`venvstacks_testing.oci_base`, with umoci),
both applications become OCI image layouts (`stack_image`), skopeo validates and copies them,
umoci unpacks them, and each application runs from its unpacked root filesystem under `chroot`
(podman is not used: see docs/images.md). Then the sharing: the runtime and framework layers of
the two images have the same digests, an application-only change changes only that
application's layer, and a second output base builds the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from venvstacks_testing.bazel_workspace import CHECKOUT, Workspace
from venvstacks_testing.example_run import ExampleRun
from venvstacks_testing.oci_base import make_base_layout

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="chroot and umoci unpack of a root filesystem need root"),
]

APPS = ("app_report", "app_stats")
LAYERS = ("cpython3_11", "numpy_framework", "app_report", "app_stats")
OVERRIDE = f"--override_module=rules_venvstacks={CHECKOUT}"
IMAGES_BUILD = """
load("@rules_venvstacks//rules_venvstacks:defs.bzl", "stack_image")

[stack_image(
    name = app + ".image",
    base = "//base:layout",
    image_layer = ":%s.image_layer" % app,
) for app in ("app_report", "app_stats")]
"""
BASE_BUILD = 'filegroup(name = "layout", srcs = glob(["layout/**"]), visibility = ["//visibility:public"])\n'


@pytest.fixture(scope="module")
def images(example_run: ExampleRun) -> Iterator[Workspace]:
    """The example's workspace with a base image layout and a `stack_image` per application, built."""
    assert example_run.result.returncode == 0, example_run.result.stderr[-3000:]
    workspace = Workspace(example_run.workspace)
    make_base_layout(example_run.dest, workspace.root / "base" / "layout")
    workspace.write("base/BUILD.bazel", BASE_BUILD)
    with open(workspace.root / "stacks" / "BUILD.bazel", "a", encoding="utf-8") as build:
        build.write(IMAGES_BUILD)
    try:
        workspace.bazel("build", OVERRIDE, *(f"//stacks:{app}.image" for app in APPS))
        yield workspace
    finally:
        workspace.shutdown()


def layout(workspace: Workspace, app: str) -> Path:
    return workspace.output(f"stacks/{app}.image")


def manifest(image: Path) -> dict[str, Any]:
    (entry,) = json.loads((image / "index.json").read_text())["manifests"]
    return json.loads((image / "blobs" / "sha256" / entry["digest"].removeprefix("sha256:")).read_text())


def layer_digests(image: Path) -> list[str]:
    return [layer["digest"] for layer in manifest(image)["layers"]]


def descriptor(workspace: Workspace, layer: str) -> dict[str, Any]:
    return json.loads(workspace.output(f"stacks/{layer}.image_layer.json").read_text())


def snapshot(root: Path) -> dict[str, tuple[int, int, float]]:
    """Every path below `root` with its mode, size and mtime: what a write at start would change."""
    found = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        found[str(path.relative_to(root))] = (st.st_mode, st.st_size, st.st_mtime)
    return found


def test_the_tools_take_each_image_and_each_app_runs_from_its_unpacked_root_filesystem(
    images: Workspace, tmp_path: Path
) -> None:
    for app in APPS:
        image = layout(images, app)
        inspected = json.loads(
            subprocess.run(
                ["skopeo", "inspect", f"oci:{image}:latest"], capture_output=True, text=True, check=True
            ).stdout
        )
        assert (inspected["Os"], inspected["Architecture"]) == ("linux", "amd64")
        assert inspected["Layers"] == layer_digests(image)
        # A full copy reads every blob and checks it against its digest.
        archive = tmp_path / f"{app}.oci.tar"
        subprocess.run(
            ["skopeo", "copy", f"oci:{image}:latest", f"oci-archive:{archive}"], check=True, capture_output=True
        )
        assert archive.stat().st_size > 0
        bundle = tmp_path / f"{app}.bundle"
        subprocess.run(["umoci", "unpack", "--image", f"{image}:latest", str(bundle)], check=True, capture_output=True)
        rootfs = bundle / "rootfs"
        config = json.loads(
            subprocess.run(
                ["skopeo", "inspect", "--config", f"oci:{image}:latest"], capture_output=True, text=True, check=True
            ).stdout
        )["config"]
        assert config["Entrypoint"] == [f"/opt/venvstacks/{app}/bin/python", "-m", app]
        before = snapshot(rootfs)
        env = dict(item.split("=", 1) for item in config["Env"])
        run = subprocess.run(
            ["chroot", str(rootfs), *config["Entrypoint"], "3", "1", "4"],
            capture_output=True,
            text=True,
            check=False,
            env=env,
        )
        assert run.returncode == 0, run.stderr[-3000:]
        (report,) = [json.loads(line) for line in run.stdout.splitlines() if line.startswith('{"app"')]
        assert report["app"] == app
        assert report["numpy_file"].startswith("/opt/venvstacks/numpy_framework/lib/python3"), report
        # The container needed no post-install step and wrote nothing into its file system.
        assert snapshot(rootfs) == before


def test_two_images_share_the_runtime_and_framework_layers_by_digest(images: Workspace) -> None:
    report, stats = (layer_digests(layout(images, app)) for app in APPS)
    assert len(report) == len(stats) == 4  # the base, the runtime, the framework, the application
    assert report[:3] == stats[:3]
    assert report[3] != stats[3]
    for layer, digest in zip(("cpython3_11", "numpy_framework"), report[1:3], strict=True):
        assert descriptor(images, layer)["digest"] == digest


def test_an_application_change_changes_only_its_own_layer(images: Workspace) -> None:
    before = {layer: descriptor(images, layer) for layer in LAYERS}
    image_before = layer_digests(layout(images, "app_stats"))
    source = images.root / "stacks" / "app_stats" / "__main__.py"
    original = source.read_text()
    try:
        source.write_text(original + "\n# an application-only change\n")
        images.bazel(
            "build", OVERRIDE, "//stacks:app_stats.image", *(f"//stacks:{layer}.image_layer" for layer in LAYERS)
        )
        after = {layer: descriptor(images, layer) for layer in LAYERS}
        image_after = layer_digests(layout(images, "app_stats"))
    finally:
        source.write_text(original)
    assert [layer for layer in LAYERS if after[layer] != before[layer]] == ["app_stats"]
    assert image_after[:3] == image_before[:3] and image_after[3] != image_before[3]


def test_the_image_layers_are_the_same_bytes_in_another_output_base(images: Workspace, tmp_path: Path) -> None:
    targets = [f"//stacks:{layer}.image_layer" for layer in ("cpython3_11", "numpy_framework", "app_stats")]
    images.bazel("build", OVERRIDE, *targets)
    first = {target: _blob_sha256(images, target) for target in targets}
    startup = (f"--output_base={tmp_path / 'second output base'}",)
    try:
        images.bazel("build", OVERRIDE, *targets, startup=startup)
        second = {target: _blob_sha256(images, target) for target in targets}
    finally:
        images.bazel("shutdown", check=False, startup=startup)
        # The convenience links point into the second output base now: point them back.
        images.bazel("build", OVERRIDE, *targets)
    assert second == first
    shutil.rmtree(tmp_path / "second output base", ignore_errors=True)


def _blob_sha256(workspace: Workspace, target: str) -> str:
    name = target.rpartition(":")[2]
    return hashlib.sha256(workspace.output(f"stacks/{name}.tar.gz").read_bytes()).hexdigest()


def test_the_rules_oci_recipe_gets_one_tarball_per_layer_which_are_the_images_layers(images: Workspace) -> None:
    """docs/images.md's `oci_image(tars = [...])`: what each `.image_layer` target hands to `tars`."""
    targets = [f"//stacks:{layer}.image_layer" for layer in ("cpython3_11", "numpy_framework", "app_report")]
    files = images.bazel("cquery", OVERRIDE, "--output=files", " + ".join(targets)).stdout.split()
    by_name = {Path(file).name: images.root / file for file in files}
    names = [f"{target.rpartition(':')[2]}.tar.gz" for target in targets]
    assert sorted(by_name) == sorted(names)  # one tarball each, and nothing else
    digests = ["sha256:" + hashlib.sha256(by_name[name].read_bytes()).hexdigest() for name in names]
    assert digests == layer_digests(layout(images, "app_report"))[1:]
