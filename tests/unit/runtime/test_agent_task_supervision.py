"""An exception in one of the agent's tasks is logged once with its traceback and
counted (fedorch_task_errors_total{task}), and the agent goes on; a broken invariant
(LocalProtocolError from a core), or any exception in one of the agent's own loops,
stops the agent with a reason (the daemon exits 1 with it: see
tests/integration/test_agent_stops.py)."""

from __future__ import annotations

import asyncio
import logging

from fedorch.core.membership.swim_types import LocalProtocolError as SwimMisuse
from fedorch.core.negotiation.errors import LocalProtocolError
from fedorch.runtime import membership as membership_module
from fedorch.runtime.agent import Agent, run_until_stopped


def task_errors(agent: Agent, kind: str) -> float:
    value = agent.metrics.registry.get_sample_value("fedorch_task_errors_total",
                                                    {"task": kind})
    return value or 0.0


async def _run_tasks(agent: Agent, *tasks) -> None:
    async with asyncio.TaskGroup() as tg:
        agent._tg = tg
        started = [agent.spawn(coro, name) for coro, name in tasks]
        await asyncio.gather(*started)


async def test_an_exception_in_a_task_is_logged_with_its_traceback_and_counted(
        agent: Agent, caplog) -> None:
    async def broken():
        raise ValueError("no such column")

    async def fine():
        return None

    with caplog.at_level(logging.ERROR, logger="fedorch.agent"):
        await _run_tasks(agent, (broken(), "step beta.1/s1#1"), (fine(), "step beta.1/s2#1"),
                         (broken(), "result beta.1/s1 to beta"))
    assert task_errors(agent, "step") == 1 and task_errors(agent, "result") == 1
    logged = [r for r in caplog.records if "step beta.1/s1#1" in r.getMessage()]
    assert len(logged) == 1 and logged[0].exc_info is not None
    assert logged[0].exc_info[0] is ValueError
    assert not agent.stopping and agent.fatal is None  # the agent goes on


async def test_a_broken_invariant_in_a_task_stops_the_agent(agent: Agent, caplog) -> None:
    async def broken():
        raise LocalProtocolError("round 2: the proposal cell changed")

    with caplog.at_level(logging.CRITICAL, logger="fedorch.agent"):
        await _run_tasks(agent, (broken(), "negotiate alpha.1"))
    assert agent.stopping
    assert agent.fatal == ("broken invariant in task 'negotiate alpha.1': "
                           "LocalProtocolError: round 2: the proposal cell changed")
    assert task_errors(agent, "negotiate") == 1
    assert [r.exc_info[0] for r in caplog.records] == [LocalProtocolError]


async def test_a_broken_invariant_in_the_membership_loop_ends_run(agent: Agent,
                                                                   monkeypatch) -> None:
    async def broken_loop(self):
        raise SwimMisuse("time went backwards: 1.0 < 2.0")

    monkeypatch.setattr(membership_module.Membership, "run", broken_loop)
    async with asyncio.timeout(30):
        await run_until_stopped(agent)
    assert agent.fatal == ("broken invariant in task 'membership': "
                           "LocalProtocolError: time went backwards: 1.0 < 2.0")


async def test_any_exception_in_one_of_the_agents_loops_ends_run(agent: Agent,
                                                                 monkeypatch) -> None:
    """Without its key records loop an agent would miss rotations' ends: it stops."""
    async def broken_loop(self):
        raise KeyError("record")

    monkeypatch.setattr(type(agent.key_changes), "run", broken_loop)
    async with asyncio.timeout(30):
        await run_until_stopped(agent)
    assert agent.fatal == "the key records loop failed: KeyError: 'record'"
    assert task_errors(agent, "key") == 1
