"""A trusted domain that lies tries to plant an acceptor record through the real
PaxosPrepare path at an acceptor that holds no step of the workflow: a round of its own
making, a round with the real round's key made before the real one arrives, or a round
it then decides COMMIT with its own signed Decision. An acceptor makes a record only of
a round its coordinator stated (the coordinator's signed round, verified over the bytes
as received: agent/runtime/round_proofs.py `stated`), so every attempt is refused with
its reason, counted, and changes nothing; the honest takeover claimant's proof is then
granted. One record is rightly made: of a real round that aborted, by its only
participant, which then decides it COMMIT with its own YES; the coordinator's signed
later round outranks that "COMMIT" (agent/core/workflow/acceptor_grant.py), so the
honest claimant is granted all the same. Real store, real signatures, the real acceptor
shell (agent/runtime/consensus.py) and claim path (agent/runtime/takeover.py)."""

from __future__ import annotations

import os
import random
from types import SimpleNamespace

import pytest
from fedorch.core.identity.envelope import open_message, seal
from fedorch.core.identity.replay import ReplayGuard
from fedorch.core.negotiation.messages import Accept, Ballot, PaxosPrepare, Promise, TxInfo
from fedorch.core.workflow.acceptor_grant import COMMIT_OUTRANKED, acceptor_grant
from fedorch.gen.fedorch.v1 import peer_pb2
from fedorch.runtime import paxos_wire as wire
from fedorch.runtime.consensus import Consensus

from tests.unit.runtime.test_round_proofs import (
    ACCEPTORS,
    SIGNERS,
    TRUST,
    WF,
    _acceptor,
    _Counter,
    _grants,
    _tampered,
    claim,
    commit,
    proven_claim,
    signed_round,
    store,  # noqa: F401 - the fixture
    yes,
)

PLANTED_ROUND = 7  # no round the coordinator ever ran
REAL = TxInfo(WF, 1, "coord", ("p1",), ACCEPTORS)  # the committed round (signed_round())


def _consensus(agent: SimpleNamespace) -> Consensus:
    """The acceptor shell of an agent that holds no step of WF (no hold, no row)."""
    agent.config = SimpleNamespace(negotiation=SimpleNamespace(prepare_timeout_s=2.0,
                                                               lease_s=30.0))
    agent.rng = random.Random(1)
    agent.now = lambda: 100.0
    agent.participant = SimpleNamespace(hold=lambda key: None, keys_of=lambda wf: [],
                                        status=lambda key: None)
    agent.coordination = SimpleNamespace(tx_of=lambda key: None, route=lambda wf, msg: False)
    # What learning a decision reaches at an acceptor holding no step.
    agent.audit = SimpleNamespace(learned=lambda wf, r, outcome: ("SELECT 1", ()))
    agent.settled = lambda wf: None
    agent.sent = []  # the acceptor's other messages (to learners): named, not sent

    def spawn(coroutine, name: str) -> None:
        agent.sent.append(name)
        coroutine.close()

    agent.spawn = spawn
    return Consensus(agent)


def _stated(tx: TxInfo, round_tx: peer_pb2.Envelope | None) -> TxInfo:
    return wire.stated_tx(tx, round_tx)


async def _send(consensus: Consensus, sender: str, msg: PaxosPrepare | Accept) -> tuple:
    """`sender` sends x a signed PaxosPrepare or Accept, as the peer service hands it
    on: opened (signature, recipient, replay), then routed."""
    kind, message = wire.encode(msg)
    envelope = seal(SIGNERS[sender], recipient="x", now_ms=1_000, nonce=os.urandom(16),
                    **{kind: message})
    body = open_message(envelope, TRUST, ReplayGuard(60_000), me="x", now_ms=1_000,
                        expect=kind)
    return await consensus.on_rpc(body)


async def _plant(consensus: Consensus, planter: str, participants: tuple[str, ...],
                 acceptors: tuple[str, ...] | None = None, round_: int = PLANTED_ROUND,
                 round_tx: peer_pb2.Envelope | None = None) -> tuple:
    """`planter`'s PaxosPrepare of a round as it states it (with `round_tx` if given)."""
    tx = TxInfo(WF, round_, "coord", participants, acceptors or ("coord", planter, "x"))
    return await _send(consensus, planter, PaxosPrepare(_stated(tx, round_tx),
                                                        Ballot(1, planter)))


async def _records(store) -> list[tuple]:  # noqa: F811
    return await store.select("SELECT round, round_tx FROM acceptor_records"
                              " WHERE workflow_id = ?", (WF,))


def _commit_value(*voters: str, round_: int = 1):
    return wire.value_of(peer_pb2.PaxosValue(
        outcome=peer_pb2.OUTCOME_COMMIT, votes=[yes(v, round_=round_) for v in voters]),
        (WF, round_), TRUST)


def _refused(answer: tuple) -> str:
    kind, reply = answer
    assert kind == "ack" and not reply.ok, f"taken: {kind}"
    return reply.error


# ---- a round of the planter's making -------------------------------------------------------

@pytest.mark.parametrize("planter", ["p1", "mallory"])
async def test_a_round_of_the_planters_making_leaves_no_record(store, planter) -> None:  # noqa: F811
    """p1 (a participant of the committed round, lying) and mallory (none) each state a
    round naming themselves its only participant: refused, no record; the honest claim
    is granted and theirs are not."""
    shell, agent = _acceptor(store)
    consensus = _consensus(agent)
    error = _refused(await _plant(consensus, planter, (planter,)))
    assert "without its coordinator's signed round" in error
    assert agent.metrics.rejected_messages.counts == {"no_signed_round": 1}
    assert await _records(store) == [] and consensus.acceptor.records() == []

    # Nothing known here: a bare claim is "not committed here", not a record's no_proof.
    bare = await shell.on_claim(planter, claim())
    assert not bare.granted and "not committed" in bare.error
    if planter == "mallory":  # the real round's proof, shown by an outsider: not its own
        stolen = await shell.on_claim("mallory", proven_claim())
        assert not stolen.granted and "mallory is no participant" in stolen.error
    assert await _grants(store) == []
    honest = await shell.on_claim("p1", proven_claim())
    assert honest.granted and honest.committed_round == 1
    assert list(honest.electorate) == sorted(ACCEPTORS)
    assert await _grants(store) == [(WF, 1, "p1")]


async def test_a_planted_round_decided_commit_by_its_planter_stops_nothing(store) -> None:  # noqa: F811
    """The planter's own signed COMMIT Decision of a round of its making, with its own
    YES (the certificate of the round as planted): with no record, the acceptor knows
    no such round and learns nothing, so the honest proof is not refused as
    contradicting a committed round (formerly `proof_disagrees`)."""
    shell, agent = _acceptor(store)
    consensus = _consensus(agent)
    _refused(await _plant(consensus, "p1", ("p1",)))
    decision = commit("p1", round_=PLANTED_ROUND)
    assert await consensus.open_decision(decision) is None  # no such round known here
    assert await store.select("SELECT round FROM learned WHERE workflow_id = ?", (WF,)) == []
    honest = await shell.on_claim("p1", proven_claim())
    assert honest.granted and honest.committed_round == 1
    assert "proof_disagrees" not in agent.metrics.rejected_messages.counts


# ---- a round with the real round's key, before the real one arrives -----------------------

async def test_a_real_rounds_key_planted_first_stops_neither_the_round_nor_the_takeover(
        store) -> None:  # noqa: F811
    """p2 states round 1 (the real round's key) with itself the only participant before
    the coordinator's messages reach x: refused. The coordinator's Accept of the real
    round then takes (formerly refused: "the transaction differs"), and the honest
    claimant's proof is granted (formerly `proof_disagrees`)."""
    shell, agent = _acceptor(store)
    consensus = _consensus(agent)
    _refused(await _plant(consensus, "p2", ("p2",), ("coord", "p2", "x"), round_=1))
    assert await _records(store) == []
    real = signed_round()
    accept = Accept(_stated(REAL, real), Ballot(0, "coord"), _commit_value("p1"))
    kind, _ = await _send(consensus, "coord", accept)
    assert kind == "paxos_accepted"
    assert await _records(store) == [(1, wire.canonical(real))]  # kept as received
    honest = await shell.on_claim("p1", proven_claim())
    assert honest.granted and honest.committed_round == 1
    assert agent.metrics.rejected_messages.counts == {"no_signed_round": 1}


async def test_the_real_signed_round_does_not_carry_another_round(store) -> None:  # noqa: F811
    """p1 holds the coordinator's signed round 1 (it got it with its PREPARE) and
    attaches it to a round 1 of its own making (another electorate): refused as a
    mismatch, no record; the real round still takes."""
    shell, agent = _acceptor(store)
    consensus = _consensus(agent)
    error = _refused(await _plant(consensus, "p1", ("p1", "mallory"),
                                  ("coord", "mallory", "p1", "x"), round_=1,
                                  round_tx=signed_round()))
    assert "signed round of" in error
    assert agent.metrics.rejected_messages.counts == {"round_mismatch": 1}
    assert await _records(store) == []
    kind, _ = await _plant(consensus, "p1", ("p1",), ACCEPTORS, round_=1,
                           round_tx=signed_round())
    assert kind == "paxos_promise"
    assert (await shell.on_claim("p1", proven_claim())).granted


# ---- a real round that aborted, "committed" by its only participant -----------------------

# Round 1: p2 its only participant (it aborted: p2's vote came too late, say). Round 2:
# p1 alone, committed. x is an acceptor of both and holds no step of either.
ABORTED = TxInfo(WF, 1, "coord", ("p2",), ("coord", "p2", "x"))
COMMITTED = TxInfo(WF, 2, "coord", ("p1",), ACCEPTORS)


def _signed(tx: TxInfo) -> peer_pb2.Envelope:
    return signed_round(round_=tx.round, participants=tx.participants, acceptors=tx.acceptors)


async def _plant_commit_of_aborted_round(consensus: Consensus, store) -> None:  # noqa: F811
    """p2 states round 1 with the coordinator's true signed round (x missed round 1's
    ABORT): a record, rightly. Then its own COMMIT Decision of round 1, with its own YES
    (round 1's whole certificate): x learns it, as it learns any proven decision."""
    kind, _ = await _plant(consensus, "p2", ABORTED.participants, ABORTED.acceptors,
                           round_=1, round_tx=_signed(ABORTED))
    assert kind == "paxos_promise"
    opened = await consensus.open_decision(commit("p2", signer="p2", round_=1))
    assert opened is not None
    signer, value, tx = opened
    await consensus.on_decision(signer, value, tx, from_coordinator=False)
    assert await store.select("SELECT round, outcome FROM learned WHERE workflow_id = ?",
                              (WF,)) == [(1, "COMMIT")]


@pytest.mark.parametrize("heard_round_2", [False, True])
async def test_a_commit_planted_in_an_aborted_round_is_outranked_by_the_committed_one(
        store, heard_round_2) -> None:  # noqa: F811
    """x holds round 1 learned COMMIT (p2's lie) and, or not, its record of round 2. p1's
    proof of round 2 (the coordinator's signed round and its COMMIT) is granted, naming
    round 2 and its electorate: the coordinator starts round 2 only once round 1 can no
    longer commit, so its signed round 2 outranks the "COMMIT" of round 1 (formerly
    refused as `proof_disagrees`, and the workflow waited for its coordinator)."""
    shell, agent = _acceptor(store)
    consensus = _consensus(agent)
    if heard_round_2:  # the coordinator's Accept of round 2 reached x
        accept = Accept(_stated(COMMITTED, _signed(COMMITTED)), Ballot(0, "coord"),
                        _commit_value("p1", round_=2))
        kind, _ = await _send(consensus, "coord", accept)
        assert kind == "paxos_accepted"
    await _plant_commit_of_aborted_round(consensus, store)
    proof = claim(1, _signed(COMMITTED), commit("p1", round_=2))

    # What the rule says on x's own records: granted, the outranked round named.
    records = await shell.proofs.records(WF)
    assert sorted(r.round for r in records) == ([1, 2] if heard_round_2 else [1])
    proven, error = shell.proofs.check(WF, proof)
    verdict = acceptor_grant("x", "p1", 1, (0, "coord"), records, proven, error)
    assert verdict.granted and verdict.outranked and verdict.reason == COMMIT_OUTRANKED
    assert "round(s) 1 learned COMMIT" in verdict.detail

    honest = await shell.on_claim("p1", proof)
    assert honest.granted and honest.committed_round == 2
    assert list(honest.electorate) == sorted(COMMITTED.acceptors)
    assert await _grants(store) == [(WF, 1, "p1")]
    assert "proof_disagrees" not in agent.metrics.rejected_messages.counts
    # The lie set aside is counted by its reason (and logged).
    assert agent.metrics.rejected_messages.counts.get(COMMIT_OUTRANKED) == 1


async def test_the_planter_shown_its_own_aborted_round_is_still_refused(store) -> None:  # noqa: F811
    """The lie the other way round: x learned round 2's COMMIT (the round that did
    commit), and p2 claims with round 1's true signed round and its own "COMMIT" of it.
    A COMMIT learned of a later round than the proof's still refuses (`proof_disagrees`),
    and p2 is no participant of round 2 whatever it planted of round 1."""
    shell, agent = _acceptor(store)
    consensus = _consensus(agent)
    accept = Accept(_stated(COMMITTED, _signed(COMMITTED)), Ballot(0, "coord"),
                    _commit_value("p1", round_=2))
    assert (await _send(consensus, "coord", accept))[0] == "paxos_accepted"
    opened = await consensus.open_decision(commit("p1", signer="p1", round_=2))
    assert opened is not None
    await consensus.on_decision(*opened, from_coordinator=False)
    lie = await shell.on_claim("p2", claim(1, _signed(ABORTED), commit("p2", signer="p2")))
    assert not lie.granted and "round 2 committed here" in lie.error
    assert agent.metrics.rejected_messages.counts == {"proof_disagrees": 1}
    agent.metrics.rejected_messages = _Counter()
    stolen = await shell.on_claim("p2", claim(1, _signed(COMMITTED), commit("p1", round_=2)))
    assert not stolen.granted and agent.metrics.rejected_messages.counts == {
        "not_participant": 1}
    assert await _grants(store) == []


# ---- the acceptor's check: each refusal has its reason and changes nothing ------------------

CHECKS = {
    # the signed round edited after signing (a wider electorate): the signature fails
    "bad signature": (lambda: _tampered(signed_round()), ("coord", "p1", "x", "mallory"),
                      "bad_signature"),
    # signed by a participant, not by the coordinator the workflow id names
    "wrong signer": (lambda: signed_round(signer="p1"), ACCEPTORS, "not_coordinator"),
    # the coordinator's true signature, of another round than the message's
    "round mismatch": (lambda: signed_round(round_=2), ACCEPTORS, "round_mismatch"),
    # none at all, from a proposer that is not the coordinator
    "no signed round": (lambda: None, ACCEPTORS, "no_signed_round"),
}


@pytest.mark.parametrize("name", sorted(CHECKS))
@pytest.mark.parametrize("phase", ["prepare", "accept"])
async def test_the_acceptors_check_refuses_with_its_reason(store, name, phase) -> None:  # noqa: F811
    make, acceptors, reason = CHECKS[name]
    _, agent = _acceptor(store)
    consensus = _consensus(agent)
    tx = _stated(TxInfo(WF, 1, "coord", ("p1",), tuple(sorted(acceptors))), make())
    msg = PaxosPrepare(tx, Ballot(3, "p1")) if phase == "prepare" \
        else Accept(tx, Ballot(3, "p1"), wire.ABORT)
    error = _refused(await _send(consensus, "p1", msg))
    assert error
    assert agent.metrics.rejected_messages.counts == {reason: 1}
    assert await _records(store) == [] and consensus.acceptor.records() == []
    assert consensus.acceptor.next_actions() == []


# ---- what a record of a stated round keeps -------------------------------------------------

async def test_a_recovery_ballot_with_the_signed_round_makes_a_record_that_keeps_it(
        store) -> None:  # noqa: F811
    """p1's recovery PaxosPrepare carries the signed round it kept with its YES: promised,
    and the record keeps the bytes as received, on disk and read back after eviction.
    Still, a record alone grants nothing: the claim needs the proof."""
    shell, agent = _acceptor(store)
    consensus = _consensus(agent)
    real = signed_round()
    kind, reply = await _plant(consensus, "p1", ("p1",), ACCEPTORS, round_=1, round_tx=real)
    assert kind == "paxos_promise"
    body = peer_pb2.Body(sender="x")
    body.paxos_promise.CopyFrom(reply)
    assert isinstance(wire.decode(body, TRUST), Promise)
    assert await _records(store) == [(1, wire.canonical(real))]
    row = await store.get_acceptor_record(WF, 1)
    assert wire.acceptor_record(row).tx.round_tx == wire.canonical(real)
    bare = await shell.on_claim("p1", claim())
    assert not bare.granted and agent.metrics.rejected_messages.counts == {"no_proof": 1}
    assert (await shell.on_claim("p1", proven_claim())).granted


async def test_an_older_coordinators_own_accept_still_makes_a_record(store) -> None:  # noqa: F811
    """An older coordinator signs no round: its own Accept (its envelope states the
    round) still makes a record, with no signed round kept."""
    _, agent = _acceptor(store)
    consensus = _consensus(agent)
    kind, _ = await _send(consensus, "coord", Accept(REAL, Ballot(0, "coord"), wire.ABORT))
    assert kind == "paxos_accepted"
    assert await _records(store) == [(1, b"")]


async def test_an_acceptor_holding_a_step_knows_the_round_from_its_own_prepare(
        store) -> None:  # noqa: F811
    """An acceptor that holds a step of the round was given it by its coordinator's own
    PREPARE: a recovery ballot with no signed round (an older participant's) of that
    very round still makes a record there; of another round, it is refused."""
    _, agent = _acceptor(store)
    consensus = _consensus(agent)
    agent.participant.hold = lambda key: SimpleNamespace(tx=REAL) if key == REAL.key else None
    kind, _ = await _plant(consensus, "p1", ("p1",), ACCEPTORS, round_=1)
    assert kind == "paxos_promise"
    assert await _records(store) == [(1, b"")]
    _refused(await _plant(consensus, "p1", ("p1",), ACCEPTORS, round_=2))
    assert agent.metrics.rejected_messages.counts == {"no_signed_round": 1}
    assert await _records(store) == [(1, b"")]
