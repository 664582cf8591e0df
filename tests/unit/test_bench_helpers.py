"""Small parts of the benchmarks that can be checked without running them."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from fedorch.bench.commit import forced_write_ms, run_commit_bench
from fedorch.cli.main import cli


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

    from fedorch.bench.agent_readings import process_cpu_s

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
    from fedorch.bench.agent_readings import cpu_ms_per_workflow

    per = cpu_ms_per_workflow({"c1": 1.0, "client": 2.0}, {"c1": 1.5, "client": 2.25}, 250)
    assert per == {"c1": 2.0, "client": 1.0, "total": 3.0}


def test_thread_cpu_parts_a_busy_python_thread_from_an_idle_event_loop():
    import subprocess
    import sys
    import time

    from fedorch.bench.agent_readings import THREAD_PARTS, thread_cpu_s

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
