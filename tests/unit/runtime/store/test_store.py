"""Store: schema and pragmas, round trips, write-once decisions, run keys, reopen, versions."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fedorch.runtime.store.schema import MIGRATIONS, SCHEMA_VERSION
from fedorch.runtime.store.store import (
    AcceptorRow,
    HoldTxRow,
    ReservationRow,
    StepRow,
    Store,
    StoreError,
    WorkflowRow,
)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(tmp_path / "data")
    try:
        yield s
    finally:
        await s.close()


def workflow(wf_id: str = "wf-1", **overrides: object) -> WorkflowRow:
    fields: dict[str, object] = dict(
        id=wf_id, name="eu-sales-model", coordinator="eu-west", state="RUNNING",
        spec=b"\x0a\x0eeu-sales-model\x00\xff", reason="",
        placement={"extract": "eu-west", "train": "eu-west"},
        endpoints={"eu-west": "127.0.0.1:7101"}, round=2,
        refusals=[{"round": 1, "domain": "us-east", "steps": ["train"], "reason": "residency"}],
        request_id=None, created_ms=1_000, updated_ms=2_000,
    )
    fields.update(overrides)
    return WorkflowRow(**fields)  # type: ignore[arg-type]


async def pragma(store: Store, name: str) -> object:
    async with store._db.execute(f"PRAGMA {name}") as cur:
        row = await cur.fetchone()
    return row[0]


# ---- schema -------------------------------------------------------------------------------


async def test_schema_is_created_with_wal_and_full_sync(store: Store, tmp_path: Path) -> None:
    assert await pragma(store, "journal_mode") == "wal"
    assert await pragma(store, "synchronous") == 2  # FULL
    assert await store.get_meta("schema_version") == str(SCHEMA_VERSION)
    async with store._db.execute(
        "SELECT name FROM sqlite_master WHERE type='table' ORDER BY name"
    ) as cur:
        tables = {r[0] for r in await cur.fetchall()}
    assert {"meta", "workflows", "steps", "decisions", "reservations", "step_runs"} <= tables
    assert (tmp_path / "data" / "agent.db").exists()


_PUT = "INSERT INTO meta(key, value) VALUES(?, ?)"  # a second put of a key fails


async def test_a_lone_write_that_fails_leaves_nothing(store: Store) -> None:
    await store.apply([(_PUT, ("k", "1"))])
    with pytest.raises(sqlite3.IntegrityError):
        await store.apply([(_PUT, ("k", "2"))])  # one statement: its own transaction
    with pytest.raises(sqlite3.IntegrityError):  # two: the first is rolled back with it
        await store.apply([(_PUT, ("j", "1")), (_PUT, ("k", "3"))])
    assert await store.get_meta("k") == "1" and await store.get_meta("j") is None
    await store.apply([(_PUT, ("j", "1")), (_PUT, ("i", "1"))])
    assert await store.get_meta("j") == "1" and await store.get_meta("i") == "1"
    assert store.commits == store.writes == 4  # each alone in its group


async def test_writes_that_arrive_together_share_a_commit_and_fail_alone(store: Store) -> None:
    await store.apply([(_PUT, ("k", "1"))])
    commits = store.commits
    outcomes = await asyncio.gather(
        store.apply([(_PUT, ("a", "1"))]),
        store.apply([(_PUT, ("b", "1")), (_PUT, ("k", "2"))]),  # fails: rolled back alone
        store.apply([(_PUT, ("c", "1")), (_PUT, ("d", "1"))]),
        return_exceptions=True)
    assert outcomes[0] == [1] and outcomes[2] == [1, 1]
    assert isinstance(outcomes[1], sqlite3.IntegrityError)
    assert store.commits == commits + 1  # one transaction for the three
    assert [await store.get_meta(k) for k in "abcdk"] == ["1", None, "1", "1", "1"]


async def test_meta_round_trip(store: Store) -> None:
    assert await store.get_meta("missing") is None
    await store.set_meta("node", "a")
    await store.set_meta("node", "b")
    assert await store.get_meta("node") == "b"


# ---- workflows and steps -------------------------------------------------------------------


async def test_workflow_and_steps_round_trip(store: Store) -> None:
    w = workflow()
    steps = [
        StepRow("wf-1", "extract", "eu-west", "SUCCEEDED", 1, {"rows": 3, "nested": {"a": [1]}}),
        StepRow("wf-1", "train", "eu-west", "FAILED", 2, {}, "exit 1"),
    ]
    await store.save_workflow(w, steps)
    assert await store.get_workflow("wf-1") == w
    assert sorted(await store.get_steps("wf-1"), key=lambda s: s.step_id) == steps
    assert await store.get_workflow("nope") is None
    assert await store.get_steps("nope") == []

    # Replacing: the workflow row and one step change, the other step stays.
    w.state, w.reason, w.updated_ms = "FAILED", "train failed", 3_000
    await store.save_workflow(w, [StepRow("wf-1", "train", "eu-west", "FAILED", 2, {}, "exit 2")])
    assert (await store.get_workflow("wf-1")).state == "FAILED"
    got = {s.step_id: s for s in await store.get_steps("wf-1")}
    assert got["train"].error == "exit 2"
    assert got["extract"] == steps[0]

    await store.save_steps([StepRow("wf-1", "report", "partner", "SKIPPED")])
    await store.save_steps([])
    assert len(await store.get_steps("wf-1")) == 3


async def test_list_workflows_in_creation_order(store: Store) -> None:
    await store.save_workflow(workflow("wf-b", created_ms=2))
    await store.save_workflow(workflow("wf-a", created_ms=3))
    await store.save_workflow(workflow("wf-c", created_ms=1))
    assert [w.id for w in await store.list_workflows()] == ["wf-c", "wf-b", "wf-a"]


async def test_request_id_lookup(store: Store) -> None:
    await store.save_workflow(workflow("wf-1", request_id="req-1"))
    await store.save_workflow(workflow("wf-2"))
    await store.save_workflow(workflow("wf-3"))  # several rows without a request id is fine
    found = await store.find_by_request_id("req-1")
    assert found is not None and found.id == "wf-1"
    assert await store.find_by_request_id("req-2") is None
    # Saving the same workflow again keeps its request id.
    await store.save_workflow(workflow("wf-1", request_id="req-1", state="SUCCEEDED"))
    found = await store.find_by_request_id("req-1")
    assert found is not None and (found.id, found.state) == ("wf-1", "SUCCEEDED")
    assert len(await store.list_workflows()) == 3


async def test_another_workflow_cannot_take_a_request_id(store: Store) -> None:
    await store.save_workflow(workflow("wf-1", request_id="req-1"))
    with pytest.raises(sqlite3.IntegrityError):
        await store.save_workflow(workflow("wf-2", request_id="req-1"))
    assert await store.get_workflow("wf-1") is not None
    found = await store.find_by_request_id("req-1")
    assert found is not None and found.id == "wf-1"


# ---- decisions --------------------------------------------------------------------------


async def test_record_decision_is_write_once(store: Store) -> None:
    assert await store.get_decision("wf-1", 1) is None
    assert await store.record_decision("wf-1", 1, "ABORT", b"abort-env") == ("ABORT", b"abort-env")
    # The other outcome for the same round loses: the caller gets what holds.
    assert await store.record_decision("wf-1", 1, "COMMIT", b"commit-env") == (
        "ABORT", b"abort-env")
    assert await store.get_decision("wf-1", 1) == ("ABORT", b"abort-env")
    assert await store.get_commit("wf-1") is None
    # Another round is another cell.
    assert await store.record_decision("wf-1", 2, "COMMIT", b"c2") == ("COMMIT", b"c2")
    assert await store.get_commit("wf-1") == (2, b"c2")
    assert await store.get_commit("wf-2") is None


async def test_write_once_cells_in_a_callers_own_transaction(store: Store) -> None:
    """The statements say whether they won their cell: one row changed, or none."""
    w = workflow(state="RUNNING")
    counts = await store.save_workflow(w, also=[
        store.decision_statement("wf-1", 1, "COMMIT", b"cert"),
        store.learn_statement("wf-1", 1, "COMMIT", b"value")])
    assert counts == [1, 1]
    assert await store.get_decision("wf-1", 1) == ("COMMIT", b"cert")
    assert await store.get_learned("wf-1", 1) == ("COMMIT", b"value")
    assert (await store.get_workflow("wf-1")).state == "RUNNING"
    assert await store.apply([store.decision_statement("wf-1", 1, "ABORT", b"late"),
                              store.learn_statement("wf-1", 1, "ABORT", b"late")]) == [0, 0]
    assert await store.get_decision("wf-1", 1) == ("COMMIT", b"cert")
    assert await store.get_learned("wf-1", 1) == ("COMMIT", b"value")


# ---- reservations -----------------------------------------------------------------------


async def test_reservations_save_list_delete(store: Store) -> None:
    a = ReservationRow("wf-1", 1, "eu-west", "prepared",
                       [("train", "ml.train"), ("extract", "data.extract")], 31_000,
                       "127.0.0.1:7101")
    b = ReservationRow("wf-2", 3, "us-east", "committed", [("x", "ml.train")], 40_000)
    await store.save_reservation(a)
    await store.save_reservation(b)
    got = sorted(await store.list_reservations(), key=lambda r: r.workflow_id)
    assert got == [a, b]
    assert all(isinstance(s, tuple) for s in got[0].steps)
    # Saving again replaces (the state moves on, slots are released one by one).
    a.state, a.steps = "committed", [("extract", "data.extract")]
    await store.save_reservation(a)
    assert sorted(await store.list_reservations(), key=lambda r: r.workflow_id) == [a, b]
    await store.delete_reservation("wf-1", 1)
    await store.delete_reservation("wf-1", 1)  # idempotent
    await store.delete_reservation("wf-2", 4)  # another round: untouched
    assert await store.list_reservations() == [b]


# ---- step runs --------------------------------------------------------------------------


async def _start(store: Store, workflow_id: str, step_id: str, attempt: int,
                 now_ms: int, row: WorkflowRow | None = None) -> bool:
    """Start an attempt as the participant does (with its workflow's row); False if it
    was started before."""
    try:
        await store.save_workflow(row or workflow(workflow_id), also=[
            Store.start_run_statement(workflow_id, step_id, attempt, now_ms)])
    except sqlite3.IntegrityError:
        return False
    return True


async def test_an_attempt_starts_once(store: Store) -> None:
    assert await _start(store, "wf-1", "train", 1, 100) is True
    assert await _start(store, "wf-1", "train", 1, 200) is False
    assert await _start(store, "wf-1", "train", 2, 300) is True
    assert await _start(store, "wf-1", "report", 1, 300) is True
    assert await _start(store, "wf-2", "train", 1, 300) is True
    await store.save_workflow(workflow(), also=[
        Store.end_run_statement("wf-1", "train", 1, "failed", 150)])
    assert await _start(store, "wf-1", "train", 1, 400) is False  # even after it ended
    assert await store.runs_of("wf-1") == [
        ("report", 1, "running"), ("train", 1, "failed"), ("train", 2, "running"),
    ]


async def test_an_attempt_starts_with_its_step_state_once_and_ends_with_its_release(
        store: Store) -> None:
    w = workflow()
    r = ReservationRow("wf-1", 1, "eu-west", "committed", [("extract", "data.extract")], 9)
    await store.save_reservation(r)
    running = StepRow("wf-1", "extract", "eu-west", "RUNNING", 1)
    start = Store.start_run_statement("wf-1", "extract", 1, 100)
    await store.save_workflow(w, [running], also=[start])
    # The same attempt again: refused whole, the step state with it.
    again = StepRow("wf-1", "extract", "eu-west", "RUNNING", 7)
    with pytest.raises(sqlite3.IntegrityError):
        await store.save_workflow(w, [again], also=[start])
    assert await store.get_steps("wf-1") == [running]
    assert await store.runs_of("wf-1") == [("extract", 1, "running")]
    # Its end, the reservation it frees and the step's new state: one transaction.
    done = StepRow("wf-1", "extract", "eu-west", "SUCCEEDED", 1, {"rows": 3})
    await store.save_workflow(w, [done], also=[
        Store.end_run_statement("wf-1", "extract", 1, "succeeded", 200),
        Store.delete_reservation_statement("wf-1", 1)])
    assert await store.runs_of("wf-1") == [("extract", 1, "succeeded")]
    assert await store.list_reservations() == []
    assert await store.get_steps("wf-1") == [done]


# ---- durability ---------------------------------------------------------------------------


async def test_reopen_finds_everything(tmp_path: Path) -> None:
    data = tmp_path / "data"
    s = await Store.open(data)
    w = workflow(request_id="req-9")
    await s.save_workflow(w, [StepRow("wf-1", "extract", "eu-west", "RUNNING", 1)])
    await s.record_decision("wf-1", 2, "COMMIT", b"cert")
    r = ReservationRow("wf-1", 2, "eu-west", "committed", [("extract", "data.extract")], 9)
    await s.save_reservation(r)
    assert await _start(s, "wf-1", "extract", 1, 5, row=w)
    await s.set_meta("incarnation", "4")
    await s.close()

    s = await Store.open(data)
    try:
        assert await s.get_workflow("wf-1") == w
        assert (await s.find_by_request_id("req-9")).id == "wf-1"
        assert await s.get_steps("wf-1") == [
            StepRow("wf-1", "extract", "eu-west", "RUNNING", 1)
        ]
        assert await s.get_commit("wf-1") == (2, b"cert")
        assert await s.list_reservations() == [r]
        assert await _start(s, "wf-1", "extract", 1, 6, row=w) is False
        assert await s.runs_of("wf-1") == [("extract", 1, "running")]
        assert await s.get_meta("incarnation") == "4"
        assert await s.get_meta("schema_version") == str(SCHEMA_VERSION)
    finally:
        await s.close()


async def test_a_newer_schema_version_refuses_to_open(tmp_path: Path) -> None:
    data = tmp_path / "data"
    s = await Store.open(data)
    await s.set_meta("schema_version", str(SCHEMA_VERSION + 1))
    await s.close()
    with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1}"):
        await Store.open(data)
    # Refusing changed nothing: the newer version is still recorded.
    with sqlite3.connect(data / "agent.db") as db:
        row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    assert row == (str(SCHEMA_VERSION + 1),)


# ---- Paxos Commit ---------------------------------------------------------------------------


async def test_paxos_tables_exist_and_a_workflow_keeps_its_acceptors(store: Store) -> None:
    async with store._db.execute("SELECT name FROM sqlite_master WHERE type='table'") as cur:
        tables = {r[0] for r in await cur.fetchall()}
    assert {"acceptor_records", "proposals", "ballots", "learned", "hold_txs"} <= tables
    w = workflow(acceptors=["eu-west", "partner", "us-east"])
    await store.save_workflow(w)
    assert (await store.get_workflow("wf-1")).acceptors == ["eu-west", "partner", "us-east"]
    assert workflow().acceptors == []  # classic rounds have none


async def test_a_version_1_data_dir_is_upgraded_in_place(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    with sqlite3.connect(data / "agent.db") as db:
        db.executescript(MIGRATIONS[0] + ";INSERT INTO meta VALUES('schema_version', '1');"
                         "INSERT INTO workflows(id, name, coordinator, state, spec, created_ms,"
                         " updated_ms) VALUES('wf-old', 'n', 'eu-west', 'RUNNING', x'00', 1, 2);")
    s = await Store.open(data)
    try:
        assert await s.get_meta("schema_version") == str(SCHEMA_VERSION)
        old = await s.get_workflow("wf-old")
        assert old is not None and old.acceptors == [] and old.state == "RUNNING"
        assert await s.get_proposal("wf-old", 1) is None
    finally:
        await s.close()


async def test_proposal_cell_is_compare_and_set(store: Store) -> None:
    assert await store.get_proposal("wf-1", 1) is None
    assert await store.propose("wf-1", 1, "COMMIT", b"v-commit") == ("COMMIT", b"v-commit")
    # A later ABORT (a timeout, a presumed abort) finds COMMIT there and must act on it.
    assert await store.propose("wf-1", 1, "ABORT", b"v-abort") == ("COMMIT", b"v-commit")
    assert await store.get_proposal("wf-1", 1) == ("COMMIT", b"v-commit")
    assert await store.propose("wf-1", 2, "ABORT", b"a") == ("ABORT", b"a")
    await store.save_ballot("wf-1", 1, 3, "partner")
    await store.save_ballot("wf-1", 2, 1, "partner")
    # Spent only once COMMIT is the decision on record: an ABORT decision keeps them.
    assert await store.record_decision(
        "wf-1", 2, "ABORT", b"d-abort",
        also=Store.spent_proposal_statements("wf-1", 2)) == ("ABORT", b"d-abort")
    assert await store.get_proposal("wf-1", 2) == ("ABORT", b"a")
    assert await store.get_ballot("wf-1", 2) == (1, "partner")
    # The COMMIT decision and the collection of its cell and ballot: one transaction.
    assert await store.record_decision(
        "wf-1", 1, "COMMIT", b"d-commit",
        also=Store.spent_proposal_statements("wf-1", 1)) == ("COMMIT", b"d-commit")
    assert await store.get_proposal("wf-1", 1) is None
    assert await store.get_ballot("wf-1", 1) is None
    assert await store.get_proposal("wf-1", 2) == ("ABORT", b"a")


async def test_learned_decision_is_write_once(store: Store) -> None:
    assert await store.get_learned("wf-1", 1) is None
    assert await store.learn("wf-1", 1, "ABORT", b"abort") == ("ABORT", b"abort")
    assert await store.learn("wf-1", 1, "COMMIT", b"commit") == ("ABORT", b"abort")
    assert await store.learn("wf-1", 2, "COMMIT", b"cert") == ("COMMIT", b"cert")
    assert sorted(await store.list_learned()) == [
        ("wf-1", 1, "ABORT", b"abort"), ("wf-1", 2, "COMMIT", b"cert")]


async def test_ballot_only_grows(store: Store) -> None:
    assert await store.get_ballot("wf-1", 1) is None
    await store.save_ballot("wf-1", 1, 2, "partner")
    await store.save_ballot("wf-1", 1, 1, "partner")  # an older write landing late
    assert await store.get_ballot("wf-1", 1) == (2, "partner")
    await store.save_ballot("wf-1", 1, 5, "partner")
    assert await store.get_ballot("wf-1", 1) == (5, "partner")
    assert await store.get_ballot("wf-1", 2) is None


async def test_acceptor_records_are_replaced_and_read_back(store: Store) -> None:
    assert not await store.has_acceptor_records()
    assert await store.get_acceptor_record("wf-1", 1) is None
    fresh = AcceptorRow("wf-1", 1, b"tx", promised=(2, "partner"))
    await store.save_acceptor(fresh)
    assert await store.has_acceptor_records()
    assert await store.get_acceptor_record("wf-1", 1) == fresh
    accepted = AcceptorRow("wf-1", 1, b"tx", promised=(3, "us-east"), accepted=(3, "us-east"),
                           accepted_value=b"abort")
    await store.save_acceptor(accepted)
    other = AcceptorRow("wf-2", 4, b"tx2", decided=b"commit")
    await store.save_acceptor(other)
    assert await store.get_acceptor_record("wf-1", 1) == accepted
    assert await store.get_acceptor_record("wf-2", 4) == other


async def test_own_acceptor_record_goes_with_a_commit_proposal_only(store: Store) -> None:
    def propose_and_accept(round_: int) -> list:
        record = AcceptorRow("wf-1", round_, b"tx", promised=(0, "us"), accepted=(0, "us"),
                             accepted_value=b"commit")
        return [Store.proposal_statement("wf-1", round_, "COMMIT", b"commit"),
                Store.acceptor_statement(record, if_proposed_commit=True)]

    # The cell was empty: cell and record in one transaction.
    assert await store.apply(propose_and_accept(1)) == [1, 1]
    assert await store.get_proposal("wf-1", 1) == ("COMMIT", b"commit")
    assert (await store.get_acceptor_record("wf-1", 1)).accepted == (0, "us")
    # The cell held ABORT already: neither the cell nor the acceptor's COMMIT is written.
    await store.propose("wf-1", 2, "ABORT", b"abort")
    assert await store.apply(propose_and_accept(2)) == [0, 0]
    assert await store.get_proposal("wf-1", 2) == ("ABORT", b"abort")
    assert await store.get_acceptor_record("wf-1", 2) is None


async def test_reservation_and_its_prepare_are_written_together(store: Store) -> None:
    r = ReservationRow("wf-1", 2, "eu-west", "reserved", [("x", "ml.train")], 9_000)
    tx = HoldTxRow("wf-1", 2, b"paxos-tx", b"spec", {"x": "partner"}, "127.0.0.1:7101")
    assert await store.get_hold_tx("wf-1", 2) is None
    await store.save_reservation(r, tx=tx)
    assert await store.get_hold_tx("wf-1", 2) == tx
    r.state = "prepared"
    await store.save_reservation(r)  # the second record: the TxInfo stays
    assert await store.list_reservations() == [r]
    assert await store.get_hold_tx("wf-1", 2) == tx
    # Atomic: a reservation whose PREPARE cannot be written is not written either.
    bad = HoldTxRow("wf-3", 1, None, b"", {}, "")  # type: ignore[arg-type]  # tx is NOT NULL
    with pytest.raises(sqlite3.IntegrityError):
        await store.save_reservation(ReservationRow("wf-3", 1, "c", "reserved", [], 1), tx=bad)
    assert [x.workflow_id for x in await store.list_reservations()] == ["wf-1"]


async def test_paxos_state_survives_a_reopen(tmp_path: Path) -> None:
    data = tmp_path / "data"
    s = await Store.open(data)
    await s.propose("wf-1", 1, "COMMIT", b"v")
    await s.learn("wf-1", 1, "COMMIT", b"v")
    await s.save_ballot("wf-1", 1, 7, "partner")
    rec = AcceptorRow("wf-1", 1, b"tx", (0, "eu-west"), (0, "eu-west"), b"v")
    await s.save_acceptor(rec)
    await s.close()
    s = await Store.open(data)
    try:
        assert await s.get_proposal("wf-1", 1) == ("COMMIT", b"v")
        assert await s.get_learned("wf-1", 1) == ("COMMIT", b"v")
        assert await s.get_ballot("wf-1", 1) == (7, "partner")
        # The record's decision comes from the learned log (the acceptor does not write it).
        assert await s.get_acceptor_record("wf-1", 1) == dataclasses.replace(rec, decided=b"v")
    finally:
        await s.close()


async def test_an_early_step_result_never_goes_back(store: Store) -> None:
    done = StepRow("wf-1", "s", "k3", "SUCCEEDED", 1, {"x": 1})
    await store.save_step_result(StepRow("wf-1", "s", "k3", "RUNNING", 1))
    await store.save_step_result(done)
    await store.save_step_result(StepRow("wf-1", "s", "k3", "RUNNING", 1))  # overtaken note
    assert await store.get_steps("wf-1") == [done]
    retry = StepRow("wf-1", "t", "k3", "RUNNING", 2)
    await store.save_step_result(StepRow("wf-1", "t", "k3", "FAILED", 1, {}, "boom"))
    await store.save_step_result(retry)  # a later attempt wins
    await store.save_step_result(StepRow("wf-1", "t", "k3", "FAILED", 1, {}, "boom"))
    assert sorted(await store.get_steps("wf-1"), key=lambda s: s.step_id) == [done, retry]


async def test_workflow_with_steps_in_one_read(store: Store) -> None:
    assert await store.get_workflow_with_steps("wf-1") == (None, {})
    # Results that came before their workflow: steps without a workflow row.
    await store.save_step_result(StepRow("wf-1", "train", "us-east", "SUCCEEDED", 1, {"k": 2}))
    assert await store.get_workflow_with_steps("wf-1") == (
        None, {"train": StepRow("wf-1", "train", "us-east", "SUCCEEDED", 1, {"k": 2})})
    w = workflow()
    await store.save_workflow(w, [StepRow("wf-1", "extract", "eu-west", "RUNNING", 1)])
    row, steps = await store.get_workflow_with_steps("wf-1")
    assert row == await store.get_workflow("wf-1") and row is not None and row.name == w.name
    assert sorted(steps) == ["extract", "train"]
    assert steps["extract"] == StepRow("wf-1", "extract", "eu-west", "RUNNING", 1)


async def test_a_collected_commit_keeps_its_cell(store: Store) -> None:
    await store.record_decision("wf-1", 1, "ABORT", b"abort-env")
    await store.record_decision("wf-1", 2, "COMMIT", b"certificate")
    await store.collect_commit("wf-1", 2)
    await store.collect_commit("wf-1", 1)  # an ABORT record is not collected this way
    assert await store.get_decision("wf-1", 1) == ("ABORT", b"abort-env")
    assert await store.get_decision("wf-1", 2) == ("COMMIT", b"")
    assert await store.get_commit("wf-1") == (2, b"")
    # The write-once cell still holds COMMIT: a presumed abort cannot take its place.
    assert await store.record_decision("wf-1", 2, "ABORT", b"late") == ("COMMIT", b"")
