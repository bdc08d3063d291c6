"""lock.named_indexes: the named-index arguments of `lock`, checked, and the route of each project."""

from __future__ import annotations

import pytest

from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.lock.named_indexes import NO_NAMED_INDEXES, NamedIndexes

CPU = "https://download.pytorch.org/whl/cpu"
INTERNAL = "https://u:secret@internal.example/simple"
LAYER = ("https://pypi.org/simple", "https://extra.example/simple")


def test_routes_follow_package_then_priority_then_the_layer() -> None:
    named = NamedIndexes.parse("app", [f"cpu={CPU}", f"internal={INTERNAL}"], ["Torch_Audio=cpu"], ["internal"])
    assert bool(named) and not NO_NAMED_INDEXES
    (only,) = named.route("torch-audio", LAYER)
    assert (only.urls, only.first_only) == ((CPU,), True)
    first, rest = named.route("numpy", LAYER)
    assert (first.urls, first.first_only) == ((INTERNAL,), True)
    assert (rest.urls, rest.first_only) == (LAYER, False)
    # What the inputs hash sees: no credentials.
    assert named.for_hash() == {
        "indexes": {"cpu": CPU, "internal": "https://internal.example/simple"},
        "packages": {"torch-audio": "cpu"},
        "priority": ["internal"],
    }


@pytest.mark.parametrize(
    ("named", "packages", "priority", "message"),
    [
        ([f"cpu={CPU}"], ["torch=cuda"], [], r"package_indexes\['torch'\] names index 'cuda', which is not declared"),
        ([f"cpu={CPU}"], [], ["cuda"], "priority_indexes names index 'cuda'"),
        ([f"cpu={CPU}"], [], ["cpu", "cpu"], "names an index twice"),
        ([f"cpu={CPU}"], ["torch=cpu", "Torch=cpu"], [], "assigns 'torch' twice"),
        ([f"cpu={CPU}", "cpu=https://other.example/simple"], [], [], "index 'cpu' is given two URLs"),
        (["cpu"], [], [], "expects NAME=URL"),
    ],
)
def test_bad_arguments_fail_naming_the_layer(
    named: list[str], packages: list[str], priority: list[str], message: str
) -> None:
    with pytest.raises(VenvstacksError, match=message) as caught:
        NamedIndexes.parse("app", named, packages, priority)
    assert str(caught.value).startswith("layer 'app': ")


def test_a_malformed_named_index_is_shown_without_credentials() -> None:
    with pytest.raises(VenvstacksError) as caught:
        NamedIndexes.parse("app", ["=https://u:secret@internal.example/simple"], [], [])
    assert "secret" not in str(caught.value)
