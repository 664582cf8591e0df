"""The declared types of the Node's dataclass fields, as checks of decoded values.

Used by NodeCodec's checked decoding (node_codec.py, its header: bytes from a peer):
each field of a registered dataclass gets a predicate, made once from its annotation,
that says whether a decoded value is of that type. Exact classes, as the codec builds
them (a tuple is not a list, an enum member is of its enum); a float field takes an
int and an int field a bool, as the Node's own values do; what no wire value can be
checked against (`object`, `Any`, a Protocol, a Callable) takes anything.

Each check exists twice, from the same annotation: as a predicate (`field_checks`,
`_type_check`), which names the field a value fails, and as the source of one Python
expression (`check_source`), which NodeCodec compiles into each class's checked
decoder, so that a message from a peer is checked by one generated function per
dataclass (an expression per field: an exact-class test, a set of classes, a
`frozenset.issuperset(map(type, items))` for a tuple of scalars) and not by a call of a
predicate per field and item (42 array decodes per workflow at a coordinator, each
calling several). The decoder evaluates the expressions; only when one fails does it
run the predicates, to say which field and why. Both are made by the same rules from
the same hints, and a test holds them equal over the Node's values and forged ones.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from typing import Any

from google.protobuf.message import Message as ProtoMessage

__all__ = ["SCALARS", "check_source", "field_checks"]

SCALARS = frozenset({str, int, float, bool, type(None), bytes})


def field_checks(cls: type, names: tuple[str, ...], known: frozenset[type]
                 ) -> tuple[tuple[int, str, Any, _Check], ...]:
    """(index in the tree, field, declared type, check) of each field that has one."""
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 - an annotation that does not resolve: unchecked
        hints = {}
    out = []
    for i, field in enumerate(names):
        declared = hints.get(field, Any)
        check = _type_check(declared, known)
        if check is not None:
            out.append((i + 1, field, declared, check))
    return tuple(out)


_Check = Callable[[Any], bool]


def _type_check(hint: Any, known: frozenset[type]) -> _Check | None:
    """Whether a decoded value is of the declared type `hint`; None: anything goes."""
    if hint is Any or hint is object:
        return None
    if hint is float:
        return lambda v: v.__class__ is float or v.__class__ is int
    if hint is int:
        return lambda v: v.__class__ is int or v.__class__ is bool
    if hint in SCALARS:
        return lambda v: v.__class__ is hint
    if isinstance(hint, type) and hint in known:
        if issubclass(hint, ProtoMessage):
            return lambda v: isinstance(v, hint)
        return lambda v: v.__class__ is hint
    if hint in (tuple, list, dict, set, frozenset):
        return lambda v: v.__class__ is hint
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union or origin is types.UnionType:
        parts = [_type_check(a, known) for a in args]
        if any(p is None for p in parts):
            return None
        return lambda v: any(p(v) for p in parts)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            item = _type_check(args[0], known)
            if item is None:
                return lambda v: v.__class__ is tuple
            return lambda v: v.__class__ is tuple and all(map(item, v))
        fixed = [_type_check(a, known) or _anything for a in args]
        return lambda v: v.__class__ is tuple and len(v) == len(fixed) \
            and all(f(x) for f, x in zip(fixed, v, strict=True))
    if origin in (list, set, frozenset):
        item = _type_check(args[0], known) if args else None
        if item is None:
            return lambda v: v.__class__ is origin
        return lambda v: v.__class__ is origin and all(map(item, v))
    if origin is dict:
        key = _type_check(args[0], known) if args else None
        value = _type_check(args[1], known) if len(args) > 1 else None
        key, value = key or _anything, value or _anything
        return lambda v: v.__class__ is dict and all(
            key(k) and value(x) for k, x in v.items())
    return None  # a Protocol, a Callable, a type variable: not a wire shape


def _anything(value: Any) -> bool:
    return True




# ---- the same checks as Python source (compiled by NodeCodec) --------------------------


class _Classes(frozenset):
    """A check that is the value's exact class being one of these."""


def check_source(hint: Any, known: frozenset[type], subject: str,
                 names: dict[str, Any]) -> str | None:
    """A Python expression, true when the value `subject` (an expression cheap to
    evaluate again: a name, `tree[3]`) is of type `hint`, as `_type_check(hint)` says;
    None: anything goes. The constants it names (classes, sets of classes) are put in
    `names`, the namespace it is compiled in."""
    made = _source(hint, known, subject, names, [0])
    return _render(made, subject, names) if made is not None else None


def _render(made: _Classes | str, subject: str, names: dict[str, Any]) -> str:
    if not isinstance(made, _Classes):
        return made
    if len(made) == 1:
        return f"{subject}.__class__ is {_constant(next(iter(made)), names)}"
    return f"{subject}.__class__ in {_constant(frozenset(made), names)}"


def _constant(value: Any, names: dict[str, Any]) -> str:
    """The name `value` has in the generated code's namespace (one per value)."""
    for name, known in names.items():
        if name.startswith("K_") and known is value:
            return name
        if name.startswith("K_") and type(known) is frozenset and known == value:
            return name
    name = f"K_{sum(1 for n in names if n.startswith('K_'))}"
    names[name] = value
    return name


def _source(hint: Any, known: frozenset[type], s: str, names: dict[str, Any],
            depth: list[int]) -> _Classes | str | None:
    """As `_type_check`, case for case: a set of exact classes, or an expression over
    `s`, or None (anything)."""
    if hint is Any or hint is object:
        return None
    if hint is float:
        return _Classes({float, int})
    if hint is int:
        return _Classes({int, bool})
    if hint in SCALARS:
        return _Classes({hint})
    if isinstance(hint, type) and hint in known:
        if issubclass(hint, ProtoMessage):
            return f"isinstance({s}, {_constant(hint, names)})"
        return _Classes({hint})
    if hint in (tuple, list, dict, set, frozenset):
        return _Classes({hint})
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union or origin is types.UnionType:
        parts = [_source(a, known, s, names, depth) for a in args]
        if any(p is None for p in parts):
            return None
        classes = _Classes().union(*[p for p in parts if isinstance(p, _Classes)])
        others = [p for p in parts if not isinstance(p, _Classes)]
        if not others:
            return _Classes(classes)
        alternatives = ([_render(_Classes(classes), s, names)] if classes else []) + others
        return "(" + " or ".join(alternatives) + ")"
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return _items(tuple, args[0], known, s, names, depth)
        fixed = [_source(a, known, f"{s}[{i}]", names, depth) for i, a in enumerate(args)]
        tests = [f"{s}.__class__ is tuple", f"len({s}) == {len(args)}"]
        tests += [_render(f, f"{s}[{i}]", names) for i, f in enumerate(fixed)
                  if f is not None]
        return "(" + " and ".join(tests) + ")"
    if origin in (list, set, frozenset):
        return _items(origin, args[0] if args else Any, known, s, names, depth)
    if origin is dict:
        cls = f"{s}.__class__ is dict"
        key = _source(args[0], known, "_k", names, depth) if args else None
        value = _source(args[1], known, "_v", names, depth) if len(args) > 1 else None
        if key is None and value is None:
            return _Classes({dict})
        if not isinstance(key, str) and not isinstance(value, str):  # classes or None
            tests = [cls]
            if key is not None:
                tests.append(f"{_constant(frozenset(key), names)}.issuperset(map(type, {s}))")
            if value is not None:
                tests.append(f"{_constant(frozenset(value), names)}"
                             f".issuperset(map(type, {s}.values()))")
            return "(" + " and ".join(tests) + ")"
        depth[0] += 1
        k, v = f"_k{depth[0]}", f"_v{depth[0]}"
        key = _source(args[0], known, k, names, depth)
        value = _source(args[1], known, v, names, depth)
        pair = " and ".join(_render(p, n, names) for p, n in ((key, k), (value, v))
                            if p is not None)
        return f"({cls} and all({pair} for {k}, {v} in {s}.items()))"
    return None  # a Protocol, a Callable, a type variable: not a wire shape


def _items(container: type, item_hint: Any, known: frozenset[type], s: str,
           names: dict[str, Any], depth: list[int]) -> str | _Classes:
    """A container of exactly `container`'s class whose every item is an `item_hint`."""
    depth[0] += 1
    x = f"_x{depth[0]}"
    item = _source(item_hint, known, x, names, depth)
    if item is None:
        return _Classes({container})
    cls = f"{s}.__class__ is {_constant(container, names)}"
    if isinstance(item, _Classes):  # in C: the set of the items' classes
        return f"({cls} and {_constant(frozenset(item), names)}.issuperset(map(type, {s})))"
    return f"({cls} and all({item} for {x} in {s}))"
