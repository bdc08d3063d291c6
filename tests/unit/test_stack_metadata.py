"""build/stack_metadata.py: the stack's combined metadata, and venvstacks' stack summary (`venvstacks.json`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from venvstacks_testing.venvstacks_sdist import sdist_tests_dir
from venvstacks_tool.build.published_metadata import CATEGORIES, SUMMARY_NAME
from venvstacks_tool.core import cli
from venvstacks_tool.lock.pylock import load_toml

ROOT = Path(__file__).resolve().parents[2]
# venvstacks' deployed-name prefix of each category (its FrameworkEnv/ApplicationEnv ENV_PREFIX).
PREFIXES = {"runtimes": "", "frameworks": "framework-", "applications": "app-"}
VENVSTACKS_PLATFORMS = ["linux_x86_64", "macosx_arm64", "win_amd64"]


def sample_project() -> Path:
    return sdist_tests_dir() / "sample_project"


def spec_order() -> list[tuple[str, str]]:
    """(kind, layer_name) of every layer of venvstacks' sample project, in its specification's order."""
    path = sample_project() / "venvstacks.toml"
    spec = load_toml(path.read_text(encoding="utf-8"), str(path))
    kinds = {category: kind for kind, category in CATEGORIES.items()}
    return [(kinds[category], PREFIXES[category] + layer["name"]) for category in kinds for layer in spec[category]]


def summarize(published: list[tuple[str, Path]], out: Path) -> bytes:
    """`stack-metadata --published-summary` over (kind, file) pairs; the summary's bytes."""
    argv = ["stack-metadata", "--output", str(out / "stack.json"), "--published-summary", str(out / SUMMARY_NAME)]
    argv += [arg for kind, path in published for arg in ("--published-layer", f"{kind}={path}")]
    assert cli.main(argv) == 0
    return (out / SUMMARY_NAME).read_bytes()


@pytest.mark.parametrize("platform", VENVSTACKS_PLATFORMS)
def test_summary_is_what_venvstacks_publishes_from_the_same_layers(platform: str, tmp_path: Path) -> None:
    """From venvstacks' own per-layer files of its sample project, the summary venvstacks wrote, byte for byte.

    venvstacks publishes `__venvstacks__/<platform>/venvstacks.json` beside `env_metadata/`
    (`BuildEnvironment.METADATA_MANIFEST`): `{"layers": {category: [layer metadata...]}}`, each
    category in the specification's order, JSON with sorted keys, 2-space indent and a final newline.
    """
    manifests = next((sample_project() / "expected_manifests").glob(f"**/{platform}"))
    env_metadata = manifests / "env_metadata"
    published = [(kind, env_metadata / f"{name}.json") for kind, name in spec_order()]
    published = [(kind, path) for kind, path in published if path.exists()]  # layers narrowed to other platforms
    assert len(published) == len(list(env_metadata.glob("*.json")))
    assert summarize(published, tmp_path) == (manifests / SUMMARY_NAME).read_bytes()


def test_summary_structure_is_venvstacks_stack_publishing_result() -> None:
    """Exactly `layers` with venvstacks' three categories (its StackPublishingResult and LayerCategory)."""
    manifests = next((sample_project() / "expected_manifests").glob("**/linux_x86_64"))
    summary = json.loads((manifests / SUMMARY_NAME).read_text(encoding="utf-8"))
    assert list(summary) == ["layers"]
    assert set(summary["layers"]) == set(CATEGORIES.values()) == {"runtimes", "frameworks", "applications"}
    # The golden list the migration guide is held to names the same file and keys.
    golden = ROOT / "tests/golden/venvstacks_published_outputs.txt"
    listed = [line for line in golden.read_text(encoding="utf-8").splitlines() if line and line[0] != "#"]
    assert f"__venvstacks__/PLATFORM/{SUMMARY_NAME}" in listed
    keys = {"layers"} | {f"layers.{category}" for category in summary["layers"]}
    assert {key for key in listed if not key.startswith("__")} == keys


def _published(directory: Path, name: str, platform: str = "linux_x86_64") -> Path:
    path = directory / f"{name}.json"
    path.write_text(json.dumps({"layer_name": name, "install_target": name, "target_platform": platform}))
    return path


def test_a_stack_of_two_platforms_is_refused_naming_both(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rt, app = _published(tmp_path, "rt"), _published(tmp_path, "app", "win_amd64")
    argv = ["stack-metadata", "--output", str(tmp_path / "s.json"), "--published-summary", str(tmp_path / "v.json")]
    argv += ["--published-layer", f"runtime={rt}", "--published-layer", f"application={app}"]
    assert cli.main(argv) == 1
    assert "linux_x86_64 (rt), win_amd64 (app)" in capsys.readouterr().err
    assert not (tmp_path / "v.json").exists() and not (tmp_path / "s.json").exists()


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        ("tool={path}", "unknown layer kind 'tool'"),
        ("{path}", "is not of the form KIND=PATH"),
    ],
)
def test_bad_published_layers_are_refused(
    pair: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _published(tmp_path, "rt")
    argv = ["stack-metadata", "--output", str(tmp_path / "s.json"), "--published-summary", str(tmp_path / "v.json")]
    assert cli.main([*argv, "--published-layer", pair.format(path=path)]) == 1
    assert message in capsys.readouterr().err


def test_two_layers_deploying_as_one_name_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = _published(tmp_path / "a", "fw"), _published(tmp_path / "b", "fw")
    argv = ["stack-metadata", "--output", str(tmp_path / "s.json"), "--published-summary", str(tmp_path / "v.json")]
    argv += ["--published-layer", f"framework={first}", "--published-layer", f"framework={second}"]
    assert cli.main(argv) == 1
    assert "two layers of the stack deploy as 'fw'" in capsys.readouterr().err


def test_the_summary_depends_on_the_inputs_only(tmp_path: Path) -> None:
    """The same layers at two other paths give the same bytes; the order given is kept per category."""
    outputs = []
    for where in ("one", "elsewhere/two"):
        directory = tmp_path / where
        directory.mkdir(parents=True)
        layers = [("runtime", "rt"), ("framework", "zeta"), ("framework", "alpha"), ("application", "app")]
        outputs.append(summarize([(kind, _published(directory, name)) for kind, name in layers], directory))
    assert outputs[0] == outputs[1]
    summary = json.loads(outputs[0])["layers"]
    assert [layer["layer_name"] for layer in summary["frameworks"]] == ["zeta", "alpha"]
    assert [len(summary[category]) for category in ("runtimes", "frameworks", "applications")] == [1, 2, 1]
