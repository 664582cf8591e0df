"""An agent that announced its leave starts no step: the others take it as LEFT at once
and place its steps that had not started elsewhere (docs/failures.md), so a step started
here during the leave's grace and drain would run beside its replacement."""

from __future__ import annotations

import asyncio

from fedorch.core.membership.swim_types import MemberState
from fedorch.core.workflow.progress import StepState
from fedorch.runtime.agent import Agent

from tests.unit.runtime.test_self_fencing import Views, _running


async def test_a_ready_step_does_not_start_while_the_agent_leaves(agent: Agent) -> None:
    views = Views(agent, beta=MemberState.ALIVE, gamma=MemberState.ALIVE)
    views.leaving = True
    agent.membership = views
    async with asyncio.TaskGroup() as tg:
        agent._tg = tg
        active, executor, _ = await _running(agent)  # asks for its ready steps to start
        assert active.progress.steps["s"].state is not StepState.RUNNING
        assert not executor.started.is_set() and active.running == {}
        assert await agent.store.unfinished_runs() == []  # no start on record either
        # The contrast: not leaving, the same call starts it.
        views.leaving = False
        await agent.participation.start_ready(active)
        await asyncio.wait_for(executor.started.wait(), 10)
        assert active.progress.steps["s"].state is StepState.RUNNING
        active.running["s"].cancel()  # it runs until cancelled: the test's task group ends
        agent.stop()
