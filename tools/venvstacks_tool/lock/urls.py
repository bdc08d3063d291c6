"""URLs as the lock phase writes them: never with credentials.

The one home of `strip_credentials` (and `is_url`), which `lock_command` (index URLs in `inputs_hash`, messages)
and `resolve` (wheel URLs from pip's report, messages) both import, so what reaches a lock file,
a hash or an error message is cleaned the same way.
"""

from __future__ import annotations

import urllib.parse


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
