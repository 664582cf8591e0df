"""The long bench's readings (agent/bench/long.py), checked without running a federation."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from fedorch.bench import long as long_bench
from fedorch.bench.agent_readings import process_rss_mb
from fedorch.bench.long import (
    agent_db_mb,
    data_mb,
    ended_kept,
    growth,
    live_mb,
    process_threads,
    retention_config,
    rss_by_mapping,
    rss_by_mapping_text,
    run_long_bench,
    segments,
    when,
)
from fedorch.cli.main import cli
from fedorch.core.node.ready import PUT, Op, Write
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.runtime.config import parse_config_text
from fedorch.runtime.node_engine.identity import NODE_DB
from fedorch.runtime.node_store import SqliteDurable
from fedorch.runtime.store.audit_table import append_statement
from fedorch.runtime.store.store import Store


def _node_db(tmp: Path, domain: str, ended: int, pad: int = 0) -> None:
    """A node.db as the Node writes it: `ended` workflows with retention's stamp, an
    end row for half of them (at a coordinator, a round aborted before any COMMIT
    ends in its row alone), each with a padding row in another table when `pad`."""
    (tmp / "data" / domain).mkdir(parents=True, exist_ok=True)
    with SqliteDurable(tmp / "data" / domain / NODE_DB) as store:
        ops = [Op("endings", PUT, f"w.{i}", 1_000 + i) for i in range(ended)]
        ops += [Op("final", PUT, f"w.{i}", WorkflowState.SUCCEEDED) for i in range(ended // 2)]
        ops += [Op("cancels", PUT, f"w.{i}", "x" * pad) for i in range(ended if pad else 0)]
        store.write([Write("ends", ops)])


def _agent_db(tmp: Path, domain: str, records: int) -> None:
    async def write() -> None:
        store = await Store.open(tmp / "data" / domain)
        try:
            await store.apply([append_statement("vote", f"w.{i}", i, {"pad": "x" * 4000})
                               for i in range(records)])
        finally:
            await store.close()

    asyncio.run(write())


def test_ended_kept_counts_the_workflows_node_db_holds_not_agent_db(tmp_path):
    _agent_db(tmp_path, "a", 5)  # the audit log names workflows too: not counted
    assert ended_kept(tmp_path, "a") == 0  # no node.db yet
    _node_db(tmp_path, "a", 7)
    assert ended_kept(tmp_path, "a") == 7


def test_data_mb_is_node_db_with_its_wal_and_agent_db_mb_the_other_file(tmp_path):
    _agent_db(tmp_path, "a", 300)  # about 1.2 MB of audit log
    _node_db(tmp_path, "a", 2000, pad=1000)  # about 2 MB of rows
    node = tmp_path / "data" / "a" / NODE_DB
    on_disk = sum(p.stat().st_size for p in (node, Path(f"{node}-wal")) if p.exists())
    assert data_mb(tmp_path, "a") == round(on_disk / 2**20, 1) >= 2.0
    assert 1.0 <= agent_db_mb(tmp_path, "a") < data_mb(tmp_path, "a")


def test_live_mb_splits_the_audit_log_from_the_rest_of_both_files(tmp_path):
    _agent_db(tmp_path, "a", 300)  # 300 audit records of 4 KB
    _node_db(tmp_path, "a", 2000, pad=1000)
    used = live_mb(tmp_path, "a")
    if used["audit"] is None:
        pytest.skip("this SQLite has no dbstat table")
    assert used["audit"] >= 1.0
    assert used["rest"] >= 2.0  # node.db's rows: the workflows, not the audit log


def test_the_keep_ended_wait_reads_node_db(tmp_path, monkeypatch):
    class Net:
        workdir = tmp_path

    for d in long_bench.DOMAINS:
        _node_db(tmp_path, d, 3)
        _node_db(tmp_path / "later", d, 1)  # the same agents once retention forgot two
    net, slept = Net(), []

    async def sleep(s: float) -> None:  # the wait's pause: retention forgets meanwhile
        slept.append(s)
        if len(slept) == 2:
            net.workdir = tmp_path / "later"

    monkeypatch.setattr(long_bench.asyncio, "sleep", sleep)
    asyncio.run(long_bench._settled(net, 3, deadline_s=60.0))
    assert slept == []  # node.db holds 3 <= 3: no wait
    asyncio.run(long_bench._settled(net, 1, deadline_s=60.0))
    assert len(slept) == 2  # waited while node.db held 3, and no longer


def test_a_reading_says_its_utc_time_and_load():
    now = when()
    assert len(now["utc"]) == len("2026-12-05 23:59:11") and now["load_1m"] >= 0


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

    async def fake_run(total, concurrency, every, *, keep_ended, keep_ended_s, on_reading,
                       trace_memory):
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

    assert rss_by_mapping_text(SMAPS) == {"heap": 20.0, "malloc_arenas": 6.0,
                                          "anonymous": 1.0, "file": 0.1, "other": 0.1}


def test_rss_by_mapping_of_a_live_process_adds_up_to_about_its_rss():


    kinds = rss_by_mapping(os.getpid())
    # The kinds partition the mappings, so their sum is the RSS read a moment apart.
    assert kinds["file"] > 0 and kinds["heap"] + kinds["anonymous"] > 0
    assert abs(sum(kinds.values()) - process_rss_mb(os.getpid())) < 0.1 * process_rss_mb(os.getpid())


def test_process_threads_counts_a_thread_started_here():


    before = process_threads(os.getpid())
    release = threading.Event()
    worker = threading.Thread(target=release.wait)
    worker.start()
    try:
        assert process_threads(os.getpid()) == before + 1
    finally:
        release.set()
        worker.join()


