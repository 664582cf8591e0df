"""The self-fencing watcher on an in-process agent: a running step is stopped, FAILED
with the reason and reported, once every other domain of its workflow is DEAD past the
lease; a SUSPECT keeps it running. Membership is a stand-in whose views the test sets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fedorch.core.membership.swim_types import MemberState, MemberView
from fedorch.core.workflow.progress import Progress, StepState
from fedorch.gen.fedorch.v1 import spec_pb2, status_pb2
from fedorch.runtime.agent import Active, Agent
from fedorch.runtime.executors.base import StepInvocation, StepOutcome
from fedorch.runtime.membership import Membership
from fedorch.runtime.store.store import WorkflowRow
from google.protobuf import json_format

from tests.unit.runtime.waiting import until as _until

SPEC = json_format.ParseDict({"name": "two", "steps": [
    {"id": "s", "capability": "x"}, {"id": "t", "capability": "x", "needs": ["s"]}]},
    spec_pb2.WorkflowSpec())
LEASE_S = 0.2


class Forever:
    """An executor whose step runs until cancelled."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.cancelled = asyncio.Event()

    async def run(self, inv: StepInvocation) -> StepOutcome:
        self.started.set()
        try:
            await asyncio.Event().wait()
        finally:
            self.cancelled.set()
        return StepOutcome.success({})


class Views:
    """Membership as the watcher reads it: the core's views, by domain (the SWIM states
    the test sets), and the work-facing reading of them (`state_for_work`, `lost`: the
    real Membership methods) over a loss grace in which the DEAD verdicts named in
    `held` have not stood for the grace yet; every other DEAD one, and every LEFT, is
    acted on. The domains named are trusted (unless they are already)."""

    profile = None
    leaving = False
    state_for_work = Membership.state_for_work
    lost = Membership.lost

    def __init__(self, agent: Agent, held: Iterable[str] = (), **states: MemberState) -> None:
        self.states = states
        self.held = set(held)
        self.heard = agent.now()
        self.swim = self
        self.agent = agent
        self.grace = _HeldGrace(self)
        for name in states:
            if name not in agent.trust:
                agent.trust.add(name, Ed25519PrivateKey.generate().public_key())

    def members(self) -> list[MemberView]:
        return [MemberView(name, "", state, 1, self.heard, b"", 1)
                for name, state in self.states.items()]

    def member(self, name: str) -> MemberView | None:
        return next((view for view in self.members() if view.name == name), None)


class _HeldGrace:
    """The loss grace as Views sets it: a loss is acted on unless its verdict is held."""

    def __init__(self, views: Views) -> None:
        self._views = views

    def lost(self, name: str) -> str | None:
        state = self._views.states.get(name)
        if state in (MemberState.DEAD, MemberState.LEFT) and name not in self._views.held:
            return state.value
        return None


async def _running(agent: Agent) -> tuple[Active, Forever, list[str]]:
    """Step s of a workflow coordinated by beta runs here (alpha); gamma runs t."""
    sent: list[str] = []

    def deliver(domain, method, **payload):
        if method == "ReportStep":
            sent.append(status_pb2.StepState.Name(payload["step_result"].state))

        async def nothing():
            return None
        return nothing()

    agent.deliver = deliver  # type: ignore[method-assign]
    executor = Forever()
    agent.executors["x"] = executor  # type: ignore[assignment]
    agent.config.negotiation.step_lease_s = LEASE_S
    row = WorkflowRow(id="beta.1", name="two", coordinator="beta", state="RUNNING",
                      spec=SPEC.SerializeToString(), placement={"s": "alpha", "t": "gamma"},
                      created_ms=1, updated_ms=1)
    active = Active(row, Progress(SPEC, row.placement, "alpha"))
    agent.active[row.id] = active
    await agent.save(active)
    await agent.participation.start_ready(active)
    return active, executor, sent


async def test_a_step_cut_off_from_every_other_domain_is_fenced(agent: Agent) -> None:
    agent.membership = Views(agent, beta=MemberState.DEAD, gamma=MemberState.LEFT)
    async with asyncio.TaskGroup() as tg:
        agent._tg = tg  # the tasks the agent spawns are this test's
        active, executor, sent = await _running(agent)
        step = active.progress.steps["s"]
        deadline = time.monotonic() + 10
        while step.state is StepState.RUNNING:  # the watcher's timer: a condition
            assert time.monotonic() < deadline, "not fenced"
            await asyncio.sleep(0.01)
        assert executor.cancelled.is_set()
        assert step.state is StepState.FAILED
        assert step.error.startswith("fenced: lost contact with beta, gamma for "), step.error
        assert active.progress.steps["t"].state is StepState.SKIPPED
        assert agent.metrics.steps_self_fenced._value.get() == 1
        while "STEP_STATE_FAILED" not in sent:
            assert time.monotonic() < deadline, "the fenced result was not reported"
            await asyncio.sleep(0.01)
        runs = await agent.store.unfinished_runs()
        assert runs == [], runs  # the attempt's end is on record
        agent.stop()


async def _running_long_past_the_lease(agent: Agent, monkeypatch):
    """s started here (as `_running`), then the agent's clock moved a thousand leases
    on: the step, its executor and the fencing watch that looks at it."""
    active, executor, _ = await _running(agent)
    await asyncio.wait_for(executor.started.wait(), 10)
    later = agent.now() + 1000 * LEASE_S
    monkeypatch.setattr(agent, "now", lambda: later)
    return active, executor, agent.participation.runs.fencing


async def test_one_suspect_keeps_the_step_running(agent: Agent, monkeypatch) -> None:
    views = Views(agent, beta=MemberState.DEAD, gamma=MemberState.SUSPECT)
    agent.membership = views
    async with asyncio.TaskGroup() as tg:
        agent._tg = tg
        active, executor, fencing = await _running_long_past_the_lease(agent, monkeypatch)
        assert await fencing.look() == []
        assert active.progress.steps["s"].state is StepState.RUNNING
        views.states["gamma"] = MemberState.DEAD  # now every one is gone
        assert await fencing.look() == [("beta.1", "s")]
        assert active.progress.steps["s"].state is StepState.FAILED
        assert executor.cancelled.is_set()
        agent.stop()


async def test_a_contact_dead_within_its_loss_grace_keeps_the_step_running(
        agent: Agent, monkeypatch) -> None:
    """Every other domain is DEAD in SWIM's view, but gamma's verdict has not stood for
    the loss grace here: gamma reads SUSPECT, still contact, and the step runs on however
    long past the lease (the test moves the clock). Once the grace has passed, the same
    look fences it. Before, a DEAD verdict was lost contact at once."""
    views = Views(agent, held={"gamma"}, beta=MemberState.DEAD, gamma=MemberState.DEAD)
    agent.membership = views
    async with asyncio.TaskGroup() as tg:
        agent._tg = tg
        active, executor, fencing = await _running_long_past_the_lease(agent, monkeypatch)
        assert fencing.refusal(active) is None  # a next step here would start too
        assert await fencing.look() == []
        assert active.progress.steps["s"].state is StepState.RUNNING
        assert not executor.cancelled.is_set()
        views.held.clear()  # gamma's verdict stood for the grace: acted on
        assert fencing.refusal(active) is not None
        assert await fencing.look() == [("beta.1", "s")]
        step = active.progress.steps["s"]
        assert step.state is StepState.FAILED
        assert step.error.startswith("fenced: lost contact with beta, gamma for "), step.error
        assert executor.cancelled.is_set()
        agent.stop()


CHAIN = json_format.ParseDict({"name": "chain", "steps": [
    {"id": "s", "capability": "gate"}, {"id": "u", "capability": "x", "needs": ["s"]}]},
    spec_pb2.WorkflowSpec())


class Gate:
    """An executor whose step succeeds once the test opens the gate."""

    def __init__(self) -> None:
        self.open = asyncio.Event()

    async def run(self, inv: StepInvocation) -> StepOutcome:
        await self.open.wait()
        return StepOutcome.success({})


async def _chain_cut_off(agent: Agent, monkeypatch, after_s: float):
    """Steps s then u of a workflow coordinated by beta, both here (alpha), every other
    domain DEAD since the start of s (its COMMIT, the last contact); s ends `after_s`
    later (the agent's clock moved on by hand), so u starts here while cut off."""
    agent.deliver = lambda domain, method, **payload: asyncio.sleep(0)  # type: ignore
    gate, forever = Gate(), Forever()
    agent.executors["gate"] = gate  # type: ignore[assignment]
    agent.executors["x"] = forever  # type: ignore[assignment]
    lease_s = 30.0  # the test moves the clock; no timer fires meanwhile
    agent.config.negotiation.step_lease_s = lease_s
    agent.membership = Views(agent, beta=MemberState.DEAD)
    row = WorkflowRow(id="beta.2", name="chain", coordinator="beta", state="RUNNING",
                      spec=CHAIN.SerializeToString(), placement={"s": "alpha", "u": "alpha"},
                      created_ms=1, updated_ms=1)
    active = Active(row, Progress(CHAIN, row.placement, "alpha"))
    agent.active[row.id] = active
    await agent.save(active)
    contact = agent.now()
    monkeypatch.setattr(agent, "now", lambda: contact)  # s starts at its COMMIT's moment
    agent.membership.heard = contact  # type: ignore[union-attr]
    await agent.participation.start_ready(active)
    later = contact + after_s
    monkeypatch.setattr(agent, "now", lambda: later)
    gate.open.set()
    return active, forever, contact, lease_s


async def test_a_step_started_while_cut_off_past_the_lease_is_never_run(
        agent: Agent, monkeypatch) -> None:
    async with asyncio.TaskGroup() as tg:
        agent._tg = tg
        active, forever, _, lease_s = await _chain_cut_off(agent, monkeypatch, 31.0)
        u = active.progress.steps["u"]
        await _until(lambda: u.state is StepState.FAILED, "u did not end fenced")
        assert active.progress.steps["s"].state is StepState.SUCCEEDED
        assert not forever.started.is_set()  # its executor never ran
        assert u.error.startswith("fenced: lost contact with beta for 31 s"), u.error
        assert u.attempts == 1 and u.max_attempts == 1  # not retried here
        assert agent.metrics.steps_self_fenced._value.get() == 1
        await _until(lambda: not active.running, "u still counted as running")
        agent.stop()


async def test_a_step_started_while_cut_off_gets_only_what_is_left_of_the_lease(
        agent: Agent, monkeypatch) -> None:
    async with asyncio.TaskGroup() as tg:
        agent._tg = tg
        active, forever, contact, lease_s = await _chain_cut_off(agent, monkeypatch, 10.0)
        await asyncio.wait_for(forever.started.wait(), 10)  # within the lease: it runs
        fencing = agent.participation.runs.fencing
        monkeypatch.setattr(agent, "now", lambda: contact + lease_s - 0.5)
        assert await fencing.look() == []
        # A lease after the last contact, 20 s after u started: fenced, not at 40 s.
        monkeypatch.setattr(agent, "now", lambda: contact + lease_s)
        assert await fencing.look() == [("beta.2", "u")]
        assert active.progress.steps["u"].state is StepState.FAILED
        assert forever.cancelled.is_set()
        agent.stop()
