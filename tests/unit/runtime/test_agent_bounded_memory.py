"""What an agent keeps in memory per workflow is dropped when the workflow ends and is no
longer needed, or capped; a late message is still answered, from the store."""

from __future__ import annotations

from fedorch.gen.fedorch.v1 import peer_pb2, status_pb2
from fedorch.runtime import context as context_module
from fedorch.runtime import telemetry
from fedorch.runtime.agent import Active, Agent
from fedorch.runtime.store.store import WorkflowRow
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


def _row(workflow_id: str, state: str = "SUCCEEDED", coordinator: str = "beta") -> WorkflowRow:
    return WorkflowRow(id=workflow_id, name="n", coordinator=coordinator, state=state,
                       spec=b"", placement={"a": "beta"}, created_ms=1, updated_ms=1)


def _result(workflow_id: str, domain: str = "beta") -> peer_pb2.StepResult:
    return peer_pb2.StepResult(workflow_id=workflow_id, step_id="a", attempt=1, domain=domain,
                               state=status_pb2.STEP_STATE_SUCCEEDED)


async def _stored_steps(agent: Agent, workflow_id: str) -> int:
    rows = await agent.store.select("SELECT count(*) FROM steps WHERE workflow_id = ?",
                                    (workflow_id,))
    return rows[0][0]


async def _end(agent: Agent, workflow_id: str) -> None:
    """A workflow that was active here ends (saved, then finished)."""
    active = Active(_row(workflow_id, "RUNNING"))
    agent.active[workflow_id] = active
    await agent.save(active)
    active.row.state = "SUCCEEDED"
    await agent.save(active)
    agent.finished(workflow_id)


async def test_retention_forgets_what_memory_kept_of_an_ended_workflow(agent: Agent) -> None:
    for i in range(5):
        await _end(agent, f"beta.{i}")
    assert len(agent.recently_finished) == 5 and len(agent.changes) == 5
    agent.forget([f"beta.{i}" for i in range(5)])
    assert len(agent.recently_finished) == 0
    assert len(agent.changes) == 0
    assert agent.saved_final("beta.0") is None


async def test_recently_finished_is_capped_and_takes_versions_with_it(agent: Agent,
                                                                     monkeypatch) -> None:
    monkeypatch.setattr(context_module, "RECENTLY_FINISHED_MEMORY", 3)
    for i in range(10):
        await _end(agent, f"beta.{i}")
    assert list(agent.recently_finished) == ["beta.7", "beta.8", "beta.9"]
    assert len(agent.changes) == 3


async def test_a_late_result_past_memory_is_answered_from_the_store(agent: Agent,
                                                                   monkeypatch) -> None:
    """Ended here, no longer among the recently finished: acknowledged from its row,
    and nothing is kept for it (no early result in memory, no step row)."""
    monkeypatch.setattr(context_module, "RECENTLY_FINISHED_MEMORY", 1)
    await _end(agent, "beta.1")
    await _end(agent, "beta.2")  # pushes beta.1 out
    steps_before = await _stored_steps(agent, "beta.1")
    ack = await agent.participation.on_result("beta", _result("beta.1"))
    assert ack.ok
    assert agent.participation.runs.early == {}
    assert await _stored_steps(agent, "beta.1") == steps_before


async def test_a_late_result_for_a_workflow_its_coordinator_removed_is_not_kept(
        agent: Agent) -> None:
    """alpha coordinated alpha.1, retention removed it; a participant's late result is
    refused for good (its sender stops) and leaves no orphan row and nothing in memory."""
    ack = await agent.participation.on_result("beta", _result("alpha.1"))
    assert not ack.ok and not ack.retry_later
    assert "removed by retention" in ack.error
    assert agent.participation.runs.early == {}
    assert await _stored_steps(agent, "alpha.1") == 0


async def test_a_result_for_an_unknown_workflow_with_no_vote_here_is_not_kept(
        agent: Agent) -> None:
    """No vote of this agent awaits beta.9's COMMIT, so its result is not early: kept
    nowhere (before, it was kept in memory and as a step row without a workflow)."""
    ack = await agent.participation.on_result("beta", _result("beta.9"))
    assert not ack.ok and not ack.retry_later
    assert agent.participation.runs.early == {}
    assert await _stored_steps(agent, "beta.9") == 0


async def test_the_spans_kept_as_parents_go_when_retention_forgets_the_workflow(
        agent: Agent) -> None:
    tracing = telemetry.Tracing("alpha", [InMemorySpanExporter()])
    telemetry.install(tracing)
    try:
        request = peer_pb2.PrepareRequest(workflow_id="beta.1", round=1, steps=["a"])
        telemetry.voted(request, peer_pb2.Vote(yes=True))
        with telemetry.step_attempt("beta.1", "a", 1):
            pass
        telemetry.submitted("alpha.1", "n")
        assert telemetry.result_parent("beta.1", "a")
        await _end(agent, "beta.1")
        agent.forget(["alpha.1"])
        assert len(tracing._submits) == 0
        # A compensation of the ended workflow's step still finds its parent...
        assert telemetry.result_parent("beta.1", "a")
        # ...until retention removes the workflow.
        agent.forget(["beta.1"])
        assert telemetry.result_parent("beta.1", "a") == ""
        assert len(tracing._votes) == len(tracing._attempts) == len(tracing._submits) == 0
    finally:
        telemetry.install(None)
        tracing.shutdown()


async def test_an_early_result_goes_when_its_workflow_ended_before_being_set_up(
        agent: Agent) -> None:
    """A result kept for a COMMIT (early), then the end came first: the COMMIT's set-up
    finds the workflow over and lets the kept result go."""
    from fedorch.gen.fedorch.v1 import spec_pb2

    await agent.store.save_workflow(_row("beta.3"))
    agent.participation.runs.early["beta.3"] = [("a", 1, None, {}, "", "beta")]
    await agent.participation._set_up("beta.3", 1, "beta", spec_pb2.WorkflowSpec(name="n"),
                                      {"a": "beta"}, {}, None)
    assert agent.participation.runs.early == {}
