"""JSON values exactly: step params and outputs as canonical JSON text, everywhere.

Params and outputs are data that organisations hand each other, so they must arrive as
they were sent: an integer stays an integer (``1`` is not ``1.0``), integers past 2**53
keep every digit, nested lists and objects and unicode text are untouched. A protobuf
``Struct`` cannot promise that (its numbers are doubles), so the wire carries these
values as canonical JSON text (the store already kept outputs as JSON text, and keeps
specs as the wire messages), and this module is the one place that turns values into that
text and back: the spec loader, the executors' stdin and stdout, step results between
agents, the status that clients read, the CLI and the Python client all use it.

Wire compatibility: the text travels in ``*_json`` string fields (field numbers from 40)
beside the older ``Struct`` fields, which stay in the schema only so that specs and
results written before this change (stored rows, signed envelopes) still read; see
:func:`read_object`. Writers set the text alone. An agent that predates the text fields
would see empty params and outputs from a newer agent, so a federation upgrades all of
its agents before running workflows across old and new ones.

Canonical text: keys sorted, no spaces, non-ASCII as itself (UTF-8), floats as Python's
shortest round-tripping repr; NaN and infinities are not JSON and are refused.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

JsonValue = Any
"""None, bool, int, float, str, list of JsonValue, or dict of str to JsonValue."""

MAX_DEPTH = 64
"""Deeper nesting than this is refused: deep enough for data, shallow enough for the
recursive encoders and decoders on every side."""


class JsonValueError(ValueError):
    """A value that is not JSON data (or text that is not JSON); the message says where."""


def _refuse_constant(name: str) -> float:
    raise JsonValueError(f"{name} is not a JSON number")


def check(value: JsonValue, path: str = "") -> None:
    """Raise JsonValueError unless ``value`` is JSON data; the message names the path."""
    # Every value a workflow carries is checked on each conversion, and nearly all are
    # good: the walk that names paths (a string built per item) runs only to say what
    # is wrong once the plain walk found something.
    if _is_json(value, 0):
        return
    _check(value, path or "value", 0)
    raise JsonValueError(f"{path or 'value'}: not JSON data")  # the two walks disagree


def _is_json(value: JsonValue, depth: int) -> bool:
    """Whether `_check` would accept ``value``: the same rules, no messages."""
    if depth > MAX_DEPTH:
        return False
    if value is None or isinstance(value, bool | int):
        return True
    if isinstance(value, str):
        if value.isascii():
            return True
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    # Items of a container: an ASCII str, an int, a bool, None or a float of exactly
    # that type is judged here, without a call per item (most items of params and
    # outputs are; the walk of a three-key object made seven calls). Anything else
    # (a container, a subclass, non-ASCII text) takes the call, as does every item
    # of a container at the deepest level allowed, where an item is too deep.
    if isinstance(value, list | tuple):
        if depth == MAX_DEPTH:
            return not value
        return _items_are_json(value, depth)
    if isinstance(value, dict):
        if depth == MAX_DEPTH:
            return not value
        for key in value:
            if type(key) is not str or not key.isascii():
                if not (isinstance(key, str) and _is_json(key, depth + 1)):
                    return False
        return _items_are_json(value.values(), depth)
    return False


def _items_are_json(items: Iterable[object], depth: int) -> bool:
    """The items of a container at `depth`, each judged as the comment in `_is_json` says."""
    for item in items:
        t = type(item)
        if t is str:
            if item.isascii():
                continue
        elif t is int or t is bool or item is None:
            continue
        elif t is float:
            if math.isfinite(item):
                continue
            return False
        if not _is_json(item, depth + 1):
            return False
    return True


def _check(value: JsonValue, path: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise JsonValueError(f"{path}: nested more than {MAX_DEPTH} levels deep")
    if value is None or isinstance(value, bool | int):
        return
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise JsonValueError(f"{path}: text with a lone surrogate is not UTF-8") from None
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise JsonValueError(f"{path}: {value} is not a JSON number")
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check(item, f"{path}[{index}]", depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise JsonValueError(f"{path}: keys must be strings, got {key!r}")
            _check(key, f"{path}.{key}", depth + 1)
            _check(item, f"{path}.{key}", depth + 1)
        return
    raise JsonValueError(f"{path}: {type(value).__name__} is not JSON data")


def dumps(value: JsonValue, *, ascii_only: bool = False) -> str:
    """Canonical JSON text of ``value``; raises JsonValueError if it is not JSON data.

    ``ascii_only`` escapes non-ASCII text as ``\\uXXXX`` (the same value), for readers
    of unknown encoding such as a step's program."""
    check(value)
    return _encode(value, ascii_only)


# Built once: json.dumps with options builds a new encoder on every call.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                              allow_nan=False)
_CANONICAL_ASCII = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                                    allow_nan=False)


def _encode(value: JsonValue, ascii_only: bool = False) -> str:
    """Canonical text of a value already checked."""
    try:
        return (_CANONICAL_ASCII if ascii_only else _CANONICAL).encode(value)
    except ValueError as exc:  # an integer of more digits than Python converts to text
        raise JsonValueError(f"not JSON text: {exc}") from None


def loads(text: str | bytes) -> JsonValue:
    """The value of JSON text; raises JsonValueError on bad text, NaN or Infinity."""
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except JsonValueError:
        raise
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, int too long, too deep
        raise JsonValueError(f"not JSON: {exc}") from None
    check(value)
    return value


def loads_object(text: str | bytes) -> dict[str, JsonValue]:
    """Like :func:`loads`, for text that must hold a JSON object."""
    value = loads(text)
    if not isinstance(value, dict):
        raise JsonValueError(f"must be a JSON object, got {type(value).__name__}")
    return value


# ---- protobuf fields -------------------------------------------------------------------
# Each value sits in a message as `<name>_json` (string, canonical text), beside the legacy
# `<name>` Struct. An empty text means the empty object.


def read_object(message: Message, name: str) -> dict[str, JsonValue]:
    """The object in ``message``'s ``<name>_json`` field, or else (for messages written
    before that field existed) its ``<name>`` Struct, or else ``{}``.

    Raises JsonValueError when the text is not a JSON object (a peer chose it)."""
    text = getattr(message, f"{name}_json")
    if text:
        return loads_object(text)
    if message.HasField(name):
        return json_format.MessageToDict(getattr(message, name))
    return {}


def write_object(message: Message, name: str, value: dict[str, JsonValue]) -> None:
    """Set ``message``'s ``<name>_json`` to the canonical text of ``value`` (and clear the
    legacy Struct, so that only one of them speaks)."""
    if not isinstance(value, dict):
        raise JsonValueError(f"{name}: must be a JSON object, got {type(value).__name__}")
    check(value, name)
    message.ClearField(name)
    setattr(message, f"{name}_json", _encode(value) if value else "")  # checked just above


__all__ = [
    "JsonValue",
    "JsonValueError",
    "MAX_DEPTH",
    "check",
    "dumps",
    "loads",
    "loads_object",
    "read_object",
    "write_object",
]
