"""A COMMIT learned without the coordinator starts nothing until the coordinator says
the steps here are still placed here (agent/core/workflow/self_fencing.py, A COMMIT
learned without the coordinator).

alpha voted YES on beta's workflow, then was cut off; beta may have declared it DEAD
and placed its step elsewhere meanwhile. alpha learns the COMMIT from a peer's
recovery ballot (a Decision from gamma), not from beta: the workflow is set up, its
step held back, and beta is asked. Before, the step started at once with a whole
lease, whatever beta had done since."""

from __future__ import annotations

import asyncio

from fedorch.core.negotiation.messages import Decision, Learned, TxInfo, Value
from fedorch.core.workflow.progress import StepState
from fedorch.gen.fedorch.v1 import peer_pb2
from fedorch.runtime.agent import Agent
from fedorch.runtime.peers import PeerCallError

from tests.unit.runtime.test_participation_learned_commit import _no_delivery, _vote_yes
from tests.unit.runtime.test_self_fencing import Forever
from tests.unit.runtime.waiting import until as _until

WF = "beta.1"


class Beta:
    """beta, the coordinator, as alpha's peer calls reach it: unreachable until
    `answer` is set; every query is counted."""

    def __init__(self) -> None:
        self.asked = 0
        self.answer: peer_pb2.DecisionAnswer | None = None

    async def call(self, endpoint, method, **kwargs):
        assert kwargs["recipient"] == "beta", kwargs
        if method != "QueryDecision":  # the COMMIT's acknowledgement, later
            return peer_pb2.Body(ack=peer_pb2.Ack(ok=True)), None
        self.asked += 1
        if self.answer is None:
            raise PeerCallError("unavailable", "beta cannot be reached")
        return peer_pb2.Body(decision_answer=self.answer), None


async def _learned_from_a_peer(worker: Agent, monkeypatch) -> tuple[TxInfo, Forever, Beta]:
    tx = await _vote_yes(worker, WF)  # placement {"s1": "alpha"}, coordinator beta
    _no_delivery(worker)
    executor = Forever()
    worker.executors["x"] = executor  # type: ignore[assignment]
    beta = Beta()
    monkeypatch.setattr(worker.peers, "call", beta.call)
    # gamma recovered the transaction (beta unreachable) and tells everyone its outcome.
    await worker.consensus.receive("gamma", Decision(tx.key, Value(True, ()), "gamma"))
    return tx, executor, beta


async def test_a_commit_from_a_recovery_ballot_starts_nothing_until_the_coordinator_answers(
        worker: Agent, monkeypatch) -> None:
    async with asyncio.TaskGroup() as tg:
        worker._tg = tg
        _, executor, beta = await _learned_from_a_peer(worker, monkeypatch)
        active = worker.active[WF]  # set up here: the COMMIT is durable, the step held
        assert (await worker.store.get_workflow(WF)).state == "RUNNING"
        await _until(lambda: beta.asked >= 2, "beta was not asked (again)")
        assert not executor.started.is_set() and active.running == {}
        assert await worker.store.unfinished_runs() == []
        assert worker.participation.runs.fencing.refusal(active) is not None

        # An answer without placement epochs (an agent of an older version): no contact.
        beta.answer = peer_pb2.DecisionAnswer(workflow_id=WF, known=True)
        asked = beta.asked
        await _until(lambda: beta.asked >= asked + 2, "beta was not asked again")
        assert not executor.started.is_set()

        # beta says s1 is still placed here (epoch 0, as held): it starts, its lease
        # counting from that answer.
        answered_at = worker.now()
        beta.answer = peer_pb2.DecisionAnswer(workflow_id=WF, known=True,
                                              step_epochs={"s1": 0})
        await asyncio.wait_for(executor.started.wait(), 10)
        step = active.progress.steps["s1"]
        assert step.state is StepState.RUNNING and step.attempts == 1
        heard_at = worker.participation.runs.fencing._heard.at(WF)
        assert heard_at is not None and heard_at >= answered_at
        active.running["s1"].cancel()
        worker.stop()


async def test_a_commit_from_a_recovery_ballot_after_a_re_placement_starts_nothing(
        worker: Agent, monkeypatch) -> None:
    """beta declared alpha DEAD and placed s1 again (its epoch moved on to 5): nothing
    of the workflow starts here, asked until its end comes, which ends it here."""
    async with asyncio.TaskGroup() as tg:
        worker._tg = tg
        _, executor, beta = await _learned_from_a_peer(worker, monkeypatch)
        beta.answer = peer_pb2.DecisionAnswer(workflow_id=WF, known=True,
                                              step_epochs={"s1": 5})
        await _until(lambda: beta.asked >= 3, "beta was not asked again")
        active = worker.active[WF]
        assert not executor.started.is_set() and active.running == {}
        assert await worker.store.unfinished_runs() == []
        assert not worker.participation.runs.fencing.heard_in_this_life(WF)
        beta.answer = peer_pb2.DecisionAnswer(workflow_id=WF, known=True, final_state=5)
        await _until(lambda: WF not in worker.active, "the workflow did not end here")
        assert not executor.started.is_set()
        worker.stop()


async def test_the_coordinators_own_ballot_within_the_lease_is_its_notice(
        worker: Agent, monkeypatch) -> None:
    """The fast path is not held back: a COMMIT chosen in the coordinator's ballot 0 and
    learned from the acceptors while this participant still waits within its lease."""
    async with asyncio.TaskGroup() as tg:
        worker._tg = tg
        tx = await _vote_yes(worker, WF)
        _no_delivery(worker)
        executor = Forever()
        worker.executors["x"] = executor  # type: ignore[assignment]
        beta = Beta()
        monkeypatch.setattr(worker.peers, "call", beta.call)
        await worker.consensus.run([Learned(tx.key, Value(True, ()), tx, by_coordinator=True)])
        await asyncio.wait_for(executor.started.wait(), 10)
        assert beta.asked == 0
        worker.active[WF].running["s1"].cancel()
        worker.stop()


# ---- the coordinator's answer: epochs, in memory or not ------------------------------

async def _coordinated_here(agent: Agent):
    """alpha coordinates alpha.1 (s on beta, t on gamma, round 1); beta was lost and s
    placed again on delta by round 4."""
    from fedorch.core.workflow.progress import Progress
    from fedorch.runtime.agent import Active
    from fedorch.runtime.store.store import WorkflowRow

    from tests.unit.runtime.test_self_fencing_restart import SPEC

    row = WorkflowRow(id="alpha.1", name="one", coordinator="alpha", state="RUNNING",
                      spec=SPEC.SerializeToString(), placement={"s": "beta", "t": "gamma"},
                      round=1, created_ms=1, updated_ms=1)
    active = Active(row, Progress(SPEC, row.placement, "alpha"))
    decision = peer_pb2.Decision(workflow_id=row.id, round=1, coordinator="alpha",
                                 outcome=peer_pb2.OUTCOME_COMMIT, placement=row.placement)
    await agent.store.record_decision(
        row.id, 1, "COMMIT", agent.seal("", decision=decision).SerializeToString())
    assert active.progress.domain_lost("beta", can_replace=True)
    assert active.progress.placed_again("s", "delta", 4, "beta")
    replaced = peer_pb2.Decision(workflow_id=row.id, round=4, coordinator="alpha",
                                 outcome=peer_pb2.OUTCOME_COMMIT,
                                 placement={"s": "delta", "t": "gamma"})
    await agent.store.record_decision(  # the re-placement round's COMMIT
        row.id, 4, "COMMIT", agent.seal("", decision=replaced).SerializeToString())
    await agent.save(active, ["s", "t"])
    return active


async def _asked_by(agent: Agent, asker: str) -> dict[str, int]:
    from fedorch.runtime.peer_service import PeerService

    body = peer_pb2.Body(sender=asker, decision_query=peer_pb2.DecisionQuery(
        workflow_id="alpha.1", round=1))
    kind, answer = await PeerService(agent)._query_decision(body)
    assert kind == "decision_answer" and not answer.final_state
    return dict(answer.step_epochs)


async def test_a_coordinator_without_the_workflow_in_memory_answers_with_epochs(
        agent: Agent) -> None:
    """Read from its store: a step placed on the asker gets 0 (its placement is
    current), any other one an epoch above every round the workflow used."""
    await _coordinated_here(agent)  # not in agent.active: as if not held in memory
    assert "alpha.1" not in agent.active
    from_beta = await _asked_by(agent, "beta")
    assert set(from_beta) == {"s", "t"} and from_beta["s"] > 4  # beta's placement is over
    assert (await _asked_by(agent, "delta"))["s"] == 0
    assert (await _asked_by(agent, "gamma"))["t"] == 0


async def test_a_step_the_asker_lost_is_above_its_epoch_after_a_coordinator_restart(
        agent: Agent) -> None:
    """After a restart the epochs in memory start again at 0 (the re-placement's
    epoch is not kept), but the step's lost domains are: the domain that lost it gets
    an epoch above any it can hold."""
    from fedorch.core.workflow.progress import Progress

    active = await _coordinated_here(agent)
    from tests.unit.runtime.test_self_fencing_restart import SPEC

    rebuilt = Progress(SPEC, {"s": "delta", "t": "gamma"}, "alpha")
    rebuilt.steps["s"].replaced_from = ["beta"]  # as Participation._apply_rows keeps it
    active.progress = rebuilt
    agent.active["alpha.1"] = active
    from_beta = await _asked_by(agent, "beta")
    assert from_beta["s"] > 4 and from_beta["t"] == 0
    assert await _asked_by(agent, "delta") == {"s": 0, "t": 0}
