"""An acceptor that missed the committed round grants a takeover epoch on the proof the
claim carries (agent/runtime/round_proofs.py, the shell's claim path in
agent/runtime/takeover.py): real store, real signatures, every forgery refused."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fedorch.core.identity.envelope import Signer, seal
from fedorch.core.identity.trust import TrustStore
from fedorch.core.negotiation.messages import TxInfo
from fedorch.gen.fedorch.v1 import peer_pb2
from fedorch.runtime import paxos_wire as wire
from fedorch.runtime.decision_proofs import decision_message
from fedorch.runtime.epoch_certs import EpochCertificates
from fedorch.runtime.round_proofs import RoundProofs
from fedorch.runtime.store.store import AcceptorRow, HoldTxRow, ReservationRow, Store, WorkflowRow
from fedorch.runtime.takeover import Takeovers
from fedorch.runtime.takeover_grants import ClaimAnswers

DOMAINS = ("coord", "p1", "p2", "x", "mallory")
KEYS = {d: Ed25519PrivateKey.generate() for d in DOMAINS}
SIGNERS = {d: Signer(d, k) for d, k in KEYS.items()}
TRUST = TrustStore({d: k.public_key() for d, k in KEYS.items()})
WF = "coord.0123abcd"        # its coordinator is "coord"
OTHER_WF = "coord.ffff0000"  # another workflow of the same coordinator
ACCEPTORS = ("coord", "p1", "x")  # x holds no step


class _Counter:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def labels(self, reason: str) -> _Counter:
        self._reason = reason
        return self

    def inc(self) -> None:
        self.counts[self._reason] = self.counts.get(self._reason, 0) + 1


def _envelope(signer: str, **payload) -> peer_pb2.Envelope:
    sealed = seal(SIGNERS[signer], recipient="", now_ms=1, nonce=os.urandom(16), **payload)
    return peer_pb2.Envelope(body=sealed.body, signature=sealed.signature)


def signed_round(*, signer: str = "coord", workflow_id: str = WF, round_: int = 1,
                 participants=("p1",), acceptors=ACCEPTORS) -> peer_pb2.Envelope:
    tx = TxInfo(workflow_id, round_, "coord", tuple(participants), tuple(acceptors))
    return _envelope(signer, round_tx=wire.tx_pb(tx))


def yes(domain: str, *, round_: int = 1, workflow_id: str = WF) -> peer_pb2.Envelope:
    sealed = seal(SIGNERS[domain], recipient="coord", now_ms=1, nonce=os.urandom(16),
                  vote=peer_pb2.Vote(workflow_id=workflow_id, round=round_, domain=domain,
                                     yes=True))
    return peer_pb2.Envelope(body=sealed.body, signature=sealed.signature)


def commit(*voters: str, signer: str = "p1", round_: int = 1, workflow_id: str = WF,
           outcome=peer_pb2.OUTCOME_COMMIT) -> peer_pb2.Envelope:
    decision = peer_pb2.Decision(
        workflow_id=workflow_id, round=round_, outcome=outcome, coordinator="coord",
        votes=[yes(v, round_=round_, workflow_id=workflow_id) for v in voters]
        if outcome == peer_pb2.OUTCOME_COMMIT else [])
    return _envelope(signer, decision=decision)


def claim(epoch: int = 1, round_tx: peer_pb2.Envelope | None = None,
          decision: peer_pb2.Envelope | None = None) -> peer_pb2.TakeoverClaim:
    c = peer_pb2.TakeoverClaim(workflow_id=WF, epoch=epoch)
    if round_tx is not None:
        c.round_tx.CopyFrom(round_tx)
    if decision is not None:
        c.commit.CopyFrom(decision)
    return c


def proven_claim(epoch: int = 1) -> peer_pb2.TakeoverClaim:
    return claim(epoch, signed_round(), commit("p1"))


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(tmp_path / "data")
    try:
        yield s
    finally:
        await s.close()


def _agent(store: Store, domain: str) -> SimpleNamespace:
    signer = SIGNERS[domain]

    def seal_here(recipient: str, **payload):
        return seal(signer, recipient=recipient, now_ms=1, nonce=os.urandom(16), **payload)

    agent = SimpleNamespace(domain=domain, store=store, active={}, trust=TRUST,
                            seal=seal_here,
                            metrics=SimpleNamespace(rejected_messages=_Counter(),
                                                    loop_wakeups=_Counter()))
    agent.consensus = SimpleNamespace(
        decision_envelope=lambda key, value: seal_here("", decision=decision_message(key, value)))
    agent.participant = SimpleNamespace(keys_of=lambda workflow_id: [])  # votes held: none
    return agent


def _acceptor(store: Store, domain: str = "x") -> tuple[Takeovers, SimpleNamespace]:
    """The claim path of the shell around a real store, for an agent with no workflow
    row (an acceptor holding no step; nothing else of the agent is reached on it)."""
    agent = _agent(store, domain)
    shell = Takeovers.__new__(Takeovers)
    shell.agent = agent
    shell.proofs = RoundProofs(agent)
    shell.certificates = EpochCertificates(shell)  # the winner's proof, kept for denials
    shell.answers = ClaimAnswers(shell)
    return shell, agent


async def _grants(store: Store) -> list[tuple]:
    return await store.select("SELECT workflow_id, epoch, holder FROM takeover_grants")


# ---- granted on a proof ---------------------------------------------------------------

async def test_an_acceptor_with_no_record_grants_on_a_proof_naming_the_round(store) -> None:
    shell, agent = _acceptor(store)
    bare = await shell.on_claim("p1", claim())
    assert not bare.granted and bare.error  # without a proof: nothing known here
    assert agent.metrics.rejected_messages.counts == {}  # and no fault of the claimant
    answer = await shell.on_claim("p1", proven_claim())
    assert answer.granted and (answer.held_epoch, answer.holder) == (1, "p1")
    # The grant names the proven round and electorate: evidence in p1's certificate.
    assert answer.committed_round == 1 and list(answer.electorate) == sorted(ACCEPTORS)
    assert await _grants(store) == [(WF, 1, "p1")]  # durable before the answer left
    assert (await shell.on_claim("p1", proven_claim())).granted  # asked again: the same
    # A grant row keeps no round: asked bare, it has nothing to name (a claimant always
    # shows its proof to an acceptor holding no step).
    assert not (await shell.on_claim("p1", claim())).granted


async def test_a_grant_on_a_proof_is_once_per_epoch(store) -> None:
    round_tx = signed_round(participants=("p1", "p2"), acceptors=("coord", "p1", "p2", "x"))
    shell, _ = _acceptor(store)
    assert (await shell.on_claim("p1", claim(1, round_tx, commit("p1", "p2")))).granted
    rival = await shell.on_claim("p2", claim(1, round_tx, commit("p1", "p2", signer="p2")))
    assert not rival.granted and (rival.held_epoch, rival.holder) == (1, "p1")
    later = await shell.on_claim("p2", claim(2, round_tx, commit("p1", "p2", signer="p2")))
    assert later.granted and await _grants(store) == [(WF, 2, "p2")]


# ---- forged, tampered, foreign: refused with a reason ------------------------------------

def _tampered(envelope: peer_pb2.Envelope) -> peer_pb2.Envelope:
    body = peer_pb2.Body.FromString(envelope.body)
    body.round_tx.acceptors.append("mallory")  # a wider electorate, same signature
    return peer_pb2.Envelope(body=body.SerializeToString(deterministic=True),
                             signature=envelope.signature)


FORGERIES = {
    # the round re-signed or edited by anyone but its coordinator
    "tampered round": (claim(1, _tampered(signed_round()), commit("p1")), "bad_signature"),
    "round signed by a participant": (claim(1, signed_round(signer="p1"), commit("p1")),
                                      "not_coordinator"),
    "round of another workflow": (claim(1, signed_round(workflow_id=OTHER_WF),
                                        commit("p1", workflow_id=OTHER_WF)), "other_workflow"),
    # the commit: of another round, missing a participant's YES, an ABORT, an outsider's
    "commit of another round": (claim(1, signed_round(), commit("p1", round_=2)),
                                "bad_round_proof"),
    "commit lacking a YES": (claim(1, signed_round(participants=("p1", "p2"),
                                                   acceptors=("coord", "p1", "p2", "x")),
                                   commit("p1")), "bad_round_proof"),
    "an abort": (claim(1, signed_round(), commit(outcome=peer_pb2.OUTCOME_ABORT)),
                 "not_committed"),
    "commit signed by an outsider": (claim(1, signed_round(), commit("p1", signer="mallory")),
                                     "not_party"),
    "no commit at all": (claim(1, signed_round()), "bad_signature"),
    # a true proof that does not make this domain an acceptor
    "round without this acceptor": (claim(1, signed_round(acceptors=("coord", "p1", "p2")),
                                          commit("p1")), "not_acceptor"),
}


@pytest.mark.parametrize("name", sorted(FORGERIES))
async def test_a_forged_or_foreign_proof_is_refused_with_its_reason(store, name) -> None:
    message, reason = FORGERIES[name]
    shell, agent = _acceptor(store)
    answer = await shell.on_claim("p1", message)
    assert not answer.granted and answer.error
    assert agent.metrics.rejected_messages.counts == {reason: 1}
    assert await _grants(store) == []


async def test_a_true_proof_shown_by_a_non_participant_is_refused(store) -> None:
    shell, agent = _acceptor(store)
    stolen = await shell.on_claim("mallory", proven_claim())  # p1's proof, mallory's claim
    assert not stolen.granted and "mallory is no participant" in stolen.error
    assert agent.metrics.rejected_messages.counts == {"not_participant": 1}
    assert await _grants(store) == []


# ---- an acceptor's own record wins ------------------------------------------------------

async def test_a_proof_that_contradicts_the_record_is_refused_as_a_lie(store) -> None:
    # x accepted round 1 with participants p1 and p2; the proof says p1 alone.
    tx = TxInfo(WF, 1, "coord", ("p1", "p2"), ("coord", "p1", "p2", "x"))
    await store.save_acceptor(AcceptorRow(WF, 1, wire.tx_bytes(tx)))
    shell, agent = _acceptor(store)
    lie = await shell.on_claim("p1", proven_claim())
    assert not lie.granted and agent.metrics.rejected_messages.counts == {"proof_disagrees": 1}
    # Its record alone grants nothing (tests/unit/runtime/test_consensus_planted_records.py).
    bare = await shell.on_claim("p1", claim())
    assert not bare.granted and agent.metrics.rejected_messages.counts == {
        "proof_disagrees": 1, "no_proof": 1}
    # The true round's proof agrees with the record: granted, naming its round.
    true_round = signed_round(participants=("p1", "p2"), acceptors=("coord", "p1", "p2", "x"))
    honest = await shell.on_claim("p1", claim(1, true_round, commit("p1", "p2")))
    assert honest.granted and list(honest.electorate) == ["coord", "p1", "p2", "x"]


async def test_a_record_of_an_aborted_round_gives_way_to_a_proof_of_the_committed_one(
        store) -> None:
    # x heard of round 1 only (it aborted); round 2 committed while x heard nothing.
    tx = TxInfo(WF, 1, "coord", ("p1",), ACCEPTORS)
    await store.save_acceptor(AcceptorRow(WF, 1, wire.tx_bytes(tx)))
    await store.learn(WF, 1, "ABORT", wire.value_bytes(wire.ABORT))
    shell, _ = _acceptor(store)
    answer = await shell.on_claim("p1", claim(1, signed_round(round_=2), commit("p1", round_=2)))
    assert answer.granted and answer.committed_round == 2
    # A proof that round 1 committed contradicts the ABORT learned here.
    shell2, agent2 = _acceptor(store)
    await store.apply([("DELETE FROM takeover_grants", ())])
    lie = await shell2.on_claim("p1", proven_claim(epoch=1))
    assert not lie.granted and agent2.metrics.rejected_messages.counts == {"proof_disagrees": 1}


# ---- the coordinator signs once, the participant keeps and shows it -------------------------

async def test_every_paxos_round_is_signed_once_for_its_prepares_and_accepts(store) -> None:
    """One signature per round, reused by its PREPAREs, PaxosPrepares and Accepts (a
    signature made again would differ: its nonce); none for classic 2PC."""
    proofs = RoundProofs(_agent(store, "coord"))
    placement = {"a": "p1"}
    first = proofs.for_prepare(WF, 1, placement, ACCEPTORS)
    assert first is not None
    assert proofs.for_prepare(WF, 1, placement, ACCEPTORS).SerializeToString() \
        == first.SerializeToString()
    tx = TxInfo(WF, 1, "coord", ("p1",), ACCEPTORS)
    assert proofs.stating(tx).round_tx == wire.canonical(first)  # the Accepts carry it
    # Every acceptor holds a step (or coordinates): signed as well, since a recovery
    # proposer needs it at an acceptor that has no record of the round.
    everyone = proofs.for_prepare(WF, 2, {"a": "p1", "b": "p2"}, ("coord", "p1", "p2"))
    assert everyone is not None
    assert wire.tx_of(peer_pb2.Body.FromString(everyone.body).round_tx) \
        == TxInfo(WF, 2, "coord", ("p1", "p2"), ("coord", "p1", "p2"))
    assert proofs.for_prepare(WF, 1, placement, ()) is None  # classic 2PC
    # Someone else's round is not ours to sign.
    other = TxInfo("p1.00000001", 1, "p1", ("p1",), ("coord", "p1", "x"))
    assert proofs.stating(other).round_tx == b""


async def test_a_participant_shows_what_it_kept_and_the_acceptor_grants(store, tmp_path) -> None:
    coordinator = RoundProofs(_agent(store, "coord"))
    request = peer_pb2.PrepareRequest(workflow_id=WF, round=1)
    request.round_tx.CopyFrom(coordinator.for_prepare(WF, 1, {"a": "p1"}, ACCEPTORS))
    # p1 keeps the bytes as received with its YES, and learns the COMMIT.
    participant_store = await Store.open(tmp_path / "p1")
    try:
        tx = TxInfo(WF, 1, "coord", ("p1",), ACCEPTORS)
        await participant_store.save_reservation(
            ReservationRow(WF, 1, "coord", "PREPARED", [("a", "cap")], 0),
            tx=HoldTxRow(WF, 1, wire.tx_bytes(tx), b"", {"a": "p1"}, "",
                         wire.canonical(request.round_tx)))
        vote = yes("p1")
        value = wire.value_of(peer_pb2.PaxosValue(outcome=peer_pb2.OUTCOME_COMMIT,
                                                  votes=[vote]), (WF, 1), TRUST)
        await participant_store.learn(WF, 1, "COMMIT", wire.value_bytes(value))
        p1 = RoundProofs(_agent(participant_store, "p1"))
        row = WorkflowRow(id=WF, name="w", coordinator="coord", state="RUNNING", spec=b"",
                          placement={"a": "p1"}, round=1)
        proof = await p1.claim_proof(row)
        assert proof is not None
        assert proof[0].body == request.round_tx.body  # the coordinator's bytes, untouched
        shell, _ = _acceptor(store)
        answer = await shell.on_claim("p1", claim(1, *proof))
        assert answer.granted and answer.committed_round == 1
        # No signed round kept (an older coordinator's round): no proof to show.
        await participant_store.apply([("UPDATE hold_txs SET round_tx = x''", ())])
        assert await RoundProofs(_agent(participant_store, "p1")).claim_proof(row) is None
    finally:
        await participant_store.close()
