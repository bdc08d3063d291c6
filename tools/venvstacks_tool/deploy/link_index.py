"""The deployed symlinks of DEST indexed by the layer directories their resolution looks into.

A new layer L can change where a symlink of another deployed layer resolves only if resolving
that link looks up something below DEST/L: `core.archive.follow_symlinks` looks at one path
component at a time, so a resolution that never looks below DEST/L ends the same whatever L
holds. The index keeps, for each deployed link, the layers its resolution on disk looks into,
and for each layer the links that look into it. So `deploy` checks a new layer against the
links that can be affected (`Extraction.check_deployed_links`) instead of every deployed link.

When a layer is replaced, the links that looked into its old tree are resolved again (they may
now pass elsewhere) and its own links are added: each link is resolved once, and again once
for each layer on its way that is replaced, so a deploy is linear in the links of DEST where
checking every deployed link against each new layer was quadratic.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Collection, Mapping
from pathlib import Path

from venvstacks_tool.core.archive import follow_symlinks

LinkId = tuple[str, str]  # (the layer holding the link, its DEST-relative path)


class LinkIndex:
    """The symlinks of the layers deployed in DEST, by the layers their resolution looks into."""

    def __init__(self, dest: Path, links: Mapping[str, Mapping[str, str]]) -> None:
        """Index `links` (layer -> DEST-relative path -> target), resolved against DEST on disk."""
        self.dest = dest
        self._targets: dict[str, dict[str, str]] = {layer: dict(found) for layer, found in links.items()}
        # What DEST holds on disk, per top-level entry: a replaced layer's part is dropped at once.
        self._disk: dict[str, dict[tuple[str, ...], str | None]] = {}
        self._passes: dict[LinkId, frozenset[str]] = {}
        self._reaching: dict[str, set[LinkId]] = {}
        for layer in sorted(self._targets):
            for path in sorted(self._targets[layer]):
                self._index((layer, path))

    def reaching(self, layer: str, exclude: Collection[str]) -> dict[str, dict[str, str]]:
        """The links of the other layers, not in `exclude`, whose resolution looks into `layer`.

        Layer -> DEST-relative path -> target, as `Extraction.check_deployed_links` takes them.
        """
        found: dict[str, dict[str, str]] = {}
        for owner, path in sorted(self._reaching.get(layer, ())):
            if owner != layer and owner not in exclude:
                found.setdefault(owner, {})[path] = self._targets[owner][path]
        return found

    def replace(self, layer: str, links: Mapping[str, str]) -> None:
        """DEST/`layer` now holds a new tree whose symlinks are `links` (path -> target)."""
        self._disk.pop(layer, None)
        for path in self._targets.pop(layer, {}):
            self._unindex((layer, path))
        self._targets[layer] = dict(links)
        stale = sorted(self._reaching.get(layer, ()))  # other layers' links through the old tree
        for link in stale:
            self._unindex(link)
        for link in [*stale, *((layer, path) for path in sorted(links))]:
            self._index(link)

    def _index(self, link: LinkId) -> None:
        owner, path = link
        parts = tuple(path.split("/"))
        if len(parts) < 2 or parts[0] != owner:
            return  # not a link of that layer (a hand-edited record): the check passes it over too
        looked_into: set[str] = set()

        def lookup(key: tuple[str, ...]) -> str | None:
            looked_into.add(key[0])
            return self._disk_link(key)

        follow_symlinks(parts[:-1], self._targets[owner][path], lookup)
        self._passes[link] = frozenset(looked_into)
        for layer in looked_into:
            self._reaching.setdefault(layer, set()).add(link)

    def _unindex(self, link: LinkId) -> None:
        for layer in self._passes.pop(link, ()):
            self._reaching[layer].discard(link)

    def _disk_link(self, parts: tuple[str, ...]) -> str | None:
        """The target of DEST/`parts` if it is a symlink on disk, as the deploy's check reads it."""
        cache = self._disk.setdefault(parts[0], {})
        if parts not in cache:
            path = os.path.join(self.dest, *parts)
            try:
                cache[parts] = os.readlink(path) if stat.S_ISLNK(os.lstat(path).st_mode) else None
            except OSError:
                cache[parts] = None  # missing, or below a file: judged by its path alone
        return cache[parts]
