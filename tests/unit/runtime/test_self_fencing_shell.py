"""The self-fencing watcher on an in-process agent: a running step is stopped, FAILED
with the reason and reported, once every other domain of its workflow is DEAD past the
lease; a SUSPECT keeps it running. Membership is a stand-in whose views the test sets."""

from __future__ import annotations

import asyncio
import time

from fedorch.core.membership.swim_types import MemberState, MemberView
from fedorch.core.workflow.progress import Progress, StepState
from fedorch.gen.fedorch.v1 import spec_pb2, status_pb2
from fedorch.runtime.agent import Active, Agent
from fedorch.runtime.executors.base import StepInvocation, StepOutcome
from fedorch.runtime.store.store import WorkflowRow
from google.protobuf import json_format

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
    """Membership as the watcher reads it: the core's views, by domain."""

    profile = None

    def __init__(self, agent: Agent, **states: MemberState) -> None:
        self.states = states
        self.heard = agent.now()
        self.swim = self

    def members(self) -> list[MemberView]:
        return [MemberView(name, "", state, 1, self.heard, b"", 1)
                for name, state in self.states.items()]


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


async def test_one_suspect_keeps_the_step_running(agent: Agent, monkeypatch) -> None:
    views = Views(agent, beta=MemberState.DEAD, gamma=MemberState.SUSPECT)
    agent.membership = views
    async with asyncio.TaskGroup() as tg:
        agent._tg = tg
        active, executor, _ = await _running(agent)
        await asyncio.wait_for(executor.started.wait(), 10)
        fencing = agent.participation.runs.fencing
        later = agent.now() + 1000 * LEASE_S
        monkeypatch.setattr(agent, "now", lambda: later)
        assert await fencing.look() == []
        assert active.progress.steps["s"].state is StepState.RUNNING
        views.states["gamma"] = MemberState.DEAD  # now every one is gone
        assert await fencing.look() == [("beta.1", "s")]
        assert active.progress.steps["s"].state is StepState.FAILED
        assert executor.cancelled.is_set()
        agent.stop()
