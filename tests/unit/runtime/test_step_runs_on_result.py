"""Steps that a save makes ready start in that same write; an attempt started before a
crash is still never run again; at the coordinator, the result that ends a workflow is
written with its end, and the answer to it carries the end to its sender (an in-process
agent; messages are recorded, not sent)."""

from __future__ import annotations

import asyncio

from fedorch.core.workflow.progress import Progress
from fedorch.gen.fedorch.v1 import peer_pb2, spec_pb2, status_pb2
from fedorch.runtime.agent import Active, Agent
from fedorch.runtime.executors.base import StepInvocation, StepOutcome
from fedorch.runtime.store.store import Store, WorkflowRow
from google.protobuf import json_format

SPEC = json_format.ParseDict({"name": "three", "steps": [
    {"id": "a", "capability": "x"},
    {"id": "b", "capability": "x", "needs": ["a"]},
    {"id": "c", "capability": "x", "needs": ["a"]}]}, spec_pb2.WorkflowSpec())


class Held:
    """An executor whose steps run until the test ends; counts what it was asked."""

    def __init__(self, expect: int = 0) -> None:
        self.runs: list[tuple[str, int]] = []
        self.release = asyncio.Event()
        self.all_begun = asyncio.Event()  # once `expect` runs have begun
        self._expect = expect

    async def run(self, inv: StepInvocation) -> StepOutcome:
        self.runs.append((inv.step_id, inv.attempt))
        if len(self.runs) >= self._expect:
            self.all_begun.set()
        await self.release.wait()
        return StepOutcome.success({})


def _setup(agent: Agent, coordinator: str, placement: dict[str, str]) -> tuple[Active, list]:
    sent: list = []

    def deliver(domain, method, **payload):
        sent.append((domain, method))

        async def nothing():
            return None
        return nothing()

    agent.deliver = deliver  # type: ignore[method-assign]
    row = WorkflowRow(id=f"{coordinator}.1", name="three", coordinator=coordinator,
                      state="RUNNING", spec=SPEC.SerializeToString(), placement=placement,
                      created_ms=1, updated_ms=1)
    active = Active(row, Progress(SPEC, placement, agent.domain), fresh=True)
    agent.active[row.id] = active
    return active, sent


def _result(wf: str, step: str, domain: str) -> peer_pb2.StepResult:
    return peer_pb2.StepResult(workflow_id=wf, step_id=step, attempt=1, domain=domain,
                               state=status_pb2.STEP_STATE_SUCCEEDED)


async def test_the_steps_a_result_makes_ready_start_in_its_write(agent: Agent) -> None:
    executor = Held(expect=2)
    agent.executors["x"] = executor  # type: ignore[assignment]
    active, _ = _setup(agent, "beta", {"a": "beta", "b": "alpha", "c": "alpha"})
    await agent.save(active)
    async with asyncio.TaskGroup() as tg:
        agent._tg = tg  # the step runs the agent spawns are this test's
        before = agent.store.writes

        await agent.participation.on_result("beta", _result("beta.1", "a", "beta"))

        assert agent.store.writes == before + 1  # a's result, b's and c's starts
        assert await agent.store.runs_of("beta.1") == [("b", 1, "running"),
                                                       ("c", 1, "running")]
        await asyncio.wait_for(executor.all_begun.wait(), 10)
        executor.release.set()
    assert sorted(executor.runs) == [("b", 1), ("c", 1)]


async def test_an_attempt_started_before_a_crash_is_not_run_again(agent: Agent) -> None:
    executor = Held()
    executor.release.set()
    agent.executors["x"] = executor  # type: ignore[assignment]
    active, _ = _setup(agent, "beta", {"a": "beta", "b": "alpha", "c": "alpha"})
    await agent.save(active)
    # b's first attempt is on record (it started before a crash); c's is not.
    await agent.store.apply([Store.start_run_statement("beta.1", "b", 1, 5)])
    async with asyncio.TaskGroup() as tg:
        agent._tg = tg
        await agent.participation.on_result("beta", _result("beta.1", "a", "beta"))
    runs = await agent.store.runs_of("beta.1")
    assert ("b", 1, "failed") in runs  # ended as interrupted, never run
    assert ("b", 1) not in executor.runs and ("c", 1) in executor.runs
    assert active.progress.steps["a"].state.value == "SUCCEEDED"
    row, steps = await agent.store.get_workflow_with_steps("beta.1")
    assert steps["a"].state == "SUCCEEDED" and steps["c"].state == "SUCCEEDED"


async def test_the_result_that_ends_a_workflow_is_written_with_its_end(agent: Agent) -> None:
    active, sent = _setup(agent, "alpha", {"a": "beta", "b": "gamma", "c": "gamma"})
    await agent.save(active)
    for step, domain in (("a", "beta"), ("b", "gamma")):
        await agent.participation.on_result(domain, _result("alpha.1", step, domain))
    before = agent.store.writes

    ack = await agent.participation.on_result("gamma", _result("alpha.1", "c", "gamma"))

    assert agent.store.writes == before + 1
    row, steps = await agent.store.get_workflow_with_steps("alpha.1")
    assert row.state == "SUCCEEDED"
    assert {s.step_id: (s.state, s.attempts) for s in steps.values()} == {
        "a": ("SUCCEEDED", 1), "b": ("SUCCEEDED", 1), "c": ("SUCCEEDED", 1)}
    # gamma, whose result ended it, learns the end from the answer: no notice of its own.
    assert ack.ok and ack.end.workflow_id == "alpha.1"
    assert ack.end.final_state == status_pb2.WORKFLOW_STATE_SUCCEEDED
    assert sorted(d for d, method in sent if method == "CancelWorkflow") == ["beta"]
    assert "alpha.1" not in agent.active
    # Its answer lost, gamma sends the result again: the answer carries the end again,
    # also once it is read from disk, and nothing is written.
    for forget in (False, True):
        if forget:
            agent._final.clear()
        again = await agent.participation.on_result("gamma", _result("alpha.1", "c", "gamma"))
        assert again.ok and again.end == ack.end
    assert agent.store.writes == before + 1


async def test_a_participant_applies_the_end_that_answers_its_result(agent: Agent) -> None:
    active, _ = _setup(agent, "beta", {"a": "beta", "b": "alpha", "c": "alpha"})
    await agent.save(active)
    end = peer_pb2.CancelNotice(workflow_id="beta.1", reason="",
                                final_state=status_pb2.WORKFLOW_STATE_SUCCEEDED)

    def deliver(domain, method, **payload):
        async def answer():
            return peer_pb2.Ack(ok=True, end=end)
        return answer()

    agent.deliver = deliver  # type: ignore[method-assign]
    await agent.participation.runs._send_result(active, "beta", _result("beta.1", "b", "alpha"),
                                           True)
    assert "beta.1" not in agent.active
    assert (await agent.store.get_workflow("beta.1")).state == "SUCCEEDED"
