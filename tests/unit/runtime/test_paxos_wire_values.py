"""A Paxos value is turned into protobuf once and reused for every message that carries
it (a coordinator sends the same value to every acceptor and participant), and what
comes out is the same whether built or reused."""

from __future__ import annotations

import pytest
from fedorch.core.negotiation.messages import Value, VoteIn
from fedorch.gen.fedorch.v1 import peer_pb2
from fedorch.runtime import paxos_wire as wire


def _value(n: int) -> Value:
    votes = tuple(VoteIn(1, f"d{i}", True, "", peer_pb2.Envelope(
        body=f"vote {i}".encode(), signature=b"s" * 64).SerializeToString())
        for i in range(n))
    return Value(True, votes)


def test_the_same_value_is_built_once_and_equal_each_time() -> None:
    value = _value(50)
    first = wire.value_pb(value)
    assert wire.value_pb(value) is first
    assert [e.body for e in first.votes] == [f"vote {i}".encode() for i in range(50)]
    assert first.outcome == peer_pb2.OUTCOME_COMMIT


def test_an_equal_but_distinct_value_gets_its_own_equal_protobuf() -> None:
    a, b = _value(3), _value(3)
    assert wire.value_pb(a) is not wire.value_pb(b)
    assert wire.value_bytes(a) == wire.value_bytes(b)


def test_a_message_carrying_the_value_is_a_copy() -> None:
    value = _value(2)
    shared = wire.value_pb(value)
    accept = peer_pb2.PaxosAccept(value=shared)
    accept.value.votes[0].body = b"changed"
    assert wire.value_pb(value).votes[0].body == b"vote 0"


# ---- values read from the wire ------------------------------------------------------------

def _signed_value(domains: tuple[str, ...], key: tuple[str, int]):
    """A COMMIT value of real signed YES votes, and a trust store that knows the voters."""
    import os

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from fedorch.core.identity.envelope import Signer, seal
    from fedorch.core.identity.trust import TrustStore

    keys = {d: Ed25519PrivateKey.generate() for d in domains}
    votes = []
    for d in domains:
        sealed = seal(Signer(d, keys[d]), recipient="coord", now_ms=1, nonce=os.urandom(16),
                      vote=peer_pb2.Vote(workflow_id=key[0], round=key[1], domain=d, yes=True))
        votes.append(peer_pb2.Envelope(body=sealed.body, signature=sealed.signature))
    pb = peer_pb2.PaxosValue(outcome=peer_pb2.OUTCOME_COMMIT, votes=votes)
    return pb, TrustStore({d: k.public_key() for d, k in keys.items()})


def _counting_votes(monkeypatch) -> list:
    parsed: list = []
    real = wire._vote
    monkeypatch.setattr(wire, "_vote", lambda *a: parsed.append(a[0]) or real(*a))
    return parsed


def test_a_value_read_again_parses_none_of_its_votes_again(monkeypatch) -> None:
    key = ("coord.0001", 1)
    pb, trust = _signed_value(tuple(f"p{i:02d}" for i in range(40)), key)
    parsed = _counting_votes(monkeypatch)
    first = wire.value_of(pb, key, trust)
    assert len(parsed) == 40
    again = wire.value_of(peer_pb2.PaxosValue.FromString(pb.SerializeToString()), key, trust)
    assert len(parsed) == 40  # the same bytes: not one vote parsed again
    assert again == first and [v.domain for v in again.votes] == sorted(
        f"p{i:02d}" for i in range(40))


def test_a_value_read_before_is_refused_once_a_voter_is_no_longer_trusted() -> None:
    from fedorch.core.identity.envelope import AuthError

    key = ("coord.0002", 1)
    pb, trust = _signed_value(("p1", "p2", "p3"), key)
    assert wire.value_of(pb, key, trust).commit
    trust.remove("p2")
    with pytest.raises(AuthError):
        wire.value_of(pb, key, trust)


def test_the_same_votes_for_another_transaction_are_checked_again(monkeypatch) -> None:
    from fedorch.core.negotiation.errors import RemoteProtocolError

    key = ("coord.0003", 1)
    pb, trust = _signed_value(("p1", "p2"), key)
    wire.value_of(pb, key, trust)
    parsed = _counting_votes(monkeypatch)
    with pytest.raises(RemoteProtocolError):
        wire.value_of(pb, ("coord.0003", 2), trust)  # votes of round 1 cannot commit round 2
    assert parsed
