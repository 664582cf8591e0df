"""Retention's SQL: the facts read of ended workflows, and deletion that takes every
record of a chosen workflow but the audit log's, and nothing of any other."""

from __future__ import annotations

from fedorch.core.workflow.lifecycle import TERMINAL_NAMES
from fedorch.core.workflow.retention import compactable, leftovers_compactable
from fedorch.runtime.store import compaction
from fedorch.runtime.store.audit_table import append_statement
from fedorch.runtime.store.store import AcceptorRow, ReservationRow, Store, WorkflowRow


def row(workflow_id: str, state: str, ended_ms: int) -> WorkflowRow:
    return WorkflowRow(id=workflow_id, name="n", coordinator="eu", state=state, spec=b"s",
                       created_ms=ended_ms, updated_ms=ended_ms)


async def count(store: Store, table: str, workflow_id: str) -> int:
    column = "id" if table == "workflows" else "workflow_id"
    rows = await store.select(f"SELECT count(*) FROM {table} WHERE {column} = ?",
                              (workflow_id,))
    return rows[0][0]


async def test_only_ended_workflows_no_peer_may_ask_about_are_compacted(tmp_path):
    store = await Store.open(tmp_path)
    try:
        for i in range(6):
            await store.save_workflow(row(f"w.{i}", "SUCCEEDED", 1000 + i))
        await store.save_workflow(row("w.running", "RUNNING", 1))
        # w.0: an in-doubt participant's reservation; w.1: a kept COMMIT certificate;
        # w.2: an acceptor record without a learned outcome; w.3: a decided acceptor
        # record, a collected COMMIT, a finished run and an audit record.
        await store.save_reservation(ReservationRow("w.0", 1, "eu", "prepared",
                                                    [("a", "cap")], 0))
        await store.record_decision("w.1", 1, "COMMIT", b"certificate")
        await store.save_acceptor(AcceptorRow("w.2", 1, b"tx", None, None, None, None))
        await store.save_acceptor(AcceptorRow("w.3", 1, b"tx", None, None, None, b"c"))
        # w.4: the coordinator's own acceptor record; the decision it recorded is the outcome.
        await store.save_acceptor(AcceptorRow("w.4", 1, b"tx", None, None, None, None))
        await store.record_decision("w.4", 1, "ABORT", b"abort")
        await store.record_decision("w.3", 1, "COMMIT", b"certificate")
        await store.collect_commit("w.3", 1)
        await store.apply([store.start_run_statement("w.3", "a", 1, 5),
                           store.end_run_statement("w.3", "a", 1, "succeeded", 6),
                           append_statement("step_started", "w.3", 5, {"step": "a"})])

        candidates, cursor = await compaction.ended_candidates(
            store, TERMINAL_NAMES, cutoff_ms=10_000, keep_newest=1, limit=100)
        assert cursor is None  # one page held them all
        facts = {c.workflow_id: c for c in candidates}
        # Not ended, in doubt, awaiting an acknowledgement: not even candidates.
        assert not {"w.running", "w.0", "w.1"} & set(facts)
        assert facts["w.2"].acceptor_undecided
        assert facts["w.3"].acceptor_record and not facts["w.3"].acceptor_undecided
        assert facts["w.4"].acceptor_record and not facts["w.4"].acceptor_undecided
        chosen = compactable(candidates, now=10.0, keep_ended_s=1, max_ended_workflows=1,
                             limit=100)
        assert chosen == ["w.3", "w.4", "w.5"]

        removed = await compaction.compact(store, chosen, TERMINAL_NAMES)
        assert removed["workflows"] == 3
        assert removed["acceptor_records"] == 2 and removed["step_runs"] == 1
        for gone in chosen:
            assert await store.get_workflow(gone) is None
        assert await store.get_decision("w.3", 1) is None
        assert await count(store, "step_runs", "w.3") == 0
        for kept in ("w.0", "w.1", "w.2", "w.running"):
            assert await store.get_workflow(kept) is not None
        assert await store.get_decision("w.1", 1) == ("COMMIT", b"certificate")
        assert await count(store, "reservations", "w.0") == 1
        assert await count(store, "acceptor_records", "w.2") == 1
        # The audit log is append-only: its record of w.3 stays.
        assert len(await store.audit_records("w.3")) == 1
    finally:
        await store.close()


async def test_a_workflow_that_became_askable_after_the_read_is_left_whole(tmp_path):
    store = await Store.open(tmp_path)
    try:
        await store.save_workflow(row("w.1", "ABORTED", 1))
        await store.record_decision("w.1", 1, "ABORT", b"abort")
        # Between the facts and the delete, a reservation appears: the transaction
        # checks again and deletes nothing.
        await store.save_reservation(ReservationRow("w.1", 2, "eu", "prepared", [], 0))
        assert await compaction.compact(store, ["w.1"], TERMINAL_NAMES) == {}
        assert await store.get_workflow("w.1") is not None
        assert await store.get_decision("w.1", 1) == ("ABORT", b"abort")
    finally:
        await store.close()


async def test_facts_of_an_in_doubt_or_unacknowledged_workflow_say_so(tmp_path):
    store = await Store.open(tmp_path)
    try:
        await store.save_workflow(row("w.0", "ABORTED", 1))
        await store.save_workflow(row("w.1", "SUCCEEDED", 2))
        await store.save_reservation(ReservationRow("w.0", 1, "eu", "prepared", [], 0))
        await store.record_decision("w.1", 1, "COMMIT", b"certificate")
        await store.apply([store.start_run_statement("w.1", "a", 1, 5)])
        # Read by id, as a pass would if these changed after its candidate query.
        rows = await store.select(
            compaction._FACTS.format(ids="?, ?"), ("w.0", "w.1"))
        facts = {r[0]: r for r in rows}
        assert facts["w.0"][2] == 1  # holds a reservation
        assert facts["w.1"][3] == 1 and facts["w.1"][5] == 1  # a running attempt, a kept COMMIT
        # The count bound passes both over, however far beyond it they are.
        candidates, _ = await compaction.ended_candidates(
            store, TERMINAL_NAMES, cutoff_ms=10_000, keep_newest=1, limit=100)
        assert candidates == []
    finally:
        await store.close()


async def test_the_count_bound_keeps_the_newest(tmp_path):
    store = await Store.open(tmp_path)
    try:
        for i in range(8):
            await store.save_workflow(row(f"w.{i}", "FAILED", 1000 + i))
        candidates, _ = await compaction.ended_candidates(
            store, TERMINAL_NAMES, cutoff_ms=0, keep_newest=5, limit=100)
        chosen = compactable(candidates, now=2.0, keep_ended_s=3600, max_ended_workflows=5,
                             limit=100)
        assert chosen == ["w.0", "w.1", "w.2"]
        await compaction.compact(store, chosen, TERMINAL_NAMES)
        assert await compaction.count_ended(store, TERMINAL_NAMES) == 5
    finally:
        await store.close()


async def test_the_horizon_only_rises_and_counts_ids_named_here(tmp_path):
    store = await Store.open(tmp_path)
    try:
        assert await compaction.horizon_ms(store) == -1
        newer, older = "eu.00000000ffff00000001", "eu.0000000000ff00000002"
        for workflow_id in (newer, older, "us.0000ffffffff00000003"):
            await store.save_workflow(row(workflow_id, "SUCCEEDED", 1))
        await compaction.compact(store, [newer, "us.0000ffffffff00000003"], TERMINAL_NAMES,
                                 "eu")
        assert await compaction.horizon_ms(store) == 0xffff
        await compaction.compact(store, [older], TERMINAL_NAMES, "eu")
        assert await compaction.horizon_ms(store) == 0xffff
    finally:
        await store.close()


async def test_leftover_records_go_only_without_row_reservation_or_undecided_record(tmp_path):
    store = await Store.open(tmp_path)
    try:
        decided, undecided, held, rowed = ("eu.000000000001aaaaaaaa", "eu.000000000002bbbbbbbb",
                                           "eu.000000000003cccccccc", "eu.000000000004dddddddd")
        for workflow_id in (decided, undecided, held, rowed):
            await store.save_acceptor(AcceptorRow(workflow_id, 1, b"tx", None, None, None,
                                                  None if workflow_id == undecided else b"d"))
        await store.learn(decided, 1, "COMMIT", b"value")
        await store.save_reservation(ReservationRow(held, 1, "eu", "prepared", [], 0))
        await store.save_workflow(row(rowed, "RUNNING", 1))
        page, cursor = await compaction.leftovers(store, 100)
        assert cursor == ""  # one page held them all
        found = {item.workflow_id: item for item in page}
        assert set(found) == {decided, undecided}
        assert found[undecided].acceptor_undecided and not found[decided].acceptor_undecided
        chosen = leftovers_compactable(found.values(), now_ms=10_000_000, keep_ended_s=1,
                                       settle_s=1, limit=10)
        assert chosen == [decided]
        removed = await compaction.compact_leftovers(store, [decided, held])
        assert removed == {"acceptor_records": 1, "learned": 1}
        assert await store.get_acceptor_record(decided, 1) is None
        assert await store.get_acceptor_record(held, 1) is not None  # its reservation stays
    finally:
        await store.close()


async def test_candidates_page_past_old_ones_kept_for_another_reason(tmp_path):
    """Five old acceptor workflows (kept within keep_ended_s even beyond the count) come
    first; a page of two holds only them, so paging on is what reaches the due ones."""
    store = await Store.open(tmp_path)
    try:
        for i in range(8):
            await store.save_workflow(row(f"w.{i}", "SUCCEEDED", 1000 + i))
        for i in range(5):
            await store.save_acceptor(AcceptorRow(f"w.{i}", 1, b"tx", None, None, None, b"d"))
        chosen_all: list[str] = []
        cursor = None
        pages = 0
        while True:
            candidates, cursor = await compaction.ended_candidates(
                store, TERMINAL_NAMES, cutoff_ms=0, keep_newest=1, limit=2, after=cursor)
            pages += 1
            chosen_all += compactable(candidates, now=2.0, keep_ended_s=3600,
                                      max_ended_workflows=1, limit=2)
            if cursor is None:
                break
        # w.7 is the newest (kept by the count); w.5 and w.6 are due, behind 5 kept ones.
        assert chosen_all == ["w.5", "w.6"]
        assert pages == 4  # [w.0 w.1] [w.2 w.3] [w.4 w.5] [w.6]
        first, cursor = await compaction.ended_candidates(
            store, TERMINAL_NAMES, cutoff_ms=0, keep_newest=1, limit=2)
        assert [c.workflow_id for c in first] == ["w.0", "w.1"] and cursor == (1001, "w.1")
    finally:
        await store.close()


async def test_a_retention_pass_reaches_due_workflows_behind_more_kept_than_a_page(tmp_path):
    """Through the agent's own pass: 250 kept acceptor workflows older than 3 due ones
    (a page holds 200); the due ones go in the first pass."""
    from fedorch.runtime.coordination_log import COMPACT_BATCH

    store = await Store.open(tmp_path)
    try:
        kept = COMPACT_BATCH + 50
        for i in range(kept + 4):
            await store.save_workflow(row(f"w.{i:04d}", "SUCCEEDED", 1000 + i))
        for i in range(kept):
            await store.save_acceptor(AcceptorRow(f"w.{i:04d}", 1, b"tx", None, None, None,
                                                  b"d"))
        log = _retention_log(store, keep_ended_s=3600, max_ended_workflows=1, now_ms=10_000)
        assert await log.compact_ended() == 3
        left = {r[0] for r in await store.select("SELECT id FROM workflows", ())}
        assert len(left) == kept + 1 and f"w.{kept + 3:04d}" in left
    finally:
        await store.close()


def _retention_log(store: Store, *, keep_ended_s: float, max_ended_workflows: int,
                   now_ms: int):
    """A DecisionLog over `store` with only what compact_ended reads of its agent."""
    from types import SimpleNamespace

    from fedorch.runtime.coordination_log import DecisionLog
    from fedorch.runtime.metrics import AgentMetrics

    forgotten: list[str] = []
    agent = SimpleNamespace(
        store=store, domain="eu", active={}, metrics=AgentMetrics(), now_ms=lambda: now_ms,
        now=lambda: now_ms / 1000, on_settled=[], forget=forgotten.extend,
        config=SimpleNamespace(
            retention=SimpleNamespace(keep_ended_s=keep_ended_s,
                                      max_ended_workflows=max_ended_workflows),
            negotiation=SimpleNamespace(replay_window_s=1.0)))
    return DecisionLog(agent, None, {}, {}, None)
