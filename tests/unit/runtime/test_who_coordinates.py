"""Whom a held-back participant whose coordinator is gone asks for the successor: the
other participants it knows of, then the committed round's acceptors that hold no step
as far as it knows (a successor proves its epoch only as a member of the electorate,
which under Paxos Commit is the round's acceptors), each once, never one SWIM holds
DEAD; the round's acceptors from its row, or from the PREPARE it voted on.

Agent alpha (the conftest's, real store and takeover shell) takes part in beta's
workflow; beta also runs a step, and the committed round's acceptors, the electorate,
are alpha, beta and delta (an extra acceptor: a workflow on two domains). beta is DEAD
here past its loss grace. delta was given a step by a re-placement while alpha was cut
off (alpha's row does not show it) and won epoch 1 with beta's grant and its own.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fedorch.core.identity.envelope import Signer, new_nonce, seal
from fedorch.core.membership.swim_types import MemberState
from fedorch.gen.fedorch.v1 import peer_pb2
from fedorch.runtime import who_coordinates
from fedorch.runtime.agent import Active, Agent
from fedorch.runtime.store.store import HoldTxRow, ReservationRow, WorkflowRow

from tests.unit.runtime.test_self_fencing import Views
from tests.unit.runtime.test_self_fencing_restart import SPEC
from tests.unit.runtime.test_takeover_proven_successor import holding

WF = "beta.1"
ELECTORATE = ["alpha", "beta", "delta"]
KEYS = {d: Ed25519PrivateKey.generate() for d in ("beta", "delta", "gamma")}


def trusting(agent: Agent) -> None:
    for domain, key in KEYS.items():
        agent.trust.add(domain, key.public_key())


def certificate(winner: str, *voters: str,
                electorate: list[str] = ELECTORATE) -> peer_pb2.EpochCertificate:
    """`winner`'s proof of epoch 1: the grants of `voters` in round 1 of `electorate`."""
    def grant(voter: str) -> peer_pb2.Envelope:
        answer = peer_pb2.TakeoverAnswer(workflow_id=WF, epoch=1, granted=True,
                                         held_epoch=1, holder=winner, committed_round=1,
                                         electorate=electorate)
        return seal(Signer(voter, KEYS[voter]), recipient=winner, now_ms=1,
                    nonce=new_nonce(), takeover_answer=answer)
    return peer_pb2.EpochCertificate(workflow_id=WF, epoch=1, coordinator=winner,
                                     grants=[grant(v) for v in voters])


def acting(proof: peer_pb2.EpochCertificate | None) -> peer_pb2.DecisionAnswer:
    """A QueryDecision answer as an acting successor gives it (with `proof`), or as any
    other domain that knows the decision does (None: no epochs, no certificate)."""
    if proof is None:
        return peer_pb2.DecisionAnswer(workflow_id=WF, known=True)
    answer = peer_pb2.DecisionAnswer(workflow_id=WF, known=True,
                                     step_epochs={"s": 0, "t": 0})
    answer.epoch_certificate.CopyFrom(proof)
    return answer


def _row(**fields) -> WorkflowRow:
    values = dict(id=WF, name="one", coordinator="beta", state="RUNNING",
                  spec=SPEC.SerializeToString(), placement={"s": "alpha", "t": "beta"},
                  round=1, acceptors=list(ELECTORATE), created_ms=1, updated_ms=1)
    values.update(fields)
    return WorkflowRow(**values)


async def _taking_part(agent: Agent, **fields) -> Active:
    """alpha holds beta's workflow (its takeover core built, as its first look does);
    beta DEAD past its grace, delta and gamma ALIVE."""
    trusting(agent)
    agent.membership = Views(agent, beta=MemberState.DEAD, delta=MemberState.ALIVE,
                             gamma=MemberState.ALIVE)
    return await holding(agent, _row(**fields))


def _answering(agent: Agent, monkeypatch,
               answers: dict[str, peer_pb2.DecisionAnswer]) -> list[str]:
    """alpha's peer calls answered from `answers` by recipient (any other recipient
    fails the test); returns the recipients in the order asked."""
    asked: list[str] = []

    async def call(endpoint, method, **kwargs):
        assert method == "QueryDecision", method
        assert kwargs["timeout"] > 0  # every call has a deadline
        to = kwargs["recipient"]
        asked.append(to)
        assert to in answers, f"{to} was asked"
        return peer_pb2.Body(decision_answer=answers[to]), None

    monkeypatch.setattr(agent.peers, "call", call)
    monkeypatch.setattr(agent, "endpoint_of", lambda domain, endpoints=None: "127.0.0.1:9")
    return asked


async def test_an_acceptor_holding_no_step_here_is_asked_and_followed_on_its_proof(
        agent: Agent, monkeypatch) -> None:
    active = await _taking_part(agent)
    assert await who_coordinates.candidates(agent, active) == ["delta"]
    asked = _answering(agent, monkeypatch,
                       {"delta": acting(certificate("delta", "beta", "delta"))})
    found = await who_coordinates.ask(agent, active)
    assert found is not None
    followed, answer = found
    assert followed == ("delta", 1) and dict(answer.step_epochs) == {"s": 0, "t": 0}
    assert asked == ["delta"]
    row = await agent.store.get_workflow(WF)
    assert (row.coordinator, row.epoch) == ("delta", 1)  # followed, on disk


async def test_participants_first_then_acceptors_each_once_and_none_taken_without_proof(
        agent: Agent, monkeypatch) -> None:
    """gamma (a participant) and delta (an acceptor holding no step) both answer without
    a certificate: each is asked once, in that order, and nothing is followed."""
    active = await _taking_part(agent, placement={"s": "alpha", "t": "gamma"},
                                acceptors=["alpha", "beta", "delta", "gamma"])
    asked = _answering(agent, monkeypatch, {"gamma": acting(None), "delta": acting(None)})
    assert await who_coordinates.ask(agent, active) is None
    assert asked == ["gamma", "delta"]
    assert (active.row.coordinator, active.row.epoch) == ("beta", 0)


async def test_a_successor_outside_the_electorate_is_not_followed(
        agent: Agent, monkeypatch) -> None:
    """A certificate whose grants name an electorate without its claimant proves
    nothing (epoch_certificate.verify): asked, delta shows one, and is not followed."""
    active = await _taking_part(agent)
    asked = _answering(agent, monkeypatch, {"delta": acting(
        certificate("delta", "beta", "gamma", electorate=["alpha", "beta", "gamma"]))})
    assert await who_coordinates.ask(agent, active) is None
    assert asked == ["delta"]
    assert (active.row.coordinator, active.row.epoch) == ("beta", 0)


async def test_an_acceptor_that_swim_holds_dead_is_not_asked(agent: Agent,
                                                               monkeypatch) -> None:
    """Asking is a shortcut: delta, DEAD in SWIM's view (here within its loss grace), is
    passed over rather than hold the asking for a call's whole deadline."""
    active = await _taking_part(agent)
    agent.membership.states["delta"] = MemberState.DEAD
    agent.membership.held.add("delta")
    asked = _answering(agent, monkeypatch, {})
    assert await who_coordinates.ask(agent, active) is None
    assert asked == []


async def test_the_round_acceptors_come_from_the_prepare_voted_on_when_the_row_has_none(
        agent: Agent) -> None:
    """The takeover shell copies the acceptors into the row; before it has, the PREPARE
    this agent voted on (`hold_txs`) names them. Classic 2PC: none."""
    row = _row(acceptors=[])
    assert await who_coordinates.round_acceptors(agent, Active(row)) == []
    tx = peer_pb2.PaxosTx(workflow_id=WF, round=1, coordinator="beta",
                          participants=["alpha", "beta"], acceptors=ELECTORATE)
    await agent.store.save_reservation(
        ReservationRow(WF, 1, "beta", "PREPARED", [("s", "x")], 1, "127.0.0.1:9"),
        HoldTxRow(WF, 1, tx.SerializeToString(), SPEC.SerializeToString(), row.placement,
                  "127.0.0.1:9"))
    assert await who_coordinates.round_acceptors(agent, Active(row)) == ELECTORATE
    assert await who_coordinates.candidates(agent, Active(row)) == ["delta"]
    assert await who_coordinates.round_acceptors(
        agent, Active(_row(acceptors=["alpha", "beta", "zeta"]))) == ["alpha", "beta", "zeta"]
