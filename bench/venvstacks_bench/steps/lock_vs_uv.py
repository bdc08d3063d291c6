"""Locking the stack from scratch with `bazel run //stacks:stack.lock` against uv (bench_locking.py)."""

from __future__ import annotations

from typing import Any

import bench_locking

from venvstacks_bench.core import Bench
from venvstacks_bench.host import loadavg, log, quiesce
from venvstacks_bench.report import s, times, verdict
from venvstacks_bench.stats import median
from venvstacks_bench.workspace import APP_REPORT_VARIANTS


def run(bench: Bench) -> None:
    """`bazel run //stacks:stack.lock` from scratch against uv locking the same layers (paired runs)."""
    ws = bench.main
    stacks = ws.root / "stacks"
    saved = {path: path.read_text() for path in stacks.glob("pylock.*.toml")}
    uv = bench_locking.uv_command(bench.scratch)
    python = ".".join(bench.runtime.python_version.split(".")[:2])
    ws.bazel("build", "//stacks:stack.lock")  # untimed: the lock launcher and its runtime built
    ours, theirs = [], []
    try:
        for i in range(bench.runs):
            for kind in ("ours", "uv") if i % 2 == 0 else ("uv", "ours"):
                quiesce()
                load = loadavg()
                if kind == "ours":
                    for path in saved:
                        path.unlink()
                    log(f"lock {i + 1}/{bench.runs}: bazel run //stacks:stack.lock, lock files removed")
                    ours.append({"wall": ws.bazel("run", "//stacks:stack.lock").wall, "load": load})
                else:
                    log(f"lock {i + 1}/{bench.runs}: uv pip compile per layer, no cache")
                    per_layer = bench_locking.uv_lock_bench_stack(
                        uv, APP_REPORT_VARIANTS[bench.variant], python, bench.scratch / f"uv-lock-{i}"
                    )
                    theirs.append({"wall": sum(per_layer.values()), "layers": per_layer, "load": load})
        # Nothing changed since the last lock: every layer is kept without asking the index.
        unchanged = []
        for i in range(bench.runs):
            log(f"relock {i + 1}/{bench.runs}: bazel run //stacks:stack.lock, nothing changed")
            quiesce()
            unchanged.append(ws.bazel("run", "//stacks:stack.lock").wall)
    finally:
        for path, text in saved.items():
            path.write_text(text)
    bench.results["lock_vs_uv"] = {
        "ours": median([r["wall"] for r in ours]),
        "uv": median([r["wall"] for r in theirs]),
        "ratio": median([o["wall"] / t["wall"] for o, t in zip(ours, theirs, strict=True)]),
        "unchanged": median(unchanged),
        "runs": {"ours": ours, "uv": theirs, "unchanged": unchanged},
    }


def report(results: dict[str, Any], runs: int, cold_runs: int) -> list[str]:
    """The locking rows: from scratch against uv, and a relock with nothing changed."""
    lines: list[str] = []
    row = lines.append
    locking = results.get("lock_vs_uv", {})
    if locking:
        row(
            f"| **lock every layer from scratch: `bazel run //stacks:stack.lock` / uv** (paired) |"
            f" {times(locking['ratio'])} | {runs} | ours {s(locking['ours'])}, `uv pip compile --no-cache"
            f" --generate-hashes` per layer {s(locking['uv'])}; {verdict(locking['ratio'], 2.0, '{:.2f}x')} |"
        )
        row(
            f"| relock the whole stack, nothing changed: `bazel run //stacks:stack.lock` | {s(locking['unchanged'], 2)}"
            f" | {runs} | every layer kept without asking the index; {verdict(locking['unchanged'], 3.0, '{:.1f} s')} |"
        )
    return lines
