"""check_engine_switch: the node engine refuses to start over the older engine's
(`shells`, removed) unfinished work in agent.db, reading it without changing anything;
an agent.db with nothing unfinished (or none at all) lets it start."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest
from fedorch.runtime.node_engine.engine_switch import (
    EngineSwitchRefused,
    UnfinishedWork,
    check_engine_switch,
    shells_work,
)
from fedorch.runtime.store.schema import MIGRATIONS


def _agent_db(data: Path, *rows: str, migrations: int = len(MIGRATIONS)) -> Path:
    """An agent.db of the older engine's schema (its first `migrations`) holding `rows`."""
    data.mkdir(parents=True, exist_ok=True)
    db = data / "agent.db"
    with contextlib.closing(sqlite3.connect(db)) as con:
        con.execute("PRAGMA journal_mode=WAL")
        for script in MIGRATIONS[:migrations]:
            con.executescript(script)
        for sql in rows:
            con.execute(sql)
        con.commit()
    return db


def _workflow(wid: str, state: str) -> str:
    return ("INSERT INTO workflows(id, name, coordinator, state, spec, created_ms,"
            f" updated_ms) VALUES('{wid}', 'w', 'home', '{state}', x'', 1, 1)")


ENDED = [
    _workflow("home.1", "SUCCEEDED"), _workflow("home.2", "FAILED"),
    _workflow("home.3", "ABORTED"), _workflow("home.4", "CANCELLED"),
    # A COMMIT whose certificate every participant acknowledged (its envelope collected).
    "INSERT INTO decisions VALUES('home.1', 1, 'COMMIT', x'')",
    "INSERT INTO step_runs(workflow_id, step_id, attempt, state, started_ms)"
    " VALUES('home.1', 's', 1, 'succeeded', 1)",
    "INSERT INTO compensations VALUES('home.2', 's', 'home', 'COMPENSATED', 1, 1, '')",
    "INSERT INTO compensation_runs(workflow_id, step_id, attempt, state, started_ms)"
    " VALUES('home.2', 's', 1, 'succeeded', 1)",
    # Acceptor records whose outcome is known: in the record, learned, or decided here.
    "INSERT INTO acceptor_records(workflow_id, round, tx, decided) VALUES('x.1', 1, x'', x'01')",
    "INSERT INTO acceptor_records(workflow_id, round, tx) VALUES('x.2', 1, x'')",
    "INSERT INTO learned VALUES('x.2', 1, 'ABORT', x'')",
    "INSERT INTO acceptor_records(workflow_id, round, tx) VALUES('home.1', 1, x'')",
]

# Each kind of unfinished work, alone, and the field that counts it.
UNFINISHED = {
    "negotiating": ([_workflow("home.9", "NEGOTIATING")], "not_ended"),
    "running": ([_workflow("home.9", "RUNNING")], "not_ended"),
    "reservation": (["INSERT INTO reservations VALUES('c.9', 1, 'c', 'prepared', '[]', 0, '')"],
                    "reservations"),
    "running step attempt": (["INSERT INTO step_runs(workflow_id, step_id, attempt, state,"
                              " started_ms) VALUES('c.9', 's', 1, 'running', 1)"],
                             "running_attempts"),
    "running compensation attempt": (["INSERT INTO compensation_runs(workflow_id, step_id,"
                                      " attempt, state, started_ms)"
                                      " VALUES('c.9', 's', 1, 'running', 1)"],
                                     "running_attempts"),
    "owed compensation": (["INSERT INTO compensations VALUES('home.9', 's', 'p', 'PENDING',"
                           " 0, 1, '')"], "owed_compensations"),
    "owed end notice": (["INSERT INTO end_notices VALUES('home.9', 'p', 1)"],
                        "owed_end_notices"),
    "kept certificate": (["INSERT INTO decisions VALUES('home.9', 1, 'COMMIT', x'01')"],
                         "kept_certificates"),
    "undecided acceptor record": (["INSERT INTO acceptor_records(workflow_id, round, tx)"
                                   " VALUES('x.9', 1, x'')"], "undecided_acceptor"),
}


def _files(data: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(data.iterdir())}


def test_no_agent_db_or_an_empty_one_lets_the_node_engine_start(tmp_path):
    check_engine_switch(tmp_path)  # a new data dir
    (tmp_path / "agent.db").write_bytes(b"")
    check_engine_switch(tmp_path)  # Store.open judges an empty file
    (tmp_path / "agent.db").unlink()
    _agent_db(tmp_path)
    assert shells_work(tmp_path / "agent.db") == UnfinishedWork()
    check_engine_switch(tmp_path)


def test_only_ended_and_settled_workflows_let_it_start(tmp_path):
    _agent_db(tmp_path, *ENDED)
    assert shells_work(tmp_path / "agent.db") == UnfinishedWork()
    check_engine_switch(tmp_path)


@pytest.mark.parametrize("what", sorted(UNFINISHED))
def test_each_kind_of_unfinished_work_refuses_the_start(tmp_path, what):
    rows, kind = UNFINISHED[what]
    data = tmp_path / "data"
    _agent_db(data, *ENDED, *rows)
    before = _files(data)
    with pytest.raises(EngineSwitchRefused) as refused:
        check_engine_switch(data)
    assert refused.value.work == UnfinishedWork(workflows=1, **{kind: 1})
    line = str(refused.value)
    assert "\n" not in line
    assert line.startswith(f"{data}: agent.db holds 1 unfinished workflow of the older"
                           " engine `shells`")
    assert "with the previous release" in line and "then upgrade" in line
    assert _files(data) == before  # read without changing anything


def test_a_workflow_counts_once_however_many_kinds_it_has(tmp_path):
    _agent_db(tmp_path,
              _workflow("home.8", "RUNNING"), _workflow("home.9", "RUNNING"),
              "INSERT INTO reservations VALUES('home.9', 1, 'home', 'committed', '[]', 0, '')",
              "INSERT INTO step_runs(workflow_id, step_id, attempt, state, started_ms)"
              " VALUES('home.9', 's', 1, 'running', 1)",
              "INSERT INTO decisions VALUES('home.9', 1, 'COMMIT', x'01')")
    with pytest.raises(EngineSwitchRefused) as refused:
        check_engine_switch(tmp_path)
    assert refused.value.work == UnfinishedWork(workflows=2, not_ended=2, reservations=1,
                                            running_attempts=1, kept_certificates=1)
    assert "holds 2 unfinished workflows" in str(refused.value)
    assert ("(2 not ended, 1 holding a reservation, 1 with an attempt started and no"
            " result, 1 with a decision not every participant acknowledged)"
            in str(refused.value))


def test_an_older_schema_is_read_by_the_tables_it_has(tmp_path):
    _agent_db(tmp_path, _workflow("home.9", "RUNNING"), migrations=1)
    with pytest.raises(EngineSwitchRefused) as refused:
        check_engine_switch(tmp_path)
    assert refused.value.work == UnfinishedWork(workflows=1, not_ended=1)


def test_an_unreadable_agent_db_is_left_to_the_store(tmp_path):
    (tmp_path / "agent.db").write_bytes(b"not a database" * 1000)
    before = _files(tmp_path)
    assert shells_work(tmp_path / "agent.db") is None
    check_engine_switch(tmp_path)
    assert _files(tmp_path) == before


def test_work_still_in_the_wal_of_a_killed_agent_counts(tmp_path):
    """An agent killed mid-run leaves its last transactions in agent.db-wal only."""
    db = _agent_db(tmp_path)
    with contextlib.closing(sqlite3.connect(db)) as writer:  # still open: as if killed
        writer.execute("PRAGMA wal_autocheckpoint=0")
        writer.execute(_workflow("home.9", "RUNNING"))
        writer.commit()
        assert (tmp_path / "agent.db-wal").stat().st_size > 0
        with pytest.raises(EngineSwitchRefused) as refused:
            check_engine_switch(tmp_path)
        assert refused.value.work == UnfinishedWork(workflows=1, not_ended=1)
