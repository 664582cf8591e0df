"""Checked decoding (runtime/node_codec.py with node_codec_types.py): bytes from a peer
build a message only when every field of every dataclass in it is of its declared
type; the same bytes decode unchecked, as the Node's own rows do."""

from __future__ import annotations

import dataclasses

import pytest
from fedorch.core.node.records import PrepareMsg, VoteMsg
from fedorch.core.workflow.progress import StepState
from fedorch.gen.fedorch.v1 import spec_pb2
from fedorch.runtime.node_codec import CodecError, node_codec
from fedorch.runtime.node_codec_types import check_source, field_checks
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


# ---- the compiled checks (check_source) say what the predicates say -------------------

KNOWN = frozenset(CODEC._by_name.values()) | frozenset(CODEC._protos.values())
_DATACLASSES = [cls for cls in CODEC._by_name.values() if dataclasses.is_dataclass(cls)]


def _fields_checked() -> list[tuple[type, int, str, object, object]]:
    out = []
    for cls in _DATACLASSES:
        names = tuple(f.name for f in dataclasses.fields(cls))
        for i, field, declared, check in field_checks(cls, names, KNOWN):
            out.append((cls, i, field, declared, check))
    return out


FIELDS = _fields_checked()

# Values of many shapes, right for some declared types and wrong for others: scalars,
# containers of scalars (right and wrong items), nested tuples, an enum member, a
# registered dataclass, a protobuf message.
_ANY_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=3) | st.binary(max_size=2),
    lambda inner: st.lists(inner, max_size=3).map(tuple) | st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=2) | st.integers(), inner, max_size=2)
    | st.frozensets(st.text(max_size=2), max_size=2),
    max_leaves=6,
) | st.sampled_from([*StepState, VoteMsg(("w", 1), "d0", True, ""), spec_pb2.WorkflowSpec()])


def _compiled(check_index: int, declared: object):
    namespace: dict = {}
    source = check_source(declared, KNOWN, f"tree[{check_index}]", namespace)
    if source is None:
        return None
    return eval(f"lambda tree: bool({source})", namespace)  # noqa: S307 - our own source


@given(st.sampled_from(FIELDS), st.data())
def test_a_compiled_check_says_what_its_predicate_says(entry, data):
    cls, i, field, declared, check = entry
    compiled = _compiled(i, declared)
    assert compiled is not None, f"{cls.__name__}.{field}: no compiled check"
    value = data.draw(_ANY_VALUE | (MESSAGES[cls].map(lambda m: getattr(m, field))
                                    if cls in MESSAGES else _ANY_VALUE))
    tree = [None] * i + [value]
    assert compiled(tree) == check(value), (cls.__name__, field, declared, value)


@given(st.sampled_from(list(MESSAGES)).flatmap(lambda cls: MESSAGES[cls]))
def test_each_field_of_a_message_passes_its_compiled_check(msg):
    names = tuple(f.name for f in dataclasses.fields(msg))
    for i, field, declared, check in field_checks(type(msg), names, KNOWN):
        compiled = _compiled(i, declared)
        value = getattr(msg, field)
        tree = [None] * i + [CODEC.decode(CODEC.encode(value))]
        assert compiled(tree) and check(tree[i]), (type(msg).__name__, field)


def test_the_compiled_checks_cover_every_declared_shape():
    """Containers of containers, unions, dicts with keys and values of a type: each hint
    of a registered dataclass's field compiles (none is left to the predicates)."""
    for cls, i, field, declared, _ in FIELDS:
        assert _compiled(i, declared) is not None, f"{cls.__name__}.{field}: {declared}"


@pytest.mark.parametrize(("hint", "right", "wrong"), [
    (int, [1, True], [1.0, "1", None]),
    (float, [1.0, 2], ["1", None, True]),
    (str | None, ["a", None], [1, b"a"]),
    (tuple[str, ...], [(), ("a", "b")], [["a"], ("a", 1), "ab"]),
    (tuple[str, int], [("a", 1), ("a", True)], [("a",), ("a", 1, 2), (1, "a"), ["a", 1]]),
    (tuple[tuple[str, str], ...], [(), (("a", "b"),)], [(("a",),), (["a", "b"],)]),
    (dict[str, int], [{}, {"a": 1}], [{"a": "b"}, {1: 1}, [("a", 1)]]),
    (dict[str, tuple[str, ...]], [{"a": ("b",)}], [{"a": ["b"]}, {"a": (1,)}]),
    (list[int], [[], [1, True]], [(1,), [1.5]]),
    (frozenset[str], [frozenset({"a"})], [{"a"}, frozenset({1})]),
    (VoteMsg | None, [None, VoteMsg(("w", 1), "d0", True, "")], ["v", ("w", 1)]),
    (tuple[VoteMsg, ...], [(VoteMsg(("w", 1), "d0", True, ""),)], [(None,)]),
    (spec_pb2.WorkflowSpec, [spec_pb2.WorkflowSpec()], [b"", None]),
])
def test_compiled_checks_of_each_kind_of_hint(hint, right, wrong):
    compiled = _compiled(1, hint)
    for value in right:
        assert compiled([None, value]), (hint, value)
    for value in wrong:
        assert not compiled([None, value]), (hint, value)
