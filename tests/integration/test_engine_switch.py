"""An agent upgraded from a release whose engine was the shells (removed since) refuses
to start while its agent.db holds that engine's unfinished work, with one line and
touching nothing; once that work has ended, it starts on the node engine.

The older engine's agent.db is built here with sqlite3 alone: agent.db's schema and the
rows of the tables the start check reads (node_engine/engine_switch.py), as that engine
wrote them."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import subprocess
from pathlib import Path

import pytest
from fedorch.runtime.store.schema import MIGRATIONS

from tests.integration.federation import Federation
from tests.integration.test_storage_faults import _command

pytestmark = pytest.mark.integration

def _older_agent_db(data: Path, *rows: str) -> None:
    data.mkdir(parents=True, exist_ok=True)
    with contextlib.closing(sqlite3.connect(data / "agent.db")) as con:
        con.execute("PRAGMA journal_mode=WAL")
        for script in MIGRATIONS:  # agent.db's schema, the older engine's tables with it
            con.executescript(script)
        con.execute("INSERT OR REPLACE INTO meta(key, value) VALUES('schema_version', ?)",
                    (str(len(MIGRATIONS)),))
        for sql in rows:
            con.execute(sql)
        con.commit()


def _files(data: Path) -> dict[str, bytes]:
    """Every file's bytes (the -shm only by name: SQLite's index of the WAL, rebuilt by
    any reader, holding no data); directories by name."""
    return {p.name: b"" if p.name.endswith("-shm") or p.is_dir() else p.read_bytes()
            for p in sorted(data.iterdir())}


async def test_the_node_engine_refuses_the_older_engines_unfinished_work(tmp_path):
    fed = Federation(tmp_path, {"solo": {}})
    fed.write_configs()
    data = tmp_path / "data" / "solo"
    # A workflow RUNNING, its step attempt started with no result, as the older engine
    # left them when stopped mid-step.
    _older_agent_db(
        data,
        "INSERT INTO workflows(id, name, coordinator, state, spec, created_ms, updated_ms)"
        " VALUES('solo.1', 'w', 'solo', 'RUNNING', x'', 1, 1)",
        "INSERT INTO step_runs(workflow_id, step_id, attempt, state, started_ms)"
        " VALUES('solo.1', 'wait', 1, 'running', 1)")
    before = _files(data)
    try:
        result = await asyncio.to_thread(
            subprocess.run, _command(fed.configs["solo"]), capture_output=True, text=True,
            timeout=60, stdin=subprocess.DEVNULL)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("fedorch: error: "), result.stderr
        assert (f"{data}: agent.db holds 1 unfinished workflow of the older engine"
                " `shells` (1 not ended, 1 with an attempt started and no result)"
                in lines[0]), lines[0]
        assert "with the previous release" in lines[0] and "then upgrade" in lines[0]
        assert _files(data) == before  # refusing changed nothing, made no node.db

        # Drained by the previous release: the workflow ended, its attempt with a result.
        with contextlib.closing(sqlite3.connect(data / "agent.db")) as con:
            con.execute("UPDATE workflows SET state = 'SUCCEEDED'")
            con.execute("UPDATE step_runs SET state = 'succeeded'")
            con.commit()
        await fed.start("solo")
        assert (data / "node.db").is_file()
    finally:
        await fed.close_channels()
        fed.stop()
