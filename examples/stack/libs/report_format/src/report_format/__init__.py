"""Renders stats_core's summaries as a text table."""

import numpy
import tabulate
from stats_core import summarize


def render(values: "numpy.ndarray") -> str:
    """A two-column table of the summary of `values`."""
    summary = summarize(values)
    return tabulate.tabulate([[key, summary[key]] for key in ("count", "mean", "std")])
