"""The benchmark harness (bench/venvstacks_bench) and its measuring script (bench/tool_phases.py)
against the tool as it is now.

The full benchmark takes minutes and is not part of the test suite; these checks keep its
hooks from rotting: every phase timer must still find the function it wraps, and the floor must
still run on the same wheels.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from venvstacks_testing.bazel_workspace import CHECKOUT
from venvstacks_testing.layer_inputs import build, build_argv, make_fw_wheel

# The bench's package, as bench/run_bench.py puts it on sys.path (it is not installed).
sys.path.insert(0, str(CHECKOUT / "bench"))
from venvstacks_bench import core, logs, memory, scale_stack, stats, workspace
from venvstacks_bench.steps import STEPS, platform_switch, platforms, torch

TOOL_PHASES = CHECKOUT / "bench" / "tool_phases.py"


def _run(*args: str) -> dict[str, Any]:
    command = [sys.executable, "-I", str(TOOL_PHASES), args[0], str(CHECKOUT / "tools"), *args[1:]]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-4000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("BENCH-JSON: ")]
    assert len(lines) == 1, result.stdout
    return json.loads(lines[0].removeprefix("BENCH-JSON: "))


def test_build_layer_phases_find_every_hook(tmp_path: Path) -> None:
    wheel = make_fw_wheel(tmp_path / "wheels")
    argv = build_argv(tmp_path / "bazel-out", "fw", wheels=[wheel])
    params = tmp_path / "fw.params"
    params.write_text("\n".join(argv) + "\n")
    out = tmp_path / "phases"
    out.mkdir()
    result = _run("build-layer", str(params), str(out))
    assert result["missing_hooks"] == []
    assert result["install"] is not None and result["install"] > 0
    assert result["tree_files"] > 0
    assert Path(result["archive"]).is_file() and Path(result["archive"]).parent == out


def test_floor_runs_on_the_same_wheels(tmp_path: Path) -> None:
    wheel = make_fw_wheel(tmp_path / "wheels")
    result = _run("floor", str(tmp_path / "floor"), str(wheel))
    for key in ("unzip", "pack", "total", "cpu_floor", "bytecode_compile_all_cores"):
        assert result[key] >= 0, key
    assert result["tree_files"] > 0 and result["archive_bytes"] > 0


def test_repack_gives_the_bytes_build_layer_gave(tmp_path: Path) -> None:
    """The archive-size rows re-pack an unpacked layer; the .tar.zst must be build-layer's own."""
    import tarfile

    import zstandard

    wheel = make_fw_wheel(tmp_path / "wheels")
    built = tmp_path / "built"
    build(build_argv(built, "fw", wheels=[wheel]))
    tree = tmp_path / "tree"
    tree.mkdir()
    with (
        open(built / "fw.tar.zst", "rb") as raw,
        zstandard.ZstdDecompressor().stream_reader(raw) as stream,
        tarfile.open(fileobj=stream, mode="r|") as tar,
    ):
        tar.extractall(tree, filter="tar")
    out = tmp_path / "repacked"
    out.mkdir()
    result = _run("repack", str(tree), str(out), "tar.zst", f"fw={built / 'fw.tar.zst'}")
    assert result["layers"]["fw"]["tar.zst"]["bytes"] > 0
    assert result["layers"]["fw"]["identical_to_bazel_output"] is True


def test_platforms_module_declares_every_archive_and_the_same_locks() -> None:
    """The platforms step's MODULE.bazel: the main one's deps and locks, a runtime for the archives' platforms."""
    archives = [
        workspace.RuntimeArchive("linux_x86_64", "http://127.0.0.1:1/host.tar.gz", "a" * 64, "3.11.2"),
        workspace.RuntimeArchive("windows_x86_64", "http://127.0.0.1:1/pbs/win.tar.gz", "b" * 64, "3.11.14"),
    ]
    text = workspace.platforms_module_text(Path("/rules"), archives)
    assert 'python_version = "3.11",' in text
    assert 'platforms = ["linux_x86_64", "windows_x86_64"],' in text
    assert text.count("venvstacks.runtime_archive(") == 2
    assert 'platform = "windows_x86_64",\n    python_version = "3.11.14",' in text
    assert 'urls = ["http://127.0.0.1:1/pbs/win.tar.gz"],\n    sha256 = "' + "b" * 64 in text
    main = workspace.module_text(Path("/rules"), "http://127.0.0.1:1", _FakeRuntime())
    shared = [
        line
        for line in main.splitlines()
        if line.startswith(("module(", "bazel_dep", "local_path", "venvstacks.lock", "use_"))
    ]
    assert shared and all(line in text.splitlines() for line in shared)
    assert platforms.ALL_PLATFORMS[0] == platforms.HOST_PLATFORM
    assert sorted(platforms.ALL_PLATFORMS) == sorted(p.name for p in platforms.PLATFORMS), "every platform locks"


class _FakeRuntime:
    path = Path("/scratch/host.tar.gz")
    python_version = "3.11.2"
    sha256 = "c" * 64


def test_paired_ratio_is_the_median_over_pairs() -> None:
    five = [{"total": 20.0}, {"total": 36.0}, {"total": 30.0}]
    one = [{"total": 10.0}, {"total": 12.0}, {"total": 10.0}]
    assert stats.paired_ratio(five, one) == 3.0


def test_torch_workspace_raises_the_glibc_floor_and_takes_torch_from_the_workspace() -> None:
    """The torch step's module and BUILD: glibc 2.28 on the runtime, the pinned CPU build from `wheels/`."""
    module = torch.torch_module_text(Path("/rules"), "http://127.0.0.1:1", _FakeRuntime())
    assert 'glibc_minimum = "2.28",' in module
    assert f'venvstacks.lock(name = "{torch.TORCH_FRAMEWORK}"' in module
    assert "platforms" not in module  # the host only
    build = torch.torch_build_text()
    assert 'find_links = ["wheels"],' in build
    assert 'requirements = ["torch==2.13.0+cpu"],' in build
    assert torch.TORCH_WHEEL.startswith("torch-2.13.0+cpu-") and "manylinux_2_28" in torch.TORCH_WHEEL
    assert STEPS["torch"] is torch


def test_torch_step_is_skipped_without_the_wheel(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(torch, "TORCH_WHEEL_DIR", tmp_path / "no-wheels")
    run = core.Bench(tmp_path, runs=1, cold_runs=1, keep=False, xz=False)
    torch.run(run)
    assert "skipped" in run.results["torch"]
    assert torch.report(run.results, 1, 1)[0].startswith("| torch stack | skipped |")


def test_tree_rss_adds_up_each_tool_process_tree() -> None:
    """Peak memory of an action: its tool process and every descendant (compilers), not other processes."""
    table = {
        1: (0, 10, "init"),
        10: (1, 100, "linux-sandbox -- python -I tools/bin/venvstacks_tool.py build-layer @a.params"),
        11: (10, 200, "python -I tools/bin/venvstacks_tool.py build-layer @a.params"),
        12: (11, 30, "python -S -B -X utf8 -c ... compile-0.txt"),
        13: (11, 40, "python -S -B -X utf8 -c ... compile-1.txt"),
        20: (1, 5, "python -I tools/bin/venvstacks_tool.py pack-runtime @b.params"),
        30: (1, 999, "java -jar bazel-server"),
    }
    assert memory.tree_rss(table, memory.tool_action_key) == {"@a.params": 370, "@b.params": 5}
    entries = [{"commandArgs": ["python", "@a.params"], "mnemonic": "VenvstacksLayer", "targetLabel": "//s:fw"}]
    by_action = memory.memory_by_action({"@a.params": 370}, entries)
    assert by_action["VenvstacksLayer //s:fw"]["peak_rss_bytes"] == 370


def test_access_log_gets_reads_what_the_cache_sent() -> None:
    log = (
        '127.0.0.1 - - [01/Dec/2026:00:00:00 +0000] "GET /cas/abc HTTP/1.1" 200 1234 "-" "bazel/7.7.1"\n'
        '127.0.0.1 - - [01/Dec/2026:00:00:00 +0000] "PUT /ac/def HTTP/1.1" 201 0 "-" "bazel/7.7.1"\n'
        '127.0.0.1 - - [01/Dec/2026:00:00:00 +0000] "GET /ac/ghi HTTP/1.1" 404 153 "-" "bazel/7.7.1"\n'
    )
    assert logs.access_log_gets(log) == [
        {"path": "/cas/abc", "status": 200, "bytes": 1234},
        {"path": "/ac/ghi", "status": 404, "bytes": 153},
    ]


def test_order_balanced_ratio_cancels_a_position_effect() -> None:
    """Pairs alternate which runs first; a first-run penalty multiplies one ratio and divides the next."""
    assert abs(stats.order_balanced_ratio([1.2 * 4, 1.2 / 4, 1.2 * 3, 1.2 / 3]) - 1.2) < 1e-9
    assert stats.order_balanced_ratio([1.5]) is None


def test_run_bench_offers_every_step() -> None:
    """The command loads its package and names each step for --only."""
    result = subprocess.run(
        [sys.executable, str(CHECKOUT / "bench" / "run_bench.py"), "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert all(name in " ".join(result.stdout.split()) for name in STEPS)


@pytest.mark.parametrize("script", ["bench_resolvers.py", "bench_platform_locks.py"])
def test_the_lock_benches_load(script: str) -> None:
    """The lock benches outside run_bench.py load, and use only what run_bench.py has (once they did not)."""
    path = CHECKOUT / "bench" / script
    result = subprocess.run([sys.executable, str(path), "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "--runs" in result.stdout, result.stderr
    sys.path.insert(0, str(path.parent))
    try:
        import run_bench
    finally:
        sys.path.remove(str(path.parent))
    used = set(re.findall(r"\brun_bench\.([A-Za-z_]\w*)\(", path.read_text(encoding="utf-8")))
    assert not {name for name in used if not hasattr(run_bench, name)}


def test_executed_counts_remote_cache_hits_as_the_tests_do() -> None:
    """One definition of a remote cache hit (venvstacks_testing.stack_workspace.remote_cache_hit)."""
    entries = [
        {"mnemonic": "VenvstacksLayer", "targetLabel": "//s:a", "cacheHit": True, "runner": "remote cache hit"},
        {"mnemonic": "VenvstacksLayer", "targetLabel": "//s:b", "remoteCacheHit": True},
        {"mnemonic": "VenvstacksLayer", "targetLabel": "//s:c", "runner": "linux-sandbox"},
    ]
    assert logs.executed(entries) == {"spawns": 3, "remote_cache_hits": 2, "executed": ["VenvstacksLayer //s:c"]}


class _FakeRun:
    def __init__(self, wall: float) -> None:
        self.wall = wall
        self.elapsed = wall / 2


class _FakeBazel:
    """Records each `bazel` command; a logged build writes `layer_actions` layer spawns and takes `wall`."""

    def __init__(self, layer_actions: int, wall: float) -> None:
        self.commands: list[tuple[str, ...]] = []
        self.layer_actions = layer_actions
        self.wall = wall

    def bazel(self, *args: str, check: bool = True) -> _FakeRun:
        self.commands.append(args)
        logs = [a.split("=", 1)[1] for a in args if a.startswith("--execution_log_json_file=")]
        for log in logs:
            entry = {"mnemonic": "VenvstacksLayer", "targetLabel": "//stacks:x"}
            Path(log).write_text("".join(json.dumps(entry) + "\n" for _ in range(self.layer_actions)))
        return _FakeRun(self.wall if logs else 0.0)


def test_platform_switch_times_the_host_right_after_the_other_platform(tmp_path: Path) -> None:
    """Each timed switch-back follows a build for the other platform; each no-op follows the switch-back."""
    switch = platform_switch
    own, shared = _FakeBazel(0, 0.8), _FakeBazel(3, 20.0)
    other = "--platforms=@rules_venvstacks//platforms:windows_x86_64"
    entry = switch.measure(own, shared, "//stacks:stack", other, tmp_path, 2)
    timed = [i for i, command in enumerate(own.commands) if any(a.startswith("--execution_log") for a in command)]
    assert len(timed) == 4
    for switch_back, noop in zip(timed[::2], timed[1::2], strict=True):
        assert other in own.commands[switch_back - 1] and noop == switch_back + 1
        assert not any(a.startswith("--platforms") for a in own.commands[switch_back] + own.commands[noop])
    assert all(switch.ONE_DIRECTORY in command for command in shared.commands)
    assert [r["layer_actions"] for r in entry["rounds"]["one_directory"]] == [3, 3]
    assert entry["ratio_to_noop"] == 1.0 and entry["wall"]["one_directory"] == 20.0
    rows = switch.rows(entry)
    assert len(rows) == 4 and all(row.startswith("| ") and row.endswith(" |") for row in rows)
    assert "layer actions run: 0, 0" in rows[0] and "layer actions run: 3, 3" in rows[3]
    assert rows[2].endswith(": met |")


def test_peak_memory_samples_a_process_tree_while_in_the_block() -> None:
    """The torch step's sampler: a process the key picks is measured while the block runs."""
    marker = "peak-memory-test-child"
    child = subprocess.Popen([sys.executable, "-c", f"import time; time.sleep(5)  # {marker}"])
    try:
        with memory.peak_memory(lambda command: "child" if marker in command else None, 0.05) as sampled:
            deadline = time.monotonic() + 3
            while "child" not in sampled and time.monotonic() < deadline:
                time.sleep(0.05)
    finally:
        child.kill()
        child.wait()
    assert sampled["child"] > 0


def test_scale_stack_gives_every_application_its_own_library_and_packages(tmp_path: Path) -> None:
    """bench_scale.py's generated stack: up to the pool's size no two applications share a package,
    none is a framework's, every framework is in a stack of 3 applications or more, and the lock
    cache's key follows the BUILD text and the platforms."""
    apps = len(scale_stack.APP_PACKAGES)
    own = [scale_stack.app_requirements(i) for i in range(apps)]
    firsts = [packages[0] for packages in own]
    assert len(set(firsts)) == apps and len(set(scale_stack.APP_PACKAGES)) == apps
    framework_packages = {p for requirements, _ in scale_stack.FRAMEWORKS.values() for p in requirements}
    assert not framework_packages & set(scale_stack.APP_PACKAGES)
    assert [len(packages) for packages in own[:6]] == [1, 1, 2, 1, 1, 2]
    build = scale_stack.build_text(3)
    for name in ("fw_core", "fw_data", "fw_text", "app_000", "app_001", "app_002"):
        assert f'name = "{name}"' in build
    assert {tuple(f) for f in scale_stack.APP_FRAMEWORKS} == {("fw_data",), ("fw_text",), ("fw_data", "fw_text")}
    assert '"//apps/app_002"' in build and build.count("application_layer(") == 3
    scale_stack.write_scale_stack(tmp_path, CHECKOUT, "module(name = 'x')\n", 3)
    assert (tmp_path / "apps/app_001/src/app_001/__main__.py").read_text().startswith("import attr\n")
    key = scale_stack.lock_key(3, "3.11.2", ["linux_x86_64"])
    assert key == scale_stack.lock_key(3, "3.11.9", ["linux_x86_64"])
    assert key not in {scale_stack.lock_key(4, "3.11.2", ["linux_x86_64"]), scale_stack.lock_key(3, "3.11.2", [])}


def test_scale_table_of_an_analysis_only_run_leaves_the_build_rows_empty() -> None:
    """bench_scale.py `--analysis-only`: its sizes have no build figures; the table still renders,
    with the fresh server's CPU time and its growth, and the build rows empty."""
    import bench_scale

    figures = {
        "load_at_start": [1.0, 1.0, 1.0],
        "lock_scratch": None,
        "lock_unchanged": None,
        "analysis": 2.0,
        "analysis_command": 4.0,
        "analysis_wall": 6.0,
        "analysis_cpu": 9.0,
        "heap_after_analysis_mb": 33.0,
        "rss_after_analysis_mb": 250.0,
        "reanalysis": 0.4,
        "reanalysis_cpu": 1.5,
    }
    results = {
        "code": "test",
        "date": "2026-12-07",
        "machine": {"load_at_end": [1.0, 1.0, 1.0]},
        "platforms": ["linux_x86_64"],
        "sizes": {40: figures, 80: {**figures, "analysis_cpu": 10.8}},
    }
    table = bench_scale.render(results)
    assert "| the same, the server's CPU time since its launch (s) | 9.00 | 10.80 (x1.20) |" in table
    assert "| cold build, Bazel elapsed (s) |  |  |" in table


def test_scale_table_gives_the_buildgrid_rows_with_their_growth() -> None:
    """bench_scale.py `--remote-execution`: one block of rows for 1 worker and one for 2, each
    figure against the size with its growth; a size without them leaves the cells empty."""
    import bench_scale

    def remote(elapsed: float) -> dict[str, Any]:
        return {"elapsed": elapsed, "critical_path": 3.0, "runners": {"remote": 65}, "cpu_server": 4.0}

    results = {
        "code": "test",
        "date": "2026-12-07",
        "machine": {"load_at_end": [1.0, 1.0, 1.0]},
        "platforms": ["linux_x86_64"],
        "sizes": {
            10: {"load_at_start": [1.0], "remote": {1: remote(40.0), 2: remote(30.0)}},
            20: {"load_at_start": [1.0], "remote": {1: remote(80.0), 2: remote(45.0)}},
            40: {"load_at_start": [1.0]},
        },
    }
    table = bench_scale.render(results)
    assert "| cold build on the local BuildGrid, 1 worker, Bazel elapsed (s) | 40.0 | 80.0 (x2.00) |  |" in table
    assert "| cold build on the local BuildGrid, 2 workers, Bazel elapsed (s) | 30.0 | 45.0 (x1.50) |  |" in table
    assert table.count("| the same, actions executed remotely | 65 | 65 (x1.00) |  |") == 2


def test_the_deploy_state_bench_profiles_real_deploys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """bench_deploy_state.py on 2 and 3 layers: real deploys under cProfile, each row filled."""
    import bench_deploy_state

    assert bench_deploy_state.main(["--layers", "2,3", "--scratch", str(tmp_path)]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| this checkout: ")]
    assert len(rows) == len(bench_deploy_state.ROWS)
    assert all(re.fullmatch(r"\| this checkout: .* \| [0-9.]+ \| [0-9.]+ \(x[0-9.]+\) \|", row) for row in rows), rows
