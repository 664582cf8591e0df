"""Small parts of the benchmarks that can be checked without running them."""

from __future__ import annotations

import asyncio

import pytest
import yaml
from click.testing import CliRunner
from fedorch.bench.commit import forced_write_ms, run_commit_bench
from fedorch.bench.long import growth, retention_config, run_long_bench, segments
from fedorch.cli.main import cli
from fedorch.runtime.config import parse_config_text


def test_forced_write_probe_measures_and_leaves_nothing_behind(tmp_path):
    ms = forced_write_ms(tmp_path, writes=3)
    assert ms > 0
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("given", ["0", "64,-1", "many", "64,,512", ""])
def test_bench_commit_refuses_submitter_counts_that_are_not_positive(given, monkeypatch):
    started = []
    monkeypatch.setattr("fedorch.bench.commit.run_commit_bench",
                        lambda *a, **k: started.append(a))  # must never be reached
    result = CliRunner().invoke(cli, ["bench", "commit", "--concurrency", given])
    assert result.exit_code == 2
    assert "--concurrency" in result.stderr and "positive whole numbers" in result.stderr
    assert started == []


def test_bench_commit_passes_each_submitter_count_on(monkeypatch):
    seen = {}

    async def fake_bench(**kwargs):
        seen.update(kwargs)
        return {}

    monkeypatch.setattr("fedorch.bench.commit.run_commit_bench", fake_bench)
    result = CliRunner().invoke(cli, ["bench", "commit", "--json", "--workflows", "50",
                                      "--concurrency", "8,32"])
    assert result.exit_code == 0, result.output
    assert (seen["total"], seen["concurrency"]) == (50, (8, 32))


def test_bench_commit_has_no_engine_choice_and_runs_2pc(monkeypatch):
    seen = {}

    async def fake_bench(**kwargs):
        seen.update(kwargs)
        return {}

    monkeypatch.setattr("fedorch.bench.commit.run_commit_bench", fake_bench)
    result = CliRunner().invoke(cli, ["bench", "commit", "--json", "--commit", "2pc"])
    assert result.exit_code == 0, result.output
    assert seen["commit"] == "2pc" and "engine" not in seen
    result = CliRunner().invoke(cli, ["bench", "commit", "--json", "--engine", "node"])
    assert result.exit_code == 2 and "--engine" in result.output


async def test_the_commit_bench_refuses_an_empty_climb_before_starting_anything():
    with pytest.raises(ValueError, match="at least one"):
        await run_commit_bench(concurrency=())


def test_process_cpu_reads_a_busy_child_more_than_an_idle_one():
    import subprocess
    import sys

    from fedorch.bench.commit import process_cpu_s

    busy = subprocess.Popen([sys.executable, "-c",
                             "import time\nend = time.process_time() + 0.3\n"
                             "while time.process_time() < end: pass\ninput()"],
                            stdin=subprocess.PIPE)
    idle = subprocess.Popen([sys.executable, "-c", "input()"], stdin=subprocess.PIPE)
    try:
        import time
        deadline = time.monotonic() + 30
        while process_cpu_s(busy.pid) < 0.3 and time.monotonic() < deadline:
            busy.poll()
            time.sleep(0.05)
        assert process_cpu_s(busy.pid) >= 0.3
        assert process_cpu_s(idle.pid) < process_cpu_s(busy.pid)
    finally:
        for proc in (busy, idle):
            proc.kill()
            proc.wait()


def test_cpu_per_workflow_is_each_process_share_and_their_total():
    from fedorch.bench.commit import cpu_ms_per_workflow

    per = cpu_ms_per_workflow({"c1": 1.0, "client": 2.0}, {"c1": 1.5, "client": 2.25}, 250)
    assert per == {"c1": 2.0, "client": 1.0, "total": 3.0}


def test_bench_long_refuses_fewer_workflows_than_two_readings(monkeypatch):
    started = []
    monkeypatch.setattr("fedorch.bench.long.run_long_bench",
                        lambda *a, **k: started.append(a))  # must never be reached
    result = CliRunner().invoke(cli, ["bench", "long", "--workflows", "5", "--every", "3"])
    assert result.exit_code == 2
    assert "--workflows" in result.stderr
    assert started == []


def _reading(after: int, cpu: float) -> dict:
    return {"after_workflows": after, "workflows_per_s": 1.0, "cpu_ms_per_workflow": 2 * cpu,
            "cpu_ms_by_process": {"a": cpu, "client": cpu, "total": 2 * cpu},
            "rss_mb": {"a": 50.0}, "data_mb": {"a": 1.5}, "ended_kept": {"a": 7},
            "live_mb": {"a": {"audit": 1.0, "rest": 0.5}}}


def test_bench_long_passes_its_options_on_and_prints_each_agent(monkeypatch):
    asked = {}

    async def fake_run(total, concurrency, every, *, keep_ended, keep_ended_s, on_reading):
        asked.update(total=total, every=every, keep_ended=keep_ended,
                     keep_ended_s=keep_ended_s)
        rows = [_reading(3, 4.0), _reading(6, 5.0)]
        for reading in rows:
            on_reading(reading)
        return {"workflows": total, "concurrency": concurrency, "every": every,
                "keep_ended": keep_ended, "keep_ended_s": keep_ended_s, "parts": rows,
                "cpu_growth": growth(rows)["total"], "cpu_growth_by_process": growth(rows)}

    monkeypatch.setattr("fedorch.bench.long.run_long_bench", fake_run)
    result = CliRunner().invoke(cli, ["bench", "long", "--workflows", "6", "--every", "3",
                                      "--keep-ended", "7", "--keep-ended-s", "3"])
    assert result.exit_code == 0, result.output
    assert asked == {"total": 6, "every": 3, "keep_ended": 7, "keep_ended_s": 3.0}
    assert "max_ended_workflows 7" in result.output
    assert "1.25" in result.output  # 5.0 / 4.0, the last reading over the first
    assert "after 3:" in result.stderr and "after 6:" in result.stderr  # as they came


def test_long_bench_segments_are_every_n_and_the_rest():
    assert segments(30_000, 10_000) == [10_000, 10_000, 10_000]
    assert segments(25_000, 10_000) == [10_000, 10_000, 5_000]
    with pytest.raises(ValueError):
        segments(10, 0)


def test_long_bench_growth_is_last_over_first_for_each_process():
    rows = [_reading(1, 4.0), _reading(2, 100.0), _reading(3, 4.4)]
    assert growth(rows) == {"a": 1.1, "client": 1.1, "total": 1.1}
    assert growth(rows[:1]) == {}


def test_retention_config_of_the_long_bench_is_a_valid_agent_config():
    body = {"domain": "a", "listen": "127.0.0.1:7101", "data_dir": "d", "key_file": "k",
            **retention_config(7, 3.0)}
    config = parse_config_text(yaml.safe_dump(body), "a.yaml", "/base")
    assert config.retention.max_ended_workflows == 7
    assert config.retention.keep_ended_s == 3.0


def test_run_long_bench_refuses_a_keep_ended_below_one():
    with pytest.raises(ValueError, match="keep_ended"):
        asyncio.run(run_long_bench(6, 1, 3, keep_ended=0))


def test_live_mb_splits_the_audit_log_from_the_rest(tmp_path):
    from fedorch.bench.long import live_mb
    from fedorch.runtime.store.audit_table import append_statement
    from fedorch.runtime.store.store import Store

    async def write() -> None:
        store = await Store.open(tmp_path / "data" / "a")
        try:
            await store.apply([append_statement("vote", f"w.{i}", i, {"pad": "x" * 4000})
                               for i in range(300)])
        finally:
            await store.close()

    asyncio.run(write())
    used = live_mb(tmp_path, "a")
    if used["audit"] is None:
        pytest.skip("this SQLite has no dbstat table")
    assert used["audit"] >= 1.0  # 300 records of 4 KB
    assert used["rest"] < used["audit"]


SMAPS = """\
55d0c0000000-55d0c0021000 r--p 00000000 08:01 123 /usr/bin/python3.11
Size:                132 kB
Rss:                 132 kB
55d0c1000000-55d0c3000000 rw-p 00000000 00:00 0                          [heap]
Rss:               20480 kB
7f0c00000000-7f0c02000000 rw-p 00000000 00:00 0
Rss:                6144 kB
7f0c02000000-7f0c04000000 ---p 00000000 00:00 0
Rss:                   0 kB
7f0c04100000-7f0c04200000 rw-p 00000000 00:00 0
Rss:                1024 kB
7ffd1000000-7ffd1021000 rw-p 00000000 00:00 0                          [stack]
Rss:                  64 kB
"""


def test_rss_by_mapping_tells_the_heap_thread_arenas_other_anonymous_and_files_apart():
    from fedorch.bench.long import rss_by_mapping_text

    assert rss_by_mapping_text(SMAPS) == {"heap": 20.0, "malloc_arenas": 6.0,
                                          "anonymous": 1.0, "file": 0.1, "other": 0.1}


def test_rss_by_mapping_of_a_live_process_adds_up_to_about_its_rss():
    import os

    from fedorch.bench.commit import process_rss_mb
    from fedorch.bench.long import rss_by_mapping

    kinds = rss_by_mapping(os.getpid())
    # The kinds partition the mappings, so their sum is the RSS read a moment apart.
    assert kinds["file"] > 0 and kinds["heap"] + kinds["anonymous"] > 0
    assert abs(sum(kinds.values()) - process_rss_mb(os.getpid())) < 0.1 * process_rss_mb(os.getpid())


def test_process_threads_counts_a_thread_started_here():
    import os
    import threading

    from fedorch.bench.long import process_threads

    before = process_threads(os.getpid())
    release = threading.Event()
    worker = threading.Thread(target=release.wait)
    worker.start()
    try:
        assert process_threads(os.getpid()) == before + 1
    finally:
        release.set()
        worker.join()


def test_thread_cpu_parts_a_busy_python_thread_from_an_idle_event_loop():
    import subprocess
    import sys
    import time

    from fedorch.bench.commit import THREAD_PARTS, thread_cpu_s

    # The main thread waits on stdin (the "loop"); a second Python thread spins, then
    # waits too (a thread that ended is no longer in /proc).
    child = subprocess.Popen([sys.executable, "-c",
                              "import threading, time\n"
                              "def spin():\n"
                              "    end = time.thread_time() + 0.3\n"
                              "    while time.thread_time() < end: pass\n"
                              "    threading.Event().wait()\n"
                              "threading.Thread(target=spin, daemon=True).start()\ninput()"],
                             stdin=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        parts = thread_cpu_s(child.pid)
        while parts["threads"] < 0.25 and time.monotonic() < deadline:
            time.sleep(0.05)  # polling another process's counters, with a deadline
            parts = thread_cpu_s(child.pid)
        assert set(parts) == set(THREAD_PARTS)
        assert parts["threads"] >= 0.25
        assert parts["loop"] < parts["threads"]
    finally:
        child.kill()
        child.wait()
