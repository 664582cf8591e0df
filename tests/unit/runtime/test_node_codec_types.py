"""Checked decoding (runtime/node_codec.py with node_codec_types.py): bytes from a peer
build a message only when every field of every dataclass in it is of its declared
type; the same bytes decode unchecked, as the Node's own rows do."""

from __future__ import annotations

import dataclasses

import pytest
from fedorch.core.node.records import PrepareMsg, VoteMsg
from fedorch.runtime.node_codec import CodecError, node_codec
from fedorch.runtime.node_codec_types import field_checks
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.runtime.node_values import MESSAGES, TABLE_ROWS, same

CODEC = node_codec()


@given(st.sampled_from(list(MESSAGES)).flatmap(lambda cls: MESSAGES[cls]))
def test_every_message_a_node_sends_passes_the_check(msg):
    same(CODEC.decode(CODEC.encode(msg), checked=True), msg)


@given(st.sampled_from(sorted(TABLE_ROWS)).flatmap(lambda t: TABLE_ROWS[t]))
def test_every_row_a_node_writes_would_pass_it_too(row):
    _, value = row
    same(CODEC.decode(CODEC.encode(value), checked=True), value)


def _wrong_for(declared: object) -> object:
    """A value no field of type `declared` holds."""
    text = str(declared)
    if declared is str or text.startswith("str"):
        return 7
    return "7"


@given(st.sampled_from(list(MESSAGES)).flatmap(
    lambda cls: st.tuples(MESSAGES[cls], st.data())))
def test_a_field_of_another_type_is_refused_only_when_checked(drawn):
    msg, data = drawn
    names = tuple(f.name for f in dataclasses.fields(msg))
    known = frozenset(CODEC._by_name.values())
    checks = field_checks(type(msg), names, known)
    if not checks:
        return
    _, field, declared, check = data.draw(st.sampled_from(checks))
    wrong = _wrong_for(declared)
    assert not check(wrong)
    forged = _forged(msg, field, wrong)
    if forged is None:
        return  # a value the class itself refuses to hold is never sent
    data_bytes = CODEC.encode(forged)
    with pytest.raises(CodecError, match=f"{type(msg).__name__}.{field}"):
        CODEC.decode(data_bytes, checked=True)


def _forged(msg: object, field: str, wrong: object) -> object | None:
    """`msg` with `field` holding `wrong`, or None when the class refuses to hold it."""
    try:
        return dataclasses.replace(msg, **{field: wrong})
    except (TypeError, ValueError):
        return None


def _with_nested(msg: object) -> list[tuple[str, object]]:
    """The fields of `msg` that hold a registered dataclass with a checked field."""
    known = frozenset(CODEC._by_name.values())
    out = []
    for f in dataclasses.fields(msg):
        inner = getattr(msg, f.name)
        if type(inner) in known and dataclasses.is_dataclass(inner) and field_checks(
                type(inner), tuple(g.name for g in dataclasses.fields(inner)), known):
            out.append((f.name, inner))
    return out


@given(st.sampled_from(list(MESSAGES)).flatmap(
    lambda cls: st.tuples(MESSAGES[cls], st.data())))
def test_a_nested_value_of_another_type_is_refused(drawn):
    """A ballot inside an Accept, a value inside a decision: the check reaches every
    dataclass the bytes build, not only the outer one."""
    msg, data = drawn
    nested = _with_nested(msg)
    if not nested:
        return
    outer_field, inner = data.draw(st.sampled_from(nested))
    known = frozenset(CODEC._by_name.values())
    checks = field_checks(type(inner), tuple(g.name for g in dataclasses.fields(inner)),
                          known)
    _, field, declared, _ = data.draw(st.sampled_from(checks))
    bad_inner = _forged(inner, field, _wrong_for(declared))
    bad = bad_inner and _forged(msg, outer_field, bad_inner)
    if bad is None:
        return
    encoded = CODEC.encode(bad)
    with pytest.raises(CodecError, match=f"{type(inner).__name__}.{field}"):
        CODEC.decode(encoded, checked=True)


@given(st.sampled_from([VoteMsg, PrepareMsg]).flatmap(lambda cls: MESSAGES[cls]))
def test_unchecked_decoding_builds_what_was_encoded(msg):
    """The Node's own rows are not checked: what it wrote, it reads back."""
    first = dataclasses.fields(msg)[0].name
    odd = _forged(msg, first, 5 if isinstance(getattr(msg, first), str) else "5")
    if odd is None:
        return
    data = CODEC.encode(odd)
    same(CODEC.decode(data), odd)
    with pytest.raises(CodecError):
        CODEC.decode(data, checked=True)
