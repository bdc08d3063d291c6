"""The lock version of a versioned layer: venvstacks' `lock_version`, counted in the lock itself.

A layer with `versioned = True` deploys as `NAME@N` (its install target), N being the lock
version. venvstacks keeps N in its lock metadata and bumps it whenever a lock request changes the
lock; here N is `lock-version` in the lock's `[tool.venvstacks]` table (lock/pylock.py), so the
checked-in lock alone says which version a build makes, and the rules read it at analysis.

The rules, one function each:

* a relock that changes the lock (its packages, requirements, inputs hash...) bumps N;
* a versioned application's lock also records its launch module's hash (`launch-module-hash`,
  core/launch_module.py, venvstacks' `app_launch_module_hash`), so a relock after the launch
  module changed bumps N even when the resolution is the same, as venvstacks bumps it; a lock
  that records none yet (written before locks recorded it) gets it without a bump, as nothing
  says the module changed;
* so do its support modules (`support-modules`, venvstacks' `app_support_modules`: the other
  top-level modules and packages of its own code), written even when there are none, so that
  adding a first one bumps N too; a lock without the key (written before locks recorded them)
  gets it without a bump, for the same reason;
* a relock that changes nothing (the same inputs, or `--upgrade` finding nothing new) keeps N;
* the first lock of a versioned layer, or of a layer that just became versioned, is version 1;
* an unversioned layer's lock carries no lock version (venvstacks reports 1 for it).
"""

from __future__ import annotations

import dataclasses

from venvstacks_tool.lock import pylock

# The version a versioned layer's first lock gets, and what venvstacks reports for an unversioned layer.
FIRST_LOCK_VERSION = 1


def same_content(old: pylock.Lock, new: pylock.Lock) -> bool:
    """Whether the two locks say the same thing, their lock versions aside (compared as written)."""
    return pylock.render_lock(dataclasses.replace(old, lock_version=None)) == pylock.render_lock(
        dataclasses.replace(new, lock_version=None)
    )


def next_lock_version(previous: pylock.Lock | None, new: pylock.Lock, *, versioned: bool) -> int | None:
    """The lock version to write into `new`, given the lock it replaces (`previous`, None if none).

    None for an unversioned layer; FIRST_LOCK_VERSION when there is no earlier version to count
    from; the earlier version when the content is unchanged, else the one after it.
    """
    if not versioned:
        return None
    if previous is None or previous.lock_version is None:
        return FIRST_LOCK_VERSION
    if previous.launch_module_hash is None:
        new = dataclasses.replace(new, launch_module_hash=None)  # recorded for the first time: no change
    if previous.support_modules is None:
        new = dataclasses.replace(new, support_modules=None)  # as the launch module's hash
    if same_content(previous, new):
        return previous.lock_version
    return previous.lock_version + 1


def versioning_problem(lock: pylock.Lock, *, versioned: bool) -> str | None:
    """Why `lock` does not fit the layer's `versioned` setting (a phrase), or None when it does."""
    if versioned and lock.lock_version is None:
        return "has no lock version, but the layer is versioned (`versioned = True`; locked before it was)"
    if not versioned and lock.lock_version is not None:
        return f"has lock version {lock.lock_version}, but the layer is not versioned"
    return None
