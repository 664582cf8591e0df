"""`statuses` (agent/client/follow.py): each change once, of the state alone when only
state changes were asked for."""

from __future__ import annotations

from fedorch.client.follow import statuses
from fedorch.gen.fedorch.v1 import status_pb2

RUNNING = status_pb2.WORKFLOW_STATE_RUNNING
SUCCEEDED = status_pb2.WORKFLOW_STATE_SUCCEEDED


def _status(state: int, *steps: tuple[str, int]) -> status_pb2.WorkflowStatus:
    status = status_pb2.WorkflowStatus(id="wf-1", state=state)
    for step_id, step_state in steps:
        status.steps.add(id=step_id, state=step_state)
    return status


class StreamingAgent:
    """GetWorkflow answers the first status; Watch streams the rest."""

    def __init__(self, first, streamed) -> None:
        self.first, self.streamed = first, streamed
        self.watches: list[bool] = []

    async def get_workflow(self, workflow_id: str):
        return self.first

    async def watch(self, workflow_id: str, deadline_s: float, state_changes_only: bool):
        self.watches.append(state_changes_only)
        for status in self.streamed:
            yield status


def _agent() -> StreamingAgent:
    # The watch's first status is the state GetWorkflow saw with a step further on.
    first = _status(RUNNING, ("a", status_pb2.STEP_STATE_RUNNING))
    further = _status(RUNNING, ("a", status_pb2.STEP_STATE_SUCCEEDED))
    return StreamingAgent(first, [further, further, _status(SUCCEEDED)])


async def _follow(agent, only_states: bool) -> list[status_pb2.WorkflowStatus]:
    return [s async for s in statuses(agent, "wf-1", state_changes_only=only_states)]


async def test_state_changes_only_yields_each_state_once() -> None:
    agent = _agent()
    seen = await _follow(agent, True)
    assert [s.state for s in seen] == [RUNNING, SUCCEEDED]
    assert agent.watches == [True]


async def test_every_distinct_status_otherwise() -> None:
    seen = await _follow(_agent(), False)
    assert [s.state for s in seen] == [RUNNING, RUNNING, SUCCEEDED]
    assert seen[0] != seen[1]  # the step's progress is a change; its repeat is not
