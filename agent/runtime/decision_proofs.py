"""Paxos Commit decisions as evidence: what a signed Decision proves, and the Decision
this agent announces. A decision travels between agents as its own proof: a COMMIT
carries the signed YES of every participant (its certificate), each verified here.
"""

from __future__ import annotations

from fedorch.core.identity.authority import Facts, authorize
from fedorch.core.identity.trust import TrustStore
from fedorch.core.negotiation.errors import RemoteProtocolError
from fedorch.core.negotiation.messages import ABORT, Key, TxInfo, Value, certifies
from fedorch.gen.fedorch.v1 import peer_pb2
from fedorch.runtime import paxos_wire as wire


def proven(body: peer_pb2.Body, tx: TxInfo, trust: TrustStore) -> Value:
    """The value of an opened, signed Decision about `tx`, if it proves itself: signed
    by the coordinator or a participant (a recovery proposer), and a COMMIT by a
    certificate with a signed YES of every participant (each signature verified).
    Refused / RemoteProtocolError / AuthError otherwise."""
    d = body.decision
    if (d.workflow_id, d.round) != tx.key or d.coordinator != tx.coordinator:
        raise RemoteProtocolError(f"a decision about another transaction than {tx.key}")
    # Signed by a party, COMMIT too: YES votes alone do not prove COMMIT was chosen.
    authorize("decision_notice", body.sender, Facts(
        workflow_id=tx.workflow_id, coordinator=tx.coordinator,
        participants=tx.participants))
    if d.outcome == peer_pb2.OUTCOME_COMMIT:
        value = wire.commit_decision_value(d, trust)
        if not certifies(tx, value):
            missing = set(tx.participants) - {v.domain for v in value.votes}
            raise RemoteProtocolError(f"commit certificate lacks votes of {sorted(missing)}")
        return value
    if d.outcome != peer_pb2.OUTCOME_ABORT:
        raise RemoteProtocolError("a decision must be COMMIT or ABORT")
    return ABORT


def decision_message(key: Key, value: Value) -> peer_pb2.Decision:
    """A decision as this agent announces it (to be signed): proven by its contents,
    the votes as their signers sent them."""
    return peer_pb2.Decision(
        workflow_id=key[0], round=key[1], outcome=wire.outcome_of(value),
        coordinator=wire.coordinator_of(key[0]),
        votes=[peer_pb2.Envelope.FromString(v.raw) for v in value.votes],
        reason="chosen by Paxos Commit")
