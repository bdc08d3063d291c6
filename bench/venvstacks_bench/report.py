"""How the report's table cells write figures: seconds, sizes, ratios, targets, loads."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def s(value: float | None, digits: int = 1) -> str:
    """Seconds, e.g. "1.2 s"; "n/a" for none."""
    return "n/a" if value is None else f"{value:.{digits}f} s"


def kb(value: float | None) -> str:
    """Bytes in kB."""
    return "n/a" if value is None else f"{value / 1e3:.1f} kB"


def mb(value: float | None) -> str:
    """Bytes in MB."""
    return "n/a" if value is None else f"{value / 1e6:.1f} MB"


def gb(value: float | None) -> str:
    """Bytes in GB."""
    return "n/a" if value is None else f"{value / 1e9:.2f} GB"


def times(value: float | None) -> str:
    """A ratio, e.g. "1.50x"."""
    return "n/a" if value is None else f"{value:.2f}x"


def verdict(value: float | None, limit: float, fmt: str) -> str:
    """`value` against its target `limit` (both written with `fmt`): met if below it."""
    if value is None:
        return "n/a"
    return f"{fmt.format(value)}, target < {fmt.format(limit)}: **{'met' if value < limit else 'not met'}**"


def loads_text(runs: Sequence[dict[str, Any]]) -> str:
    """The 1-minute load average at the start of each run, e.g. "2.1, 3.0"."""
    return ", ".join(f"{r['load'][0]:.1f}" if r.get("load") else "?" for r in runs)
