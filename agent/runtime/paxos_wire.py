"""Paxos Commit on the wire: the cores' messages to and from protobuf, and their proofs.

The consensus cores (agent.negotiation) speak plain dataclasses; peers speak
signed envelopes (proto/fedorch/v1/peer.proto). This module converts between
the two and is where a value from the wire is checked: a COMMIT value is
believed only with a certificate whose every vote is a signed YES of this very
transaction, verified here with open_evidence (signature, trust, kind) — the
cores then check that it covers every participant (`certifies`).

A vote travels as the Envelope its participant signed, and goes into a value
as canonical bytes (body and signature only), so the same votes always make
the same value, whoever relays them: acceptors and proposers compare values.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import replace

from fedorch.core.identity.authority import coordinator_of
from fedorch.core.identity.envelope import open_evidence
from fedorch.core.identity.trust import TrustStore
from fedorch.core.negotiation.acceptor import AcceptorRecord
from fedorch.core.negotiation.errors import RemoteProtocolError
from fedorch.core.negotiation.messages import (
    ABORT,
    Accept,
    Accepted,
    Ballot,
    DecisionAck,
    Key,
    PaxosPrepare,
    Promise,
    Reject,
    TxInfo,
    Value,
    VoteIn,
)
from fedorch.gen.fedorch.v1 import peer_pb2
from fedorch.runtime.store.store import AcceptorRow, HoldTxRow

# Body payloads the Paxos RPC takes, and those its reply may carry.
PAXOS_REQUESTS = frozenset({"paxos_prepare", "paxos_accept", "paxos_promise", "paxos_accepted",
                            "paxos_reject", "decision_ack"})
PAXOS_REPLIES = frozenset({"paxos_promise", "paxos_accepted", "paxos_reject", "decision_notice",
                           "ack"})


def canonical(envelope: peer_pb2.Envelope) -> bytes:
    """An envelope's bytes with nothing but its body and signature (no unknown fields)."""
    clean = peer_pb2.Envelope(body=envelope.body, signature=envelope.signature)
    return clean.SerializeToString(deterministic=True)


# ---- ballots, transactions ---------------------------------------------------------------


def ballot_pb(b: Ballot) -> peer_pb2.Ballot:
    return peer_pb2.Ballot(n=b.n, proposer=b.proposer)


def ballot_of(pb: peer_pb2.Ballot) -> Ballot:
    return Ballot(pb.n, pb.proposer)


def tx_pb(tx: TxInfo) -> peer_pb2.PaxosTx:
    return peer_pb2.PaxosTx(workflow_id=tx.workflow_id, round=tx.round,
                            coordinator=tx.coordinator, participants=tx.participants,
                            acceptors=tx.acceptors)


def tx_bytes(tx: TxInfo) -> bytes:
    return tx_pb(tx).SerializeToString(deterministic=True)


def tx_of(pb: peer_pb2.PaxosTx) -> TxInfo:
    """A transaction from the wire; its shape is checked by the cores (check_tx)."""
    if coordinator_of(pb.workflow_id) != pb.coordinator:
        raise RemoteProtocolError(
            f"workflow {pb.workflow_id!r} does not belong to coordinator {pb.coordinator!r}")
    return TxInfo(pb.workflow_id, pb.round, pb.coordinator, tuple(pb.participants),
                  tuple(pb.acceptors))


def tx_from_bytes(raw: bytes) -> TxInfo:
    return tx_of(peer_pb2.PaxosTx.FromString(raw))


def held_tx(info: HoldTxRow) -> TxInfo:
    """The transaction a participant voted YES in, with the coordinator's signed round it
    kept (what its recovery ballots carry)."""
    return replace(tx_from_bytes(info.tx), round_tx=info.round_tx)


# ---- values ------------------------------------------------------------------------------


def outcome_of(value: Value) -> int:
    return peer_pb2.OUTCOME_COMMIT if value.commit else peer_pb2.OUTCOME_ABORT


# The last values turned into protobuf, by identity: a coordinator sends one value (every
# participant's vote, each parsed from its bytes) to every acceptor and participant of a
# round, and rebuilding it for each message made a 50-domain round cost the coordinator
# 50 x 50 vote parses (85% of its CPU in the 50-domain join storm). Callers copy what
# they get (into a message, or serialized), never change it.
_VALUES: OrderedDict[int, tuple[Value, peer_pb2.PaxosValue]] = OrderedDict()
_VALUES_KEPT = 64


def value_pb(value: Value) -> peer_pb2.PaxosValue:
    cached = _VALUES.get(id(value))
    if cached is not None and cached[0] is value:  # the value is held: its id is its own
        _VALUES.move_to_end(id(value))
        return cached[1]
    pb = peer_pb2.PaxosValue(outcome=outcome_of(value),
                             votes=[peer_pb2.Envelope.FromString(v.raw) for v in value.votes])
    _VALUES[id(value)] = (value, pb)
    if len(_VALUES) > _VALUES_KEPT:
        _VALUES.popitem(last=False)
    return pb


def value_bytes(value: Value) -> bytes:
    return value_pb(value).SerializeToString(deterministic=True)


def _vote(envelope: peer_pb2.Envelope, key: Key, trust: TrustStore | None) -> VoteIn:
    """A vote of a certificate; verified (signature, trust) unless read from our own disk."""
    if trust is not None:
        body = open_evidence(envelope, trust, expect="vote")
    else:
        body = peer_pb2.Body.FromString(envelope.body)
    v = body.vote
    if body.sender != v.domain or not v.yes or (v.workflow_id, v.round) != key:
        raise RemoteProtocolError(f"certificate holds a bad vote from {body.sender!r}")
    return VoteIn(v.round, v.domain, v.yes, v.reason, canonical(envelope))


# The last COMMIT values read from the wire, by their bytes and transaction, with each
# vote's signed bytes. One value reaches an agent many times: in the Accepted of every
# acceptor, in Accepts, Promises and decision notices; each vote of it was parsed,
# checked and re-encoded again every time (a participant of a 40-domain fan-out read 6
# values of 40 votes per workflow, a coordinator 6: 240 vote parses each). A value
# seen before is checked again only for what may have changed since: that each vote's
# domain is still trusted and its signature still verifies with a key the domain may
# sign with (TrustStore.verify, answered from its cache of verified signatures).
_OPENED: OrderedDict[tuple[Key, bytes], tuple[Value, tuple[tuple[str, bytes, bytes], ...]]] \
    = OrderedDict()
_OPENED_KEPT = 64


def value_of(pb: peer_pb2.PaxosValue, key: Key, trust: TrustStore | None) -> Value:
    """A value from the wire (`trust`: every vote's signature is verified) or from disk
    (None). COMMIT votes are sorted by domain, one per domain; ABORT carries none."""
    if pb.outcome == peer_pb2.OUTCOME_ABORT:
        return ABORT
    if pb.outcome != peer_pb2.OUTCOME_COMMIT:
        raise RemoteProtocolError("a value must be COMMIT or ABORT")
    if trust is None:
        return _commit_value(pb, key, None)[0]
    seen = (key, pb.SerializeToString(deterministic=True))
    opened = _OPENED.get(seen)
    if opened is not None and all(domain in trust and trust.verify(domain, body, signature,
                                                                   evidence=True)
                                  for domain, body, signature in opened[1]):
        _OPENED.move_to_end(seen)
        return opened[0]
    value, signed = _commit_value(pb, key, trust)  # raises on any vote that does not hold
    if not any(envelope.key_records for envelope in pb.votes):  # else learned each time
        _OPENED[seen] = (value, signed)
        if len(_OPENED) > _OPENED_KEPT:
            _OPENED.popitem(last=False)
    return value


def _commit_value(pb: peer_pb2.PaxosValue, key: Key, trust: TrustStore | None
                  ) -> tuple[Value, tuple[tuple[str, bytes, bytes], ...]]:
    """The COMMIT value, and each vote's (domain, signed body, signature)."""
    votes: dict[str, VoteIn] = {}
    signed = []
    for envelope in pb.votes:
        vote = _vote(envelope, key, trust)
        if vote.domain in votes:
            raise RemoteProtocolError(f"certificate holds two votes of {vote.domain!r}")
        votes[vote.domain] = vote
        signed.append((vote.domain, envelope.body, envelope.signature))
    return Value(True, tuple(votes[d] for d in sorted(votes))), tuple(signed)


def value_from_bytes(raw: bytes, key: Key) -> Value:
    return value_of(peer_pb2.PaxosValue.FromString(raw), key, None)


def commit_decision_value(decision: peer_pb2.Decision, trust: TrustStore) -> Value:
    """The value of a signed COMMIT Decision: its votes, each verified."""
    pb = peer_pb2.PaxosValue(outcome=peer_pb2.OUTCOME_COMMIT, votes=decision.votes)
    return value_of(pb, (decision.workflow_id, decision.round), trust)


# ---- consensus messages ----------------------------------------------------------------


def stated_tx(tx: TxInfo, round_tx: peer_pb2.Envelope | None) -> TxInfo:
    """`tx` carrying the coordinator's signed round as received (canonical bytes; not
    checked here: an acceptor verifies it before it makes a record, RoundProofs.stated)."""
    return replace(tx, round_tx=canonical(round_tx)) if round_tx is not None else tx


def encode(msg: object) -> tuple[str, object]:
    """A core message as (Body payload field, protobuf message)."""
    if isinstance(msg, PaxosPrepare):
        pb = peer_pb2.PaxosPrepare(tx=tx_pb(msg.tx), ballot=ballot_pb(msg.ballot))
        if msg.tx.round_tx:
            pb.round_tx.MergeFromString(msg.tx.round_tx)
        return "paxos_prepare", pb
    if isinstance(msg, Accept):
        pb = peer_pb2.PaxosAccept(tx=tx_pb(msg.tx), ballot=ballot_pb(msg.ballot),
                                  value=value_pb(msg.value),
                                  proposer_accepted=msg.proposer_accepted)
        if msg.tx.round_tx:
            pb.round_tx.MergeFromString(msg.tx.round_tx)
        return "paxos_accept", pb
    if isinstance(msg, Promise):
        pb = peer_pb2.PaxosPromise(workflow_id=msg.key[0], round=msg.key[1],
                                   ballot=ballot_pb(msg.ballot), acceptor=msg.acceptor)
        if msg.accepted_ballot is not None and msg.accepted_value is not None:
            pb.accepted_ballot.CopyFrom(ballot_pb(msg.accepted_ballot))
            pb.accepted_value.CopyFrom(value_pb(msg.accepted_value))
        return "paxos_promise", pb
    if isinstance(msg, Accepted):
        return "paxos_accepted", peer_pb2.PaxosAccepted(
            workflow_id=msg.key[0], round=msg.key[1], ballot=ballot_pb(msg.ballot),
            acceptor=msg.acceptor, value=value_pb(msg.value))
    if isinstance(msg, Reject):
        return "paxos_reject", peer_pb2.PaxosReject(
            workflow_id=msg.key[0], round=msg.key[1], ballot=ballot_pb(msg.ballot),
            acceptor=msg.acceptor, promised=ballot_pb(msg.promised))
    if isinstance(msg, DecisionAck):
        return "decision_ack", peer_pb2.DecisionAck(workflow_id=msg.key[0], round=msg.key[1])
    raise TypeError(f"no wire form for {type(msg).__name__}")


def decode(body: peer_pb2.Body, trust: TrustStore) -> object:
    """The core message in an opened Body (not decision_notice: see Consensus). Every
    vote of a COMMIT value is verified; a reply must come from the acceptor it names."""
    kind = body.WhichOneof("payload")
    sender = body.sender
    if kind == "paxos_prepare":
        m = body.paxos_prepare
        return PaxosPrepare(stated_tx(tx_of(m.tx), m.round_tx if m.HasField("round_tx")
                                      else None), ballot_of(m.ballot))
    if kind == "paxos_accept":
        m = body.paxos_accept
        tx = stated_tx(tx_of(m.tx), m.round_tx if m.HasField("round_tx") else None)
        return Accept(tx, ballot_of(m.ballot), value_of(m.value, tx.key, trust),
                      m.proposer_accepted)
    if kind == "decision_ack":
        return DecisionAck((body.decision_ack.workflow_id, body.decision_ack.round), sender)
    m = getattr(body, kind) if kind in ("paxos_promise", "paxos_accepted", "paxos_reject") \
        else None
    if m is None:
        raise RemoteProtocolError(f"{kind or 'no payload'} is not a consensus message")
    if m.acceptor != sender:
        raise RemoteProtocolError(f"{sender} sent a reply of acceptor {m.acceptor!r}")
    key = (m.workflow_id, m.round)
    if kind == "paxos_promise":
        accepted = None
        if m.HasField("accepted_ballot"):
            accepted = (ballot_of(m.accepted_ballot), value_of(m.accepted_value, key, trust))
        return Promise(key, ballot_of(m.ballot), sender, accepted[0] if accepted else None,
                       accepted[1] if accepted else None)
    if kind == "paxos_accepted":
        return Accepted(key, ballot_of(m.ballot), sender, value_of(m.value, key, trust))
    return Reject(key, ballot_of(m.ballot), sender, ballot_of(m.promised))


# ---- acceptor records on disk --------------------------------------------------------------


def acceptor_row(rec: AcceptorRecord) -> AcceptorRow:
    def b(x: Ballot | None) -> tuple[int, str] | None:
        return (x.n, x.proposer) if x is not None else None

    return AcceptorRow(
        rec.tx.workflow_id, rec.tx.round, tx_bytes(rec.tx), b(rec.promised),
        b(rec.accepted_ballot),
        value_bytes(rec.accepted_value) if rec.accepted_value is not None else None,
        value_bytes(rec.decided) if rec.decided is not None else None, rec.tx.round_tx)


def acceptor_record(row: AcceptorRow) -> AcceptorRecord:
    tx = replace(tx_from_bytes(row.tx), round_tx=row.round_tx)

    def v(raw: bytes | None) -> Value | None:
        return value_from_bytes(raw, tx.key) if raw is not None else None

    return AcceptorRecord(
        tx, Ballot(*row.promised) if row.promised else None,
        Ballot(*row.accepted) if row.accepted else None, v(row.accepted_value), v(row.decided))
