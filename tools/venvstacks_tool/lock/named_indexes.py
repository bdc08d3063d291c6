"""A layer's named indexes: which index each project may come from (`package_indexes`, `priority_indexes`).

What the layer rules computed at analysis (inheritance from the frameworks below, conflicts
refused) reaches `lock` as `--named-index NAME=URL`, `--package-index PROJECT=NAME` and
`--priority-index NAME`; `NamedIndexes` holds them, checked, and says for each project which
upstream indexes answer it (`NamedIndexes.route`):

- a project in `package_indexes` comes from its index only (the dependency-confusion guard: a
  project of that name on another index is never seen);
- any other project comes from the first priority index that has it, in the given order;
- otherwise from the layer's own indexes (`index_url`, `extra_index_urls`), merged as both
  resolvers merge them without named indexes (the best version of all).

`index_router` serves that as one simple index for the resolvers (docs/locking.md, "Named indexes").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.core.project_names import normalize_name
from venvstacks_tool.lock.urls import strip_credentials


@dataclass(frozen=True)
class Route:
    """Where one project is looked up: `urls` in order; with `first_only`, the first that has it answers alone."""

    urls: tuple[str, ...]
    first_only: bool
    why: str  # for messages: "package_indexes: 'pytorch_cpu'", "the layer's indexes", ...


@dataclass(frozen=True)
class NamedIndexes:
    """The named indexes a layer's lock uses: {name -> URL}, {project -> name}, the priority names in order."""

    urls: tuple[tuple[str, str], ...] = ()
    packages: tuple[tuple[str, str], ...] = ()
    priority: tuple[str, ...] = ()

    @classmethod
    def parse(cls, layer: str, named: Sequence[str], packages: Sequence[str], priority: Sequence[str]) -> NamedIndexes:
        """From `NAME=URL`, `PROJECT=NAME` and `NAME` arguments; an unknown or repeated name fails naming the layer."""
        urls: dict[str, str] = {}
        for text in named:
            name, sep, url = text.partition("=")
            if not sep or not name or not url:
                shown = strip_credentials(text.partition("=")[2])
                raise VenvstacksError(f"layer '{layer}': --named-index expects NAME=URL, got {name!r}={shown!r}")
            if urls.get(name, url) != url:
                raise VenvstacksError(f"layer '{layer}': index '{name}' is given two URLs")
            urls[name] = url
        assigned: dict[str, str] = {}
        for text in packages:
            project, sep, name = text.partition("=")
            if not sep or not project or not name:
                raise VenvstacksError(f"layer '{layer}': --package-index expects PROJECT=NAME, got {text!r}")
            key = normalize_name(project)
            if key in assigned:
                raise VenvstacksError(f"layer '{layer}': package_indexes assigns '{key}' twice")
            assigned[key] = cls._known(layer, urls, name, f"package_indexes['{project}']")
        for name in priority:
            cls._known(layer, urls, name, "priority_indexes")
        if len(set(priority)) != len(priority):
            raise VenvstacksError(f"layer '{layer}': priority_indexes names an index twice: {list(priority)}")
        return cls(tuple(sorted(urls.items())), tuple(sorted(assigned.items())), tuple(priority))

    @staticmethod
    def _known(layer: str, urls: dict[str, str], name: str, where: str) -> str:
        if name not in urls:
            known = ", ".join(sorted(urls)) or "none"
            raise VenvstacksError(
                f"layer '{layer}': {where} names index '{name}', which is not declared (known: {known})"
            )
        return name

    def __bool__(self) -> bool:
        return bool(self.packages or self.priority)

    def url_of(self, name: str) -> str:
        """The URL of the index named `name`."""
        return dict(self.urls)[name]

    def route(self, project: str, layer_urls: Sequence[str]) -> list[Route]:
        """The lookups for `project`, in order: the first one that finds the project answers."""
        name = dict(self.packages).get(normalize_name(project))
        if name is not None:
            return [Route((self.url_of(name),), True, f"package_indexes: index '{name}' only")]
        routes = [Route((self.url_of(name),), True, f"priority index '{name}'") for name in self.priority]
        return [*routes, Route(tuple(layer_urls), False, "the layer's indexes")]

    def for_hash(self) -> dict[str, object]:
        """What a lock depends on, credentials left out (for `inputs_hash`)."""
        return {
            "indexes": {name: strip_credentials(url) for name, url in self.urls},
            "packages": dict(self.packages),
            "priority": list(self.priority),
        }

    def all_urls(self) -> list[str]:
        """Every named index's URL (for trusted hosts)."""
        return [url for _, url in self.urls]


# A layer without named indexes: nothing routed, nothing in the inputs hash.
NO_NAMED_INDEXES = NamedIndexes()
