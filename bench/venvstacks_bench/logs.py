"""What the bench reads of a build: Bazel's `--profile`, its execution log, nginx's access log.

The execution log itself is read, a remote cache hit told and nginx's access log parsed by the
tests' helpers (venvstacks_testing), so that the bench and the tests count alike.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from venvstacks_testing.remote_cache import access_log_requests
from venvstacks_testing.stack_workspace import remote_cache_hit

_LABEL_RE = re.compile(r"(@?@?[\w.~+-]*//[^\s']*)")
# (progress message prefix, key suffix) of the actions of a layer other than its archive action.
_ACTION_SUFFIXES = (("Writing the metadata", " (metadata)"), ("Checking the libraries", " (loader check)"))


def profile_events(path: Path) -> list[dict[str, Any]]:
    """The complete (`ph == "X"`) events of a `--profile` (Chrome trace JSON); none if it is missing."""
    if not path.exists():
        return []
    return [e for e in json.loads(path.read_text()).get("traceEvents", []) if e.get("ph") == "X"]


def profile_actions(path: Path) -> dict[str, dict[str, float]]:
    """Per action (its target label, plus " (metadata)" for a layer's metadata action): the action's wall
    time, its child process's and its sandbox set-up's (seconds)."""
    events = profile_events(path)
    result: dict[str, dict[str, float]] = {}
    for action in (e for e in events if e.get("cat") == "action processing"):
        match = _LABEL_RE.search(action.get("name", ""))
        if not match:
            continue
        begin, end, tid = action["ts"], action["ts"] + action["dur"], action.get("tid")

        def inside(name: str, begin: float = begin, end: float = end, tid: Any = tid) -> float:
            return sum(
                e["dur"] for e in events if e.get("name") == name and e.get("tid") == tid and begin <= e["ts"] <= end
            )

        # A layer has two actions: its archive, and its metadata (progress "Writing the metadata ..."),
        # plus its loader check ("Checking the libraries ...", a validation action).
        name = action.get("name", "")
        suffix = next((s for prefix, s in _ACTION_SUFFIXES if name.startswith(prefix)), "")
        key = match.group(1) + suffix
        entry = result.setdefault(key, {"action": 0.0, "process": 0.0, "sandbox_setup": 0.0})
        entry["action"] += action["dur"] / 1e6
        entry["process"] += inside("subprocess.run") / 1e6
        entry["sandbox_setup"] += inside("sandbox.createFileSystem") / 1e6
    return result


def union_seconds(intervals: Sequence[tuple[float, float]]) -> float:
    """The time covered by (begin, end) intervals in microseconds, overlaps counted once, in seconds."""
    covered, reach = 0.0, float("-inf")
    for begin, end in sorted(intervals):
        if end > reach:
            covered += end - max(begin, reach)
            reach = end
    return covered / 1e6


def _is_repository_fetch(event: dict[str, Any]) -> bool:
    # Bazel 7: category "Fetching repository" (named after the repository), plus "fetching: repository
    # @@..." progress events in "general information", which lie inside the former.
    name = event.get("name", "").lower()
    return event.get("cat") == "Fetching repository" or name.startswith(("fetching repository", "fetching: repository"))


def profile_phases(path: Path) -> dict[str, float | None]:
    """Bazel's fixed costs in a `--profile` (seconds): server start, and repository fetching.

    `server_launch` is the "Launch Blaze" event (client start to the server taking the command;
    None if there is none: the server was already up). `repository_fetch` is the time covered by
    any repository fetch; fetches run in parallel, so their intervals are merged, not summed.
    """
    events = profile_events(path)
    launch = [e["dur"] for e in events if e.get("name") == "Launch Blaze"]
    fetches = [(e["ts"], e["ts"] + e["dur"]) for e in events if _is_repository_fetch(e)]
    return {
        "server_launch": sum(launch) / 1e6 if launch else None,
        "repository_fetch": union_seconds(fetches),
    }


def executed(entries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """What an execution log says ran: spawns, remote cache hits, and the actions executed.

    Local action-cache hits do not appear in the log at all.
    """
    hits = [e for e in entries if remote_cache_hit(e)]
    ran = [e for e in entries if not remote_cache_hit(e)]
    return {
        "spawns": len(entries),
        "remote_cache_hits": len(hits),
        "executed": sorted(f"{e.get('mnemonic')} {e.get('targetLabel')}" for e in ran),
    }


def access_log_gets(text: str) -> list[dict[str, Any]]:
    """The GET requests of nginx access-log lines ("combined" format): path, status, bytes sent."""
    return [
        {"path": path, "status": status, "bytes": sent}
        for method, path, status, sent in access_log_requests(text)
        if method == "GET"
    ]
