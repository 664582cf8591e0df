"""The declared types of the Node's dataclass fields, as checks of decoded values.

Used by NodeCodec's checked decoding (node_codec.py, its header: bytes from a peer):
each field of a registered dataclass gets a predicate, made once from its annotation,
that says whether a decoded value is of that type. Exact classes, as the codec builds
them (a tuple is not a list, an enum member is of its enum); a float field takes an
int and an int field a bool, as the Node's own values do; what no wire value can be
checked against (`object`, `Any`, a Protocol, a Callable) takes anything.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from typing import Any

from google.protobuf.message import Message as ProtoMessage

__all__ = ["SCALARS", "field_checks"]

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


