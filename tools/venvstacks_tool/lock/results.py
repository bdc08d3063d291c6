"""What resolving one platform gives, whichever resolver ran: the wheel of each package, or why not.

`resolve` (pip children) and `uv_resolver` (uv) both return these, so the consistency rounds,
the lower layers' pins and the lock writer never know which resolver ran.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ResolvedWheel:
    """The one wheel of a package that the resolver picked for one platform.

    `name` is normalized (PEP 503). `url` is where the index serves it, credentials removed (for
    a local find-links file, its `file:` URL); `local_path` is set, absolute, for a local file
    only (lock files record it relative to themselves). `sha256` is lower-case hex: from the
    index's link, or computed from the local file.
    """

    name: str
    version: str
    file_name: str
    url: str
    sha256: str
    local_path: Path | None = None


@dataclass(frozen=True)
class Failure:
    """Why one platform could not be resolved.

    `package` names the package that has no wheel for the platform (or no version with one), when
    that is the reason: such failures of several platforms are reported together, and a raised
    glibc or macOS floor may fix them (`failures`). `no_wheel_at_all` marks the plain "no wheel of
    'X'" form, which reads the same for every platform.
    """

    message: str  # the one-line VenvstacksError message
    retryable: bool  # a resolution failure (conflict, no matching version) rather than a broken index
    package: str = ""
    no_wheel_at_all: bool = False
