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
from fedorch.gen.fedorch.v1 import peer_pb2
from fedorch.runtime import membership as membership_module
from fedorch.runtime.agent import Agent, run_until_stopped
from fedorch.runtime.peer_service import PeerService


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


async def test_a_broken_invariant_in_a_handler_stops_the_agent_and_reaches_its_caller(
        agent: Agent) -> None:
    async def handler():
        raise LocalProtocolError("no reservation for ('beta.1', 1) to confirm")

    async with asyncio.TaskGroup() as tg:
        agent._tg = tg
        try:
            await agent.run_owned(handler(), "prepare")
        except LocalProtocolError:
            pass
        else:
            raise AssertionError("the caller did not see the error")
    assert agent.stopping and "no reservation" in agent.fatal


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
    """Without its in-doubt loop an agent would hold reservations for ever: it stops."""
    async def broken_loop(self):
        raise KeyError("hold")

    monkeypatch.setattr(type(agent.participation), "timer_loop", broken_loop)
    async with asyncio.timeout(30):
        await run_until_stopped(agent)
    assert agent.fatal == "the in-doubt loop failed: KeyError: 'hold'"
    assert task_errors(agent, "in-doubt") == 1


async def test_a_failed_batch_item_is_counted_and_a_broken_invariant_in_one_stops_the_agent(
        agent: Agent) -> None:
    service = PeerService(agent)
    outer = peer_pb2.Body(sender="beta", recipient="alpha", sent_at_ms=1)

    async def broken(body):
        raise ValueError("bad row")

    async def broken_core(body):
        raise LocalProtocolError("no transition for Accept")

    # A result that passes the authority check at the boundary (a well-formed id, in its
    # sender's own name), so that the handler itself is what fails.
    item = peer_pb2.Body(step_result=peer_pb2.StepResult(workflow_id="alpha.wf1", domain="beta"))
    service._handlers["step_result"] = broken
    result = peer_pb2.BatchResult()
    await service._batch_item(outer, item, result)
    assert result.error_code == "INTERNAL" and task_errors(agent, "batch") == 1
    assert not agent.stopping

    service._handlers["step_result"] = broken_core
    result = peer_pb2.BatchResult()
    await service._batch_item(outer, item, result)
    assert result.error_code == "INTERNAL" and task_errors(agent, "batch") == 2
    assert agent.fatal.startswith("broken invariant in task 'batch step_result from beta'")


async def test_a_run_owned_caller_that_goes_away_leaves_the_change_to_finish(
        agent: Agent) -> None:
    """gRPC cancels a handler whose caller went away: the change it started finishes."""
    release, started = asyncio.Event(), asyncio.Event()
    finished: list[str] = []

    async def change() -> str:
        started.set()
        await release.wait()
        finished.append("written")
        return "answer"

    async with asyncio.timeout(30):
        async with asyncio.TaskGroup() as tg:
            agent._tg = tg
            caller = asyncio.create_task(agent.run_owned(change(), "prepare"))
            await started.wait()
            caller.cancel()
            try:
                await caller
            except asyncio.CancelledError:
                pass
            else:
                raise AssertionError("the cancelled caller got an answer")
            assert finished == []
            release.set()  # the owned task goes on, and ends with the group
        agent._tg = None
    assert finished == ["written"] and task_errors(agent, "prepare") == 0
