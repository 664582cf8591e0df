"""The audit log as a hash chain with signed checkpoints.

A record is (seq, prev, body): `seq` counts from 1 with no gap, `prev` is the hash of
record seq-1 (32 zero bytes for the first), and `body` is canonical JSON (sorted keys, no
spaces, UTF-8) of {"kind", "workflow", "time_ms", "data"}. Its hash is SHA-256 over a
fixed prefix, the seq as 8 big-endian bytes, prev and body: changing any of them changes
the hash, and so every later record's `prev`.

A checkpoint says "my log's record SEQ has hash H" and is signed by the domain's key
over canonical JSON behind a prefix of its own (a prefix that no protobuf `Body` can
start with, so the same key's envelope signatures and these can never be confused). A
chain alone shows that records were changed only where the change was not carried on;
the signatures make a rebuilt chain show too, up to the last checkpoint.

`verify` walks stored rows in seq order and returns the first problem, naming the
record: a record whose hash does not match (edited), a seq gap (removed), a `prev` that
is not its predecessor's hash (reordered, or the predecessor edited and re-hashed), a
checkpoint that does not match the chain or is not signed by the domain's key
(re-signed or forged), a checkpoint past the end of the log (tail cut off).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

HASH_BYTES = 32
GENESIS = bytes(HASH_BYTES)
_RECORD_PREFIX = b"fedorch-audit-record-v1\n"
CHECKPOINT_PREFIX = b"fedorch-audit-checkpoint-v1\n"
ATTESTATION_PREFIX = b"fedorch-audit-attestation-v1\n"
# The record that carries the domain's public key (each agent start writes one).
STARTED = "agent_started"
# The domain's key rotated while the agent ran: the record carries the rotation record
# (signed by the old and the new key), so checkpoints after it may be signed by the new.
KEY_ROTATED = "key_rotated"


# Built once: json.dumps with options builds a new encoder on every call, and every
# audit record and attestation is encoded here.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                              allow_nan=False)
# The C encoder `_CANONICAL.encode` makes afresh on each call (json.encoder.iterencode,
# about 2.5 µs: a third of a small value's encoding), made once with the very same
# arguments but no `markers`: the dict of containers being encoded, kept only to raise
# "Circular reference detected" for a circular value. Without it such a value recurses
# until RecursionError, and is then encoded by `_CANONICAL` itself, which raises as it
# always did; any other value's text is the same (tests/unit/core/audit/test_chain.py).
# No state is kept between calls, so threads may share it.
_C_ENCODE = None if json.encoder.c_make_encoder is None else json.encoder.c_make_encoder(
    None, _CANONICAL.default, json.encoder.encode_basestring, None, ":", ",", True, False,
    False)


def canonical(value: object) -> bytes:
    """Deterministic JSON bytes: sorted keys, no spaces, UTF-8, no NaN."""
    return canonical_text(value).encode("utf-8")


def canonical_text(value: object) -> str:
    """`canonical` before its UTF-8 encoding (for bodies joined from parts: acts.py)."""
    if _C_ENCODE is not None:
        try:
            return "".join(_C_ENCODE(value, 0))
        except RecursionError:  # circular (or too deep): as the encoder says it
            pass
    return _CANONICAL.encode(value)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise ValueError(f"{what}: expected base64 text")
    try:
        data = base64.b64decode(text, validate=True)
    except ValueError:
        raise ValueError(f"{what}: not valid base64") from None
    if b64(data) != text:  # other padding bits would decode to the same bytes
        raise ValueError(f"{what}: not canonical base64")
    return data


def canonical_object(payload: bytes, what: str) -> dict:
    """`payload` read as a JSON object, which it must be in canonical form (so that
    the signed bytes and the value say the same); ValueError otherwise."""
    try:
        value = json.loads(payload)
    except ValueError:
        raise ValueError(f"{what}: statement is not JSON") from None
    if not isinstance(value, dict) or canonical(value) != payload:
        raise ValueError(f"{what}: statement is not canonical JSON of an object")
    return value


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def record_body(kind: str, workflow_id: str, time_ms: int, data: Mapping[str, object]) -> bytes:
    return canonical({"kind": kind, "workflow": workflow_id, "time_ms": int(time_ms),
                      "data": dict(data)})


def record_hash(seq: int, prev: bytes, body: bytes) -> bytes:
    """The hash of record `seq` (also run inside SQLite as the function `audit_hash`)."""
    return hashlib.sha256(_RECORD_PREFIX + int(seq).to_bytes(8, "big") + bytes(prev)
                          + bytes(body)).digest()


@dataclass(frozen=True)
class Record:
    """One stored record as read back: `workflow` and `kind` are also stored beside the
    body (for lookups), and must agree with it."""

    seq: int
    workflow: str
    kind: str
    prev: bytes
    body: bytes
    hash: bytes

    def decoded(self) -> dict:
        return json.loads(self.body)


@dataclass(frozen=True)
class Checkpoint:
    domain: str
    seq: int
    hash: bytes
    time_ms: int
    signature: bytes


def checkpoint_payload(domain: str, seq: int, head: bytes, time_ms: int) -> bytes:
    return CHECKPOINT_PREFIX + canonical(
        {"domain": domain, "seq": int(seq), "hash": head.hex(), "time_ms": int(time_ms)})


def make_checkpoint(domain: str, seq: int, head: bytes, time_ms: int,
                    sign: Callable[[bytes], bytes]) -> Checkpoint:
    return Checkpoint(domain, seq, head, time_ms,
                      sign(checkpoint_payload(domain, seq, head, time_ms)))


def verify_signature(key: Ed25519PublicKey, data: bytes, signature: bytes) -> bool:
    try:
        key.verify(signature, data)
    except InvalidSignature:
        return False
    return True


@dataclass(frozen=True)
class Problem:
    """The first bad record (`seq`) and what is wrong with it."""

    seq: int
    reason: str

    def __str__(self) -> str:
        return f"record {self.seq}: {self.reason}"


@dataclass(frozen=True)
class Verified:
    records: int
    checkpoints: int
    domain: str
    # Records after the last checkpoint: chained, but no signature covers them yet.
    unsigned_tail: int


def _started_key(record: Record) -> tuple[str, bytes] | None:
    if record.kind != STARTED:
        return None
    data = record.decoded().get("data", {})
    return data.get("domain", ""), unb64(data.get("public_key", ""), "public_key")


def _rotated_key(record: Record) -> tuple[str, bytes, bytes] | None:
    """(domain, old key, new key) of a key_rotated record; ValueError when it is bad."""
    if record.kind != KEY_ROTATED:
        return None
    from fedorch.core.identity.key_records import open_record
    from fedorch.gen.fedorch.v1 import keys_pb2

    raw = unb64(record.decoded().get("data", {}).get("record", ""), "record")
    try:
        change = open_record(keys_pb2.KeyRecord.FromString(raw))
    except ValueError:
        raise
    except Exception:  # the protobuf parser's DecodeError
        raise ValueError("not a key record") from None
    if change.kind != "rotation":
        raise ValueError("not a key rotation")
    return change.domain, change.old, change.new


Verifier = Callable[[str, bytes, bytes], bool]  # (domain, data, signature): valid?


def verify(records: Iterable[Record], checkpoints: Iterable[Checkpoint], *,
           trusted: Verifier | None = None) -> Verified | Problem:
    """Check a whole log. `records` in seq order as stored; `checkpoints` in any order.

    Checkpoints are checked with `trusted` (e.g. TrustStore.verify) when given; else
    with the keys the log's own `agent_started` records name (trust on first use: a
    rewrite of the whole log from its first record under another key is then not
    detected)."""
    by_seq = sorted(checkpoints, key=lambda c: c.seq)
    pending = iter(by_seq)
    next_cp = next(pending, None)
    own_keys: dict[str, list[Ed25519PublicKey]] = {}
    domain = ""
    prev, prev_hash, expected = None, GENESIS, 1
    count = last_signed = 0
    for record in records:
        if record.seq > expected:
            return Problem(expected, f"missing (the log goes on at record {record.seq})")
        if record.seq < expected:
            return Problem(record.seq, "out of order (stored after a later record)")
        if record_hash(record.seq, record.prev, record.body) != record.hash:
            return Problem(record.seq, "changed (its hash does not match its content)")
        if record.prev != prev_hash:
            if prev is not None:
                return Problem(prev.seq, f"changed or out of place (record {record.seq}"
                                         " chains to a different hash)")
            return Problem(record.seq, "does not start the chain")
        try:
            body = record.decoded()
            if body.get("kind") != record.kind or body.get("workflow") != record.workflow:
                return Problem(record.seq, "changed (its columns differ from its body)")
            started = _started_key(record)
            rotated = _rotated_key(record)
        except ValueError as e:  # JSON or base64, a bad key record
            return Problem(record.seq, f"unreadable: {e}")
        if rotated is not None:
            held = [raw_public(k) for k in own_keys.get(rotated[0], ())]
            if rotated[0] != domain or rotated[1] not in held:
                return Problem(record.seq, "names a key rotation from a key this log's"
                                           " domain never held")
            own_keys[domain].append(Ed25519PublicKey.from_public_bytes(rotated[2]))
        if started is not None:
            try:
                key = Ed25519PublicKey.from_public_bytes(started[1])
            except ValueError:
                return Problem(record.seq, "names an invalid public key")
            domain = domain or started[0]
            if started[0] != domain:
                return Problem(record.seq, f"names domain {started[0]!r}, the log is {domain!r}")
            own_keys.setdefault(domain, []).append(key)
        while next_cp is not None and next_cp.seq == record.seq:
            problem = _check_checkpoint(next_cp, record, domain,
                                        trusted or _keys_verifier(own_keys))
            if problem is not None:
                return problem
            last_signed = record.seq
            next_cp = next(pending, None)
        if next_cp is not None and next_cp.seq < record.seq:  # at no record (seq 0 or dup)
            return Problem(max(next_cp.seq, 1), "a checkpoint names no record of the log")
        prev, prev_hash, expected, count = record, record.hash, expected + 1, count + 1
    if next_cp is not None:
        return Problem(expected, f"missing (a signed checkpoint names record {next_cp.seq},"
                                 f" the log ends at record {expected - 1})")
    return Verified(count, len(by_seq), domain, count - last_signed)


def raw_public(key: Ed25519PublicKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _keys_verifier(keys: Mapping[str, list[Ed25519PublicKey]]) -> Verifier:
    def check(domain: str, data: bytes, signature: bytes) -> bool:
        return any(verify_signature(k, data, signature) for k in keys.get(domain, ()))
    return check


def _check_checkpoint(cp: Checkpoint, record: Record, domain: str,
                      verifier: Verifier) -> Problem | None:
    if cp.hash != record.hash:
        return Problem(record.seq, "does not match the signed checkpoint at it (a record"
                                   " up to it was changed and the chain rebuilt)")
    if domain and cp.domain != domain:
        return Problem(record.seq, f"checkpoint names domain {cp.domain!r}, not {domain!r}")
    payload = checkpoint_payload(cp.domain, cp.seq, cp.hash, cp.time_ms)
    if not verifier(cp.domain, payload, cp.signature):
        return Problem(record.seq, f"checkpoint not signed by {cp.domain!r}'s key"
                                   " (re-signed or forged)")
    return None


# ---- attestations: a domain's signed statement about one workflow -----------------


def attest(domain: str, statement: Mapping[str, object],
           sign: Callable[[bytes], bytes]) -> dict[str, str]:
    """{"statement": base64 canonical JSON (with "domain"), "signature": base64}."""
    payload = canonical({**statement, "domain": domain})
    return {"statement": b64(payload), "signature": b64(sign(ATTESTATION_PREFIX + payload))}


def open_attestation(attestation: object, verifier: Verifier, what: str) -> dict:
    """The statement of an attestation whose signature verifies with the key of the
    domain it names; ValueError otherwise."""
    if not isinstance(attestation, dict) or set(attestation) != {"statement", "signature"}:
        raise ValueError(f"{what}: expected {{statement, signature}}")
    payload = unb64(attestation["statement"], f"{what}.statement")
    signature = unb64(attestation["signature"], f"{what}.signature")
    statement = canonical_object(payload, what)
    domain = statement.get("domain")
    if not isinstance(domain, str) or not verifier(domain, ATTESTATION_PREFIX + payload,
                                                   signature):
        raise ValueError(f"{what}: bad signature of {domain!r}")
    return statement
