"""venvstacks_maint.uv_wheels: the uv pin of tool_wheels.json, chosen from a PEP 691 file list (no server)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from venvstacks_maint import uv_wheels
from venvstacks_tool.core.errors import VenvstacksError

CHECKOUT = Path(__file__).resolve().parents[2]


def _files(version: str, *, drop: str = "", sha256: str = "ab" * 32) -> list[dict[str, Any]]:
    """A PEP 691 `files` list of one uv release: every platform's wheel, an sdist and a wheel no platform takes."""
    names = [f"uv-{version}{suffix}" for suffix in uv_wheels.PLATFORM_SUFFIXES.values()]
    names += [f"uv-{version}.tar.gz", f"uv-{version}-py3-none-win32.whl"]
    return [
        {"filename": name, "url": f"https://files.example/{name}#sha256={sha256}", "hashes": {"sha256": sha256}}
        for name in names
        if not drop or not name.endswith(drop)
    ]


def test_one_wheel_per_platform_with_its_sha256_and_url() -> None:
    wheels = uv_wheels.select_wheels(_files("0.13.9") + _files("0.13.10"), "0.13.9")
    assert sorted(wheels) == sorted(uv_wheels.PLATFORM_SUFFIXES)
    assert wheels["x86_64-pc-windows-msvc"] == {
        "file": "uv-0.13.9-py3-none-win_amd64.whl",
        "sha256": "ab" * 32,
        "url": "https://files.example/uv-0.13.9-py3-none-win_amd64.whl",
    }


def test_a_missing_wheel_or_hash_fails() -> None:
    with pytest.raises(VenvstacksError, match=r"uv 0\.13\.9 has no wheel .*win_amd64\.whl for x86_64-pc-windows-msvc"):
        uv_wheels.select_wheels(_files("0.13.9", drop="win_amd64.whl"), "0.13.9")
    with pytest.raises(VenvstacksError, match="gives no sha256"):
        uv_wheels.select_wheels(_files("0.13.9", sha256=""), "0.13.9")


def test_the_newest_release_is_numeric() -> None:
    assert uv_wheels.newest_version(_files("0.9.30") + _files("0.13.9") + _files("0.13.10")) == "0.13.10"


def test_the_table_keeps_its_other_entries() -> None:
    table = {"comment": "c", "packages": {"pip": {}}, "uv": {"version": "0.1.0", "wheels": {}}}
    updated = uv_wheels.updated_table(table, "0.13.9", uv_wheels.select_wheels(_files("0.13.9"), "0.13.9"))
    assert list(updated) == ["comment", "packages", "uv"]
    assert updated["packages"] == {"pip": {}} and updated["uv"]["version"] == "0.13.9"


def test_the_checked_in_pin_is_the_uv_the_tests_run() -> None:
    table = json.loads((CHECKOUT / "rules_venvstacks/private/fetch/tool_wheels.json").read_text(encoding="utf-8"))
    pinned = re.search(r"^uv==(\S+)$", (CHECKOUT / "tests/requirements.txt").read_text(), re.MULTILINE)
    assert pinned is not None and table["uv"]["version"] == pinned.group(1)
    assert sorted(table["uv"]["wheels"]) == sorted(uv_wheels.PLATFORM_SUFFIXES)
    for triple, wheel in table["uv"]["wheels"].items():
        assert wheel["file"] == f"uv-{pinned.group(1)}{uv_wheels.PLATFORM_SUFFIXES[triple]}"
        assert wheel["url"].startswith("https://files.pythonhosted.org/") and wheel["url"].endswith("/" + wheel["file"])
        assert re.fullmatch(r"[0-9a-f]{64}", wheel["sha256"])
