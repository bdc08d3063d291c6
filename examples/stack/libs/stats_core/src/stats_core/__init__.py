"""Summary statistics over numpy arrays, shared by every application on the numpy framework."""

import numpy

from stats_core.build_info import SCHEMA


def summarize(values: "numpy.ndarray") -> dict[str, float]:
    """The count, mean and standard deviation of `values`, with the schema they follow."""
    return {"schema": SCHEMA, "count": int(values.size), "mean": float(values.mean()), "std": float(values.std())}
