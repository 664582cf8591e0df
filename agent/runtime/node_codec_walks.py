"""The generated walks of NodeCodec (node_codec.py): each registered dataclass's encoder
and decoders, each enum's, made once when the codec is built.

A dataclass gets three functions generated as Python source and compiled: its encoder
(one expression per field; a field declared as a registered dataclass, or a tuple of
one, calls that class's encoder without a lookup: `declared`), its decoder (the class
built from the tree, by filling a fresh `__dict__` when that is all its generated
`__init__` would do), and its checked decoder: the same, after one expression per
field that says whether the decoded value is of the field's declared type
(node_codec_types.py `check_source`, the same rules as its predicates). When one is
false the predicates run (`_refusal`) to name the field in the CodecError; the
expressions only make the common case, a well-typed message, cost no call per field.
An enum member's tree is made once.

A row written before a field was added to its class (its tree shorter, the fields it
lacks the last ones, each with a default) is read with those defaults by the unchecked
decoder, the one for the Node's own rows (`_padding`): a restarted agent reads the
file an older release wrote (TxInfo.created_ms, CoordRow.created_ms: rounds stated
before rounds had a creation time). Bytes from a peer get no such leniency.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Callable
from typing import Any

from fedorch.runtime.node_codec_types import SCALARS, check_source

__all__ = ["CodecError", "dataclass_walks", "declared", "enum_walks"]


class CodecError(ValueError):
    """Bytes that are not the encoding of a value this codec knows."""


def enum_walks(cls: type[enum.Enum]) -> tuple[Callable, Callable]:
    """An enum member's tree is made once (the packer only reads it)."""
    name = cls.__name__
    trees = {member: [name, member._value_] for member in cls}
    by_value = dict(cls._value2member_map_)

    def decode(tree: list) -> enum.Enum:
        if len(tree) != 2:
            raise CodecError(f"{name} is [{name!r}, value]")
        member = by_value.get(tree[1])
        return member if member is not None else cls(tree[1])

    return trees.__getitem__, decode


def _builds_by_dict(cls: type) -> bool:
    """May a decoded instance be built by filling a fresh `__dict__`? Only when that is
    all the class's own generated `__init__` would do."""
    init = cls.__dict__.get("__init__")
    return (init is not None and getattr(init, "__code__", None) is not None
            and init.__code__.co_filename == "<string>"  # made by dataclasses
            and not hasattr(cls, "__post_init__") and cls.__dictoffset__ != 0)


def declared(cls: type, registered: dict[type, tuple[str, ...]]) -> dict[str, tuple]:
    """The fields declared as a registered dataclass X (or X | None): ("one", X), or as
    tuple[X, ...]: ("tuple", X). Their encoding calls X's encoder without a lookup; a
    value of another type at run time takes the general way."""
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 - an annotation that does not resolve: none
        return {}
    declared = {}
    for name in registered[cls]:
        hint = hints.get(name)
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        if origin is typing.Union or origin is types.UnionType:
            inner = [a for a in args if a is not type(None)]
            if len(inner) == 1 and inner[0] in registered:
                declared[name] = ("one", inner[0])
        elif hint in registered:
            declared[name] = ("one", hint)
        elif origin is tuple and len(args) == 2 and args[1] is Ellipsis \
                and args[0] in registered:
            declared[name] = ("tuple", args[0])
        elif origin is tuple and args and all(a in SCALARS or a is Ellipsis for a in args):
            declared[name] = ("scalars", None)  # a key, names: (str, int), (str, ...)
    return declared


def _field_tree(field: str, declared: dict[str, tuple]) -> str:
    """The expression for one field's tree in a generated encoder."""
    kind, of = declared.get(field, (None, None))
    if kind == "one":
        n = of.__name__
        return (f"_x if (_x := value.{field}).__class__ in scalars"
                f" else (E_{n}(_x) if _x.__class__ is C_{n} else enc(_x))")
    if kind == "scalars":
        return (f"prefix_t + _x if (_x := value.{field}).__class__ is tuple"
                f" and all_scalars(map(type, _x)) else enc(_x)")
    if kind == "tuple":
        n = of.__name__
        return (f"['t', *[E_{n}(_v) if _v.__class__ is C_{n} else enc(_v) for _v in _x]]"
                f" if (_x := value.{field}).__class__ is tuple else enc(_x)")
    return f"_x if (_x := value.{field}).__class__ in scalars else enc(_x)"


def dataclass_walks(cls: type, names: tuple[str, ...], declared: dict[str, tuple],
                     namespace: dict[str, Any], checks: tuple, known: frozenset[type]
                     ) -> tuple[Callable, Callable, Callable]:
    """A dataclass's encoder and decoders (unchecked, and checked: `checks`, the
    `field_checks` of its fields), generated: one expression per field."""
    name = cls.__name__
    field_trees = ", ".join(_field_tree(f, declared) for f in names)
    size = len(names) + 1
    fields = [f"tree[{i + 1}]" for i in range(len(names))]
    if _builds_by_dict(cls):
        build = ["    obj = new(cls)", "    d = obj.__dict__"]
        build += [f"    d[{f!r}] = {expr}" for f, expr in zip(names, fields, strict=True)]
        build += ["    return obj"]
    else:
        build = [f"    return cls({', '.join(fields)})"]
    size_check = [
        f"    if len(tree) != {size}:",
        f"        raise CodecError(f'{name} has {size - 1} fields, not {{len(tree) - 1}}')",
    ]
    padded = [  # an older row: its missing last fields take their defaults
        f"    if len(tree) != {size}:",
        "        tree = pad(tree)",
    ]
    # The checked decoder: the expression of each checked field
    # (node_codec_types.py `check_source`); when one is false, `refuse` runs the
    # predicates to name the field.
    tests = [t for t in (check_source(hint, known, f"tree[{i}]", namespace)
                         for i, _, hint, _ in checks) if t is not None]
    test = ["    if not (" + "\n            and ".join(tests) + "):",
            "        refuse(tree)"] if tests else []
    lines = [
        "def encode(value, enc=enc, scalars=scalars, prefix_t=prefix_t,"
        " all_scalars=all_scalars):",
        f"    return [{name!r}, {field_trees}]",
        "def decode(tree, cls=cls, new=new, pad=pad):",
        *padded, *build,
        "def checked(tree, cls=cls, new=new, refuse=refuse):",
        *size_check, *test, *build,
    ]
    namespace["cls"] = cls  # bound as a default argument, so each decode keeps its own
    namespace["refuse"] = _refusal(name, checks)
    namespace["pad"] = _padding(cls, names)
    exec(compile("\n".join(lines), f"<node codec: {name}>", "exec"), namespace)  # noqa: S102
    return namespace.pop("encode"), namespace.pop("decode"), namespace.pop("checked")


def _padding(cls: type, names: tuple[str, ...]) -> Callable[[tuple], tuple]:
    """What the unchecked decoder calls for a tree of another length than its class's:
    a shorter one gets the defaults of the fields it lacks, if they all have one (an
    older row, see the header); any other is a CodecError."""
    name = cls.__name__
    by_name = {f.name: f for f in dataclasses.fields(cls)}

    def pad(tree: tuple) -> tuple:
        have = len(tree) - 1
        if 0 <= have < len(names):
            tail = []
            for field in names[have:]:
                f = by_name[field]
                if f.default is not dataclasses.MISSING:
                    tail.append(f.default)
                elif f.default_factory is not dataclasses.MISSING:
                    tail.append(f.default_factory())
                else:
                    break
            else:
                return (*tree, *tail)
        raise CodecError(f"{name} has {len(names)} fields, not {have}")

    return pad


def _refusal(name: str, checks: tuple) -> Callable[[list], None]:
    """What a checked decoder calls when a field's expression is false: the CodecError
    naming the first field whose predicate (`field_checks`) fails."""

    def refuse(tree: list) -> None:
        for i, field, declared, check in checks:
            if not check(tree[i]):
                raise CodecError(f"{name}.{field}: a {type(tree[i]).__name__} is not"
                                 f" of its declared type {declared}")
        # The expressions and the predicates are made from the same hints by the same
        # rules (a test holds them equal): one false and none failing is a codec bug.
        raise CodecError(f"{name}: its field checks disagree")

    return refuse
