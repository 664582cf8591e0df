"""The codec of the Node's values (runtime/node_codec.py): every table's keys and values
and every message a Node sends come back field for field, of the same types; bytes
that name anything else are refused."""

from __future__ import annotations

import dataclasses

import msgpack
import pytest
from fedorch.core.node import records
from fedorch.core.node.records import TABLES
from fedorch.runtime.node_codec import CodecError, NodeCodec, node_codec
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.runtime.node_values import MESSAGES, TABLE_ROWS, same

CODEC = node_codec()


def packb(tree: object) -> bytes:
    return msgpack.packb(tree)


def test_every_table_and_every_message_has_a_strategy():
    assert set(TABLE_ROWS) == set(TABLES)
    sent = {cls for name, cls in vars(records).items()
            if name.endswith("Msg") and dataclasses.is_dataclass(cls)}
    assert sent <= set(MESSAGES)


@given(st.sampled_from(sorted(TABLE_ROWS)).flatmap(lambda t: TABLE_ROWS[t]))
def test_table_keys_and_values_round_trip(row):
    key, value = row
    same(CODEC.decode(CODEC.encode(key)), key, "key")
    same(CODEC.decode(CODEC.encode(value)), value)


@given(st.sampled_from(list(MESSAGES)).flatmap(lambda cls: MESSAGES[cls]))
def test_messages_round_trip(msg):
    data = CODEC.encode(msg)
    assert isinstance(data, bytes)
    same(CODEC.decode(data), msg)


@given(st.sampled_from(sorted(TABLE_ROWS)).flatmap(lambda t: TABLE_ROWS[t]))
def test_a_key_encodes_to_the_same_bytes_each_time(row):
    """The store finds a row again by its key's bytes."""
    key, _ = row
    assert CODEC.encode(CODEC.decode(CODEC.encode(key))) == CODEC.encode(key)


@given(st.sets(st.tuples(st.text(max_size=3), st.integers(0, 3)), max_size=6),
       st.randoms())
def test_equal_sets_encode_the_same_whatever_their_order(items, rng):
    shuffled = list(items)
    rng.shuffle(shuffled)
    assert CODEC.encode(set(shuffled)) == CODEC.encode(items)
    assert CODEC.encode(frozenset(shuffled)) == CODEC.encode(frozenset(items))


@pytest.mark.parametrize("data", [
    packb(["os.system", "true"]),      # a name the codec has not registered
    packb(["subprocess", ["t"]]),
    packb({"a": 1}),                   # a map is no encoded value
    packb([]),
    packb([1, 2]),
    packb(["TxInfo", "w", 1]),         # too few fields
    packb(["d", "a"]),                 # a dict with a key and no value
    packb(["pb", "fedorch.v1.Nothing", b""]),
    packb(["pb", "fedorch.v1.WorkflowSpec", b"!!"]),
    packb(["pb", "fedorch.v1.WorkflowSpec", "a str, not bytes"]),
    packb(["HoldState", "no such state"]),
    packb(["i", 12]),                  # a wide int is its digits
    packb(["i", "twelve"]),
    packb(["t", msgpack.ExtType(5, b"x")]),  # an extension is no value
    packb(msgpack.ExtType(5, b"x")),
    packb(["t", {"a": 1}]),            # nor is a map, at any depth
    packb(["l", 1]) + b"\x00",         # bytes after the value
    b"",
    b"\xc1",                           # never used in MessagePack
    # The JSON this codec wrote before MessagePack: never read as a value.
    b'["os.system", "true"]',
    b'{"a": 1}',
    b'not json',
])
def test_bytes_that_name_no_known_value_are_refused(data):
    with pytest.raises(CodecError):
        CODEC.decode(data)


def test_an_unregistered_type_has_no_encoding():
    @dataclasses.dataclass
    class Stranger:
        x: int

    with pytest.raises(CodecError, match="Stranger"):
        CODEC.encode(Stranger(1))
    with pytest.raises(CodecError):
        CODEC.encode(object())


def test_a_type_named_like_a_tag_or_twice_is_not_registered():
    @dataclasses.dataclass
    class t:  # noqa: N801 - the point is the name
        x: int

    with pytest.raises(ValueError, match="tags"):
        NodeCodec([t], [])

    def named(name: str) -> type:
        return dataclasses.make_dataclass(name, [("x", int)])

    with pytest.raises(ValueError, match="two types"):
        NodeCodec([named("Twin"), named("Twin")], [])


def test_a_field_holding_another_type_than_declared_round_trips():
    """Encoders call a declared field's dataclass encoder directly; a value of another
    type there (a list for a tuple, None for a dataclass) still comes back as it was."""
    from fedorch.core.negotiation.messages import (
        Accept,
        Ballot,
        DecisionAck,
        TxInfo,
        Value,
        VoteIn,
    )

    vote = VoteIn(1, "d1", True, "", b"\x00raw")
    for value in (Value(True, [vote, vote]), Value(True, (vote, "not a vote")),
                  Accept(TxInfo("w", 1, "d0", ("d1",), ("d1",), b"tx"), Ballot(0, "d0"),
                         None, True),
                  Accept(("not", "a tx"), Ballot(0, "d0"), Value(False), False),
                  DecisionAck(("w", (1, 2), Ballot(0, "d0")), "d1"),  # a key of scalars
                  DecisionAck(["w", 1], "d1"), DecisionAck(("w", 2**70), "d1")):
        same(CODEC.decode(CODEC.encode(value)), value)


def test_a_class_that_checks_its_fields_checks_them_when_decoded():
    """A registered class with a __post_init__ is built by calling it, so its checks run
    on what a peer sent: a refusal there is a CodecError like any other."""
    from fedorch.core.workflow.lifecycle import Ended, WorkflowState

    ended = Ended(final=WorkflowState.SUCCEEDED, reason="done")
    same(CODEC.decode(CODEC.encode(ended)), ended)
    running = CODEC.encode(ended).replace(CODEC.encode(WorkflowState.SUCCEEDED),
                                          CODEC.encode(WorkflowState.RUNNING))
    with pytest.raises(CodecError, match="terminal"):
        CODEC.decode(running)


def test_ints_beyond_64_bits_round_trip_and_encode_the_same_each_time():
    """A step's outputs may hold any JSON int: those MessagePack cannot hold travel as
    their digits, in any container, a set's items included."""
    from fedorch.core.node.records import ResultMsg
    from fedorch.core.workflow.progress import StepState

    wide = [2**64, 2**64 - 1, -(2**63), -(2**63) - 1, 10**40, -(10**40)]
    values = [*wide, tuple(wide), {2**70: [2**70]}, {2**70, 1, -(2**70)},
              frozenset({(2**65, "a"), (0, "b")}),
              ResultMsg("w", "s", 1, StepState.SUCCEEDED, {"n": 10**30, "m": [2**64]}, "")]
    for value in values:
        data = CODEC.encode(value)
        same(CODEC.decode(data), value)
        assert CODEC.encode(CODEC.decode(data)) == data


def test_a_timestamp_reads_as_a_plain_int():
    """MessagePack's timestamp extension is parsed before any hook sees it: it reads as
    its nanoseconds, a plain int, so no msgpack.Timestamp ever lands in a value."""
    for data, ns in ((packb(msgpack.Timestamp(1)), 10**9),
                     (packb(["t", msgpack.Timestamp(0, 5)]), (5,))):
        value = CODEC.decode(data)
        assert value == ns
        assert {type(v) for v in (value if isinstance(value, tuple) else (value,))} == {int}


def test_a_lone_surrogate_round_trips_alone_and_with_a_wide_int():
    """Strings are packed by the strict UTF-8 packer (fast), which refuses a str with no
    UTF-8 encoding: such a str (a lone surrogate, which JSON text can carry) is still
    carried as it is, in a tree with an int beyond 64 bits too, and encodes the same
    each time."""
    from fedorch.core.node.records import ResultMsg
    from fedorch.core.workflow.progress import StepState

    values = ["\ud800", ("a", "b\udfff"), {"\udc80": 1},
              ResultMsg("w", "s", 1, StepState.FAILED, {"x": "\ud83d", "n": 2**70}, "\ud800")]
    for value in values:
        data = CODEC.encode(value)
        same(CODEC.decode(data), value)
        assert CODEC.encode(CODEC.decode(data)) == data


@given(st.text(max_size=20))
def test_a_str_packs_to_the_bytes_the_surrogate_passing_packer_gives(text):
    """The strict packer and the surrogate-passing one give the same bytes for every
    str that has a UTF-8 encoding: no row or message changes bytes with the packer."""
    tree = ["t", text, [text, 1]]
    assert CODEC.encode((text, [text, 1])) == msgpack.Packer(
        unicode_errors="surrogatepass").pack(["t", text, ["l", text, 1]])
    assert msgpack.packb(tree) == msgpack.Packer(unicode_errors="surrogatepass").pack(tree)


def test_a_row_written_before_its_class_gained_a_field_reads_with_its_default():
    """node.db of an older release: a transaction and a coordinator row written before
    rounds stated a creation time (TxInfo.created_ms, CoordRow.created_ms, each the last
    field, 0 by default) read back with 0. A peer's bytes get no such leniency, and a
    tree missing a field without a default, or with one too many, is refused."""
    from fedorch.core.negotiation.messages import TxInfo

    tx = TxInfo("d0.w", 1, "d0", ("d1",), ("d0", "d1", "d2"), b"sig", 1234)
    tree = msgpack.unpackb(CODEC.encode(tx), use_list=False)
    assert tree[-1] == 1234
    old = packb(list(tree[:-1]))  # as an older release wrote it
    same(CODEC.decode(old), TxInfo("d0.w", 1, "d0", ("d1",), ("d0", "d1", "d2"), b"sig"))
    with pytest.raises(CodecError, match="fields"):
        CODEC.decode(old, checked=True)
    with pytest.raises(CodecError, match="fields"):
        CODEC.decode(packb(list(tree[:3])))  # round_tx has a default; participants not
    with pytest.raises(CodecError, match="fields"):
        CODEC.decode(packb([*tree, 5]))
    row = records.CoordRow("d0.w", records.WfInfo(None, {}, "d0"), created_ms=99)
    row_tree = msgpack.unpackb(CODEC.encode(row), use_list=False)
    read = CODEC.decode(packb(list(row_tree[:-1])))
    assert (read.workflow_id, read.created_ms) == ("d0.w", 0)
