"""Tests of `image` (tools/venvstacks_tool/image/oci_layout.py): OCI image layouts of a stack."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest

from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.image import oci_layout

LINUX = "x86_64-unknown-linux-gnu"


def fake_layer(directory: Path, name: str, content: bytes) -> tuple[Path, Path]:
    """A blob and its descriptor as `image-layer` writes them (the bytes need not be a tar here)."""
    directory.mkdir(parents=True, exist_ok=True)
    blob = directory / f"{name}.tar.gz"
    blob.write_bytes(content)
    descriptor = {
        "digest": "sha256:" + hashlib.sha256(content).hexdigest(),
        "diff_id": "sha256:" + hashlib.sha256(b"plain " + content).hexdigest(),
        "layer_name": name,
        "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
        "platform": LINUX,
        "prefix": "/opt/venvstacks",
        "size": len(content),
    }
    path = directory / f"{name}.json"
    path.write_text(json.dumps(descriptor))
    return path, blob


def write(
    tmp_path: Path, output: str, *, base: Path | None = None, platform: str = LINUX, env: tuple[str, ...] = ()
) -> Path:
    argv = ["--platform", platform, "--app-bin", "/opt/venvstacks/app/bin", "--output", str(tmp_path / output)]
    # `--entrypoint=-m`: one argument each, in the `=` form, as the rule passes them.
    argv += ["--entrypoint=/opt/venvstacks/app/bin/python", "--entrypoint=-m", "--entrypoint=app"]
    for name in ("rt", "fw", "app"):
        descriptor, blob = fake_layer(tmp_path / "layers", name, name.encode() * 100)
        argv += ["--layer", str(descriptor), "--blob", str(blob)]
    argv += [f"--env={value}" for value in env]
    if base is not None:
        argv += ["--base", str(base)]
    assert oci_layout.main(argv) == 0
    return tmp_path / output


def read_image(layout: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """index.json, the manifest and the config, each blob checked against its digest."""

    def blob(digest: str) -> bytes:
        data = (layout / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()
        assert "sha256:" + hashlib.sha256(data).hexdigest() == digest
        return data

    assert json.loads((layout / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((layout / "index.json").read_text())
    (entry,) = index["manifests"]
    manifest = json.loads(blob(entry["digest"]))
    config = json.loads(blob(manifest["config"]["digest"]))
    for layer in manifest["layers"]:
        blob(layer["digest"])
    return index, manifest, config


def test_an_image_from_scratch_holds_the_stack_layers_in_order(tmp_path: Path) -> None:
    layout = write(tmp_path, "image", env=("LANG=C.UTF-8",))
    index, manifest, config = read_image(layout)
    assert index["manifests"][0]["annotations"] == {"org.opencontainers.image.ref.name": "latest"}
    assert index["manifests"][0]["platform"] == {"architecture": "amd64", "os": "linux"}
    assert [layer["size"] for layer in manifest["layers"]] == [200, 200, 300]
    assert config["architecture"] == "amd64" and config["os"] == "linux"
    assert len(config["rootfs"]["diff_ids"]) == 3
    assert config["config"]["Entrypoint"] == ["/opt/venvstacks/app/bin/python", "-m", "app"]
    assert config["config"]["Env"] == [f"PATH=/opt/venvstacks/app/bin:{oci_layout._DEFAULT_PATH}", "LANG=C.UTF-8"]
    assert "created" not in config
    # No clock, no path: the same inputs give the same image, wherever written.
    assert read_image(write(tmp_path / "elsewhere", "image", env=("LANG=C.UTF-8",)))[0] == index


def test_a_base_image_keeps_its_layers_env_and_user_and_loses_its_cmd(tmp_path: Path) -> None:
    base = write(tmp_path / "b", "base", env=("PATH=/usr/bin:/bin", "TZ=UTC"))
    _, base_manifest, _ = read_image(base)
    # Give the base a user and a command, as a distribution's image has.
    index = json.loads((base / "index.json").read_text())
    manifest = json.loads((base / "blobs/sha256" / index["manifests"][0]["digest"][7:]).read_bytes())
    config = json.loads((base / "blobs/sha256" / manifest["config"]["digest"][7:]).read_bytes())
    config["config"].update(User="1000", Cmd=["bash"])
    config_bytes = json.dumps(config).encode()
    config_digest = hashlib.sha256(config_bytes).hexdigest()
    (base / "blobs/sha256" / config_digest).write_bytes(config_bytes)
    manifest["config"] = {**manifest["config"], "digest": f"sha256:{config_digest}", "size": len(config_bytes)}
    manifest_bytes = json.dumps(manifest).encode()
    manifest_digest = hashlib.sha256(manifest_bytes).hexdigest()
    (base / "blobs/sha256" / manifest_digest).write_bytes(manifest_bytes)
    index["manifests"][0].update(digest=f"sha256:{manifest_digest}", size=len(manifest_bytes))
    (base / "index.json").write_text(json.dumps(index))

    _, image_manifest, image_config = read_image(write(tmp_path, "image", base=base))
    assert image_manifest["layers"][:3] == base_manifest["layers"]
    assert len(image_manifest["layers"]) == 6 and len(image_config["rootfs"]["diff_ids"]) == 6
    assert image_config["config"]["User"] == "1000" and "Cmd" not in image_config["config"]
    assert image_config["config"]["Env"] == ["PATH=/opt/venvstacks/app/bin:/usr/bin:/bin", "TZ=UTC"]


def test_a_directory_that_is_not_an_oci_layout_is_refused_naming_it(tmp_path: Path) -> None:
    (tmp_path / "notalayout").mkdir()
    with pytest.raises(VenvstacksError, match=re.escape(f"base image layout '{tmp_path / 'notalayout'}': not an OCI")):
        write(tmp_path, "image", base=tmp_path / "notalayout")


def test_a_base_blob_that_does_not_match_its_digest_is_refused(tmp_path: Path) -> None:
    base = write(tmp_path / "b", "base")
    _, manifest, _ = read_image(base)
    (base / "blobs/sha256" / manifest["layers"][0]["digest"][7:]).write_bytes(b"tampered")
    with pytest.raises(VenvstacksError, match="does not match its digest or size"):
        write(tmp_path, "image", base=base)


def test_a_base_for_another_architecture_is_refused(tmp_path: Path) -> None:
    base = write(tmp_path / "b", "base", platform="aarch64-unknown-linux-gnu")
    with pytest.raises(VenvstacksError, match="the base image is linux/arm64, the stack is for linux/amd64"):
        write(tmp_path, "image", base=base)


def test_an_image_for_windows_is_refused(tmp_path: Path) -> None:
    with pytest.raises(VenvstacksError, match="built for windows_x86_64: container images are for Linux targets only"):
        write(tmp_path, "image", platform="x86_64-pc-windows-msvc")


def test_an_aarch64_stack_gives_a_linux_arm64_v8_image(tmp_path: Path) -> None:
    index, _, config = read_image(write(tmp_path, "image", platform="aarch64-unknown-linux-gnu"))
    assert index["manifests"][0]["platform"] == {"architecture": "arm64", "os": "linux", "variant": "v8"}
    assert (config["architecture"], config["os"], config["variant"]) == ("arm64", "linux", "v8")
