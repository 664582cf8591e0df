"""Watch with state_changes_only: a step's progress wakes the watcher but sends nothing;
a change of the workflow's state is sent; without the flag every change is sent."""

from __future__ import annotations

import asyncio

from fedorch.gen.fedorch.v1 import client_pb2, status_pb2
from fedorch.runtime.changes import Changes
from fedorch.runtime.client_service import ClientService
from fedorch.runtime.convert import workflow_state as state_value

from tests.unit.loop_turns import until

WID = "c1.w"


class _Agent:
    """What Watch reads of an agent: its change versions, the saved state, statuses."""

    domain = "c1"
    stopping = False
    active: dict = {}  # workflows in progress here: none (the coordinator they follow)

    def __init__(self) -> None:
        self.changes = Changes()
        self.state = "RUNNING"
        self.steps_done = 0
        self.status_builds = 0

    def endpoint_of(self, domain: str) -> str | None:
        return None

    @property
    def store(self) -> _Agent:
        return self  # where Watch looks for a workflow not in progress here

    async def get_workflow(self, workflow_id: str) -> None:
        return None  # none saved: the id names this agent, which follows it

    def saved_state(self, workflow_id: str) -> str | None:
        return self.state

    async def status(self, workflow_id: str) -> status_pb2.WorkflowStatus:
        self.status_builds += 1
        status = status_pb2.WorkflowStatus(id=workflow_id, state=state_value(self.state))
        for i in range(self.steps_done):
            status.steps.add(id=f"s{i}")
        return status

    async def change(self, state: str | None = None) -> None:
        """A save: a step ended, and with `state` the workflow's state changed too."""
        self.steps_done += 1
        if state is not None:
            self.state = state
        await self.changes.bump(WID)



async def _follow(only_states: bool) -> tuple[list[tuple[str, int]], int]:
    agent = _Agent()
    stream = ClientService(agent).Watch(  # type: ignore[arg-type]
        client_pb2.GetWorkflowRequest(id=WID, state_changes_only=only_states), None)
    seen = []

    def got(status: status_pb2.WorkflowStatus) -> None:
        seen.append((status_pb2.WorkflowState.Name(status.state).removeprefix(
            "WORKFLOW_STATE_"), len(status.steps)))

    got(await anext(stream))  # the current status always comes first
    # A change takes the future its watchers wait on; a watcher waits anew on a new one.
    waiting = lambda: WID in agent.changes._next  # noqa: E731
    following = asyncio.ensure_future(_drain(stream, got))
    await until(waiting)
    await agent.change()  # a step ended: the state is still RUNNING
    await until(waiting)
    await agent.change()
    await until(waiting)
    await agent.change("SUCCEEDED")
    await asyncio.wait_for(following, 5)
    return seen, agent.status_builds


async def _drain(stream, got) -> None:
    async for status in stream:
        got(status)


async def test_a_state_only_watcher_is_sent_the_changes_of_state_alone():
    seen, builds = await _follow(only_states=True)
    assert seen == [("RUNNING", 0), ("SUCCEEDED", 3)]
    assert builds == 2  # a step's progress builds no status either


async def test_a_plain_watcher_is_sent_every_change():
    seen, builds = await _follow(only_states=False)
    assert seen == [("RUNNING", 0), ("RUNNING", 1), ("RUNNING", 2), ("SUCCEEDED", 3)]
    assert builds == 4


async def test_a_state_only_watcher_without_a_saved_state_is_sent_each_change():
    """Where the agent holds no saved state (None), the filter cannot tell: it sends."""
    agent = _Agent()
    agent.saved_state = lambda workflow_id: None  # type: ignore[method-assign]
    stream = ClientService(agent).Watch(  # type: ignore[arg-type]
        client_pb2.GetWorkflowRequest(id=WID, state_changes_only=True), None)
    first = await anext(stream)
    pending = asyncio.ensure_future(anext(stream))
    await until(lambda: agent.changes._waiting.get(WID) == 1)
    await agent.change()
    second = await asyncio.wait_for(pending, 5)
    assert (first.state, len(second.steps)) == (state_value("RUNNING"), 1)
    await stream.aclose()
