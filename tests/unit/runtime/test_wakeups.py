"""Timers, not ticks: the agent's background loops sleep until the earliest deadline
their cores report, or until an event wakes them, and count every wake-up
(fedorch_loop_wakeups_total{loop}). An idle agent's loops sleep with no deadline at all;
a member's state change wakes the takeover shell for that member's workflows only."""

from __future__ import annotations

import asyncio

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fedorch.core.identity.key_records import make_rotation
from fedorch.core.identity.trust import TrustStore
from fedorch.core.membership.swim_types import EventKind, MemberEvent
from fedorch.core.negotiation.coordinator import Coordinator, RoundRecord
from fedorch.core.negotiation.messages import Value, VoteIn
from fedorch.gen.fedorch.v1 import spec_pb2
from fedorch.runtime.agent import Active, Agent, run_until_stopped
from fedorch.runtime.audit import CHECKPOINT_EVERY, CHECKPOINT_INTERVAL_S
from fedorch.runtime.coordination_driver import ACK_GRACE_S
from fedorch.runtime.key_changes import next_key_change
from fedorch.runtime.metrics import AgentMetrics
from fedorch.runtime.store.store import WorkflowRow
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
        "takeover": agent.takeovers.sleep,
        "key records": agent.key_changes.sleep,
        "in-doubt": agent.participation.in_doubt.sleep,
        "certificate sweep": agent.coordination.decision_log.sweep_sleep,
        "audit checkpoints": agent.audit.sleep,
    }


@pytest.fixture
async def idle(tmp_path):
    # Probes 5 s apart (the wan profile): a sleep capped at a 1 s tick would show.
    async for agent in _agent(tmp_path, "gossip: {profile: wan}\n"):
        yield agent


@pytest.fixture
async def participant(tmp_path):
    # takeover_after_s far beyond the test: no core's timer fires while it runs.
    extra = ("negotiation: {takeover_after_s: 36000}\ncapabilities:\n"
             "  - {name: x, capacity: 4, executor: {type: builtin, name: echo}}\n")
    async for agent in _agent(tmp_path, extra):
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
        # A member the agent has no work with changes: the takeover shell is not woken.
        agent.takeovers.member_changed("beta")
        assert not agent.takeovers.sleep.woken()
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


def _committed(agent: Agent, workflow_id: str, placement: dict[str, str]) -> None:
    """A workflow committed here (as a participant): active, with its progress."""
    spec = spec_pb2.WorkflowSpec(name="w", steps=[spec_pb2.StepSpec(id=s, capability="x")
                                                  for s in placement])
    row = WorkflowRow(id=workflow_id, name="w", coordinator=workflow_id.split(".")[0],
                      state="RUNNING", spec=spec.SerializeToString(), placement=placement,
                      round=1)
    active = Active(row)
    agent.active[workflow_id] = active
    agent.participation.ensure_progress(active, spec)  # what tells the takeover shell


async def test_a_member_change_wakes_the_takeover_shell_for_its_workflows_only(
        participant: Agent) -> None:
    agent = participant
    runner = await _running(agent)
    try:
        takeovers = agent.takeovers
        north, south = "north.000000000001aaaaaaaa", "south.000000000002bbbbbbbb"
        _committed(agent, north, {"a": "alpha", "b": "p1"})
        _committed(agent, south, {"a": "alpha", "b": "p2"})
        await _until(lambda: takeovers.looked_at == {north: 1, south: 1}
                     and takeovers.sleep.parked, "both new workflows looked at once")
        # Its coordinator unknown to membership: each core's timer is armed, and the
        # loop sleeps towards the earliest, not a tick.
        timers = {takeovers._cores[w].get_timer() for w in (north, south)}
        assert None not in timers and takeovers.sleep.deadline == min(timers)
        # Membership suspects north (a SWIM event, through the membership loop).
        agent.membership.swim._events.append(
            MemberEvent(EventKind.SUSPECT, "north", 1, agent.now()))
        agent.membership.wake()
        await _until(lambda: takeovers.looked_at.get(north) == 2 and takeovers.sleep.parked,
                     "the north workflow looked at again")
        assert takeovers.looked_at == {north: 2, south: 1}
        # p2 dies: only the workflow it takes part in is looked at.
        agent.membership.swim._events.append(
            MemberEvent(EventKind.DEAD, "p2", 1, agent.now()))
        agent.membership.wake()
        await _until(lambda: takeovers.looked_at.get(south) == 2 and takeovers.sleep.parked,
                     "the south workflow looked at again")
        assert takeovers.looked_at == {north: 2, south: 2}
        # It ends here: forgotten, and a change of its coordinator wakes nothing.
        agent.finished(south)
        assert south not in takeovers._cores
        takeovers.member_changed("south")
        assert not takeovers.sleep.woken()
    finally:
        agent.stop()
        await runner


# ---- the coordinator's driver of a committed workflow ----------------------------------


async def test_a_committed_workflow_s_driver_sleeps_with_no_deadline_until_its_end(
        idle: Agent) -> None:
    agent = idle
    runner = await _running(agent)
    try:
        coordination = agent.coordination
        workflow_id = "alpha.000000000001cccccccc"
        placement = {"a": "beta"}
        spec = spec_pb2.WorkflowSpec(name="w", steps=[spec_pb2.StepSpec(id="a", capability="x")])
        row = WorkflowRow(id=workflow_id, name="w", coordinator="alpha", state="RUNNING",
                          spec=spec.SerializeToString(), placement=placement, round=1)
        active = agent.active[workflow_id] = Active(row)
        # Committed (two-phase commit: no resend timer) and announced; beta, whose step
        # runs a long time, has not acknowledged the COMMIT yet.
        commit = Value(True, (VoteIn(1, "beta", True, "", b"v"),))
        core = Coordinator.restore(workflow_id, RoundRecord(1, dict(placement), decision=commit,
                                                            finished=True),
                                   now=agent.now(), placer=lambda excluded: None,
                                   max_rounds=1, prepare_timeout_s=1.0)
        assert core.awaiting_acks() and core.get_timer() is None
        coordination.drive_restored(active, spec, core)
        driver = coordination.drivers[workflow_id]
        await _until(lambda: driver.parked, "the driver to park")
        # Nothing is due: the driver waits for an event, with no deadline (it looked
        # once a second for the workflow's end).
        assert driver.deadline is None and driver.wakeups == 0
        assert _wakeups(agent, "coordinator driver") == 0
        # The workflow ends: that is an event, and beta gets ACK_GRACE_S from then on.
        agent.finished(workflow_id)
        await _until(lambda: driver.wakeups == 1 and driver.parked, "the driver to wake")
        assert _wakeups(agent, "coordinator driver") == 1
        assert driver.deadline is not None and driver.deadline <= agent.now() + ACK_GRACE_S
        # beta acknowledges: the core has nothing left to do, and its driver stops.
        coordination.ack("beta", (workflow_id, 1))
        await _until(lambda: workflow_id not in coordination.drivers, "the driver to stop")
        assert not core.awaiting_acks() and driver.wakeups == 2
        assert not coordination.route(workflow_id, object())  # no longer routed to it
    finally:
        agent.stop()
        await runner


# ---- the key records loop's deadline ---------------------------------------------------


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
