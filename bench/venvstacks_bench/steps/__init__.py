"""The bench's measurements, one module a step: `run(bench)` measures into `bench.results`,
`report(results, runs, cold_runs)` gives the step's rows of the Markdown table."""

from __future__ import annotations

from types import ModuleType

from venvstacks_bench.steps import (
    archive_sizes,
    cold,
    compression,
    deploy,
    floor_and_phases,
    images,
    incremental,
    loader_check,
    lock_vs_uv,
    noop,
    platform_switch,
    platforms,
    remote,
    remote_execution,
    startup,
    torch,
)

# The measurements, in the order they run (`--only` picks some by name).
STEPS: dict[str, ModuleType] = {
    "cold": cold,
    "noop": noop,
    "incremental": incremental,
    "remote": remote,
    "deploy": deploy,
    "images": images,
    "archive_sizes": archive_sizes,
    "compression": compression,
    "startup": startup,
    "lock_vs_uv": lock_vs_uv,
    "floor_and_phases": floor_and_phases,
    "loader_check": loader_check,
    "platforms": platforms,
    "platform_switch": platform_switch,
    "torch": torch,
    "remote_execution": remote_execution,
}
# The steps' rows in the table, in this order (some steps' rows read others' results: the cold build's).
REPORT: tuple[ModuleType, ...] = (
    cold,
    noop,
    incremental,
    remote,
    deploy,
    images,
    archive_sizes,
    compression,
    lock_vs_uv,
    startup,
    floor_and_phases,
    loader_check,
    remote_execution,
    platforms,
    platform_switch,
    torch,
)
