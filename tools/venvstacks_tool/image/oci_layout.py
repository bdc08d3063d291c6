"""`image`: an OCI image layout of a stack: a base image's layers, then the stack's image layers.

An image layout (https://github.com/opencontainers/image-spec/blob/main/image-layout.md) is a
directory of content-addressed blobs (`blobs/sha256/<hex>`), an `oci-layout` file and an
`index.json` naming the manifest. Writing one is a few JSON documents; no library among the
tool's pinned wheels does it, and the OCI tools (umoci, skopeo) are no hermetic Bazel inputs, so
this module writes them, and the tests check the result with those tools (docs/images.md).

The base layout is read, not trusted: its `oci-layout` version, its index, and every blob it
uses are checked against their digests while they are copied. The new config keeps the base's
(user, working directory, labels, environment) and sets the platform, the entry point
(`PREFIX/<app>/bin/python -m <launch module>`), `PATH` with the application's `bin` first, and
appends the stack's diff_ids and one history entry per layer. No timestamp is written
(`created` is optional in OCI), so the image's digest depends on its inputs only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from venvstacks_tool.core.cli import add_repeatable, subcommand_parser
from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.core.fsutil import CHUNK_SIZE
from venvstacks_tool.core.platforms import TargetPlatform
from venvstacks_tool.image.image_layer import linux_platform

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_TYPE = "application/vnd.oci.image.index.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
# Docker's media types, which a layout from `skopeo copy docker://...` may keep.
_DOCKER_MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
_DOCKER_LIST_TYPE = "application/vnd.docker.distribution.manifest.list.v2+json"
# `platform.machine()` of a Linux target -> (OCI architecture, variant).
_OCI_ARCHITECTURES = {"x86_64": ("amd64", ""), "aarch64": ("arm64", "v8")}
_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
REF_NAME = "org.opencontainers.image.ref.name"


@dataclass(frozen=True)
class StackLayer:
    """One image layer of the stack: its descriptor JSON (from `image-layer`) and its blob."""

    descriptor: dict[str, Any]
    blob: Path


@dataclass(frozen=True)
class ImageRequest:
    """The `image` arguments, checked."""

    base: Path | None
    layers: list[StackLayer]
    platform: TargetPlatform
    entrypoint: list[str]
    app_bin: str
    env: list[str]
    tag: str
    output: Path


def build_parser() -> argparse.ArgumentParser:
    """The `image` command line."""
    parser = subcommand_parser("image", "Write an OCI image layout: a base image and a stack's image layers.")
    parser.add_argument("--base", type=Path, help="the base image's OCI layout directory (none: an image from scratch)")
    add_repeatable(parser, "--layer", "layers", "DESCRIPTOR", "an image layer's descriptor JSON, lowest first", Path)
    add_repeatable(parser, "--blob", "blobs", "BLOB", "the blob of the --layer at the same place", Path)
    parser.add_argument("--platform", required=True, help="the stack's PBS target triple")
    add_repeatable(parser, "--entrypoint", "entrypoint", "ARG", "the image's entry point, one argument each")
    parser.add_argument("--app-bin", required=True, help="the application's bin directory, put first on PATH")
    add_repeatable(parser, "--env", "env", "KEY=VALUE", "an environment variable of the image")
    parser.add_argument("--tag", default="latest", help="the image's reference name in index.json")
    parser.add_argument("--output", type=Path, required=True, help="the OCI layout directory to write")
    return parser


def parse_request(argv: list[str]) -> ImageRequest:
    """The checked request of `argv`."""
    args = build_parser().parse_args(argv)
    if len(args.layers) != len(args.blobs):
        raise VenvstacksError(f"{len(args.layers)} --layer but {len(args.blobs)} --blob")
    platform = linux_platform(args.platform, "the stack")
    for item in args.env:
        if "=" not in item or item.startswith("="):
            raise VenvstacksError(f"image environment {item!r} is not KEY=VALUE")
    layers = [
        StackLayer(json.loads(descriptor.read_text(encoding="utf-8")), blob)
        for descriptor, blob in zip(args.layers, args.blobs, strict=True)
    ]
    return ImageRequest(args.base, layers, platform, args.entrypoint, args.app_bin, args.env, args.tag, args.output)


def oci_platform(platform: TargetPlatform) -> dict[str, str]:
    """The OCI `os`/`architecture`(/`variant`) of a Linux target platform."""
    architecture, variant = _OCI_ARCHITECTURES[platform.machine]
    return {"architecture": architecture, "os": "linux", **({"variant": variant} if variant else {})}


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode("utf-8")


class _Blobs:
    """The output layout's `blobs/sha256` directory."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "blobs" / "sha256"
        self.dir.mkdir(parents=True, exist_ok=True)

    def add_bytes(self, data: bytes, media_type: str) -> dict[str, Any]:
        digest = hashlib.sha256(data).hexdigest()
        (self.dir / digest).write_bytes(data)
        return {"digest": f"sha256:{digest}", "mediaType": media_type, "size": len(data)}

    def copy_checked(self, source: Path, digest: str, size: int, origin: str) -> None:
        """Copy the blob at `source`, failing (naming `origin`) unless its bytes have `digest` and `size`."""
        hex_digest = _hex(digest, origin)
        target = self.dir / hex_digest
        sha = hashlib.sha256()
        copied = 0
        try:
            with open(source, "rb") as src, open(target, "wb") as dst:
                while chunk := src.read(CHUNK_SIZE):
                    sha.update(chunk)
                    copied += len(chunk)
                    dst.write(chunk)
        except OSError as error:
            raise VenvstacksError(f"{origin}: cannot read blob {digest}: {error.strerror}") from error
        if sha.hexdigest() != hex_digest or copied != size:
            raise VenvstacksError(f"{origin}: blob {digest} does not match its digest or size ({copied} bytes)")


def _hex(digest: object, origin: str) -> str:
    algorithm, _, hex_digest = str(digest).partition(":")
    if algorithm != "sha256" or len(hex_digest) != 64 or not all(c in "0123456789abcdef" for c in hex_digest):
        raise VenvstacksError(f"{origin}: unsupported or malformed digest {digest!r} (sha256 only)")
    return hex_digest


class BaseLayout:
    """A base image read from an OCI layout directory, every document checked against its digest."""

    def __init__(self, root: Path, platform: dict[str, str]) -> None:
        self.root = root
        self.origin = f"base image layout {str(root)!r}"
        try:
            version = json.loads((root / "oci-layout").read_text(encoding="utf-8")).get("imageLayoutVersion")
        except (OSError, ValueError, AttributeError) as error:
            raise VenvstacksError(f"{self.origin}: not an OCI image layout (no readable 'oci-layout' file)") from error
        if not str(version).startswith("1."):
            raise VenvstacksError(f"{self.origin}: unsupported imageLayoutVersion {version!r}")
        index = self._document(root / "index.json", "index.json")
        self.manifest = self._pick_manifest(index, platform)
        self.config = self._blob_document(self.manifest.get("config", {}), "config")
        if not isinstance(self.manifest.get("layers"), list):
            raise VenvstacksError(f"{self.origin}: the image manifest has no list of layers")
        base_platform = (self.config.get("os"), self.config.get("architecture"))
        if base_platform != (platform["os"], platform["architecture"]):
            raise VenvstacksError(
                f"{self.origin}: the base image is {base_platform[0]}/{base_platform[1]}, the stack is for"
                f" {platform['os']}/{platform['architecture']}"
            )

    def _document(self, path: Path, what: str) -> dict[str, Any]:
        try:
            value = json.loads(path.read_bytes())
        except (OSError, ValueError) as error:
            raise VenvstacksError(f"{self.origin}: cannot read {what}: {error}") from error
        if not isinstance(value, dict):
            raise VenvstacksError(f"{self.origin}: {what} is not a JSON object")
        return value

    def blob_path(self, descriptor: dict[str, Any]) -> Path:
        return self.root / "blobs" / "sha256" / _hex(descriptor.get("digest"), self.origin)

    def _blob_document(self, descriptor: dict[str, Any], what: str) -> dict[str, Any]:
        path = self.blob_path(descriptor)
        try:
            data = path.read_bytes()
        except OSError as error:
            raise VenvstacksError(f"{self.origin}: the {what} blob {descriptor.get('digest')} is missing") from error
        if "sha256:" + hashlib.sha256(data).hexdigest() != descriptor.get("digest"):
            raise VenvstacksError(
                f"{self.origin}: the {what} blob {descriptor.get('digest')} does not match its digest"
            )
        return self._document(path, what)

    def _pick_manifest(self, index: dict[str, Any], platform: dict[str, str]) -> dict[str, Any]:
        """The image manifest of `platform`, through at most one nested index."""
        manifests = index.get("manifests")
        if not isinstance(manifests, list) or not manifests:
            raise VenvstacksError(f"{self.origin}: index.json names no manifest")
        candidates = [
            m
            for m in manifests
            if "platform" not in m
            or (m["platform"].get("os"), m["platform"].get("architecture"))
            == (platform["os"], platform["architecture"])
        ]
        wanted = f"{platform['os']}/{platform['architecture']}"
        if not candidates:
            held = sorted({f"{m['platform'].get('os')}/{m['platform'].get('architecture')}" for m in manifests})
            raise VenvstacksError(
                f"{self.origin}: the base image is {', '.join(held)}, the stack is for {wanted}: no image for {wanted}"
            )
        if len(candidates) > 1:
            raise VenvstacksError(
                f"{self.origin}: index.json names {len(candidates)} images for {wanted}; a base layout must hold one"
            )
        (chosen,) = candidates
        if chosen.get("mediaType") in (INDEX_TYPE, _DOCKER_LIST_TYPE):
            return self._pick_manifest(self._blob_document(chosen, "nested index"), platform)
        if chosen.get("mediaType") not in (MANIFEST_TYPE, _DOCKER_MANIFEST_TYPE):
            raise VenvstacksError(f"{self.origin}: unsupported manifest media type {chosen.get('mediaType')!r}")
        return self._blob_document(chosen, "manifest")


def _environment(base_env: list[str], app_bin: str, extra: list[str]) -> list[str]:
    """The base's environment with `app_bin` first on PATH, then `extra` (KEY=VALUE), which wins."""
    env = {item.partition("=")[0]: item.partition("=")[2] for item in base_env}
    env["PATH"] = f"{app_bin}:{env.get('PATH') or _DEFAULT_PATH}"
    env.update({item.partition("=")[0]: item.partition("=")[2] for item in extra})
    return [f"{key}={value}" for key, value in env.items()]


def write_image(request: ImageRequest) -> str:
    """Write the image layout into `request.output`; return the manifest's digest."""
    platform = oci_platform(request.platform)
    base = BaseLayout(request.base, platform) if request.base is not None else None
    request.output.mkdir(parents=True, exist_ok=True)
    blobs = _Blobs(request.output)
    layers: list[dict[str, Any]] = []
    config: dict[str, Any] = {"rootfs": {"type": "layers", "diff_ids": []}, "config": {}}
    if base is not None:
        config = json.loads(json.dumps(base.config))  # a deep copy
        for layer in base.manifest["layers"]:
            blobs.copy_checked(base.blob_path(layer), layer["digest"], int(layer.get("size", -1)), base.origin)
            layers.append(layer)
    history = config.setdefault("history", [])
    for layer in request.layers:
        descriptor = layer.descriptor
        blobs.copy_checked(layer.blob, descriptor["digest"], descriptor["size"], f"image layer {layer.blob.name!r}")
        layers.append({key: descriptor[key] for key in ("digest", "mediaType", "size")})
        config["rootfs"]["diff_ids"].append(descriptor["diff_id"])
        history.append(
            {"created_by": f"rules_venvstacks: layer {descriptor['layer_name']}", "comment": descriptor["prefix"]}
        )
    settings = config.setdefault("config", {}) or {}
    config["config"] = settings
    settings["Env"] = _environment(settings.get("Env") or [], request.app_bin, request.env)
    settings["Entrypoint"] = request.entrypoint
    settings.pop("Cmd", None)  # as `docker build` does when ENTRYPOINT is set: the base's CMD was for its own
    config.pop("created", None)
    config.update(platform)
    config_descriptor = blobs.add_bytes(_canonical(config), CONFIG_TYPE)
    manifest = {"schemaVersion": 2, "mediaType": MANIFEST_TYPE, "config": config_descriptor, "layers": layers}
    manifest_descriptor = blobs.add_bytes(_canonical(manifest), MANIFEST_TYPE)
    manifest_descriptor["annotations"] = {REF_NAME: request.tag}
    manifest_descriptor["platform"] = platform
    (request.output / "oci-layout").write_bytes(_canonical({"imageLayoutVersion": "1.0.0"}))
    (request.output / "index.json").write_bytes(
        _canonical({"schemaVersion": 2, "mediaType": INDEX_TYPE, "manifests": [manifest_descriptor]})
    )
    return str(manifest_descriptor["digest"])


def main(argv: list[str]) -> int:
    """Writes the image layout."""
    write_image(parse_request(argv))
    return 0
