"""A write to node.db that fails for the storage (runtime/node_engine/write_faults.py):
SQLite's own "database or disk is full" is told apart as a storage fault, the turn is
rolled back so that a Node restored from the file is the Node that never saw the turn,
the agent's last line names the file and what to do, and once there is room again the
restarted agent ends every workflow."""

from __future__ import annotations

import sqlite3

import pytest
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.runtime.driver import DriverStopped
from fedorch.runtime.node_engine.identity import NodeDbRefused, open_checked
from fedorch.runtime.node_engine.write_faults import is_storage_fault, stop_reason
from fedorch.runtime.node_store import NodeStoreError

from tests.unit.runtime.node_engine.test_identity import KEY, AgentDb
from tests.unit.runtime.test_node_store import Federation, _assert_restores_alike

WORKFLOWS = ("w1", "w2", "w3")


def submit_long(fed: Federation, wf: str) -> None:
    """Federation.submit's workflow, with a name that takes pages of its own."""
    fed.submit(wf)
    at, submit = fed.queue.pop()
    submit.spec.name = wf + "-" + "x" * 20_000
    fed.queue.append((at, submit))


def test_a_full_disk_rolls_the_turn_back_and_the_restarted_agent_ends_every_workflow(
        tmp_path):
    fed = Federation(tmp_path)
    try:
        store = fed.kept["d1"].store
        pages = store._con.execute("PRAGMA page_count").fetchone()[0]
        store._con.execute(f"PRAGMA max_page_count = {pages}")  # not one page more
        for wf in WORKFLOWS:  # specs too long for the pages there are: some overflow
            submit_long(fed, wf)
        with pytest.raises(sqlite3.OperationalError) as failed:
            fed.run()
        assert is_storage_fault(failed.value), failed.value
        assert fed.drivers["d1"].stopped is not None
        with pytest.raises(DriverStopped):
            fed.drivers["d1"].turn([])
        # What node.db holds is what was committed before the failed turn: a Node
        # restored from it is the Node that never saw that turn.
        committed = fed.kept["d1"].memory
        _assert_restores_alike("d1", tmp_path / "d1.db", committed)

        line = stop_reason(store.path, failed.value)
        assert "\n" not in line and line.startswith(f"{tmp_path / 'd1.db'}: a write failed")
        assert "full" in line and "free space" in line and "start the agent again" in line

        store._con.execute("PRAGMA max_page_count = 1073741823")  # room again
        store.close()
        fed.restart("d1")
        fed.settle()
        assert fed.statuses == {wf: WorkflowState.SUCCEEDED for wf in WORKFLOWS}
    finally:
        fed.close()


def test_an_unreadable_node_db_on_a_failing_disk_is_not_judged(tmp_path, monkeypatch):
    """A disk I/O error while the start reads node.db says nothing of the file: no
    refusal, no --start-fresh advice, nothing moved aside even with the flag."""
    agent_db = AgentDb()
    import asyncio
    asyncio.run(open_checked(tmp_path, "d0", KEY, get_marker=agent_db.get,
                             set_marker=agent_db.set))
    real_connect = sqlite3.connect

    def failing(*args, **kw):
        if kw.get("uri"):
            error = sqlite3.OperationalError("disk I/O error")
            error.sqlite_errorcode = sqlite3.SQLITE_IOERR
            raise error
        return real_connect(*args, **kw)

    monkeypatch.setattr(sqlite3, "connect", failing)
    with pytest.raises(NodeStoreError) as stopped:
        asyncio.run(open_checked(tmp_path, "d0", KEY, get_marker=agent_db.get,
                                 set_marker=agent_db.set, start_fresh=True))
    assert not isinstance(stopped.value, NodeDbRefused)
    line = str(stopped.value)
    assert line.startswith(f"{tmp_path / 'node.db'}: cannot read it (disk I/O error)"), line
    assert "free space" in line and "--start-fresh" not in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["node.db"]
