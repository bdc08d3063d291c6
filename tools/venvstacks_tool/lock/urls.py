"""URLs as the lock phase writes them: never with credentials.

The one home of `strip_credentials` (and `is_url`), which `lock_command` (index URLs in `inputs_hash`, messages)
and `resolve` (wheel URLs from pip's report, messages) both import, so what reaches a lock file,
a hash or an error message is cleaned the same way.
"""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path


def strip_credentials(url: str) -> str:
    """`url` without a `user:password@` part (anything that is not a URL is returned as is)."""
    parts = urllib.parse.urlsplit(url)
    if not parts.scheme or "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def is_url(link: str) -> bool:
    """Whether a find-links entry is a URL (`https://...`, `file:...`) rather than a local directory."""
    return "://" in link or link.startswith("file:")


def file_url_path(url: str) -> Path:
    """The local path of a `file:` URL (`file:///wheels/a%20b.whl` -> /wheels/a b.whl), not resolved.

    What `urllib.request.url2pathname` does, without importing `urllib.request`, which pulls in
    `http.client`, `email` and `ssl`: a quarter of a second of every lock run's start, for one call.
    """
    path = urllib.parse.urlsplit(url).path
    if os.name == "nt":  # drive letters and backslashes, as urllib.request does it on Windows
        from nturl2path import url2pathname

        return Path(url2pathname(path))
    return Path(urllib.parse.unquote(path))
