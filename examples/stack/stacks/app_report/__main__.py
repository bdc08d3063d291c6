"""Prints a table of summary statistics: numpy and stats_core from the framework layer,
report_format (first-party) and tabulate from this one.

    bazel run //stacks:app_report -- 3 1 4 1 5    # the numbers to summarize (default 1..5)
"""

import json
import sys

import numpy
import report_format
import stats_core

values = numpy.array([float(v) for v in sys.argv[1:]]) if len(sys.argv) > 1 else numpy.arange(1, 6)
print(report_format.render(values))
print(
    json.dumps(
        {
            "app": "app_report",
            "numpy": numpy.__version__,
            "numpy_file": numpy.__file__,
            "stats_core_file": stats_core.__file__,
            "report_format_file": report_format.__file__,
        }
    )
)
