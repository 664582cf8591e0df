"""Agent.status answers active workflows from what their last saves wrote, never from
state that is not on disk yet, and falls back to SQLite when memory does not hold every
step row (an in-process agent on a temporary data dir; no network)."""

from __future__ import annotations

import asyncio

from fedorch.core.workflow import values
from fedorch.core.workflow.progress import Progress, StepState
from fedorch.gen.fedorch.v1 import spec_pb2, status_pb2
from fedorch.runtime import context as context_module
from fedorch.runtime.agent import Active, Agent
from fedorch.runtime.store.store import StepRow, WorkflowRow
from google.protobuf import json_format

SPEC = json_format.ParseDict({"name": "two", "steps": [
    {"id": "a", "capability": "x"}, {"id": "b", "capability": "x", "needs": ["a"]}]},
    spec_pb2.WorkflowSpec())


def _active(agent: Agent, wf: str = "alpha.1") -> Active:
    row = WorkflowRow(id=wf, name="two", coordinator="alpha", state="NEGOTIATING",
                      spec=SPEC.SerializeToString(), placement={"a": "alpha", "b": "alpha"},
                      created_ms=1, updated_ms=1)
    active = Active(row)
    agent.active[wf] = active
    return active


def _states(status: status_pb2.WorkflowStatus) -> tuple[str, list[str]]:
    return (status_pb2.WorkflowState.Name(status.state),
            [status_pb2.StepState.Name(s.state) for s in status.steps])


async def _reads(agent: Agent, wf: str) -> int:
    """How many times status() read SQLite for `wf` (0 or 1)."""
    calls = []
    original = agent.store.get_workflow_with_steps

    async def counting(workflow_id):
        calls.append(workflow_id)
        return await original(workflow_id)

    agent.store.get_workflow_with_steps = counting  # type: ignore[method-assign]
    try:
        await agent.status(wf)
    finally:
        agent.store.get_workflow_with_steps = original  # type: ignore[method-assign]
    return len(calls)


async def test_status_comes_from_the_last_save_not_from_unsaved_memory(agent: Agent) -> None:
    active = _active(agent)
    await agent.save(active)
    assert _states(await agent.status("alpha.1")) == (
        "WORKFLOW_STATE_NEGOTIATING", ["STEP_STATE_PENDING", "STEP_STATE_PENDING"])
    assert await _reads(agent, "alpha.1") == 0

    active.row.state = "RUNNING"
    active.progress = Progress(SPEC, active.row.placement, "alpha")
    # Changed in memory, not saved: status still says what is on disk.
    assert _states(await agent.status("alpha.1"))[0] == "WORKFLOW_STATE_NEGOTIATING"
    await agent.save(active)
    active.progress.apply_result("a", 1, StepState.SUCCEEDED, {"n": 1}, "")
    assert _states(await agent.status("alpha.1")) == (
        "WORKFLOW_STATE_RUNNING", ["STEP_STATE_WAITING", "STEP_STATE_WAITING"])
    await agent.save(active, steps=["a"])  # a partial save updates a complete entry
    status = await agent.status("alpha.1")
    assert _states(status) == ("WORKFLOW_STATE_RUNNING",
                               ["STEP_STATE_SUCCEEDED", "STEP_STATE_WAITING"])
    assert values.read_object(status.steps[0], "outputs") == {"n": 1}
    assert await _reads(agent, "alpha.1") == 0
    # Memory and disk agree, and the final entry stays for the watchers that come next.
    agent.finished("alpha.1")
    assert await agent.status("alpha.1") == status
    assert await _reads(agent, "alpha.1") == 0
    agent._final.clear()
    assert await agent.status("alpha.1") == status
    assert await _reads(agent, "alpha.1") == 1


async def test_a_partial_first_save_leaves_status_to_sqlite(agent: Agent) -> None:
    # A workflow reloaded after a restart: step b's row is on disk, not in memory.
    active = _active(agent, "alpha.2")
    active.row.state = "RUNNING"
    await agent.store.save_workflow(active.row, [StepRow("alpha.2", "b", "alpha", "FAILED", 1,
                                                         {}, "boom")])
    active.progress = Progress(SPEC, active.row.placement, "alpha")
    active.progress.apply_result("a", 1, StepState.SUCCEEDED, {}, "")
    await agent.save(active, steps=["a"])
    assert await _reads(agent, "alpha.2") == 1
    assert _states(await agent.status("alpha.2"))[1] == [
        "STEP_STATE_SUCCEEDED", "STEP_STATE_FAILED"]


async def test_a_write_after_the_end_leaves_status_to_sqlite(agent: Agent) -> None:
    active = _active(agent, "alpha.3")
    await agent.save(active)
    agent.finished("alpha.3")
    assert await _reads(agent, "alpha.3") == 0
    active.row.state = "CANCELLED"
    await agent.save(active)  # a save landing after the end: not kept in memory
    assert await _reads(agent, "alpha.3") == 1
    assert _states(await agent.status("alpha.3"))[0] == "WORKFLOW_STATE_CANCELLED"
    assert await agent.status("alpha.9") is None

    # Written to SQLite directly (an end notice for a workflow no longer active), then
    # ended again: the entry kept at the first end is dropped.
    active = _active(agent, "alpha.4")
    await agent.save(active)
    agent.finished("alpha.4")
    row = await agent.store.get_workflow("alpha.4")
    row.state = "SUCCEEDED"
    await agent.store.save_workflow(row)
    agent.finished("alpha.4")
    assert _states(await agent.status("alpha.4"))[0] == "WORKFLOW_STATE_SUCCEEDED"
    assert await _reads(agent, "alpha.4") == 1

    # Active again, not saved yet: the entry kept at its end is not the answer.
    active = _active(agent, "alpha.5")
    await agent.save(active)
    agent.finished("alpha.5")
    _active(agent, "alpha.5")
    assert await _reads(agent, "alpha.5") == 1


async def test_final_statuses_kept_are_bounded(agent: Agent, monkeypatch) -> None:
    monkeypatch.setattr(context_module, "FINAL_STATUS_MEMORY", 2)
    for n in range(3):
        await agent.save(_active(agent, f"alpha.{n}"))
        agent.finished(f"alpha.{n}")
    assert [await _reads(agent, f"alpha.{n}") for n in range(3)] == [1, 0, 0]


async def test_a_save_keeps_the_row_it_wrote_when_the_row_changes_meanwhile(
        agent: Agent) -> None:
    """Another task may change the row (end the workflow) while a save is on its way to
    disk: the status copy that save leaves must be what it wrote, not a newer row state
    with its older steps."""
    active = _active(agent)
    active.row.state = "RUNNING"
    active.progress = Progress(SPEC, active.row.placement, "alpha")
    writing, release = asyncio.Event(), asyncio.Event()
    original = agent.store.save_workflow

    async def held(*args, **kwargs):
        writing.set()
        await release.wait()
        return await original(*args, **kwargs)

    agent.store.save_workflow = held  # type: ignore[method-assign]
    try:
        first = asyncio.create_task(agent.save(active))
        await asyncio.wait_for(writing.wait(), 5)
        active.row.state = "SUCCEEDED"  # as _end does before its own save
        release.set()
        await first
    finally:
        agent.store.save_workflow = original  # type: ignore[method-assign]
    assert _states(await agent.status("alpha.1")) == (
        "WORKFLOW_STATE_RUNNING", ["STEP_STATE_WAITING", "STEP_STATE_WAITING"])
    assert (await agent.store.get_workflow("alpha.1")).state == "RUNNING"
