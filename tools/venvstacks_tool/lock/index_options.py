"""Where a layer's resolver looks for wheels: the index, extra indexes, find-links, trusted hosts.

Both resolvers read one `IndexOptions` (`resolve` for pip children, `uv_resolver` for uv); the
URLs, which may carry credentials, reach either through the environment, never a command line.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from venvstacks_tool.core.errors import VenvstacksError
from venvstacks_tool.lock.urls import is_url, strip_credentials

# Stated once per language: rules_venvstacks/private/common/constants.bzl DEFAULT_INDEX_URL.
DEFAULT_INDEX_URL = "https://pypi.org/simple"


@dataclass(frozen=True)
class IndexOptions:
    """Where pip looks for wheels.

    `find_links` entries are absolute paths or URLs (`IndexOptions.create` resolves relative
    paths against a base directory). Hosts of plain-`http` URLs are passed as `--trusted-host`
    (pip refuses plain http otherwise), together with any explicit `trusted_hosts`.
    """

    index_url: str = DEFAULT_INDEX_URL
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    trusted_hosts: tuple[str, ...] = ()

    @classmethod
    def create(
        cls,
        index_url: str = DEFAULT_INDEX_URL,
        extra_index_urls: Sequence[str] = (),
        find_links: Sequence[str] = (),
        base_dir: Path | None = None,
        trusted_hosts: Sequence[str] = (),
    ) -> IndexOptions:
        """IndexOptions with each relative find-links path made absolute against `base_dir` (the workspace)."""
        links = []
        for link in find_links:
            if "://" in link or link.startswith("file:") or os.path.isabs(link):
                links.append(link)
            else:
                links.append(str(Path(base_dir or Path.cwd(), link).resolve()))
        return cls(index_url, tuple(extra_index_urls), tuple(links), tuple(trusted_hosts))

    def all_trusted_hosts(self) -> list[str]:
        """`trusted_hosts` plus the `host[:port]` of every plain-http index or find-links URL."""
        hosts = list(self.trusted_hosts)
        for url in [self.index_url, *self.extra_index_urls, *self.find_links]:
            parts = urllib.parse.urlsplit(url)
            if parts.scheme == "http" and parts.hostname:
                host = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
                if host not in hosts:
                    hosts.append(host)
        return hosts

    def pip_arguments(self) -> list[str]:
        """pip's `--find-links` (local directories) and `--trusted-host` arguments: nothing secret.

        The URLs, which may carry credentials, go through `pip_environ` instead.
        """
        arguments = []
        for link in self.find_links:
            if not is_url(link):
                arguments += ["--find-links", link]
        for host in self.all_trusted_hosts():
            arguments += ["--trusted-host", host]
        return arguments

    def pip_environ(self) -> dict[str, str]:
        """`PIP_INDEX_URL`, `PIP_EXTRA_INDEX_URL` and `PIP_FIND_LINKS` (the URL find-links) for a pip child.

        An index URL may carry credentials (`https://user:token@host/simple`). A process' command
        line is readable by every user of the machine (`ps`, /proc/PID/cmdline); its environment
        only by the same user (/proc/PID/environ is 0400), and pip reads the same options from
        it. pip splits these variables on whitespace and appends what the command line adds,
        so a URL with whitespace (never valid) is refused rather than split.
        """
        links = [link for link in self.find_links if is_url(link)]
        for url in [self.index_url, *self.extra_index_urls, *links]:
            if not url or any(char.isspace() for char in url):
                raise VenvstacksError(f"index or find-links URL {strip_credentials(url)!r} is empty or has whitespace")
        environ = {"PIP_INDEX_URL": self.index_url}
        if self.extra_index_urls:
            environ["PIP_EXTRA_INDEX_URL"] = " ".join(self.extra_index_urls)
        if links:
            environ["PIP_FIND_LINKS"] = " ".join(links)
        return environ

    def describe(self) -> str:
        """The indexes and find-links for messages, without credentials."""
        places = [strip_credentials(url) for url in [self.index_url, *self.extra_index_urls, *self.find_links]]
        return ", ".join(places)
