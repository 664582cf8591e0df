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


async def test_a_save_of_every_step_encodes_only_the_steps_that_changed(tmp_path, monkeypatch):
    # A wide workflow's coordinator saves every step at each result: the unchanged ones
    # must cost no JSON encoding (50 steps: 100 encodings per save before).
    from types import SimpleNamespace

    from fedorch.runtime.store import workflow_table as store_module

    encoded: list = []
    real = store_module.json
    monkeypatch.setattr(store_module, "json", SimpleNamespace(
        dumps=lambda value: encoded.append(value) or real.dumps(value), loads=real.loads))
    store = await Store.open(tmp_path)
    try:
        steps = [StepRow("c1.w1", f"t{i:02d}", f"d{i:02d}", "PENDING") for i in range(50)]
        await store.save_workflow(_row(), steps)
        encoded.clear()
        await store.save_workflow(_row(updated_ms=2), [])
        row_only = len(encoded)
        encoded.clear()
        steps[7] = StepRow("c1.w1", "t07", "d07", "SUCCEEDED", 1, {"n": 7})
        await store.save_workflow(_row(updated_ms=3), steps)
        assert len(encoded) - row_only == 2  # t07's outputs and its replaced_from
        assert {"n": 7} in encoded
        _, on_disk = await store.get_workflow_with_steps("c1.w1")
        assert (on_disk["t07"].state, on_disk["t07"].outputs) == ("SUCCEEDED", {"n": 7})
        assert on_disk["t08"].state == "PENDING"
    finally:
        await store.close()


async def test_outputs_changed_in_place_after_a_save_are_written_again(tmp_path):
    store = await Store.open(tmp_path)
    try:
        outputs = {"n": 1}
        steps = [StepRow("c1.w1", "a", "c1", "SUCCEEDED", 1, outputs)]
        await store.save_workflow(_row(), steps)
        outputs["n"] = 2  # what was kept as written is a copy, not this dict
        await store.save_workflow(_row(updated_ms=2), steps)
        _, on_disk = await store.get_workflow_with_steps("c1.w1")
        assert on_disk["a"].outputs == {"n": 2}
    finally:
        await store.close()


async def test_a_save_while_another_is_on_its_way_encodes_only_changed_rows(tmp_path,
                                                                          monkeypatch):
    # The results of a wide fan-out come close together: its coordinator's saves overlap.
    rows_written: list[str] = []
    encode = Store._step_args_of
    monkeypatch.setattr(Store, "_step_args_of", staticmethod(
        lambda v: rows_written.append(v[1]) or encode(v)))
    store = await Store.open(tmp_path)
    try:
        steps = [StepRow("c1.w1", f"t{i:02d}", f"d{i:02d}", "PENDING") for i in range(30)]
        await store.save_workflow(_row(), steps)
        later = [*steps]
        later[3] = StepRow("c1.w1", "t03", "d03", "SUCCEEDED", 1)
        latest = [*later]
        latest[4] = StepRow("c1.w1", "t04", "d04", "SUCCEEDED", 1)
        rows_written.clear()
        await asyncio.gather(store.save_workflow(_row(updated_ms=2), later),
                             store.save_workflow(_row(updated_ms=3), latest))
        # Encoded: t03 by the first; t04 by the second, which writes t03 again (the first
        # is still on its way) with the first's encoding. Not thirty rows each.
        assert rows_written == ["t03", "t04"]
        _, on_disk = await store.get_workflow_with_steps("c1.w1")
        assert (on_disk["t03"].state, on_disk["t04"].state) == ("SUCCEEDED", "SUCCEEDED")
        assert on_disk["t05"].state == "PENDING"
    finally:
        await store.close()


async def test_a_row_a_write_on_its_way_changes_is_written_again_by_the_next(tmp_path):
    # The first write sets t1 RUNNING; the second, begun while the first is on its way,
    # sets it back: it must write t1 although t1 equals what was on disk before both.
    store = await Store.open(tmp_path)
    try:
        await store.save_workflow(_row(), _steps())
        await asyncio.gather(store.save_workflow(_row(updated_ms=2), _steps("RUNNING")),
                             store.save_workflow(_row(updated_ms=3), _steps("PENDING")))
        _, on_disk = await store.get_workflow_with_steps("c1.w1")
        assert on_disk["a"].state == "PENDING"
    finally:
        await store.close()


async def test_a_failed_write_on_its_way_leaves_its_rows_to_the_next(tmp_path):
    # The first write fails (its attempt was started before); the second, begun while it
    # was on its way and changing nothing more, still writes the row the first would have.
    store = await Store.open(tmp_path)
    try:
        await store.save_workflow(_row(), _steps(), also=[
            Store.start_run_statement("c1.w1", "a", 1, 5)])
        results = await asyncio.gather(
            store.save_workflow(_row(updated_ms=2), _steps("RUNNING"), also=[
                Store.start_run_statement("c1.w1", "a", 1, 6)]),
            store.save_workflow(_row(updated_ms=3), _steps("RUNNING")),
            return_exceptions=True)
        assert isinstance(results[0], sqlite3.IntegrityError) and results[1] == []
        _, on_disk = await store.get_workflow_with_steps("c1.w1")
        assert on_disk["a"].state == "RUNNING"
    finally:
        await store.close()
