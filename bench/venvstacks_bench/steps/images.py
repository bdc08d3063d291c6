"""Images: the stack's image layers against `tar -cz` of the deployed stack, and what a second image adds.

* time: the tool's `image-layer` of the four archives (in-process, no Bazel: gzip, prefix
  /opt/venvstacks) alternating with GNU `tar -czf` of each layer's deployed directory (the
  same content, the same gzip level 6); the ratio is the median over the pairs (target 1.5x);
* sharing: `stack_image` of app_report and of app_stats on one small base layout
  (venvstacks_testing.oci_base), built by Bazel; the bytes of the blobs the second image holds
  that the first does not (target: its application layer, its config and its manifest only).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from venvstacks_bench.bazel import remove_tree
from venvstacks_bench.core import Bench
from venvstacks_bench.host import children_cpu, log, quiesce
from venvstacks_bench.report import kb, mb, s, verdict
from venvstacks_bench.stats import median
from venvstacks_bench.workspace import APPS, LAYERS
from venvstacks_testing.oci_base import make_base_layout

# The target: the image layers within 1.5 times `tar` of the deployed directory.
IMAGE_TARGET_RATIO = 1.5
_IMAGES_BUILD = """
load("@rules_venvstacks//rules_venvstacks:defs.bzl", "stack_image")

[stack_image(name = app + ".image", base = "//base:layout", image_layer = ":%s.image_layer" % app) for app in {apps!r}]
"""


def _tar_layers(deployed: Path, out: Path) -> dict[str, Any]:
    """GNU `tar -czf` of each layer's deployed directory: wall and CPU seconds."""
    out.mkdir()
    quiesce()
    cpu = children_cpu()
    start = time.perf_counter()
    for layer in LAYERS:
        subprocess.run(["tar", "-czf", str(out / f"{layer}.tar.gz"), "-C", str(deployed), layer], check=True)
    return {"wall": time.perf_counter() - start, "cpu": children_cpu() - cpu}


def _blobs(layout: Path) -> dict[str, int]:
    """digest -> size of every blob the image at `layout` uses: its manifest, config and layers."""
    (entry,) = json.loads((layout / "index.json").read_text())["manifests"]
    manifest = json.loads((layout / "blobs" / "sha256" / entry["digest"].removeprefix("sha256:")).read_text())
    used = {entry["digest"]: entry["size"], manifest["config"]["digest"]: manifest["config"]["size"]}
    used.update({layer["digest"]: layer["size"] for layer in manifest["layers"]})
    return used


def _sharing(bench: Bench) -> dict[str, Any]:
    ws = bench.main
    deployed = bench.scratch / "images-deployed"
    make_base_layout(deployed, ws.root / "base" / "layout")
    (ws.root / "base" / "BUILD.bazel").write_text(
        'filegroup(name = "layout", srcs = glob(["layout/**"]), visibility = ["//visibility:public"])\n'
    )
    build = ws.root / "stacks" / "BUILD.bazel"
    build.write_text(build.read_text() + _IMAGES_BUILD.format(apps=APPS))
    try:
        ws.bazel("build", *(f"//stacks:{app}.image" for app in APPS))
        first, second = (_blobs(ws.output(f"stacks/{app}.image")) for app in APPS)
        app_layer = json.loads(ws.output(f"stacks/{APPS[1]}.image_layer.json").read_text())
    finally:
        bench.set_variant(bench.variant)  # stacks/BUILD.bazel as the other steps expect it
    added = {digest: size for digest, size in second.items() if digest not in first}
    expected = 3  # the application layer, the config, the manifest
    return {
        "first_bytes": sum(first.values()),
        "second_bytes": sum(second.values()),
        "added_bytes": sum(added.values()),
        "added_blobs": len(added),
        "app_layer_bytes": app_layer["size"],
        "only_app_config_manifest": len(added) == expected and app_layer["digest"] in added,
    }


def run(bench: Bench) -> None:
    """Paired runs of the image layers and `tar -czf` of the deployed stack; then the two images."""
    archives = bench.archives()
    deployed = bench.scratch / "images-deployed"
    bench.tool_run("deploy", str(deployed), *map(str, archives))
    specs = [f"{layer}={archive}" for layer, archive in zip(LAYERS, archives, strict=True)]
    tool_runs, tar_runs = [], []
    for i in range(bench.runs):
        log(f"images {i + 1}/{bench.runs}: image-layer of the 4 archives and tar -czf of the deployed stack")
        for kind in ("tool", "tar") if i % 2 == 0 else ("tar", "tool"):
            out = bench.scratch / f"images-{kind}-{i}"
            if kind == "tar":
                tar_runs.append(_tar_layers(deployed, out))
                continue
            out.mkdir()
            wall, data = bench.tool_run("image-layers", str(out), *specs)
            tool_runs.append({"wall": wall, "cpu": data["cpu"], "bytes": data["bytes"]})
    tar_bytes = {layer: (bench.scratch / f"images-tar-0/{layer}.tar.gz").stat().st_size for layer in LAYERS}
    for path in bench.scratch.glob("images-t*"):
        remove_tree(path)
    log("images: stack_image of both applications on one base")
    sharing = _sharing(bench)
    remove_tree(deployed)
    bench.results["images"] = {
        "tool_wall": median([r["wall"] for r in tool_runs]),
        "tool_cpu": median([r["cpu"] for r in tool_runs]),
        "tar_wall": median([r["wall"] for r in tar_runs]),
        "tar_cpu": median([r["cpu"] for r in tar_runs]),
        "ratio_wall": median([t["wall"] / x["wall"] for t, x in zip(tool_runs, tar_runs, strict=True)]),
        "ratio_cpu": median([t["cpu"] / x["cpu"] for t, x in zip(tool_runs, tar_runs, strict=True) if x["cpu"]]),
        "tool_bytes": tool_runs[0]["bytes"],
        "tar_bytes": tar_bytes,
        "sharing": sharing,
        "runs": {"tool": tool_runs, "tar": tar_runs},
    }


def report(results: dict[str, Any], runs: int, cold_runs: int) -> list[str]:
    """The image rows: image layers against tar of the deployed stack, and the second image's added bytes."""
    images = results.get("images", {})
    if not images:
        return []
    sharing = images["sharing"]
    tool_total, tar_total = sum(images["tool_bytes"].values()), sum(images["tar_bytes"].values())
    return [
        f"| image layers of the 4 layers: tool `image-layer` (gzip, no Bazel) | {s(images['tool_wall'], 2)} | {runs} |"
        f" CPU {s(images['tool_cpu'], 2)}; {mb(tool_total)} |",
        f"| `tar -czf` of the 4 deployed layer directories | {s(images['tar_wall'], 2)} | {runs} |"
        f" CPU {s(images['tar_cpu'], 2)}; {mb(tar_total)} |",
        f"| **image layers / tar -cz** (median of paired runs) | {images['ratio_wall']:.2f}x | {runs} |"
        f" {verdict(images['ratio_wall'], IMAGE_TARGET_RATIO, '{:.2f}x')};"
        f" in CPU time {images.get('ratio_cpu') or 0:.2f}x |",
        f"| **second application image: bytes it adds over the first** | {kb(sharing['added_bytes'])} | 1 |"
        f" {sharing['added_blobs']} blobs: its application layer ({kb(sharing['app_layer_bytes'])}), config,"
        f" manifest; target only those: **{'met' if sharing['only_app_config_manifest'] else 'not met'}**;"
        f" the whole image {mb(sharing['second_bytes'])} |",
    ]
