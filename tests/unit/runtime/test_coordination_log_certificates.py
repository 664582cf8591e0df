"""The coordinator's log keeps a COMMIT certificate until every participant has the
COMMIT, then drops it; a participant whose step succeeded counts as having it, since it
learned the COMMIT to run the step (an in-process agent; a core driven by hand)."""

from __future__ import annotations

import asyncio
import random

from fedorch.core.negotiation.coordinator import ConsensusOptions, Coordinator, Phase
from fedorch.core.negotiation.messages import Accepted, Ballot, Value, VoteIn
from fedorch.core.workflow.placement import Placement
from fedorch.core.workflow.progress import Progress, StepState
from fedorch.gen.fedorch.v1 import peer_pb2, spec_pb2
from fedorch.runtime.agent import Active, Agent
from fedorch.runtime.store.store import WorkflowRow
from google.protobuf import json_format

SPEC = json_format.ParseDict({"name": "two", "steps": [
    {"id": "s1", "capability": "x"}, {"id": "s2", "capability": "x"}]}, spec_pb2.WorkflowSpec())
PLACEMENT = {"s1": "p1", "s2": "p2"}
KEY = ("alpha.wf", 1)


def committed_core() -> Coordinator:
    core = Coordinator("alpha.wf", placer=lambda excluded: Placement(dict(PLACEMENT), {}),
                       max_rounds=1, prepare_timeout_s=5.0,
                       consensus=ConsensusOptions("alpha", random.Random(1)))
    core.start(0.0)
    votes = tuple(VoteIn(1, d, True, "", d.encode()) for d in ("p1", "p2"))
    for v in votes:
        core.receive_vote(1.0, v)
    for acceptor in ("alpha", "p1"):
        core.receive_paxos(2.0, Accepted(KEY, Ballot(0, "alpha"), acceptor, Value(True, votes)))
    core.next_actions()
    assert core.phase is Phase.COMMITTED and core.awaiting_acks()
    return core


async def test_a_certificate_goes_once_every_participant_ran_or_acknowledged(
        agent: Agent) -> None:
    core = committed_core()
    await agent.store.record_decision(*KEY, "COMMIT", b"certificate")
    row = WorkflowRow(id="alpha.wf", name="two", coordinator="alpha", state="SUCCEEDED",
                      spec=SPEC.SerializeToString(), placement=PLACEMENT,
                      created_ms=1, updated_ms=1)
    active = Active(row, Progress(SPEC, PLACEMENT, "alpha"))  # ended: not in agent.active
    progress = active.progress
    progress.apply_result("s1", 1, StepState.SUCCEEDED, {}, "")
    c = agent.coordination

    c.decision_log.acks_from_results(active, core)
    await c.decision_log.collect(active, core)  # p2 has not shown that it has the COMMIT
    assert await agent.store.get_decision(*KEY) == ("COMMIT", b"certificate")
    assert core.awaiting_acks()

    progress.apply_result("s2", 1, StepState.SUCCEEDED, {}, "")
    c.decision_log.acks_from_results(active, core)
    await c.decision_log.collect(active, core)
    assert await agent.store.get_decision(*KEY) == ("COMMIT", b"")
    assert not core.awaiting_acks()
    assert agent.metrics.collected_decisions._value.get() == 1


async def test_a_workflow_ending_meanwhile_has_its_certificate_collected_at_once(
        agent: Agent) -> None:
    """The last acknowledgement may come while the workflow's end is being written (it
    is still loaded, its state already final): no later save would carry the key."""
    core = committed_core()
    await agent.store.record_decision(*KEY, "COMMIT", b"certificate")
    row = WorkflowRow(id="alpha.wf", name="two", coordinator="alpha", state="SUCCEEDED",
                      spec=SPEC.SerializeToString(), placement=PLACEMENT,
                      created_ms=1, updated_ms=1)
    active = Active(row, Progress(SPEC, PLACEMENT, "alpha"))
    agent.active[row.id] = active  # a.finished() comes after the end's save
    for domain in ("p1", "p2"):
        core.receive_ack(3.0, domain, 1)

    await agent.coordination.decision_log.collect(active, core)

    assert await agent.store.get_decision(*KEY) == ("COMMIT", b"")
    assert active.collect == []


def _ended_row(state: str = "FAILED") -> WorkflowRow:
    return WorkflowRow(id="alpha.wf", name="two", coordinator="alpha", state=state,
                       spec=SPEC.SerializeToString(), placement=PLACEMENT, round=1,
                       created_ms=1, updated_ms=1)


async def _running_with_certificate(agent: Agent) -> Active:
    """alpha.wf RUNNING here, its COMMIT record with the certificate, its core's copy."""
    await agent.store.record_decision(*KEY, "COMMIT", b"certificate")
    active = Active(_ended_row("RUNNING"), Progress(SPEC, PLACEMENT, "alpha"))
    agent.active[active.row.id] = active
    agent.coordination._decisions[KEY] = peer_pb2.Envelope()
    return active


async def _kept_commit(agent: Agent) -> None:
    decision = peer_pb2.Decision(workflow_id=KEY[0], round=KEY[1], coordinator="alpha",
                                 outcome=peer_pb2.OUTCOME_COMMIT, placement=PLACEMENT)
    await agent.store.record_decision(
        *KEY, "COMMIT", agent.seal("", decision=decision).SerializeToString())


async def test_the_sweep_drops_a_certificate_that_outlived_its_core_once_all_have_it(
        agent: Agent, monkeypatch) -> None:
    """The core of an ended workflow stopped waiting (ACK_GRACE_S) while p2 was silent:
    the record was kept; the sweep offers the COMMIT to each participant again and drops
    the certificate only when every one of them has acknowledged it."""
    await agent.store.save_workflow(_ended_row())
    await _kept_commit(agent)
    has_it = {"p1": True, "p2": False}
    offered: list[str] = []

    async def offer(row: WorkflowRow, domain: str, envelope: peer_pb2.Envelope) -> bool:
        assert row.id == KEY[0] and peer_pb2.Body.FromString(envelope.body).decision.round == 1
        offered.append(domain)
        return has_it[domain]

    monkeypatch.setattr(agent.coordination.decision_log, "_offer_commit", offer)
    sweep = agent.coordination.sweep_certificates

    assert await sweep() == 0  # p2 is still silent: kept
    assert sorted(offered) == ["p1", "p2"]
    outcome, envelope = await agent.store.get_decision(*KEY)
    assert outcome == "COMMIT" and envelope
    assert agent.metrics.kept_certificates._value.get() == 1

    has_it["p2"] = True  # p2 is back
    assert await sweep() == 1
    assert await agent.store.get_decision(*KEY) == ("COMMIT", b"")
    assert agent.metrics.collected_decisions._value.get() == 1
    assert agent.metrics.kept_certificates._value.get() == 0
    offered.clear()
    assert await sweep() == 0 and offered == []  # nothing left to offer


async def test_the_sweep_leaves_live_workflows_to_their_core(agent: Agent,
                                                              monkeypatch) -> None:
    async def offer(row: WorkflowRow, domain: str, envelope: peer_pb2.Envelope) -> bool:
        raise AssertionError(f"offered the COMMIT of a live workflow to {domain}")

    monkeypatch.setattr(agent.coordination.decision_log, "_offer_commit", offer)
    await _kept_commit(agent)
    await agent.store.save_workflow(_ended_row("RUNNING"))  # not ended
    assert await agent.coordination.sweep_certificates() == 0

    await agent.store.save_workflow(_ended_row("SUCCEEDED"))  # ended, its core still up
    agent.coordination._cores[KEY[0]] = (committed_core(), asyncio.Queue())
    assert await agent.coordination.sweep_certificates() == 0
    outcome, envelope = await agent.store.get_decision(*KEY)
    assert outcome == "COMMIT" and envelope
    assert agent.metrics.kept_certificates._value.get() == 1


async def test_a_workflow_whose_every_participant_ran_drops_its_certificate_as_it_ends(
        agent: Agent) -> None:
    """Both participants ran a step, so both learned the COMMIT: the write that ends the
    workflow drops the certificate too, and the core, when the results reach it later,
    writes nothing more."""
    core = committed_core()
    active = await _running_with_certificate(agent)
    c = agent.coordination
    for step in ("s1", "s2"):
        active.progress.apply_result(step, 1, StepState.SUCCEEDED, {}, "")

    assert await c.after_progress(active)  # the end: one write
    assert await agent.store.get_decision(*KEY) == ("COMMIT", b"")
    assert agent.metrics.collected_decisions._value.get() == 1

    writes = agent.store.writes
    c.decision_log.acks_from_results(active, core)  # the results reach the core
    await c.decision_log.collect(active, core)
    assert not core.awaiting_acks()
    assert agent.store.writes == writes  # nothing written again
    assert agent.metrics.collected_decisions._value.get() == 1


async def test_a_participant_without_a_succeeded_step_leaves_the_certificate_at_the_end(
        agent: Agent) -> None:
    """p1's step failed and p2's never ran: neither is known to hold the COMMIT, so the
    end keeps the certificate (the core, then the sweep, wait for their answers)."""
    active = await _running_with_certificate(agent)
    active.progress.apply_result("s1", 1, StepState.FAILED, {}, "boom")

    assert await agent.coordination.after_progress(active)
    assert (await agent.store.get_workflow(active.row.id)).state == "FAILED"
    assert await agent.store.get_decision(*KEY) == ("COMMIT", b"certificate")


async def test_the_sweep_tells_the_end_before_it_offers_the_commit_again(
        agent: Agent, monkeypatch) -> None:
    """A participant that never learned the COMMIT (cut off after its YES, its steps
    placed elsewhere since) would start its steps from the COMMIT alone: the sweep sends
    the workflow's end first, and offers no COMMIT to a domain that did not answer it."""
    await agent.store.save_workflow(_ended_row())
    await _kept_commit(agent)
    sent: list[tuple[str, str]] = []
    answers = {"p1": True, "p2": False}
    decisions = agent.coordination.decision_log.decisions

    async def end_notice(row: WorkflowRow, domain: str):
        sent.append(("end", domain))
        return peer_pb2.Ack(ok=True) if answers[domain] else None

    async def commit_notice(row: WorkflowRow, domain: str, envelope: peer_pb2.Envelope):
        assert ("end", domain) in sent, f"the COMMIT went to {domain} before the end"
        sent.append(("commit", domain))
        return peer_pb2.Ack(ok=True)

    monkeypatch.setattr(decisions, "end_notice", end_notice)
    monkeypatch.setattr(decisions, "commit_notice", commit_notice)
    assert await agent.coordination.sweep_certificates() == 0  # p2 silent: kept
    assert sorted(sent) == [("commit", "p1"), ("end", "p1"), ("end", "p2")]
    assert agent.metrics.commit_offers.labels("unanswered")._value.get() == 1

    sent.clear()
    answers["p2"] = True
    assert await agent.coordination.sweep_certificates() == 1
    assert sent.index(("end", "p2")) < sent.index(("commit", "p2"))
    assert await agent.store.get_decision(*KEY) == ("COMMIT", b"")
