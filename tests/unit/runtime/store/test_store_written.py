"""A save writes only what changed since the last write known to be on disk: the spec
and the submission once, unchanged step rows not at all; and what is read back is
always what was saved last, whatever order the writes were asked for in."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest
from fedorch.runtime.store import compaction
from fedorch.runtime.store.store import StepRow, Store, WorkflowRow


def _row(**kw) -> WorkflowRow:
    base = dict(id="c1.w1", name="w", coordinator="c1", state="NEGOTIATING", spec=b"S" * 500,
                submission=b"U" * 200, request_id="r1", created_ms=1, updated_ms=1)
    base.update(kw)
    return WorkflowRow(**base)


def _steps(state_a: str = "PENDING", state_b: str = "PENDING") -> list[StepRow]:
    return [StepRow("c1.w1", "a", "c1", state_a), StepRow("c1.w1", "b", "c2", state_b)]


async def test_later_saves_update_only_what_changed(tmp_path):
    store = await Store.open(tmp_path)
    try:
        before = store.statements
        await store.save_workflow(_row(), _steps())
        assert store.statements - before == 2  # the row, and both steps in one statement
        before = store.statements
        await store.save_workflow(_row(state="RUNNING", updated_ms=2), _steps("RUNNING"))
        # The row's UPDATE (state, updated_ms) and step a's row; b did not change.
        assert store.statements - before == 2
        row, steps = await store.get_workflow_with_steps("c1.w1")
        assert row == _row(state="RUNNING", updated_ms=2)
        assert {k: s.state for k, s in steps.items()} == {"a": "RUNNING", "b": "PENDING"}
    finally:
        await store.close()


async def test_concurrent_saves_leave_the_last_one_on_disk(tmp_path):
    store = await Store.open(tmp_path)
    try:
        await store.save_workflow(_row(), _steps())
        await asyncio.gather(
            store.save_workflow(_row(state="RUNNING", updated_ms=2), _steps("RUNNING")),
            store.save_workflow(_row(state="RUNNING", updated_ms=3), _steps("SUCCEEDED")),
            store.save_workflow(_row(state="RUNNING", updated_ms=4), _steps("RUNNING")))
        await store.save_workflow(_row(state="SUCCEEDED", updated_ms=5),
                                  _steps("RUNNING", "SUCCEEDED"))
        row, steps = await store.get_workflow_with_steps("c1.w1")
        assert (row.state, row.updated_ms) == ("SUCCEEDED", 5)
        assert {k: s.state for k, s in steps.items()} == {"a": "RUNNING", "b": "SUCCEEDED"}
    finally:
        await store.close()


async def test_a_failed_save_is_not_taken_for_written(tmp_path):
    store = await Store.open(tmp_path)
    try:
        await store.save_workflow(_row(), _steps())
        start = store.start_run_statement("c1.w1", "a", 1, 1)
        await store.save_workflow(_row(updated_ms=2), _steps("RUNNING"), also=[start])
        with pytest.raises(sqlite3.IntegrityError):  # the same attempt again: nothing kept
            await store.save_workflow(_row(state="RUNNING", updated_ms=3),
                                      _steps("SUCCEEDED"), also=[start])
        # Had the failed write been taken for written, this one would skip both.
        await store.save_workflow(_row(state="RUNNING", updated_ms=3), _steps("SUCCEEDED"))
        row, steps = await store.get_workflow_with_steps("c1.w1")
        assert row.state == "RUNNING"
        assert steps["a"].state == "SUCCEEDED"
    finally:
        await store.close()


async def test_rows_changed_elsewhere_are_written_in_full_next_time(tmp_path):
    store = await Store.open(tmp_path)
    try:
        await store.save_workflow(_row(state="SUCCEEDED"), _steps())
        await store.save_step_result(StepRow("c1.w1", "a", "c1", "SUCCEEDED", 1))
        await store.save_workflow(_row(state="SUCCEEDED", updated_ms=2), _steps())
        assert (await store.get_steps("c1.w1"))[0].state == "PENDING"
        removed = await compaction.compact(store, ["c1.w1"], {"SUCCEEDED"})
        assert removed["workflows"] == 1
        # A save after retention deleted the row puts it back whole.
        await store.save_workflow(_row(state="SUCCEEDED", updated_ms=3), _steps())
        row, steps = await store.get_workflow_with_steps("c1.w1")
        assert row == _row(state="SUCCEEDED", updated_ms=3)
        assert set(steps) == {"a", "b"}
    finally:
        await store.close()


async def test_the_most_steps_a_spec_may_have_go_in_one_statement(tmp_path):
    from fedorch.core.workflow.spec import MAX_STEPS
    store = await Store.open(tmp_path)
    try:
        steps = [StepRow("c1.w1", f"s{i}", "c1", "PENDING") for i in range(MAX_STEPS)]
        await store.save_workflow(_row(), steps)
        assert len(await store.get_steps("c1.w1")) == MAX_STEPS
    finally:
        await store.close()
