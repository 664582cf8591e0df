"""Self-fencing after a restart: a restarted agent starts no attempt of a workflow it
read back from disk until a message of that workflow is heard in this life. Here the
idempotent retry of an attempt the earlier life left open waits while the coordinator
cannot be asked (before, it started at once with a whole lease), and starts once the
coordinator answers; an answer that the workflow ended ends it here, nothing started."""

from __future__ import annotations

import asyncio

from fedorch.core.workflow.progress import Progress, StepState
from fedorch.gen.fedorch.v1 import peer_pb2, spec_pb2
from fedorch.runtime.agent import Active, Agent
from fedorch.runtime.peers import PeerCallError
from fedorch.runtime.store.store import Store, WorkflowRow
from google.protobuf import json_format

from tests.unit.runtime.test_self_fencing import Forever, Views
from tests.unit.runtime.waiting import until as _until

SPEC = json_format.ParseDict({"name": "one", "steps": [
    {"id": "s", "capability": "x", "idempotent": True, "retries": 2},
    {"id": "t", "capability": "x", "needs": ["s"]}]}, spec_pb2.WorkflowSpec())
WF = "beta.1"


async def _earlier_life(agent: Agent, placement: dict[str, str] | None = None,
                       **row_fields) -> None:
    """Step s of beta's workflow was running here (attempt 1 on record, no end) when
    this agent stopped (t on gamma unless `placement` says otherwise; `row_fields`: the
    rest of the workflow's row, such as its round)."""
    row = WorkflowRow(id=WF, name="one", coordinator="beta", state="RUNNING",
                      spec=SPEC.SerializeToString(),
                      placement=placement or {"s": "alpha", "t": "gamma"},
                      created_ms=1, updated_ms=1, **row_fields)
    active = Active(row, Progress(SPEC, row.placement, "alpha"))
    (attempt,) = active.progress.start_ready(agent.now())
    await agent.save(active, [attempt.step_id], also=[
        Store.start_run_statement(WF, "s", 1, agent.now_ms())])


class Coordinator:
    """beta as the restarted agent's peer calls reach it: unreachable until `answer`."""

    def __init__(self) -> None:
        self.asked = 0
        self.answer: peer_pb2.DecisionAnswer | None = None

    async def call(self, endpoint, method, **kwargs):
        assert method == "QueryDecision" and kwargs["recipient"] == "beta"
        self.asked += 1
        if self.answer is None:
            raise PeerCallError("unavailable", "beta cannot be reached")
        return peer_pb2.Body(decision_answer=self.answer), None


async def _restarted(agent: Agent, monkeypatch) -> tuple[Agent, Forever, Coordinator]:
    await _earlier_life(agent)
    restarted = Agent(agent.config, agent.store)
    restarted.membership = Views(restarted)  # blank: nobody known yet
    executor = Forever()
    restarted.executors["x"] = executor  # type: ignore[assignment]
    beta = Coordinator()
    monkeypatch.setattr(restarted.peers, "call", beta.call)
    monkeypatch.setattr(restarted, "endpoint_of", lambda domain, endpoints=None:
                        "127.0.0.1:9" if domain == "beta" else None)

    def deliver(domain, method, **payload):
        async def nothing():
            return None
        return nothing()

    restarted.deliver = deliver  # type: ignore[method-assign]
    return restarted, executor, beta


async def test_the_retry_waits_for_a_message_of_this_life_then_counts_its_lease_from_it(
        agent: Agent, monkeypatch) -> None:
    restarted, executor, beta = await _restarted(agent, monkeypatch)
    async with asyncio.TaskGroup() as tg:
        restarted._tg = tg
        await restarted.participation.recover()
        active = restarted.active[WF]
        # Asked once before resolving, then again while its retry is held back.
        await _until(lambda: beta.asked >= 2, "the coordinator was not asked again")
        step = active.progress.steps["s"]
        assert step.attempts == 1 and step.state is not StepState.RUNNING, step
        assert not executor.started.is_set() and active.running == {}
        assert await restarted.store.unfinished_runs() == []  # attempt 2 never started
        fencing = restarted.participation.runs.fencing
        assert fencing.refusal(active) is not None  # and it would be refused if asked

        # An answer that does not say where the steps are placed is no contact.
        beta.answer = peer_pb2.DecisionAnswer(workflow_id=WF, known=True)
        asked = beta.asked
        await _until(lambda: beta.asked >= asked + 2, "the coordinator was not asked again")
        assert not executor.started.is_set() and active.running == {}

        answered_at = restarted.now()
        beta.answer = peer_pb2.DecisionAnswer(workflow_id=WF, known=True,
                                              step_epochs={"s": 0, "t": 0})
        await asyncio.wait_for(executor.started.wait(), 10)
        assert step.state is StepState.RUNNING and step.attempts == 2
        heard_at = fencing._heard.at(WF)
        assert heard_at is not None and heard_at >= answered_at  # the lease counts from it
        active.running["s"].cancel()
        restarted.stop()


async def test_an_answer_that_the_workflow_ended_ends_it_here_and_starts_nothing(
        agent: Agent, monkeypatch) -> None:
    restarted, executor, beta = await _restarted(agent, monkeypatch)
    async with asyncio.TaskGroup() as tg:
        restarted._tg = tg
        await restarted.participation.recover()
        await _until(lambda: beta.asked >= 2, "the coordinator was not asked again")
        beta.answer = peer_pb2.DecisionAnswer(workflow_id=WF, known=True, final_state=5)
        await _until(lambda: WF not in restarted.active, "the workflow did not end here")
        assert not executor.started.is_set()
        assert await restarted.store.unfinished_runs() == []
        assert len(restarted.participation.runs.fencing._heard) == 0  # forgotten at its end
        restarted.stop()


async def test_a_workflow_that_ends_is_forgotten_alone(agent: Agent) -> None:
    """The watcher drops an ended workflow's contact moment at its end, not by a sweep
    over every workflow it holds."""
    fencing = agent.participation.runs.fencing
    for wf in ("beta.1", "beta.2"):
        row = WorkflowRow(id=wf, name="one", coordinator="beta", state="RUNNING",
                          spec=SPEC.SerializeToString(), placement={"s": "alpha"},
                          created_ms=1, updated_ms=1)
        agent.active[wf] = Active(row)
        fencing.heard(wf)
    agent.finished("beta.1")
    assert fencing._heard.at("beta.1") is None
    assert fencing._heard.at("beta.2") is not None and len(fencing._heard) == 1
    fencing.heard("beta.1")  # a late message of the ended workflow notes nothing
    assert fencing._heard.at("beta.1") is None


async def test_an_in_doubt_answer_with_the_end_applies_the_end_before_the_commit(
        agent: Agent, monkeypatch) -> None:
    """A participant in doubt asks at its lease; the coordinator's answer carries the
    COMMIT and, the workflow having ended meanwhile (its steps here perhaps placed
    elsewhere), its end. The end goes first: a COMMIT of a workflow over here starts
    nothing, while the COMMIT first would set the workflow up and start its steps."""
    from fedorch.core.negotiation.participant import Hold, HoldState

    applied: list[str] = []

    class Settles:
        async def decide(self, sender, envelope, *, from_coordinator=True):
            applied.append("commit")
            return peer_pb2.Ack(ok=True)

        async def ended(self, workflow_id, final_state, reason):
            applied.append(f"end {final_state}")

    beta = Coordinator()
    beta.answer = peer_pb2.DecisionAnswer(workflow_id=WF, known=True,
                                          decision=peer_pb2.Envelope(), final_state=5)
    monkeypatch.setattr(agent.peers, "call", beta.call)
    in_doubt = agent.participation.in_doubt
    monkeypatch.setattr(in_doubt, "_settles", Settles())
    hold = Hold(WF, 1, "beta", HoldState.PREPARED, [("s", "x")], agent.now(),
                coordinator_endpoint="127.0.0.1:9")
    await in_doubt._ask(hold)
    assert applied == ["end 5", "commit"]


async def test_an_answer_that_the_steps_here_were_placed_elsewhere_starts_nothing(
        agent: Agent, monkeypatch) -> None:
    """The coordinator answers, the workflow still running, but step s's placement epoch
    there moved on (a loss of this domain placed it again elsewhere): the answer is no
    contact for it, the retry never starts, and the asking goes on until the end."""
    restarted, executor, beta = await _restarted(agent, monkeypatch)
    beta.answer = peer_pb2.DecisionAnswer(workflow_id=WF, known=True,
                                          step_epochs={"s": 7, "t": 0})
    async with asyncio.TaskGroup() as tg:
        restarted._tg = tg
        await restarted.participation.recover()
        await _until(lambda: beta.asked >= 2, "the coordinator was not asked again")
        active = restarted.active[WF]
        assert not executor.started.is_set() and active.running == {}
        assert not restarted.participation.runs.fencing.heard_in_this_life(WF)
        assert await restarted.store.unfinished_runs() == []
        beta.answer = peer_pb2.DecisionAnswer(workflow_id=WF, known=True, final_state=5)
        await _until(lambda: WF not in restarted.active, "the workflow did not end here")
        assert not executor.started.is_set()
        restarted.stop()


async def test_the_coordinator_answers_with_each_steps_placement_epoch(agent: Agent) -> None:
    """What a restarted participant compares its own epochs with: the acting
    coordinator's, while the workflow runs; none once it has ended."""
    from fedorch.runtime.peer_service import PeerService

    row = WorkflowRow(id="alpha.1", name="one", coordinator="alpha", state="RUNNING",
                      spec=SPEC.SerializeToString(), placement={"s": "beta", "t": "gamma"},
                      round=1, created_ms=1, updated_ms=1)
    active = Active(row, Progress(SPEC, row.placement, "alpha"))
    agent.active[row.id] = active
    decision = peer_pb2.Decision(workflow_id=row.id, round=1, coordinator="alpha",
                                 outcome=peer_pb2.OUTCOME_COMMIT, placement=row.placement)
    await agent.store.record_decision(
        row.id, 1, "COMMIT", agent.seal("", decision=decision).SerializeToString())
    assert active.progress.domain_lost("beta", can_replace=True)  # s: epoch 1, unplaced
    body = peer_pb2.Body(decision_query=peer_pb2.DecisionQuery(workflow_id=row.id, round=1))
    kind, answer = await PeerService(agent)._query_decision(body)
    assert kind == "decision_answer" and dict(answer.step_epochs) == {"s": 1, "t": 0}


async def _learn_commit_late(agent: Agent, monkeypatch,
                             step_epochs: dict[str, int]) -> tuple[Active | None, Forever]:
    """alpha, in doubt on beta's workflow (its YES held, the COMMIT missed while cut
    off), asks at its lease; beta answers with the COMMIT and, the workflow running,
    each step's placement epoch. The COMMIT is applied by a stand-in that sets the
    workflow up as Participation does (its COMMIT is contact; ready steps start)."""
    from fedorch.core.negotiation.participant import Hold, HoldState

    executor = Forever()
    agent.executors["x"] = executor  # type: ignore[assignment]
    runs = agent.participation.runs

    class Settles:
        async def decide(self, sender, envelope, *, from_coordinator=True):
            row = WorkflowRow(id=WF, name="one", coordinator="beta", state="RUNNING",
                              spec=SPEC.SerializeToString(),
                              placement={"s": "alpha", "t": "gamma"}, round=1,
                              created_ms=1, updated_ms=1)
            active = Active(row, Progress(SPEC, row.placement, "alpha"))
            agent.active[WF] = active
            if from_coordinator:  # its COMMIT: contact with the workflow
                runs.fencing.heard(WF)
            else:  # learned without the coordinator (see Participation._set_up)
                runs.fencing.not_heard(WF)
            await runs.save_starting(active)
            await runs.start_ready(active)
            return peer_pb2.Ack(ok=True)

        async def ended(self, workflow_id, final_state, reason):
            raise AssertionError("not ended")

    beta = Coordinator()
    beta.answer = peer_pb2.DecisionAnswer(workflow_id=WF, known=True,
                                          decision=peer_pb2.Envelope(), step_epochs=step_epochs)
    monkeypatch.setattr(agent.peers, "call", beta.call)
    in_doubt = agent.participation.in_doubt
    monkeypatch.setattr(in_doubt, "_settles", Settles())
    hold = Hold(WF, 1, "beta", HoldState.PREPARED, [("s", "x")], agent.now(),
                coordinator_endpoint="127.0.0.1:9")
    await in_doubt._ask(hold)
    return agent.active.get(WF), executor


async def test_a_commit_learned_after_the_steps_were_placed_elsewhere_starts_nothing(
        agent: Agent, monkeypatch) -> None:
    async with asyncio.TaskGroup() as tg:
        agent._tg = tg
        active, executor = await _learn_commit_late(agent, monkeypatch, {"s": 3, "t": 0})
        assert active is not None and active.running == {}
        assert active.progress.steps["s"].state is not StepState.RUNNING
        assert not executor.started.is_set()
        assert await agent.store.unfinished_runs() == []
        agent.stop()


async def test_a_commit_learned_late_with_the_steps_still_here_starts_them(
        agent: Agent, monkeypatch) -> None:
    async with asyncio.TaskGroup() as tg:
        agent._tg = tg
        active, executor = await _learn_commit_late(agent, monkeypatch, {"s": 0, "t": 0})
        await asyncio.wait_for(executor.started.wait(), 10)
        assert active is not None and active.progress.steps["s"].state is StepState.RUNNING
        active.running["s"].cancel()
        agent.stop()


async def test_an_answer_of_an_epoch_granted_away_meanwhile_is_not_taken(
        agent: Agent, monkeypatch, caplog) -> None:
    # beta answers that the workflow ended, but while the question was out this agent
    # granted epoch 1 to gamma: beta's epoch is over here, so is its word.
    restarted, executor, beta = await _restarted(agent, monkeypatch)
    answered = beta.call

    async def granted_meanwhile(endpoint, method, **kwargs):
        reply = await answered(endpoint, method, **kwargs)
        row = restarted.active[WF].row
        row.coordinator, row.epoch = "gamma", 1
        return reply

    monkeypatch.setattr(restarted.peers, "call", granted_meanwhile)
    beta.answer = peer_pb2.DecisionAnswer(workflow_id=WF, known=True, final_state=5,
                                          final_reason="cancelled: by beta")
    async with asyncio.TaskGroup() as tg:
        restarted._tg = tg
        caplog.set_level("INFO", logger="fedorch")
        await restarted.participation.recover()  # asks beta first (an interrupted retry)
        await _until(lambda: "not taken" in caplog.text or WF not in restarted.active,
                     "beta's answer to be looked at")
        assert WF in restarted.active  # not ended on beta's word
        assert not executor.started.is_set()
        restarted.stop()


async def test_an_end_learned_by_asking_keeps_the_coordinator_s_reason(
        agent: Agent, monkeypatch) -> None:
    restarted, executor, beta = await _restarted(agent, monkeypatch)
    beta.answer = peer_pb2.DecisionAnswer(workflow_id=WF, known=True, final_state=5,
                                          final_reason="cancelled: by beta")
    async with asyncio.TaskGroup() as tg:
        restarted._tg = tg
        await restarted.participation.recover()
        await _until(lambda: WF not in restarted.active, "the workflow did not end here")
        row = await restarted.store.get_workflow(WF)
        assert row.reason == "cancelled: by beta" and not executor.started.is_set()
        restarted.stop()


async def test_a_coordinator_held_dead_is_not_asked(agent: Agent, monkeypatch) -> None:
    # No answer will come from it, and a call would hold the asking for its deadline.
    from fedorch.core.membership.swim_types import MemberState

    from tests.unit.runtime.test_self_fencing import Views

    restarted, executor, beta = await _restarted(agent, monkeypatch)
    restarted.membership = Views(restarted, beta=MemberState.DEAD)
    beta.answer = peer_pb2.DecisionAnswer(workflow_id=WF, known=True)
    async with asyncio.TaskGroup() as tg:
        restarted._tg = tg
        await restarted.participation.recover()
        active = restarted.active[WF]
        ask = restarted.participation.in_doubt._ask_coordinator
        assert await ask(active) is None and beta.asked == 0
        restarted.membership = Views(restarted, beta=MemberState.ALIVE)
        assert await ask(active) is not None and beta.asked >= 1
        restarted.stop()
