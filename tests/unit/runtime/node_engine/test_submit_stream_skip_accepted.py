"""SubmitStream's `skip_accepted` (submit_stream.py): no accepted update, the statuses
asked for alone, each naming the workflow; a retry the same; a request without it is
answered accepted first, as before."""

from __future__ import annotations

import asyncio

from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.gen.fedorch.v1 import client_pb2, status_pb2
from fedorch.runtime.node_engine.submit_stream import SubmissionStream

from tests.unit.runtime.node_engine.test_submit_stream import WAIT_S, _Call, _request, _Service
from tests.unit.runtime.test_driver import _until


def _told(got: list[client_pb2.SubmitStreamUpdate]) -> dict[str, list]:
    told: dict[str, list] = {}
    for u in got:
        told.setdefault(u.token, []).append(
            (u.id, u.status.state if u.HasField("status") else None))
    return told


async def test_skip_accepted_sends_the_statuses_asked_for_alone_and_without_it_accepted_first():
    service = _Service()
    view = service.engine.view
    stream = SubmissionStream(service, _Call())
    feed: asyncio.Queue = asyncio.Queue()

    async def requests():
        while (request := await feed.get()) is not None:
            yield request

    got: list[client_pb2.SubmitStreamUpdate] = []

    async def consume() -> None:
        async for update in stream.run(requests()):
            got.append(update)

    async with asyncio.TaskGroup() as group:
        consumer = group.create_task(consume())
        feed.put_nowait(_request("end", request_id="r1", skip_accepted=True))
        feed.put_nowait(_request("commit", skip_accepted=True, state_changes_only=True,
                                 states=[status_pb2.WORKFLOW_STATE_RUNNING]))
        feed.put_nowait(_request("as-before"))
        await _until(lambda: len(service.engine.posted) == 3)
        for wf in ("c1.1", "c1.2", "c1.3"):
            view.change(wf, WorkflowState.NEGOTIATING)  # the row is durable
        await _until(lambda: len(got) == 1)  # "as-before"'s accepted update alone
        for wf in ("c1.1", "c1.2", "c1.3"):
            view.change(wf, WorkflowState.RUNNING)
        await _until(lambda: len(got) == 2)
        # A retry of "end" that skips it too: its status as it stands, no accepted.
        feed.put_nowait(_request("retry", request_id="r1", skip_accepted=True,
                                 state_changes_only=True))
        await _until(lambda: len(got) == 3)
        for wf in ("c1.1", "c1.2", "c1.3"):
            view.change(wf, WorkflowState.SUCCEEDED)
        feed.put_nowait(None)  # the client's side ends
        await asyncio.wait_for(consumer, WAIT_S)
    told = _told(got)
    assert told["end"] == [("c1.1", WorkflowState.SUCCEEDED)]
    assert told["commit"] == [("c1.2", WorkflowState.RUNNING),
                              ("c1.2", WorkflowState.SUCCEEDED)]
    assert told["as-before"] == [("c1.3", None), ("c1.3", WorkflowState.SUCCEEDED)]
    assert told["retry"] == [("c1.1", WorkflowState.RUNNING),
                             ("c1.1", WorkflowState.SUCCEEDED)]
    assert view.listeners == {} and stream.taken == 3
