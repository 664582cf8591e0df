"""The membership loop turns only when a message gave it something to do: an incoming
SWIM call that changes nothing (the common case: a ping of a member at rest) leaves the
parked loop asleep; one that brings events, or an earlier deadline, wakes it."""

from __future__ import annotations

import pytest
from fedorch.core.membership import swim_codec
from fedorch.core.membership.swim_types import EventKind, MemberEvent, Ping
from fedorch.gen.fedorch.v1 import swim_pb2
from fedorch.runtime.agent import Agent

from tests.unit.conftest import _agent
from tests.unit.runtime.test_wakeups import _running, _until


@pytest.fixture
async def idle(tmp_path):
    # Probes 5 s apart (the wan profile): the loop's own deadline is far off.
    async for agent in _agent(tmp_path, "gossip: {profile: wan}\n"):
        yield agent


def _ping_of(agent: Agent, sender: str) -> swim_pb2.SwimBatch:
    ping = Ping(seq=1, sender=sender, target=agent.domain, claims=())
    return swim_pb2.SwimBatch(reply_to="127.0.0.1:1", messages=[swim_codec.encode(ping)])


async def test_a_message_that_changes_nothing_does_not_wake_the_parked_loop(
        idle: Agent) -> None:
    agent = idle
    runner = await _running(agent)
    try:
        membership = agent.membership
        await _until(lambda: membership.sleep.parked, "membership to park")
        turns = membership.sleep.wakeups
        # A ping from a domain it does not list: answered (an Ack to the caller), no
        # event, no earlier deadline.
        reply = membership.handle_batch("beta", _ping_of(agent, "beta"))
        assert [swim_codec.decode(m).__class__.__name__ for m in reply.messages] == ["Ack"]
        assert not membership.sleep.woken()
        assert membership.sleep.wakeups == turns
        # An event to look at wakes it.
        membership.swim._events.append(MemberEvent(EventKind.SUSPECT, "beta", 1, agent.now()))
        membership._wake_if_needed()
        assert membership.sleep.woken()
        await _until(lambda: membership.sleep.wakeups > turns and membership.sleep.parked
                     and not membership.swim.has_events, "the loop to look at the event")
        # A deadline earlier than the one it sleeps towards wakes it too.
        turns = membership.sleep.wakeups
        membership.sleep.deadline = membership.swim.get_timer() + 60
        membership._wake_if_needed()
        assert membership.sleep.woken()
    finally:
        agent.stop()
        await runner



@pytest.fixture
async def publishing(tmp_path):
    async for agent in _agent(tmp_path, "gossip: {publish_interval_s: 0.05}\n"):
        yield agent


async def test_the_loop_publishes_a_changed_record_and_keeps_running(publishing: Agent) -> None:
    # Publishing feeds the core a later clock reading than the turn began with: the
    # timer the turn then serves must not be older than that (a broken invariant
    # stopped the agent).
    agent = publishing
    runner = await _running(agent)
    try:
        membership = agent.membership
        built = agent.current_record
        turns = iter(range(1, 1_000_000))

        def changing_record():
            record = built()
            record.labels["turn"] = str(next(turns))
            return record

        agent.current_record = changing_record
        first = membership.swim.member(agent.domain).record_version
        await _until(lambda: membership.swim.member(agent.domain).record_version >= first + 3
                     or runner.done(), "three records published by the loop")
        assert not runner.done()
    finally:
        agent.stop()
        await runner
