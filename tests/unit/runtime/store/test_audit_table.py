"""The audit table: records chain in commit order, a write rolled back takes its record
with it (no gap), and a record of a write-once cell is written only if the cell was won."""

from __future__ import annotations

import sqlite3

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fedorch.core.audit.chain import Verified, make_checkpoint, verify
from fedorch.runtime.store.audit_table import ACTS, LogReader, append_statement
from fedorch.runtime.store.store import Store


def _once(key: str):
    """A statement that fails when written again (the key of what it records)."""
    return ("INSERT INTO meta(key, value) VALUES(?, '1')", (key,))


def _cell(key: str, value: str):
    """A write-once cell: a later write changes no row."""
    return ("INSERT OR IGNORE INTO meta(key, value) VALUES(?, ?)", (key, value))


async def test_records_chain_and_a_failed_write_leaves_no_gap(tmp_path):
    store = await Store.open(tmp_path)
    try:
        start = _once("run w.1/a/1")
        await store.apply([start, append_statement("step_started", "w.1", 1, {"step": "a"})])
        # The same attempt again fails on its key: its record must not stay.
        with pytest.raises(sqlite3.IntegrityError):
            await store.apply([start, append_statement("step_started", "w.1", 2, {"step": "a"})])
        # Writes that share one group commit, one of them failing.
        import asyncio
        results = await asyncio.gather(
            store.apply([append_statement("vote", "w.2", 3, {"yes": True})]),
            store.apply([start, append_statement("step_started", "w.1", 4, {})]),
            store.apply([append_statement("vote", "w.3", 5, {"yes": False})]),
            return_exceptions=True)
        assert isinstance(results[1], sqlite3.IntegrityError)
        seq, head = await store.audit_head()
        assert seq == 3
        await store.save_audit_checkpoint(
            make_checkpoint("eu", seq, head, 9, Ed25519PrivateKey.generate().sign))
    finally:
        await store.close()
    with LogReader(tmp_path) as reader:
        records = list(reader.records())
        assert [r.seq for r in records] == [1, 2, 3]
        assert [r.workflow for r in records] == ["w.1", "w.2", "w.3"]
        # Signed by a key the log does not name: the chain itself is whole.
        outcome = verify(records, [], trusted=None)
        assert outcome == Verified(3, 0, "", 3)


async def test_a_write_once_record_is_kept_only_if_the_cell_was_won(tmp_path):
    store = await Store.open(tmp_path)
    try:
        for outcome in ("COMMIT", "ABORT"):
            await store.apply([
                _cell("decision w.1/1", outcome),
                append_statement("decision", "w.1", 1, {"outcome": outcome}, if_changed=True)])
        records = await store.audit_records("w.1")
    finally:
        await store.close()
    assert [r.decoded()["data"]["outcome"] for r in records] == ["COMMIT"]


async def test_the_chain_goes_on_across_a_reopen_and_a_group_appends_in_one_statement(tmp_path):
    import asyncio
    store = await Store.open(tmp_path)
    try:
        await store.apply([append_statement("vote", "w.1", 1, {"yes": True})])
    finally:
        await store.close()
    store = await Store.open(tmp_path)  # the head is read back from the file
    try:
        before = store.statements
        start = _once("run w.2/a/1")
        await asyncio.gather(*(store.apply([append_statement("vote", f"w.{i}", i, {}),
                                            append_statement("vote", f"w.{i}", i, {})])
                               for i in range(3, 7)),
                             store.apply([start, append_statement("step_started", "w.2", 2, {})]))
        # The five writers share one transaction (queued before its committer runs):
        # the step run's row, then their nine records in one INSERT.
        assert store.statements - before == 2
        assert (await store.audit_head())[0] == 10
    finally:
        await store.close()
    with LogReader(tmp_path) as reader:
        records = list(reader.records())
    assert [r.seq for r in records] == list(range(1, 11))
    assert verify(records, [], trusted=None) == Verified(10, 0, "", 10)


ACTS_DATA = {"acts": [{"kind": "vote", "time_ms": 7, "data": {"yes": True}},
                      {"kind": "learned", "time_ms": 8, "data": {"outcome": "COMMIT"}}]}


async def test_an_acts_record_reads_back_as_its_acts_and_an_edit_of_it_is_named(tmp_path):
    store = await Store.open(tmp_path)
    try:
        await store.apply([append_statement("vote", "w.1", 5, {"yes": False}),
                           append_statement(ACTS, "w.1", 9, ACTS_DATA)])
        seen = await store.audit_records("w.1")  # the console's read
    finally:
        await store.close()
    with LogReader(tmp_path) as reader:
        acts = list(reader.acts("w.1"))  # `fedorch audit show` and `proof`
        records = list(reader.records())
    for read in (seen, acts):
        assert [(a.seq, a.kind, a.decoded()["time_ms"], a.decoded()["data"]) for a in read] == [
            (1, "vote", 5, {"yes": False}), (2, "vote", 7, {"yes": True}),
            (2, "learned", 8, {"outcome": "COMMIT"})]
        assert all(a.decoded()["workflow"] == "w.1" for a in read)
        assert read[1].hash == read[2].hash == records[1].hash
    assert verify(records, [], trusted=None) == Verified(2, 0, "", 2)
    con = sqlite3.connect(tmp_path / "agent.db")
    try:  # one act of the record changed: its record is named
        con.execute("UPDATE audit SET body = CAST(replace(body, 'COMMIT', 'ABORT') AS BLOB)"
                    " WHERE seq = 2")
        con.commit()
    finally:
        con.close()
    with LogReader(tmp_path) as reader:
        problem = verify(reader.records(), [], trusted=None)
        assert [a.decoded()["data"] for a in reader.acts("w.1")][2] == {"outcome": "ABORT"}
    assert problem.seq == 2 and "changed" in problem.reason, problem
