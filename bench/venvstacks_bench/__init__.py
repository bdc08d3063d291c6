"""The bench's package (bench/run_bench.py puts bench/ on sys.path; it is not installed).

`steps/` holds one module per measurement; the modules here are what the steps share: `core`
(the set-up and the `Bench` every step gets), `bazel` (the timed runner), `logs`, `stats`,
`workspace` (the stack's texts and files), `memory`, `report` (table cells) and `host`.
"""
