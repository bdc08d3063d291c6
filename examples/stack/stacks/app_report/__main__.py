"""Prints a small table of numpy results (numpy from the framework layer, tabulate from this one)."""

import json

import numpy
import tabulate

values = numpy.arange(1, 6)
print(tabulate.tabulate([["sum", int(values.sum())], ["mean", float(values.mean())]]))
print(json.dumps({"app": "app_report", "numpy": numpy.__version__, "numpy_file": numpy.__file__}))
