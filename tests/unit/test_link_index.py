"""`deploy/link_index.py`: the deployed links by the layers their resolution looks into.

On a DEST on disk: which links each layer can affect, what a replaced layer changes, and that a
deploy resolves each deployed link once (and once more per layer on its way that it replaces),
where checking every deployed link against each new layer resolved N²/2 of them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from venvstacks_testing.archives import archive_bytes, write_with_metadata
from venvstacks_testing.deploy_layers import layer, make_runtime
from venvstacks_tool.deploy import deploy, extraction, link_index
from venvstacks_tool.deploy.link_index import LinkIndex


def _dest(tmp_path: Path, links: dict[str, str]) -> Path:
    """A DEST with the symlinks `links` (DEST-relative path -> target), directories as needed."""
    dest = tmp_path / "dest"
    for path, target in links.items():
        (dest / path).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, dest / path)
    return dest


def _by_layer(links: dict[str, str]) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    for path, target in links.items():
        found.setdefault(path.split("/")[0], {})[path] = target
    return found


def test_a_link_is_indexed_under_every_layer_its_resolution_looks_into(tmp_path: Path) -> None:
    links = {"a/x": "../b/y", "b/y": "../c/z", "d/w": "v/u"}
    dest = _dest(tmp_path, links)
    (dest / "c/z").mkdir(parents=True)
    index = LinkIndex(dest, _by_layer(links))
    assert index.reaching("b", set()) == {"a": {"a/x": "../b/y"}}
    # a/x reaches c only through b's link: it is there too.
    assert index.reaching("c", set()) == {"a": {"a/x": "../b/y"}, "b": {"b/y": "../c/z"}}
    assert index.reaching("c", {"a"}) == {"b": {"b/y": "../c/z"}}
    # A layer's own links are not checked against it; a link that stays in its layer reaches no other.
    assert index.reaching("a", set()) == {}
    assert index.reaching("d", set()) == {}
    assert index.reaching("elsewhere", set()) == {}


def test_replacing_a_layer_resolves_the_links_through_its_old_tree_again(tmp_path: Path) -> None:
    links = {"a/x": "../b/y", "b/y": "../c/z"}
    dest = _dest(tmp_path, links)
    index = LinkIndex(dest, _by_layer(links))
    # The new b: y now leads to e, not c.
    os.unlink(dest / "b/y")
    os.symlink("../e/z", dest / "b/y")
    index.replace("b", {"b/y": "../e/z"})
    assert index.reaching("c", set()) == {}
    assert index.reaching("e", set()) == {"a": {"a/x": "../b/y"}, "b": {"b/y": "../e/z"}}
    # A layer new to DEST: the links that looked for it before it existed reach it.
    index.replace("e", {})
    assert set(index.reaching("e", set())) == {"a", "b"}


def test_a_record_naming_another_layer_s_path_is_passed_over(tmp_path: Path) -> None:
    """As `Extraction.check_deployed_links` passes it over (a hand-edited record)."""
    dest = _dest(tmp_path, {"a/x": "../b"})
    index = LinkIndex(dest, {"a": {"b/x": "../c"}})
    assert index.reaching("c", set()) == {}


def _app(directory: Path, i: int) -> Path:
    """An application-like layer whose three links resolve through `fw` (as a venv's bin/ does)."""
    name = f"app_{i:03d}"
    extra = [
        (f"{name}/bin/python", "symlink", "../../fw/bin/python"),
        (f"{name}/bin/python3", "symlink", "python"),
        (f"{name}/lib/shared", "symlink", "../../fw/lib"),
    ]
    archive = directory / f"{name}.tar.zst"
    return write_with_metadata(archive, archive_bytes(layer(name, extra=extra), "tar.zst"), name)


@pytest.mark.parametrize("apps", [8, 16])
def test_a_deploy_resolves_each_deployed_link_a_bounded_number_of_times(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, apps: int
) -> None:
    """`fw` and N applications on it: N x 3 links, each resolved once when its layer is recorded
    and never checked against another application; replacing `fw` checks each once and resolves
    each again once. Before the index, the deploy resolved 3 x N(N-1)/2 links in its checks."""
    fw = write_with_metadata(
        tmp_path / "fw.tar.zst",
        archive_bytes(layer("fw", extra=[("fw/bin/python", "symlink", "../../cpython_rt/bin/python3")]), "tar.zst"),
        "fw",
    )
    archives = [fw, *(_app(tmp_path, i) for i in range(apps))]
    counts = {"indexed": 0, "checked": 0}
    follow = link_index.follow_symlinks
    resolve = extraction.Extraction._resolve_noting_ours

    def counting_follow(*args: object, **kwargs: object) -> object:
        counts["indexed"] += 1
        return follow(*args, **kwargs)  # type: ignore[arg-type]

    def counting_resolve(self: extraction.Extraction, *args: object) -> object:
        counts["checked"] += 1
        return resolve(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(link_index, "follow_symlinks", counting_follow)
    monkeypatch.setattr(extraction.Extraction, "_resolve_noting_ours", counting_resolve)
    dest = make_runtime(tmp_path / "dest")
    deploy.deploy(archives, dest)
    links = 3 * apps
    assert counts == {"indexed": 1 + links, "checked": 0}  # fw's link too, once recorded
    counts.update(indexed=0, checked=0)
    deploy.deploy([fw], dest, force=True)  # a new process: the index is built again from the records
    assert counts == {"checked": links, "indexed": 1 + links + links + 1}
