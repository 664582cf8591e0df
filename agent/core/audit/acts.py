"""Canonical JSON of the node engine's `acts` records, written field by field.

Theory of operation
-------------------
A node-engine record (runtime/node_engine/audit.py) is `{"kind": "acts", "workflow",
"time_ms", "data": {"acts": [{"kind", "time_ms", "data"}, ...]}}`, and its body must be
`chain.canonical` of that value: the chain hashes the body as stored, and `fedorch
audit show`, `proof` and the console read it back as JSON. `json`'s C encoder makes
those bytes at about 3 µs for a small act and 10 µs for one that carries base64
evidence (measured on this machine: most of it is the encoder's generic walk, the
dict's items sorted, each value's type looked up), and an act's data always has the
same keys and the same types for its kind. So each kind of act the Node's log makes
has its own writer here (`_WRITERS`): an f-string with the keys in sorted order, each
value written by the very function the C encoder uses for its type:

- a `str` (exactly `str`): `json.encoder.encode_basestring`, the C encoder's own
  string writer when `ensure_ascii=False` (it calls it for every string);
- an `int` (exactly `int`, not a `bool` nor an `IntEnum`): `int.__repr__`, as the C
  encoder writes an int;
- `True`, `False`, `None`: `true`, `false`, `null`;
- a list of `str`: `[`, the strings as above joined by `,`, `]`;
- a dict of known keys: `{`, `"key":value` pairs in sorted key order joined by `,`,
  `}` (the separators `canonical` uses, and `sort_keys`' order: the keys are ASCII
  literals, so code-point order is the order written here).

A writer checks the data's keys (exactly its kind's) and each value's type as it
writes it; anything else (a kind without a writer, another key, another type: a
float, an enum, a subclass, a nested value of another shape) raises `_Other`, and the
act is written by `canonical` itself. So for every value, `act_text` is
`canonical`'s text: the writers' output when the shape is theirs, and `canonical`'s
own call when it is not. `record_body` joins the acts' texts into the record's body
the same way (its four keys in sorted order, `data` holding `acts` alone), and
encodes it to UTF-8 once, as `canonical` does (a lone surrogate raises there as
there). tests/unit/core/audit/test_acts.py checks the bytes against `canonical` for
every kind over generated values (any text, any int, wrong types, missing and extra
keys), and logs written before this module still verify: the chain hashes the
stored bytes, never re-encodes them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from json.encoder import encode_basestring

from fedorch.core.audit.chain import canonical_text

__all__ = ["ACTS", "act_text", "record_body"]

ACTS = "acts"  # the kind of a record of acts (runtime/store/audit_table.ACTS)

_int = int.__repr__


class _Other(Exception):
    """A value outside the writers' shapes: `canonical` writes it."""


def _s(value: object) -> str:
    if type(value) is not str:
        raise _Other
    return encode_basestring(value)


def _i(value: object) -> str:
    if type(value) is not int:
        raise _Other
    return _int(value)


def _b(value: object) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    raise _Other


# The ASCII characters a JSON string holds as they are: neither a control character,
# nor `"`, nor `\\` (json's ESCAPE: the only ones `encode_basestring` changes).
_PLAIN = bytes(c for c in range(0x20, 0x7F) if c not in b'"\\')


def _long(value: object) -> str:
    """A string that is mostly base64 (evidence, signatures, a spec): written as it is
    when every character is plain ASCII, which `bytes.translate` tells at about a
    third of `encode_basestring`'s cost per character; else as `_s` writes it."""
    if type(value) is not str:
        raise _Other
    if value.isascii() and not value.encode("ascii").translate(None, _PLAIN):
        return '"' + value + '"'
    return encode_basestring(value)


def _long_or_null(value: object) -> str:
    return "null" if value is None else _long(value)


def _s_or_null(value: object) -> str:
    return "null" if value is None else _s(value)


def _strings(value: object, write: Callable[[object], str] = _s) -> str:
    if type(value) is not list:
        raise _Other
    return "[" + ",".join([write(v) for v in value]) + "]"


def _keys(data: object, keys: frozenset[str]) -> dict:
    if type(data) is not dict or data.keys() != keys:
        raise _Other
    return data  # type: ignore[return-value]


_SUBMITTED = frozenset({"attestation", "client_signature", "peer", "principal",
                        "request_id", "spec", "spec_sha256"})
_VOTE = frozenset({"coordinator", "policy_sha256", "reason", "round", "spec_sha256",
                   "steps", "yes"})
_DECISION = frozenset({"certificate", "outcome", "reason", "round"})
_CERTIFICATE = frozenset({"round", "votes"})
_LEARNED = frozenset({"outcome", "round"})
_STARTED = frozenset({"attempt", "step"})
_ENDED = frozenset({"attempt", "error", "evidence", "outputs_sha256", "state", "step"})
_RESULT = frozenset({"attempt", "domain", "epoch", "evidence", "outputs_sha256", "state",
                     "step"})
_WORKFLOW_ENDED = frozenset({"attestation", "reason", "state"})


def _submitted(d: object) -> str:
    d = _keys(d, _SUBMITTED)
    return (f'{{"attestation":{_long_or_null(d["attestation"])},'
            f'"client_signature":{_long_or_null(d["client_signature"])},'
            f'"peer":{_s(d["peer"])},"principal":{_s(d["principal"])},'
            f'"request_id":{_s(d["request_id"])},"spec":{_long_or_null(d["spec"])},'
            f'"spec_sha256":{_s(d["spec_sha256"])}}}')


def _vote(d: object) -> str:
    d = _keys(d, _VOTE)
    return (f'{{"coordinator":{_s(d["coordinator"])},'
            f'"policy_sha256":{_s(d["policy_sha256"])},"reason":{_s(d["reason"])},'
            f'"round":{_i(d["round"])},"spec_sha256":{_s(d["spec_sha256"])},'
            f'"steps":{_strings(d["steps"])},"yes":{_b(d["yes"])}}}')


def _certificate(c: object) -> str:
    if c is None:
        return "null"
    c = _keys(c, _CERTIFICATE)
    return f'{{"round":{_i(c["round"])},"votes":{_strings(c["votes"], _long)}}}'


def _decision(d: object) -> str:
    d = _keys(d, _DECISION)
    return (f'{{"certificate":{_certificate(d["certificate"])},'
            f'"outcome":{_s(d["outcome"])},"reason":{_s(d["reason"])},'
            f'"round":{_i(d["round"])}}}')


def _learned(d: object) -> str:
    d = _keys(d, _LEARNED)
    return f'{{"outcome":{_s(d["outcome"])},"round":{_i(d["round"])}}}'


def _step_started(d: object) -> str:
    d = _keys(d, _STARTED)
    return f'{{"attempt":{_i(d["attempt"])},"step":{_s(d["step"])}}}'


def _step_ended(d: object) -> str:
    d = _keys(d, _ENDED)
    return (f'{{"attempt":{_i(d["attempt"])},"error":{_s(d["error"])},'
            f'"evidence":{_long_or_null(d["evidence"])},'
            f'"outputs_sha256":{_s(d["outputs_sha256"])},"state":{_s(d["state"])},'
            f'"step":{_s(d["step"])}}}')


def _result_received(d: object) -> str:
    d = _keys(d, _RESULT)
    return (f'{{"attempt":{_i(d["attempt"])},"domain":{_s(d["domain"])},'
            f'"epoch":{_i(d["epoch"])},"evidence":{_long_or_null(d["evidence"])},'
            f'"outputs_sha256":{_s(d["outputs_sha256"])},"state":{_s(d["state"])},'
            f'"step":{_s(d["step"])}}}')


def _workflow_ended(d: object) -> str:
    d = _keys(d, _WORKFLOW_ENDED)
    return (f'{{"attestation":{_long_or_null(d["attestation"])},'
            f'"reason":{_s(d["reason"])},"state":{_s(d["state"])}}}')


# The data writers, by act kind (core/audit/proof.py's names for the shared ones).
_WRITERS: dict[str, Callable[[object], str]] = {
    "submitted": _submitted, "vote": _vote, "decision": _decision, "learned": _learned,
    "step_started": _step_started, "step_ended": _step_ended,
    "result_received": _result_received, "workflow_ended": _workflow_ended}


def act_text(kind: str, time_ms: int, data: object) -> str:
    """`canonical_text({"kind": kind, "time_ms": time_ms, "data": data})`, written by the
    kind's writer when the act has its shape (see the header)."""
    writer = _WRITERS.get(kind) if type(kind) is str else None
    if writer is not None:
        try:
            return (f'{{"data":{writer(data)},"kind":{encode_basestring(kind)},'
                    f'"time_ms":{_i(time_ms)}}}')
        except _Other:
            pass
    return canonical_text({"kind": kind, "time_ms": time_ms, "data": data})


def record_body(workflow_id: str, time_ms: int, acts: Sequence[str]) -> bytes:
    """`chain.record_body(ACTS, workflow_id, time_ms, {"acts": [...]})` of acts already
    written by `act_text` (see the header)."""
    workflow = encode_basestring(workflow_id) if type(workflow_id) is str \
        else canonical_text(workflow_id)
    return (f'{{"data":{{"acts":[{",".join(acts)}]}},"kind":"acts",'
            f'"time_ms":{_int(int(time_ms))},"workflow":{workflow}}}').encode()
