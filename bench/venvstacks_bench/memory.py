"""The resident memory of process trees (Linux /proc), sampled while a build or a tool runs."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any


def process_table() -> dict[int, tuple[int, int, str]]:
    """pid -> (parent pid, resident set size in bytes, command line) of every process (Linux /proc)."""
    page = os.sysconf("SC_PAGE_SIZE")
    table = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:  # it ended meanwhile
            continue
        fields = stat[stat.rindex(b")") + 2 :].split()  # state, ppid, ..., rss is the 22nd
        table[int(entry.name)] = (int(fields[1]), int(fields[21]) * page, cmdline.replace(b"\0", b" ").decode())
    return table


def tree_rss(table: dict[int, tuple[int, int, str]], root_key: Any) -> dict[str, int]:
    """The resident memory of process trees: per tree root, its own RSS plus all its descendants'.

    A root is a process for which `root_key(command_line)` gives a key and whose parent gives
    none; trees with the same key are added up. RSS counts shared pages in each process (the
    interpreter's libraries in every compiler), so the sum slightly overstates the tree's use.
    """
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    result: dict[str, int] = {}
    for pid, (ppid, _, command) in table.items():
        key = root_key(command)
        if key is None or (ppid in table and root_key(table[ppid][2]) is not None):
            continue
        total, pending = 0, [pid]
        while pending:
            current = pending.pop()
            total += table[current][1]
            pending += children.get(current, [])
        result[key] = result.get(key, 0) + total
    return result


def tool_action_key(command: str) -> str | None:
    """A tool process of a Bazel action, keyed by its params file (`@bazel-out/....params`), or None."""
    if "venvstacks_tool.py" not in command:
        return None
    params = [word for word in command.split() if word.startswith("@")]
    return params[-1] if params else command


def tool_phases_key(command: str) -> str | None:
    """bench/tool_phases.py's process, keyed "tool_phases", or None."""
    return "tool_phases" if "tool_phases.py" in command else None


@contextmanager
def peak_memory(root_key: Any, interval: float = 0.1) -> Iterator[dict[str, int]]:
    """While in the `with` block, samples the process trees `root_key` picks (see tree_rss) every
    `interval` seconds in a thread; the dict it gives holds each key's largest total, in bytes."""
    peaks: dict[str, int] = {}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            for key, rss in tree_rss(process_table(), root_key).items():
                peaks[key] = max(rss, peaks.get(key, 0))
            stop.wait(interval)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield peaks
    finally:
        stop.set()
        thread.join()


def memory_by_action(peaks: dict[str, int], entries: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The sampled peaks of a build's tool processes named after their actions (from the execution
    log: its params file), with what Bazel's log says of memory (`metrics`: the declared estimate)."""
    result = {}
    for entry in entries:
        args = entry.get("commandArgs") or []
        if not args or args[-1] not in peaks:
            continue
        metrics = entry.get("metrics") or {}
        result[f"{entry.get('mnemonic')} {entry.get('targetLabel')}"] = {
            "peak_rss_bytes": peaks[args[-1]],
            "bazel_metrics_memory": {k: v for k, v in metrics.items() if "memory" in k.lower()},
        }
    return result
