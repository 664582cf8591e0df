"""A participant tells the coordinator that a step is RUNNING only once it has run for
RUNNING_NOTE_AFTER_S; a quicker step reports only its result (an in-process agent; the
messages it would send are recorded instead of sent)."""

from __future__ import annotations

import asyncio
import time

from fedorch.core.workflow.progress import Progress
from fedorch.gen.fedorch.v1 import spec_pb2, status_pb2
from fedorch.runtime import step_runs
from fedorch.runtime.agent import Active, Agent
from fedorch.runtime.executors.base import StepInvocation, StepOutcome
from fedorch.runtime.store.store import WorkflowRow
from google.protobuf import json_format

SPEC = json_format.ParseDict({"name": "one", "steps": [{"id": "s", "capability": "x"}]},
                             spec_pb2.WorkflowSpec())


class Gate:
    """An executor whose step runs until the test opens the gate."""

    def __init__(self, open_: bool) -> None:
        self.opened = asyncio.Event()
        if open_:
            self.opened.set()

    async def run(self, inv: StepInvocation) -> StepOutcome:
        await self.opened.wait()
        return StepOutcome.success({"done": 1})


async def _start_step(agent: Agent, gate: Gate) -> tuple[asyncio.Task, list[str]]:
    """Start step s of a workflow coordinated by beta, as a committed participant does;
    returns its run and the states of the results sent to beta, as they are sent."""
    sent: list[str] = []

    def deliver(domain, method, **payload):
        assert (domain, method) == ("beta", "ReportStep")
        sent.append(status_pb2.StepState.Name(payload["step_result"].state))

        async def nothing():
            return None
        return nothing()

    agent.deliver = deliver  # type: ignore[method-assign]
    agent.executors["x"] = gate  # type: ignore[assignment]
    row = WorkflowRow(id="beta.1", name="one", coordinator="beta", state="RUNNING",
                      spec=SPEC.SerializeToString(), placement={"s": "alpha"},
                      created_ms=1, updated_ms=1)
    active = Active(row, Progress(SPEC, row.placement, "alpha"))
    agent.active[row.id] = active
    await agent.save(active)
    await agent.participation.start_ready(active)
    return active.running["s"], sent


async def test_a_quick_step_reports_only_its_result(agent: Agent) -> None:
    async with asyncio.TaskGroup() as tg:
        agent._tg = tg  # the tasks the agent spawns are this test's
        run, sent = await _start_step(agent, Gate(open_=True))
        await run
    assert sent == ["STEP_STATE_SUCCEEDED"]


async def test_a_long_step_is_reported_running_first(agent: Agent, monkeypatch) -> None:
    monkeypatch.setattr(step_runs, "RUNNING_NOTE_AFTER_S", 0.0)
    gate = Gate(open_=False)
    async with asyncio.TaskGroup() as tg:
        agent._tg = tg
        run, sent = await _start_step(agent, gate)
        deadline = time.monotonic() + 10
        while not sent:  # a condition with a deadline
            assert time.monotonic() < deadline, "no RUNNING note"
            await asyncio.sleep(0.01)
        assert sent == ["STEP_STATE_RUNNING"]
        gate.opened.set()
        await run
    assert sent == ["STEP_STATE_RUNNING", "STEP_STATE_SUCCEEDED"]
