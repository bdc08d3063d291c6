"""Prints statistics computed with numpy from the framework layer."""

import json

import numpy

samples = numpy.linspace(0.0, 1.0, 101)
print(f"mean={samples.mean():.3f} std={samples.std():.3f}")
print(json.dumps({"app": "app_stats", "numpy": numpy.__version__, "numpy_file": numpy.__file__}))
