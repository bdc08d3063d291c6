"""The bench's statistics: medians, and ratios over runs paired side by side."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any


def median(values: Sequence[float]) -> float | None:
    """The median, None for no values."""
    return statistics.median(values) if values else None


def median_phases(runs: Sequence[dict[str, Any]]) -> dict[str, float | None]:
    """The median of each `profile_phases` figure over runs that have one."""
    keys = ("server_launch", "repository_fetch")
    return {key: median([r["profile"][key] for r in runs if r["profile"].get(key) is not None]) for key in keys}


def paired_ratio(numerators: Sequence[dict[str, Any]], denominators: Sequence[dict[str, Any]]) -> float | None:
    """The median over pairs of runs (run next to each other) of one's "total" over the other's."""
    return median([a["total"] / b["total"] for a, b in zip(numerators, denominators, strict=True) if b["total"]])


def order_balanced_ratio(ratios: Sequence[float]) -> float | None:
    """The median, over blocks of two pairs run in opposite orders (A then B, B then A), of the
    geometric mean of the two pairs' ratios: a position effect (whichever runs first in a pair is
    slower, say) multiplies one ratio and divides the other, so it cancels. None for fewer than 2."""
    blocks = [(ratios[i] * ratios[i + 1]) ** 0.5 for i in range(0, len(ratios) - 1, 2)]
    return median(blocks)


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b, None if either is missing or b is 0."""
    return a / b if a is not None and b else None
