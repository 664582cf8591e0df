"""A Paxos value is turned into protobuf once and reused for every message that carries
it (a coordinator sends the same value to every acceptor and participant), and what
comes out is the same whether built or reused."""

from __future__ import annotations

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
