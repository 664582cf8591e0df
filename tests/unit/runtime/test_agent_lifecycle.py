"""The shells move workflow rows only through the lifecycle core: a cancel is told from
an abort by the core's flag, an end notice without a terminal state is refused and
changes nothing, and an ended workflow stays as it ended (an in-process agent; cores
driven by hand, nothing sent)."""

from __future__ import annotations

import asyncio
import random

import pytest
from fedorch.core.negotiation.coordinator import ConsensusOptions, Coordinator
from fedorch.core.negotiation.errors import LocalProtocolError
from fedorch.core.negotiation.rounds import Finished
from fedorch.core.workflow.lifecycle import Cancelled, Committed, Succeeded, WorkflowState
from fedorch.core.workflow.placement import Placement
from fedorch.core.workflow.progress import Progress, StepState
from fedorch.gen.fedorch.v1 import peer_pb2, spec_pb2, status_pb2
from fedorch.runtime.agent import Active, Agent
from fedorch.runtime.convert import advance, state_of
from fedorch.runtime.store.store import WorkflowRow
from google.protobuf import json_format

SPEC = json_format.ParseDict({"name": "one", "steps": [{"id": "s", "capability": "x"}]},
                             spec_pb2.WorkflowSpec())
PLACEMENT = {"s": "beta"}


def _row(workflow_id: str, coordinator: str, state: str) -> WorkflowRow:
    return WorkflowRow(id=workflow_id, name="one", coordinator=coordinator, state=state,
                       spec=SPEC.SerializeToString(), placement=dict(PLACEMENT), round=1,
                       created_ms=1, updated_ms=1)


def _core() -> Coordinator:
    core = Coordinator("alpha.wf", placer=lambda excluded: Placement(dict(PLACEMENT), {}),
                       max_rounds=1, prepare_timeout_s=5.0,
                       consensus=ConsensusOptions("alpha", random.Random(1)))
    core.start(0.0)
    core.next_actions()
    return core


def _silent(agent: Agent) -> list:
    delivered: list = []

    async def deliver(domain, method, **payload):
        delivered.append((domain, method, payload))
        return peer_pb2.Ack(ok=True)

    agent.deliver = deliver  # type: ignore[method-assign]
    return delivered


# ---- the coordinator ------------------------------------------------------------------


async def test_a_cancelled_round_ends_cancelled_by_the_cores_flag(agent: Agent) -> None:
    core = _core()
    core.cancel(1.0, "by request")
    finished = core.next_actions()[-1]
    assert isinstance(finished, Finished) and finished.cancelled
    active = Active(_row("alpha.wf", "alpha", "NEGOTIATING"), fresh=True)
    agent.active["alpha.wf"] = active

    await agent.coordination._finished(active, SPEC, core, finished)

    row = await agent.store.get_workflow("alpha.wf")
    assert (row.state, row.reason) == ("CANCELLED", "cancelled: by request")


async def test_an_abort_whose_reason_reads_like_a_cancel_is_aborted(agent: Agent) -> None:
    active = Active(_row("alpha.wf", "alpha", "NEGOTIATING"), fresh=True)
    agent.active["alpha.wf"] = active

    await agent.coordination._finished(active, SPEC, _core(),
                                       Finished(False, 1, {}, "cancelled: by a participant"))

    row = await agent.store.get_workflow("alpha.wf")
    assert (row.state, row.reason) == ("ABORTED", "cancelled: by a participant")


async def test_cancelling_an_ended_workflow_writes_nothing(agent: Agent) -> None:
    delivered = _silent(agent)
    row = _row("alpha.wf", "alpha", "SUCCEEDED")
    await agent.store.save_workflow(row)
    agent.active["alpha.wf"] = Active(row, Progress(SPEC, row.placement, "alpha"), fresh=True)
    writes = agent.store.writes

    assert await agent.coordination.cancel("alpha.wf", "too late")

    assert agent.store.writes == writes and delivered == []
    assert (await agent.store.get_workflow("alpha.wf")).state == "SUCCEEDED"


async def test_cancelling_a_running_workflow_ends_it_and_tells_its_participants(
        agent: Agent) -> None:
    delivered = _silent(agent)
    row = _row("alpha.wf", "alpha", "RUNNING")
    agent.active["alpha.wf"] = Active(row, Progress(SPEC, row.placement, "alpha"), fresh=True)

    async with asyncio.TaskGroup() as tg:  # the end notice goes by a task of its own
        agent._tg = tg
        assert await agent.coordination.cancel("alpha.wf", "not needed")

    saved = await agent.store.get_workflow("alpha.wf")
    assert (saved.state, saved.reason) == ("CANCELLED", "cancelled: not needed")
    assert [(d, m) for d, m, _ in delivered] == [("beta", "CancelWorkflow")]
    notice = delivered[0][2]["cancel"]
    assert notice.final_state == status_pb2.WORKFLOW_STATE_CANCELLED


# ---- a participant --------------------------------------------------------------------


def _notice(final_state: int, reason: str = "over") -> peer_pb2.CancelNotice:
    return peer_pb2.CancelNotice(workflow_id="beta.wf", reason=reason, final_state=final_state)


async def test_an_end_notice_before_the_commit_is_remembered(agent: Agent) -> None:
    ack = await agent.participation.on_cancel(
        "beta", _notice(status_pb2.WORKFLOW_STATE_FAILED, "step s failed"))

    assert ack.ok
    row = await agent.store.get_workflow("beta.wf")
    assert (row.state, row.reason, row.coordinator) == ("FAILED", "step s failed", "beta")


@pytest.mark.parametrize("final", [status_pb2.WORKFLOW_STATE_UNSPECIFIED,
                                   status_pb2.WORKFLOW_STATE_RUNNING, 42])
async def test_an_end_notice_without_a_terminal_state_is_refused(agent: Agent, final) -> None:
    row = _row("beta.wf", "beta", "RUNNING")
    agent.active["beta.wf"] = active = Active(row, Progress(SPEC, row.placement, "alpha"),
                                              fresh=True)
    writes = agent.store.writes

    ack = await agent.participation.on_cancel("beta", _notice(final))

    assert not ack.ok and "terminal state" in ack.error
    assert agent.store.writes == writes
    assert active.row.state == "RUNNING" and agent.active["beta.wf"] is active
    assert await agent.store.get_workflow("beta.wf") is None


async def test_a_second_end_notice_leaves_the_first(agent: Agent) -> None:
    first = await agent.participation.on_cancel(
        "beta", _notice(status_pb2.WORKFLOW_STATE_SUCCEEDED, ""))
    second = await agent.participation.on_cancel(
        "beta", _notice(status_pb2.WORKFLOW_STATE_CANCELLED, "cancelled: late"))

    assert first.ok and second.ok
    row = await agent.store.get_workflow("beta.wf")
    assert (row.state, row.reason) == ("SUCCEEDED", "")


async def test_an_end_notice_ends_a_running_workflow_here(agent: Agent) -> None:
    row = _row("beta.wf", "beta", "RUNNING")
    progress = Progress(SPEC, row.placement, "beta")
    agent.active["beta.wf"] = Active(row, progress, fresh=True)

    ack = await agent.participation.on_cancel(
        "beta", _notice(status_pb2.WORKFLOW_STATE_CANCELLED, "cancelled: by request"))

    assert ack.ok
    saved = await agent.store.get_workflow("beta.wf")
    assert (saved.state, saved.reason) == ("CANCELLED", "cancelled: by request")
    assert progress.steps["s"].state is StepState.CANCELLED


# ---- the boundary ---------------------------------------------------------------------


def test_advance_writes_the_state_name_and_the_reason_only_on_a_change() -> None:
    row = _row("alpha.wf", "alpha", "RUNNING")
    row.reason = "kept"
    assert not advance(row, Committed())  # a repeated COMMIT
    assert (row.state, row.reason) == ("RUNNING", "kept")
    assert advance(row, Succeeded())
    assert state_of(row) is WorkflowState.SUCCEEDED and (row.state, row.reason) == (
        "SUCCEEDED", "")
    assert not advance(row, Cancelled("too late"))
    assert (row.state, row.reason) == ("SUCCEEDED", "")


def test_advance_refuses_an_impossible_move_and_leaves_the_row() -> None:
    row = _row("alpha.wf", "alpha", "NEGOTIATING")
    with pytest.raises(LocalProtocolError, match="NEGOTIATING: Succeeded"):
        advance(row, Succeeded())
    assert (row.state, row.reason) == ("NEGOTIATING", "")


async def test_an_end_notice_closes_the_attempts_an_earlier_life_left_open(
        agent: Agent) -> None:
    """A lost domain back after its workflow ended elsewhere learns the end before
    recovery resolved its interrupted attempt: the end closes it (failed), so nothing
    stays on record as started; the next start finds nothing left to stop."""
    from fedorch.runtime.store.store import Store

    row = _row("beta.wf", "beta", "RUNNING")
    progress = Progress(SPEC, row.placement, "beta")
    agent.active["beta.wf"] = Active(row, progress, fresh=True)
    await agent.store.save_workflow(row, also=[Store.start_run_statement("beta.wf", "s", 1, 5)])
    await agent.participation.runs.stop_leftovers()  # this life's start finds it open
    assert await agent.store.unfinished_runs() == [("beta.wf", "s", 1, None)]

    ack = await agent.participation.on_cancel(
        "beta", _notice(status_pb2.WORKFLOW_STATE_SUCCEEDED, ""))

    assert ack.ok
    assert (await agent.store.get_workflow("beta.wf")).state == "SUCCEEDED"
    assert await agent.store.unfinished_runs() == []
    assert await agent.store.runs_of("beta.wf") == [("s", 1, "failed")]


async def test_the_next_start_closes_an_attempt_its_workflow_s_end_cancelled(
        agent: Agent) -> None:
    """An attempt the end cancelled as it ran stays open (its leftovers are the next
    start's to stop); once they are stopped, it closes, its workflow being over."""
    from fedorch.runtime.store.store import Store

    ended = _row("beta.wf", "beta", "SUCCEEDED")
    running = _row("beta.other", "beta", "RUNNING")
    await agent.store.save_workflow(ended, also=[Store.start_run_statement("beta.wf", "s", 1, 5)])
    await agent.store.save_workflow(running,
                                    also=[Store.start_run_statement("beta.other", "s", 2, 5)])

    await agent.participation.runs.stop_leftovers()

    assert await agent.store.runs_of("beta.wf") == [("s", 1, "failed")]
    # A running workflow's is recovery's to resolve (retried if idempotent).
    assert await agent.store.unfinished_runs() == [("beta.other", "s", 2, None)]
