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

The bytes are MessagePack (msgpack's C packer) of a tree of MessagePack scalars (str,
int, float, bool, None and bytes, each its own tree) and arrays, every array starting
with a tag: `["t", ...]` a tuple, `["l", ...]` a list, `["d", k1, v1, ...]` a dict (any
keys), `["s", ...]` / `["f", ...]` a set / frozenset (items in the order of their
packed bytes, so equal sets encode the same), `["i", digits]` an int beyond 64 bits,
`["pb", full_name, bytes]` a protobuf message (deterministic serialisation; a
workflow's spec and signed submission serialised once per message object,
node_codec_protos.py), and
`[Name, *fields]` a registered dataclass (fields in declaration order) or `[Name,
value]` a registered enum. A str that is not valid UTF-8 (a lone surrogate) is carried
as it is ("surrogatepass"). Only registered types are ever built when decoding: bytes
from a peer can name no other class, a MessagePack map or extension is no value, and a
timestamp reads as a plain int, so decoding is safe on untrusted input (anything else
is a `CodecError`).

Bytes from a peer are decoded with `checked=True`: every field of every dataclass built
must also be of the type its class declares (`str`, `int`, `X | None`, `tuple[str,
...]`, `dict[str, int]`, a registered dataclass or enum, a protobuf message...), so a
trusted domain that lies cannot hand the Node a value of a shape its code never meets
(a str where a tuple of names is read, None where a ballot is compared) and make it
raise: such bytes are a `CodecError`, refused at the boundary like a bad signature. A
float field takes an int too, an int field a bool (the Node's own values do so); a
field declared `object` or `Any` takes anything. The rows a Node reads back from its
own disk are not checked (they are the Node's own values, and a check that refused one
would stop an agent from restarting); the simulator decodes every message it carries
with the check, so a Node that sent a field of another type than it declares fails
the seeded runs, not a federation.
MessagePack, not pickle, for that reason; not JSON (as until December 2026), because
its text cost as much as the walk: MessagePack packs a tree in half the CPU, parses
it in a quarter, and carries bytes without base64.

An encoding is canonical for keys (the same key always gives the same bytes), which
the store relies on to find a row again: tuples, strings, ints and bytes, as the
Node's table keys are.

Speed: every row a Node writes and every message it sends passes through here, so the
walks are made once, when the codec is built, not worked out per value. A table maps
each type (encoding) or tag (decoding) to its function; each registered dataclass has
an encoder and decoders generated for it (node_codec_walks.py), one expression per
field (no `dataclasses.fields()`, no isinstance chain), and a field declared as a
registered dataclass (or a tuple of one) calls that class's encoder directly. A
scalar, and a tuple or list of scalars, is kept or joined to its tag without a Python
loop. Decoding runs inside msgpack's parser: it hands each array, its items already
values and the array itself a tuple (`use_list=False`), to the hook (`list_hook`),
which slices a tuple's items off its tag itself (the most common array: no further
call) and hands any other array to its tag's decoder. The checked decoding has a table
of its own: the same decoders, but a dataclass's generated with its field checks
inline (an expression per field, node_codec_types.py `check_source`), so a
well-typed message costs no call per field. A dataclass with no `__post_init__` is
decoded by filling a fresh instance's `__dict__`, all its generated `__init__` would
do, at a third of the cost; one with a `__post_init__` (its own checks), slots or an
`__init__` of its own is built by calling it. An enum member's tree is made once. The
measurements are in docs/benchmarks.md (the bench node section, and "The runtime's
cost per workflow").
"""

from __future__ import annotations

import dataclasses
import enum
import threading
import types
from collections.abc import Callable, Iterable
from typing import Any

import msgpack
from fedorch.core.negotiation.errors import RemoteProtocolError
from fedorch.runtime.node_codec_protos import ProtoBytes
from fedorch.runtime.node_codec_types import field_checks
from fedorch.runtime.node_codec_walks import CodecError, dataclass_walks, declared, enum_walks
from google.protobuf.message import DecodeError
from google.protobuf.message import Message as ProtoMessage

__all__ = ["CodecError", "NodeCodec", "node_codec"]


_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1  # what a MessagePack integer holds
_threads = threading.local()  # a Packer per thread (it keeps a buffer between calls)


def _pack(tree: Any) -> bytes:
    # The strict packer first: msgpack packs a str by its UTF-8 in C only when no
    # error handler is named; with "surrogatepass" every str goes through Python's
    # codec machinery (the Node's rows packed in 1.2 to 1.7 times the CPU, by tree).
    # The bytes are the same for every str that has a UTF-8 encoding, so the
    # surrogate-passing packer is needed only for a str that has none (a lone
    # surrogate), which the strict one refuses: rare, so looked for only then.
    try:
        packer = _threads.packer
    except AttributeError:
        packer = _threads.packer = msgpack.Packer()
    try:
        return packer.pack(tree)
    except OverflowError:  # an int beyond 64 bits: rare, so looked for only now
        packer.reset()
        return _pack_rare(tree)
    except UnicodeEncodeError:  # a lone surrogate
        packer.reset()
        return _pack_rare(tree)


def _pack_rare(tree: Any) -> bytes:
    """`tree` packed with lone surrogates carried as they are and ints beyond 64 bits
    as ["i", digits]: what `_pack` does when its fast packer refuses the tree."""
    try:
        packer = _threads.rare_packer
    except AttributeError:
        packer = _threads.rare_packer = msgpack.Packer(unicode_errors="surrogatepass")
    try:
        return packer.pack(tree)
    except OverflowError:
        packer.reset()
        return packer.pack(_wide(tree))


def _wide(tree: Any) -> Any:
    """`tree` with every int MessagePack cannot hold as ["i", its decimal digits]."""
    if tree.__class__ is list or tree.__class__ is tuple:
        return [_wide(t) for t in tree]
    if tree.__class__ is int and not _INT_MIN <= tree <= _INT_MAX:
        return ["i", str(tree)]
    return tree


def _no_ext(code: int, data: bytes) -> Any:
    raise CodecError(f"MessagePack extension {code} is no encoded value")


def _no_map(pairs: list) -> Any:
    raise CodecError("a MessagePack map is no encoded value")


_new = object.__new__

# MessagePack's scalars: a value of one of these types is its own tree, and a tree of
# one of them is its own value (exact types: an IntEnum is not an int here).
_SCALARS = frozenset({str, int, float, bool, type(None), bytes})
_RESERVED = frozenset({"t", "l", "d", "s", "f", "i", "pb"})


class NodeCodec:
    """Encode and decode the Node's values (see the header)."""

    def __init__(self, types: Iterable[type], protos: Iterable[type[ProtoMessage]],
                 kept: Iterable[type[ProtoMessage]] = ()) -> None:
        """`kept`: the protobuf classes (of `protos`) whose messages nothing changes once
        made, so that their bytes are kept per message (node_codec_protos.py)."""
        self._by_name: dict[str, type] = {}
        self._fields: dict[type, tuple[str, ...]] = {}
        for cls in types:
            self._register(cls)
        self._protos: dict[str, type[ProtoMessage]] = {
            p.DESCRIPTOR.full_name: p for p in protos}
        self._kept = tuple(kept)
        if not set(self._kept) <= set(self._protos.values()):
            raise ValueError("a kept protobuf class must be one of the codec's")
        self.proto_bytes = ProtoBytes(self._kept)
        self._enc, array, checked_array = self._compile()
        # The parser hands every array to `array` as it closes, its items already
        # values: the decoding walk runs in msgpack's C loop, not in a Python one. A
        # timestamp extension reads as its nanoseconds (a plain int), so that no
        # msgpack.Timestamp ever lands in a value.
        self._options = {"raw": False, "use_list": False, "unicode_errors": "surrogatepass",
                         "list_hook": array, "object_pairs_hook": _no_map,
                         "ext_hook": _no_ext, "timestamp": 2}
        self._checked_options = dict(self._options, list_hook=checked_array)

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

    # ---- the public API ---------------------------------------------------------------

    def encode(self, value: Any) -> bytes:
        return _pack(self._enc(value))

    def decode(self, data: bytes, *, checked: bool = False) -> Any:
        """The value `data` encodes. `checked`: bytes from a peer, whose dataclasses must
        hold fields of their declared types (see the header)."""
        try:
            return msgpack.unpackb(data, **(self._checked_options if checked
                                          else self._options))
        except CodecError:
            raise
        except (TypeError, ValueError, IndexError, AttributeError, DecodeError,
                RecursionError, RemoteProtocolError) as e:  # or a constructor's own check
            raise CodecError(f"bad value: {type(e).__name__}: {e}") from None
        except Exception as e:  # noqa: BLE001 - msgpack's other errors have no one base
            raise CodecError(f"not MessagePack: {type(e).__name__}: {e}") from None

    # ---- the compiled walks -----------------------------------------------------------

    def _compile(self) -> tuple[Callable[[Any], Any], Callable[[Any], Any],
                                Callable[[Any], Any]]:
        """The encoding walk (value -> tree) and the decoding walks (tree -> value,
        unchecked and checked), as closures over a table of one function per type
        (encoding) or tag (decoding)."""
        scalars = _SCALARS
        encoders: dict[type, Callable[[Any], Any]] = {}
        decoders: dict[str, Callable[[list], Any]] = {}
        protos = self._protos

        # The walks look their tables up by subscript, not .get: a lookup per value or
        # array, of a table that nearly always has it, without a call each.
        def enc(value: Any) -> Any:
            try:
                encoder = encoders[value.__class__]
            except KeyError:
                encoder = None
            if encoder is not None:
                return encoder(value)
            if isinstance(value, ProtoMessage) and value.DESCRIPTOR.full_name in protos:
                return _proto(value)  # a subclass of a registered message class
            cls = type(value)
            raise CodecError(f"no encoding for a {cls.__module__}.{cls.__qualname__}")

        def array(tree: tuple) -> Any:
            """An array of the tree, its items already decoded: the value it encodes."""
            tag = tree[0] if tree else None
            if tag.__class__ is not str:
                raise CodecError("an encoded container starts with its tag")
            if tag == "t":  # the most common array (keys, names, messages): no call
                return tree[1:]
            try:
                decoder = decoders[tag]
            except KeyError:
                raise CodecError(f"unknown type {tag!r}") from None
            return decoder(tree)

        # Every tag's checked decoder: a dataclass's checks its fields, a container's
        # and an enum's are the unchecked ones (one table: one lookup per array).
        checked_decoders: dict[str, Callable[[list], Any]] = {}

        def checked_array(tree: tuple) -> Any:
            """As `array`, with every dataclass's fields checked against their types."""
            tag = tree[0] if tree else None
            if tag.__class__ is not str:
                raise CodecError("an encoded container starts with its tag")
            if tag == "t":
                return tree[1:]
            try:
                decoder = checked_decoders[tag]
            except KeyError:
                raise CodecError(f"unknown type {tag!r}") from None
            return decoder(tree)

        def items(values: Iterable[Any]) -> list:
            return [v if v.__class__ in scalars else enc(v) for v in values]

        def sorted_items(values: Iterable[Any]) -> list:
            encoded = items(values)
            if len(encoded) < 2:
                return encoded
            return [e for _, e in sorted((_pack(e), e) for e in encoded)]

        def enc_dict(value: dict) -> list:
            out: list = ["d"]
            for k, v in value.items():  # `+=` a pair: no call per item (append was two)
                out += (k if k.__class__ in scalars else enc(k),
                        v if v.__class__ in scalars else enc(v))
            return out

        def dec_dict(tree: list) -> dict:
            if not len(tree) % 2:
                raise CodecError("a dict's encoding has an odd number of items")
            it = iter(tree)
            next(it)  # the tag
            return dict(zip(it, it, strict=False))  # the same iterator: pairs

        def dec_wide_int(tree: list) -> int:
            if len(tree) != 2 or tree[1].__class__ is not str:
                raise CodecError("a wide int is ['i', decimal digits]")
            return int(tree[1])

        def dec_proto(tree: list) -> ProtoMessage:
            if len(tree) != 3 or tree[2].__class__ is not bytes:
                raise CodecError("a protobuf message is ['pb', name, bytes]")
            cls = protos.get(tree[1]) if tree[1].__class__ is str else None
            if cls is None:
                raise CodecError(f"unknown protobuf message {tree[1]!r}")
            return cls.FromString(tree[2])

        for cls in scalars:
            encoders[cls] = _same
        all_scalars = scalars.issuperset
        prefix_t, prefix_l = ("t",), ("l",)

        def enc_tuple(value: tuple) -> tuple | list:
            # A tuple of scalars (a table key, a list of names) is joined to its tag in C
            # (msgpack packs a tuple of the tree as an array).
            if all_scalars(map(type, value)):
                return prefix_t + value
            return ["t", *[v if v.__class__ in scalars else enc(v) for v in value]]

        def enc_list(value: list) -> tuple | list:
            if all_scalars(map(type, value)):
                return prefix_l + tuple(value)
            return ["l", *[v if v.__class__ in scalars else enc(v) for v in value]]

        encoders.update({
            tuple: enc_tuple,
            list: enc_list,
            dict: enc_dict,
            set: lambda v: ["s", *sorted_items(v)],
            frozenset: lambda v: ["f", *sorted_items(v)],
        })
        decoders.update({
            "t": lambda t: t[1:],  # (the hooks take it themselves)
            "l": lambda t: list(t[1:]),
            "d": dec_dict,
            "s": lambda t: set(t[1:]),
            "f": lambda t: frozenset(t[1:]),
            "i": dec_wide_int,
            "pb": dec_proto,
        })
        for cls in self._protos.values():
            encoders[cls] = _proto
        for cls in self._kept:  # serialised once per message (node_codec_protos.py)
            encoders[cls] = _kept_proto(cls.DESCRIPTOR.full_name, self.proto_bytes.of)
        # The generated functions share one namespace, where each finds the encoder of a
        # field's declared dataclass by name (filled in once all are made).
        namespace = {"new": _new, "enc": enc, "scalars": _SCALARS, "prefix_t": prefix_t,
                     "all_scalars": all_scalars,
                     "CodecError": CodecError}
        known = frozenset(self._by_name.values()) | frozenset(self._protos.values())
        for name, cls in self._by_name.items():
            names = self._fields.get(cls)
            if names is None:
                encoders[cls], decoders[name] = enum_walks(cls)
            else:
                encoders[cls], decoders[name], checked_decoders[name] = dataclass_walks(
                    cls, names, declared(cls, self._fields), namespace,
                    field_checks(cls, names, known), known)
        for name, cls in self._by_name.items():
            namespace[f"E_{name}"], namespace[f"C_{name}"] = encoders[cls], cls
        for tag, decoder in decoders.items():  # containers and enums: nothing to check
            checked_decoders.setdefault(tag, decoder)
        return enc, array, checked_array


def _same(value: Any) -> Any:
    return value


def _proto(value: ProtoMessage) -> list:
    return ["pb", value.DESCRIPTOR.full_name, value.SerializeToString(deterministic=True)]


def _kept_proto(name: str, of: Callable[[ProtoMessage], bytes]) -> Callable[[Any], list]:
    def encode(value: ProtoMessage) -> list:
        return ["pb", name, of(value)]
    return encode


def _own_types(*modules: types.ModuleType) -> list[type]:
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


def _proto_types(*modules: types.ModuleType) -> list[type[ProtoMessage]]:
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
        from fedorch.core.node import records, takeover_grants
        from fedorch.core.workflow import acceptor_grant, lifecycle, progress_states
        from fedorch.gen.fedorch.v1 import config_pb2, spec_pb2

        types = _own_types(records, messages, acceptor, participant, acceptor_grant,
                           lifecycle, progress_states, takeover_grants)
        # A workflow's spec and its signed submission are never changed once a Node
        # holds them, and are encoded with each change of a row that holds them.
        _codec = NodeCodec(types, _proto_types(spec_pb2, config_pb2),
                           kept=(spec_pb2.WorkflowSpec, spec_pb2.SignedSpec))
    return _codec
