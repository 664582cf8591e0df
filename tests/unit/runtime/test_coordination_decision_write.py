"""A COMMIT decision is one forced write at its coordinator: the decision record, the
workflow's move to RUNNING, the spent proposal cell and, when the coordinator runs steps
of it, its learned log; so is a COMMIT proposal with its own acceptor's acceptance (an
in-process agent; a core driven by hand)."""

from __future__ import annotations

import random

from fedorch.core.negotiation.coordinator import ConsensusOptions, Coordinator, Phase
from fedorch.core.negotiation.messages import Accepted, Ballot, PersistProposal, Send, Value, VoteIn
from fedorch.core.negotiation.rounds import Finished, PersistDecision
from fedorch.core.workflow.placement import Placement
from fedorch.gen.fedorch.v1 import peer_pb2, spec_pb2
from fedorch.runtime import paxos_wire as wire
from fedorch.runtime.agent import Active, Agent
from fedorch.runtime.coordination_driver import own_accepts
from fedorch.runtime.store.store import Store, WorkflowRow
from google.protobuf import json_format

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

    await agent.coordination.decisions.persist(active, SPEC, core, action, paxos=True)

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

    await agent.coordination.decisions.persist(active, SPEC, core, action, paxos=True)

    assert (await agent.store.get_decision(*KEY))[0] == "COMMIT"
    assert (await agent.store.get_workflow(KEY[0])).state == "RUNNING"
    assert await agent.store.get_learned(*KEY) is None


async def test_a_decision_cell_already_held_is_what_counts(agent: Agent) -> None:
    placement = {"s1": "alpha", "s2": "p2"}
    core, action = committed_core(placement)
    active = negotiating(agent, placement)
    first = _envelope("the first certificate")
    await agent.store.record_decision(*KEY, "COMMIT", first)

    await agent.coordination.decisions.persist(active, SPEC, core, action, paxos=True)

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


def voted_core(placement: dict[str, str]) -> Coordinator:
    """A consensus-mode core that has every YES of round 1 and nothing else done."""
    core = Coordinator("alpha.wf", placer=lambda excluded: _placement(placement),
                       max_rounds=1, prepare_timeout_s=5.0,
                       consensus=ConsensusOptions("alpha", random.Random(1)))
    core.start(0.0)
    core.next_actions()
    for d in sorted(set(placement.values())):
        core.receive_vote(1.0, VoteIn(1, d, True, "", _envelope(d)))
    return core


async def test_a_commit_proposal_and_our_own_acceptance_are_one_write(agent: Agent) -> None:
    core = voted_core({"s1": "alpha", "s2": "p2"})
    actions = own_accepts(core.next_actions(), "alpha")
    assert [type(x).__name__ for x in actions] == ["ProposeAndAccept"]
    proposal, accept = actions[0].proposal, actions[0].accept
    assert proposal.value.commit and accept.ballot == Ballot(0, "alpha")
    before = agent.store.writes

    assert await agent.consensus.accept_own(accept, Store.proposal_statement(
        *KEY, "COMMIT", wire.value_bytes(proposal.value)))

    assert agent.store.writes == before + 1
    assert (await agent.store.get_proposal(*KEY))[0] == "COMMIT"
    record = await agent.store.get_acceptor_record(*KEY)
    assert record is not None and record.accepted == (0, "alpha")
    assert agent.consensus.acceptor.record(KEY).accepted_value == proposal.value


async def test_our_acceptor_takes_no_commit_that_the_cell_refused(agent: Agent) -> None:
    core = voted_core({"s1": "alpha", "s2": "p2"})
    own = own_accepts(core.next_actions(), "alpha")[0]
    await agent.store.propose(*KEY, "ABORT", b"")  # (a state no core reaches: the guard)

    assert not await agent.consensus.accept_own(own.accept, Store.proposal_statement(
        *KEY, "COMMIT", wire.value_bytes(own.proposal.value)))

    assert await agent.store.get_proposal(*KEY) == ("ABORT", b"")
    assert await agent.store.get_acceptor_record(*KEY) is None


def test_only_a_commit_proposal_followed_by_our_own_accept_is_merged() -> None:
    core = voted_core({"s1": "alpha", "s2": "p2"})
    proposal, send = core.next_actions()
    other = Send("p2", send.msg)
    assert own_accepts([proposal, other], "alpha") == [proposal, other]
    assert own_accepts([send, proposal], "alpha") == [send, proposal]
    abort = PersistProposal(1, Value(False))
    assert own_accepts([abort, send], "alpha") == [abort, send]
