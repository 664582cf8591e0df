"""A COMMIT decision is one forced write at its coordinator: the decision record, the
workflow's move to RUNNING, the spent proposal cell and, when the coordinator runs steps
of it, its learned log (an in-process agent; a core driven by hand)."""

from __future__ import annotations

import random

from google.protobuf import json_format

from agent.gen.fedorch.v1 import peer_pb2, spec_pb2
from agent.negotiation.coordinator import ConsensusOptions, Coordinator, Phase
from agent.negotiation.messages import Accepted, Ballot, Value, VoteIn
from agent.negotiation.rounds import Finished, PersistDecision
from agent.server.agent import Active, Agent
from agent.store.store import WorkflowRow
from agent.workflow.placement import Placement

SPEC = json_format.ParseDict({"name": "two", "steps": [
    {"id": "s1", "capability": "x"}, {"id": "s2", "capability": "x", "needs": ["s1"]}]},
    spec_pb2.WorkflowSpec())
KEY = ("alpha.wf", 1)


def committed_core(placement: dict[str, str]) -> tuple[Coordinator, PersistDecision]:
    """A consensus-mode core that has just chosen COMMIT; and its PersistDecision."""
    core = Coordinator("alpha.wf", placer=lambda excluded: _placement(placement),
                       max_rounds=1, prepare_timeout_s=5.0,
                       consensus=ConsensusOptions("alpha", random.Random(1)))
    core.start(0.0)
    domains = sorted(set(placement.values()))
    votes = tuple(VoteIn(1, d, True, "", _envelope(d)) for d in domains)
    for v in votes:
        core.receive_vote(1.0, v)
    core.next_actions()
    for acceptor in core.tx().acceptors:
        core.receive_paxos(2.0, Accepted(KEY, Ballot(0, "alpha"), acceptor, Value(True, votes)))
    actions = core.next_actions()
    assert core.phase is Phase.COMMITTED
    return core, next(x for x in actions if isinstance(x, PersistDecision))


def _placement(placement: dict[str, str]) -> Placement:
    return Placement(dict(placement), {})


def _envelope(text: str) -> bytes:
    return peer_pb2.Envelope(body=text.encode(), signature=b"sig").SerializeToString()


def negotiating(agent: Agent, placement: dict[str, str]) -> Active:
    row = WorkflowRow(id=KEY[0], name="two", coordinator="alpha", state="NEGOTIATING",
                      spec=SPEC.SerializeToString(), placement=placement, round=1,
                      created_ms=1, updated_ms=1)
    active = Active(row, fresh=True)
    agent.active[row.id] = active
    return active


async def test_commit_and_running_are_one_write_with_the_learned_decision(
        agent: Agent) -> None:
    placement = {"s1": "alpha", "s2": "p2"}
    core, action = committed_core(placement)
    active = negotiating(agent, placement)
    await agent.store.propose(*KEY, "COMMIT", b"proposal")
    before = agent.store.writes

    await agent.coordination._persist_decision(active, SPEC, core, action, paxos=True)

    assert agent.store.writes == before + 1  # one transaction for all of it
    outcome, envelope = await agent.store.get_decision(*KEY)
    assert outcome == "COMMIT" and envelope
    row, steps = await agent.store.get_workflow_with_steps(KEY[0])
    assert row.state == "RUNNING" and row.placement == placement
    assert set(steps) == {"s1", "s2"}
    assert await agent.store.get_proposal(*KEY) is None  # spent with the decision
    assert (await agent.store.get_learned(*KEY))[0] == "COMMIT"
    # Learning it again (from the acceptors, or the notice to ourselves) writes nothing.
    learned = []
    real_learn = agent.store.learn

    async def spy(*args):
        learned.append(args)
        return await real_learn(*args)

    agent.store.learn = spy
    await agent.consensus.learn(KEY, core.decision(1), core.tx())
    assert learned == []
    assert (await agent.status(KEY[0])).state == 3  # RUNNING, from the saved copy


async def test_a_coordinator_without_steps_learns_nothing(agent: Agent) -> None:
    placement = {"s1": "p1", "s2": "p2"}
    core, action = committed_core(placement)
    active = negotiating(agent, placement)

    await agent.coordination._persist_decision(active, SPEC, core, action, paxos=True)

    assert (await agent.store.get_decision(*KEY))[0] == "COMMIT"
    assert (await agent.store.get_workflow(KEY[0])).state == "RUNNING"
    assert await agent.store.get_learned(*KEY) is None


async def test_a_decision_cell_already_held_is_what_counts(agent: Agent) -> None:
    placement = {"s1": "alpha", "s2": "p2"}
    core, action = committed_core(placement)
    active = negotiating(agent, placement)
    first = _envelope("the first certificate")
    await agent.store.record_decision(*KEY, "COMMIT", first)

    await agent.coordination._persist_decision(active, SPEC, core, action, paxos=True)

    assert await agent.store.get_decision(*KEY) == ("COMMIT", first)
    assert agent.coordination._decisions[KEY].SerializeToString() == first


async def test_a_restored_commit_enters_running_when_finished(agent: Agent) -> None:
    placement = {"s1": "p1", "s2": "p2"}
    core, _ = committed_core(placement)
    active = negotiating(agent, placement)
    await agent.store.save_workflow(active.row)

    await agent.coordination._finished(active, SPEC, core, Finished(True, 1, placement, ""))

    row = await agent.store.get_workflow(KEY[0])
    assert row.state == "RUNNING" and row.placement == placement
    assert active.progress is not None
