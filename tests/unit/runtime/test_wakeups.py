"""Timers, not ticks: the agent's background loops sleep until the earliest deadline
their cores report, or until an event wakes them, and count every wake-up
(fedorch_loop_wakeups_total{loop}). An idle agent's loops sleep with no deadline at
all."""

from __future__ import annotations

import asyncio

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fedorch.core.identity.key_records import make_rotation
from fedorch.core.identity.trust import TrustStore
from fedorch.runtime.agent import Agent, run_until_stopped
from fedorch.runtime.audit import CHECKPOINT_EVERY, CHECKPOINT_INTERVAL_S
from fedorch.runtime.key_changes import next_key_change
from fedorch.runtime.metrics import AgentMetrics
from fedorch.runtime.wakeups import Sleep

from tests.unit.conftest import _agent
from tests.unit.runtime.waiting import until as _until


def _wakeups(agent: Agent, loop: str) -> float:
    return agent.metrics.registry.get_sample_value("fedorch_loop_wakeups_total",
                                                   {"loop": loop}) or 0.0


# ---- Sleep --------------------------------------------------------------------------


async def test_a_sleep_without_deadline_ends_only_on_a_wake_and_counts_it() -> None:
    metrics = AgentMetrics()
    sleep = Sleep("test", metrics.loop_wakeups, lambda: 0.0)
    sleeper = asyncio.create_task(sleep.until(None))
    await _until(lambda: sleep.parked, "the sleep to park")
    assert not sleeper.done() and sleep.deadline is None and sleep.wakeups == 0
    sleep.wake()
    assert await sleeper is True  # woken, not timed out
    assert not sleep.parked and sleep.wakeups == 1
    assert metrics.registry.get_sample_value("fedorch_loop_wakeups_total",
                                             {"loop": "test"}) == 1


async def test_a_wake_while_busy_is_kept_and_a_due_deadline_returns_at_once() -> None:
    metrics = AgentMetrics()
    now = 100.0
    sleep = Sleep("test", metrics.loop_wakeups, lambda: now)
    sleep.wake()  # came while the loop was busy: its next sleep ends at once
    assert await sleep.until(None) is True
    assert not sleep.woken()  # cleared for the next turn
    assert await sleep.until(now - 1) is False  # a deadline already passed
    assert sleep.deadline == now - 1 and sleep.wakeups == 2


# ---- an agent -----------------------------------------------------------------------


async def _running(agent: Agent) -> asyncio.Task:
    runner = asyncio.create_task(run_until_stopped(agent))
    async with asyncio.timeout(30):
        await agent.ready.wait()
    return runner


def _idle_sleeps(agent: Agent) -> dict[str, Sleep]:
    return {
        "key records": agent.key_changes.sleep,
        "audit checkpoints": agent.audit.sleep,
    }


@pytest.fixture
async def idle(tmp_path):
    # Probes 5 s apart (the wan profile): a sleep capped at a 1 s tick would show.
    async for agent in _agent(tmp_path, "gossip: {profile: wan}\n"):
        yield agent


async def test_an_idle_agent_sleeps_with_no_deadline_until_an_event(idle: Agent) -> None:
    agent = idle
    runner = await _running(agent)
    try:
        sleeps = _idle_sleeps(agent)
        await _until(lambda: all(s.parked for s in sleeps.values()), "every loop to park")
        # No deadline: nothing but wake() ends these sleeps (no tick, no poll).
        assert {n: s.deadline for n, s in sleeps.items()} == dict.fromkeys(sleeps)
        for name, sleep in sleeps.items():
            assert _wakeups(agent, name) == sleep.wakeups
        before = {n: s.wakeups for n, s in sleeps.items()}
        # Membership sleeps towards its core's next deadline, not a capped tick.
        membership = agent.membership
        await _until(lambda: membership.sleep.parked, "membership to park")
        assert membership.sleep.deadline == membership.swim.get_timer()
        # A key record arriving is an event: that loop wakes, and sleeps again with
        # no deadline (the record changed nothing that ends later).
        agent.key_changes.sleep.wake()
        await _until(lambda: agent.key_changes.sleep.wakeups > before["key records"]
                     and agent.key_changes.sleep.parked, "the key records loop to turn")
        assert agent.key_changes.sleep.deadline is None
        assert {n: s.wakeups for n, s in sleeps.items() if n != "key records"} == {
            n: c for n, c in before.items() if n != "key records"}
    finally:
        agent.stop()
        await runner


def test_the_key_records_loop_is_due_when_a_rotation_overlap_ends() -> None:
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    issued_ms, overlap = 1_700_000_000_000, 60.0
    trust = TrustStore({"eu": old.public_key()}, overlap_s=overlap)
    now = issued_ms / 1000
    assert next_key_change(trust, now) == float("inf")  # nothing ends: no deadline
    trust.learn([make_rotation("eu", old, new, serial=1, now_ms=issued_ms)])
    assert next_key_change(trust, now) == now + overlap  # the old key's overlap ends
    assert next_key_change(trust, now + overlap) == float("inf")  # over: nothing left


async def test_a_record_held_back_by_the_publish_interval_is_a_membership_deadline(
        idle: Agent) -> None:
    agent = idle
    agent.config.gossip.publish_interval_s = 3600  # far beyond the test: held back
    runner = await _running(agent)
    try:
        membership = agent.membership
        await _until(lambda: membership._published is not None, "the first record out")
        published_at = membership._published_at
        agent.config.labels["zone"] = "b"  # a change, published no sooner than the interval
        agent.publish_record_if_changed()
        assert membership._publish_due == published_at + 3600
        await _until(lambda: membership.sleep.parked, "membership to park")
        assert membership.sleep.deadline == min(membership.swim.get_timer(),
                                                published_at + 3600)
    finally:
        agent.stop()
        await runner


async def test_the_audit_checkpoint_loop_wakes_for_a_record_and_parks_after_its_checkpoint(
        idle: Agent) -> None:
    agent = idle
    runner = await _running(agent)
    try:
        sleep = agent.audit.sleep
        await _until(lambda: sleep.parked and sleep.deadline is None, "the loop to park")
        checkpointed = await agent.store.last_audit_checkpoint()
        await agent.audit.append("test_record", "")
        # The first record since the checkpoint arms the interval, no sooner and no tick.
        await _until(lambda: sleep.parked and sleep.deadline is not None,
                     "the loop to sleep towards the interval")
        assert sleep.deadline == pytest.approx(agent.now() + CHECKPOINT_INTERVAL_S, abs=1.0)
        sleep.wake()  # as if the interval had passed: nothing is signed before it
        await _until(lambda: sleep.parked and sleep.deadline is not None, "it to re-park")
        assert await agent.store.last_audit_checkpoint() == checkpointed
        for _ in range(CHECKPOINT_EVERY):  # enough records: signed at once
            agent.audit.record("test_record", "")
        await _until(lambda: sleep.parked and sleep.deadline is None,
                     "the checkpoint, then a sleep with no deadline")
        assert await agent.store.last_audit_checkpoint() > checkpointed
    finally:
        agent.stop()
        await runner
