"""Canonical JSON of the node engine's `acts` records, written field by field.

Theory of operation
-------------------
A node-engine record (runtime/node_engine/audit.py) is `{"kind": "acts", "workflow",
"time_ms", "data": {"acts": [{"kind", "time_ms", "data"}, ...]}}`, and its body must be
`chain.canonical` of that value: the chain hashes the body as stored, and `fedorch
audit show`, `proof` and the console read it back as JSON. `json`'s C encoder made
those bytes at about 3 µs for a small act and 8–11 µs for one that carries base64
evidence (measured on this machine: a new encoder made per call, its generic walk
over the dict's sorted items, and `encode_basestring`'s walk over the base64 text at
about 5 ns a character), and an act's data always has the same keys and the same
types for its kind. So each kind of act the Node's log makes
has its own writer here (`_WRITERS`): an f-string with the keys in sorted order, each
value written by the very function the C encoder uses for its type:

- a `str` (exactly `str`): `json.encoder.encode_basestring`, the C encoder's own
  string writer when `ensure_ascii=False` (it calls it for every string);
- a string that carries base64 (evidence, signatures, the spec): as it is, quoted,
  once `bytes.translate` shows every character is printable ASCII other than `"` and
  `\\` (characters `encode_basestring` leaves as they are); that check costs about a
  third of `encode_basestring`'s walk, and these strings are most of a record's bytes;
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
_S = encode_basestring


class _Other(Exception):
    """A value outside the writers' shapes: `canonical` writes it."""


def _s(value: object) -> str:
    if type(value) is not str:
        raise _Other
    return encode_basestring(value)


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


def _strings(value: object, write: Callable[[object], str] = _s) -> str:
    if type(value) is not list:
        raise _Other
    return "[" + ",".join([write(v) for v in value]) + "]"


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
    if type(d) is not dict or d.keys() != _SUBMITTED:
        raise _Other
    peer, principal, request, digest = (d["peer"], d["principal"], d["request_id"],
                                        d["spec_sha256"])
    if type(peer) is not str or type(principal) is not str or type(request) is not str \
            or type(digest) is not str:
        raise _Other
    return (f'{{"attestation":{_long_or_null(d["attestation"])},'
            f'"client_signature":{_long_or_null(d["client_signature"])},'
            f'"peer":{_S(peer)},"principal":{_S(principal)},'
            f'"request_id":{_S(request)},"spec":{_long_or_null(d["spec"])},'
            f'"spec_sha256":{_S(digest)}}}')


def _vote(d: object) -> str:
    if type(d) is not dict or d.keys() != _VOTE:
        raise _Other
    coordinator, policy, reason, round_, spec, yes = (
        d["coordinator"], d["policy_sha256"], d["reason"], d["round"], d["spec_sha256"],
        d["yes"])
    if type(coordinator) is not str or type(policy) is not str or type(reason) is not str \
            or type(round_) is not int or type(spec) is not str or type(yes) is not bool:
        raise _Other
    return (f'{{"coordinator":{_S(coordinator)},"policy_sha256":{_S(policy)},'
            f'"reason":{_S(reason)},"round":{_int(round_)},"spec_sha256":{_S(spec)},'
            f'"steps":{_strings(d["steps"])},"yes":{"true" if yes else "false"}}}')


def _certificate(c: object) -> str:
    if c is None:
        return "null"
    if type(c) is not dict or c.keys() != _CERTIFICATE or type(c["round"]) is not int:
        raise _Other
    return f'{{"round":{_int(c["round"])},"votes":{_strings(c["votes"], _long)}}}'


def _decision(d: object) -> str:
    if type(d) is not dict or d.keys() != _DECISION:
        raise _Other
    outcome, reason, round_ = d["outcome"], d["reason"], d["round"]
    if type(outcome) is not str or type(reason) is not str or type(round_) is not int:
        raise _Other
    return (f'{{"certificate":{_certificate(d["certificate"])},'
            f'"outcome":{_S(outcome)},"reason":{_S(reason)},"round":{_int(round_)}}}')


def _learned(d: object) -> str:
    if type(d) is not dict or d.keys() != _LEARNED:
        raise _Other
    outcome, round_ = d["outcome"], d["round"]
    if type(outcome) is not str or type(round_) is not int:
        raise _Other
    return f'{{"outcome":{_S(outcome)},"round":{_int(round_)}}}'


def _step_started(d: object) -> str:
    if type(d) is not dict or d.keys() != _STARTED:
        raise _Other
    attempt, step = d["attempt"], d["step"]
    if type(attempt) is not int or type(step) is not str:
        raise _Other
    return f'{{"attempt":{_int(attempt)},"step":{_S(step)}}}'


def _step_ended(d: object) -> str:
    if type(d) is not dict or d.keys() != _ENDED:
        raise _Other
    attempt, error, digest, state, step = (d["attempt"], d["error"], d["outputs_sha256"],
                                           d["state"], d["step"])
    if type(attempt) is not int or type(error) is not str or type(digest) is not str \
            or type(state) is not str or type(step) is not str:
        raise _Other
    return (f'{{"attempt":{_int(attempt)},"error":{_S(error)},'
            f'"evidence":{_long_or_null(d["evidence"])},"outputs_sha256":{_S(digest)},'
            f'"state":{_S(state)},"step":{_S(step)}}}')


def _result_received(d: object) -> str:
    if type(d) is not dict or d.keys() != _RESULT:
        raise _Other
    attempt, domain, epoch, digest, state, step = (
        d["attempt"], d["domain"], d["epoch"], d["outputs_sha256"], d["state"], d["step"])
    if type(attempt) is not int or type(domain) is not str or type(epoch) is not int \
            or type(digest) is not str or type(state) is not str or type(step) is not str:
        raise _Other
    return (f'{{"attempt":{_int(attempt)},"domain":{_S(domain)},"epoch":{_int(epoch)},'
            f'"evidence":{_long_or_null(d["evidence"])},"outputs_sha256":{_S(digest)},'
            f'"state":{_S(state)},"step":{_S(step)}}}')


def _workflow_ended(d: object) -> str:
    if type(d) is not dict or d.keys() != _WORKFLOW_ENDED:
        raise _Other
    reason, state = d["reason"], d["state"]
    if type(reason) is not str or type(state) is not str:
        raise _Other
    return (f'{{"attestation":{_long_or_null(d["attestation"])},"reason":{_S(reason)},'
            f'"state":{_S(state)}}}')


# The data writers, by act kind (core/audit/proof.py's names for the shared ones).
_WRITERS: dict[str, Callable[[object], str]] = {
    "submitted": _submitted, "vote": _vote, "decision": _decision, "learned": _learned,
    "step_started": _step_started, "step_ended": _step_ended,
    "result_received": _result_received, "workflow_ended": _workflow_ended}


def act_text(kind: str, time_ms: int, data: object) -> str:
    """`canonical_text({"kind": kind, "time_ms": time_ms, "data": data})`, written by the
    kind's writer when the act has its shape (see the header)."""
    writer = _WRITERS.get(kind) if type(kind) is str else None
    if writer is not None and type(time_ms) is int:
        try:
            return f'{{"data":{writer(data)},"kind":{_S(kind)},"time_ms":{_int(time_ms)}}}'
        except _Other:
            pass
    return canonical_text({"kind": kind, "time_ms": time_ms, "data": data})


def record_body(workflow_id: str, time_ms: int, acts: Sequence[str]) -> bytes:
    """`chain.record_body(ACTS, workflow_id, time_ms, {"acts": [...]})` of acts already
    written by `act_text` (see the header)."""
    workflow = _S(workflow_id) if type(workflow_id) is str \
        else canonical_text(workflow_id)
    return (f'{{"data":{{"acts":[{",".join(acts)}]}},"kind":"acts",'
            f'"time_ms":{_int(int(time_ms))},"workflow":{workflow}}}').encode()
