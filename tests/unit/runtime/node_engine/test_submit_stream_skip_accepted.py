"""SubmitStream's `skip_accepted` (submit_stream.py): no accepted update, the statuses
asked for alone, each naming the workflow; a retry the same; a request without it is
answered accepted first, as before."""

from __future__ import annotations

import asyncio

from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.gen.fedorch.v1 import status_pb2

from tests.unit.runtime.node_engine.test_submit_stream import (
    WAIT_S,
    Fed,
    _request,
    _Service,
    told,
)
from tests.unit.runtime.test_driver import _until


async def test_skip_accepted_sends_the_statuses_asked_for_alone_and_without_it_accepted_first():
    service = _Service()
    view = service.engine.view
    fed = Fed(service)
    feed, got = fed.feed, fed.got

    async with asyncio.TaskGroup() as group:
        consumer = group.create_task(fed.consume())
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
    by_token = told(got)
    assert by_token["end"] == [("c1.1", WorkflowState.SUCCEEDED)]
    assert by_token["commit"] == [("c1.2", WorkflowState.RUNNING),
                              ("c1.2", WorkflowState.SUCCEEDED)]
    assert by_token["as-before"] == [("c1.3", None), ("c1.3", WorkflowState.SUCCEEDED)]
    assert by_token["retry"] == [("c1.1", WorkflowState.RUNNING),
                             ("c1.1", WorkflowState.SUCCEEDED)]
    assert view.listeners == {} and fed.stream.taken == 3
