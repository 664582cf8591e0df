"""Bytes for the Node's values: its table rows (node_store.py) and its messages.

Theory of operation
-------------------
A Node's tables and messages hold plain values (str, int, float, bool, None, bytes),
containers (tuple, list, dict, set, frozenset), frozen and plain dataclasses of the
cores (`TxInfo`, `Value`, `Hold`, `CoordRow`, `PrepareMsg`...), enums
(`WorkflowState`, `StepState`, `HoldState`...) and protobuf messages (a workflow's
spec, a signed submission). `NodeCodec` turns any such value into bytes and back, so
that what it decodes equals what it encoded field for field, of the same types (a
tuple stays a tuple, an IntEnum stays that enum, a dataclass with `eq=False` comes back
with every field, `compare=False` ones included).

The bytes are compact JSON in which every non-JSON value is an array whose first
element is a tag: `["t", ...]` a tuple, `["l", ...]` a list, `["d", k1, v1, ...]` a
dict (any keys), `["s", ...]` / `["f", ...]` a set / frozenset (items in the order of
their encoding, so equal sets encode the same), `["b", base64]` bytes, `["pb",
full_name, base64]` a protobuf message (deterministic serialisation), and `[Name, *fields]`
a registered dataclass (fields in declaration order) or `[Name, value]` a registered
enum. Only registered types are ever built when decoding: bytes from a peer can name
no other class, so decoding is safe on untrusted input (anything else is a
`CodecError`). JSON, not pickle, for that reason, and because the C json module does
the heavy part.

An encoding is canonical for keys (the same key always gives the same bytes), which
the store relies on to find a row again: tuples, strings, ints and bytes, as the
Node's table keys are.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import json
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any

from google.protobuf.message import DecodeError
from google.protobuf.message import Message as ProtoMessage

__all__ = ["CodecError", "NodeCodec", "node_codec"]


class CodecError(ValueError):
    """Bytes that are not the encoding of a value this codec knows."""


_dumps = json.JSONEncoder(separators=(",", ":"),
                          check_circular=False).encode
_loads = json.loads


class NodeCodec:
    """Encode and decode the Node's values (see the header)."""

    def __init__(self, types: Iterable[type], protos: Iterable[type[ProtoMessage]]) -> None:
        self._by_name: dict[str, type] = {}
        self._fields: dict[type, tuple[str, ...]] = {}
        for cls in types:
            self._register(cls)
        self._protos: dict[str, type[ProtoMessage]] = {
            p.DESCRIPTOR.full_name: p for p in protos}
        self._encoders: dict[type, Callable[[Any], Any]] = {
            str: _same, int: _same, float: _same, bool: _same, type(None): _same,
            tuple: self._tuple, list: self._list, dict: self._dict, set: self._set,
            frozenset: self._frozenset, bytes: _bytes,
        }

    def _register(self, cls: type) -> None:
        name = cls.__name__
        if name in self._by_name and self._by_name[name] is not cls:
            raise ValueError(f"two types named {name}: {self._by_name[name]} and {cls}")
        if name in _RESERVED:
            raise ValueError(f"{cls}: its name {name!r} is one of the codec's tags")
        if dataclasses.is_dataclass(cls):
            fs = dataclasses.fields(cls)
            if any(not f.init for f in fs):
                raise ValueError(f"{cls}: every field must be an __init__ argument")
            self._fields[cls] = tuple(f.name for f in fs)
        elif not issubclass(cls, enum.Enum):
            raise ValueError(f"{cls}: only dataclasses and enums are registered")
        self._by_name[name] = cls

    # ---- encoding -------------------------------------------------------------------

    def encode(self, value: Any) -> bytes:
        return _dumps(self._enc(value)).encode()

    def _enc(self, value: Any) -> Any:
        encoder = self._encoders.get(type(value))
        if encoder is not None:
            return encoder(value)
        cls = type(value)
        names = self._fields.get(cls)
        if names is not None:
            enc = self._enc
            return [cls.__name__, *[enc(getattr(value, n)) for n in names]]
        if cls.__name__ in self._by_name and self._by_name[cls.__name__] is cls:
            return [cls.__name__, value.value]  # an enum
        if isinstance(value, ProtoMessage) and value.DESCRIPTOR.full_name in self._protos:
            return ["pb", value.DESCRIPTOR.full_name,
                    base64.b64encode(value.SerializeToString(deterministic=True)).decode()]
        raise CodecError(f"no encoding for a {cls.__module__}.{cls.__qualname__}")

    def _tuple(self, value: tuple) -> list:
        enc = self._enc
        return ["t", *[enc(v) for v in value]]

    def _list(self, value: list) -> list:
        enc = self._enc
        return ["l", *[enc(v) for v in value]]

    def _dict(self, value: dict) -> list:
        enc = self._enc
        out: list = ["d"]
        for k, v in value.items():
            out.append(enc(k))
            out.append(enc(v))
        return out

    def _set(self, value: set) -> list:
        return ["s", *self._sorted(value)]

    def _frozenset(self, value: frozenset) -> list:
        return ["f", *self._sorted(value)]

    def _sorted(self, items: Iterable) -> list:
        encoded = [self._enc(v) for v in items]
        return [e for _, e in sorted((_dumps(e), e) for e in encoded)] \
            if len(encoded) > 1 else encoded

    # ---- decoding -------------------------------------------------------------------

    def decode(self, data: bytes) -> Any:
        try:
            tree = _loads(data)
        except (ValueError, UnicodeDecodeError) as e:
            raise CodecError(f"not JSON: {e}") from None
        return self._dec(tree)

    def _dec(self, tree: Any) -> Any:
        if type(tree) is not list:
            if type(tree) is dict:
                raise CodecError("a JSON object is no encoded value")
            return tree
        if not tree or type(tree[0]) is not str:
            raise CodecError("an encoded container starts with its tag")
        tag = tree[0]
        dec = self._dec
        try:
            if tag == "t":
                return tuple(dec(v) for v in tree[1:])
            if tag == "l":
                return [dec(v) for v in tree[1:]]
            if tag == "d":
                items = tree[1:]
                if len(items) % 2:
                    raise CodecError("a dict's encoding has an odd number of items")
                return {dec(items[i]): dec(items[i + 1]) for i in range(0, len(items), 2)}
            if tag == "s":
                return {dec(v) for v in tree[1:]}
            if tag == "f":
                return frozenset(dec(v) for v in tree[1:])
            if tag == "b":
                return base64.b64decode(tree[1], validate=True)
            if tag == "pb":
                cls = self._protos.get(tree[1])
                if cls is None:
                    raise CodecError(f"unknown protobuf message {tree[1]!r}")
                return cls.FromString(base64.b64decode(tree[2], validate=True))
            cls = self._by_name.get(tag)
            if cls is None:
                raise CodecError(f"unknown type {tag!r}")
            names = self._fields.get(cls)
            if names is None:
                return cls(tree[1])  # an enum
            if len(tree) != len(names) + 1:
                raise CodecError(f"{tag} has {len(names)} fields, not {len(tree) - 1}")
            return cls(*[dec(v) for v in tree[1:]])
        except CodecError:
            raise
        except (TypeError, ValueError, IndexError, DecodeError) as e:
            raise CodecError(f"bad {tag!r} value: {type(e).__name__}: {e}") from None


_RESERVED = frozenset({"t", "l", "d", "s", "f", "b", "pb"})


def _same(value: Any) -> Any:
    return value


def _bytes(value: bytes) -> list:
    return ["b", base64.b64encode(value).decode()]


def _own_types(*modules: ModuleType) -> list[type]:
    """The dataclasses and enums each module defines (not those it imports)."""
    found = []
    for module in modules:
        for obj in vars(module).values():
            if isinstance(obj, type) and obj.__module__ == module.__name__ \
                    and not obj.__name__.startswith("_") \
                    and (issubclass(obj, enum.Enum) or dataclasses.is_dataclass(obj)
                         and all(f.init for f in dataclasses.fields(obj))):
                found.append(obj)
    return found


def _proto_types(*modules: ModuleType) -> list[type[ProtoMessage]]:
    found = []
    for module in modules:
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, ProtoMessage) \
                    and obj.DESCRIPTOR.file.name == module.DESCRIPTOR.name:
                found.append(obj)
    return found


_codec: NodeCodec | None = None


def node_codec() -> NodeCodec:
    """The codec of every type a Node keeps in its tables or sends (built once)."""
    global _codec
    if _codec is None:
        from fedorch.core.negotiation import acceptor, messages, participant
        from fedorch.core.node import records
        from fedorch.core.workflow import acceptor_grant, lifecycle, progress
        from fedorch.gen.fedorch.v1 import config_pb2, spec_pb2

        types = _own_types(records, messages, acceptor, participant, acceptor_grant,
                           lifecycle, progress)
        _codec = NodeCodec(types, _proto_types(spec_pb2, config_pb2))
    return _codec
