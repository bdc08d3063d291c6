"""The main stack built on a local REAPI service (BuildGrid, tests/support/reapi_service.py)."""

from __future__ import annotations

from typing import Any

from venvstacks_bench.bazel import Workspace, remove_tree
from venvstacks_bench.core import Bench
from venvstacks_bench.host import loadavg, log, quiesce
from venvstacks_bench.report import mb, s, times
from venvstacks_bench.stats import median, ratio
from venvstacks_bench.workspace import copy_workspace

# The flags of a build on the local service besides `ReapiService.bazel_flags()`: a cold action
# waits for a worker on the same cores, longer than Bazel's default 60 s.
REMOTE_TIMEOUT = "--remote_timeout=120s"


def buildgrid_missing() -> str | None:
    """Why the local BuildGrid cannot run here (its support module or BuildGrid itself missing), or None."""
    try:
        from venvstacks_testing.reapi_service import ReapiServiceError, ensure_buildgrid
    except ImportError as error:
        return f"tests/support/reapi_service.py is missing ({error})"
    try:
        ensure_buildgrid()
    except ReapiServiceError as error:
        return f"no BuildGrid ({error})"
    return None


def run(bench: Bench) -> None:
    """The stack built on a local REAPI service: BuildGrid + PostgreSQL + 2 workers on 127.0.0.1.

    The workers share this machine's cores with Bazel, so this measures the protocol's and the
    service's overhead, not a build farm. One cold build against an empty service (every action
    executed remotely), then fresh checkouts against the warm service (action-cache hits) with
    the default `--remote_download_toplevel` and with `--remote_download_minimal`, alternating.
    Bytes are what the service sent to Bazel through the service's metering relay, and the
    blobs Bazel read by ByteStream. The local reference is the `cold` step's sandboxed build
    (measured here once if that step did not run).
    """
    missing = buildgrid_missing()
    if missing is not None:
        log(f"skipping remote execution: {missing}")
        bench.results["remote_execution"] = {"skipped": missing}
        return
    from venvstacks_testing.reapi_service import reapi_service

    def fresh_build(name: str, *flags: str, meter: Any = None) -> dict[str, Any]:
        root = bench.scratch / f"rx-{name}"
        copy_workspace(bench.main.root, root)
        ws = Workspace(root, bench.scratch / f"ob-rx-{name}")
        load = loadavg()
        quiesce()
        if meter is not None:
            meter.reset()
        result, _, ran = bench.timed_build(ws, f"rx-{name}", *flags)
        down, up, reads = meter.snapshot() if meter is not None else (None, None, [])
        ws.shutdown(remove=not bench.keep)
        remove_tree(root)
        return {
            "wall": result.wall,
            "elapsed": result.elapsed,
            "ran": ran,
            "down": down,
            "up": up,
            "read_blobs": len(reads),
            "read_bytes": sum(size for _, size in reads),
            "load": load,
        }

    entry: dict[str, Any] = {}
    if not bench.results.get("cold", {}).get("wall"):
        log("remote execution: the local reference, a cold sandboxed build (the cold step did not run)")
        entry["local_cold"] = fresh_build("local-cold")
    with reapi_service(bench.scratch / "reapi", workers=2) as service:
        flags = (*service.metered_flags(), REMOTE_TIMEOUT)
        log("remote execution: cold build against an empty service")
        entry["cold"] = fresh_build("cold", *flags, meter=service.meter)
        blobs, stored = service.cas_usage()
        entry["cas"] = {"blobs": blobs, "bytes": stored}
        entry["toplevel"], entry["minimal"] = [], []
        for i in range(bench.cold_runs):
            for kind in ("toplevel", "minimal") if i % 2 == 0 else ("minimal", "toplevel"):
                log(f"remote execution: fresh checkout {i + 1}/{bench.cold_runs}, --remote_download_{kind}")
                entry[kind].append(fresh_build(f"{kind}-{i}", *flags, f"--remote_download_{kind}", meter=service.meter))
    for kind in ("toplevel", "minimal"):
        entry[f"{kind}_wall"] = median([r["wall"] for r in entry[kind]])
        entry[f"{kind}_down"] = median([r["down"] for r in entry[kind]])
    bench.results["remote_execution"] = entry


def report(results: dict[str, Any], runs: int, cold_runs: int) -> list[str]:
    """The remote execution rows: a cold build on an empty service, fresh checkouts against the warm one."""
    lines: list[str] = []
    row = lines.append
    cold = results.get("cold", {})
    rx = results.get("remote_execution", {})
    if rx.get("cold"):
        local_cold = cold.get("wall") or rx.get("local_cold", {}).get("wall")
        row(
            f"| remote execution, local BuildGrid + 2 workers on the same cores: cold build, empty service"
            f" | {s(rx['cold']['wall'])} | 1 | local sandboxed cold build {s(local_cold)}"
            f" ({times(ratio(rx['cold']['wall'], local_cold))}); {len(rx['cold']['ran']['executed'])} actions executed"
            f" remotely; {mb(rx['cold']['up'])} up, {mb(rx['cold']['down'])} down |"
        )
        for kind in ("toplevel", "minimal"):
            last = rx[kind][-1]
            row(
                f"| remote execution: fresh checkout, warm service, `--remote_download_{kind}`"
                f" | {s(rx[f'{kind}_wall'])} | {len(rx[kind])} | {last['ran']['remote_cache_hits']} remote cache hits;"
                f" {rx[f'{kind}_down'] / 1e3:,.1f} kB down, of which {last['read_blobs']} blobs read by ByteStream"
                f" ({last['read_bytes'] / 1e3:,.1f} kB) |"
            )
    return lines
