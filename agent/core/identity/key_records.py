"""Key rotation and revocation records, and the keys a domain holds because of them.

A domain rotates its key with a record signed by both the old and the new key; it
revokes a compromised key with a record signed by that key or by its successor (the
new key of a rotation away from it). Records are self-certifying: only keys of the
domain's own chain can sign them, so any agent may relay one, and a trusted domain
that lies cannot rotate or revoke another domain's key (it holds none of its keys).

What a receiver trusts is a pure function of the key it was configured with (the
*root*) and the set of valid records it holds for the domain (`derive`): the order in
which records arrive and how often does not matter. The chain is walked from the root
through rotations; two different rotations away from one key (a fork: someone else
holds that key too) stop the walk there and leave the domain with no key at all, so
fedorch fails closed and the operator re-establishes trust out of band.

Sans-I/O: times come in as arguments.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from fedorch.core.identity.keys import is_valid_domain
from fedorch.gen.fedorch.v1 import keys_pb2

RECORD_CONTEXT = b"fedorch/v1 key record\x00"
DEFAULT_OVERLAP_S = 60.0
# A record is a few hundred bytes; anything far larger is junk, refused before parsing.
MAX_STATEMENT_BYTES = 512
# Records held per domain: a chain of rotations grows by one a rotation; a flood of
# valid records could come only from the holder of the domain's keys.
MAX_RECORDS_PER_DOMAIN = 64


class KeyRecordError(ValueError):
    """A record that is malformed or whose signatures do not verify."""


def raw_key(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _public(raw: bytes) -> Ed25519PublicKey:
    if len(raw) != 32:
        raise KeyRecordError(f"public key must be 32 bytes, got {len(raw)}")
    try:
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        raise KeyRecordError("not a valid Ed25519 public key") from None


@dataclass(frozen=True)
class KeyChange:
    """A verified record: what it says, and the record as received (to relay)."""

    domain: str
    serial: int
    issued_at_ms: int
    kind: str          # "rotation" | "revocation"
    old: bytes         # rotation: the old key; revocation: the revoked key
    new: bytes         # rotation: the new key; revocation: the key that signed it
    record: keys_pb2.KeyRecord

    @property
    def ident(self) -> bytes:
        """What makes two records the same: the exact statement bytes."""
        return self.record.statement


def _sign(statement: keys_pb2.KeyStatement, *keys: Ed25519PrivateKey) -> keys_pb2.KeyRecord:
    data = statement.SerializeToString(deterministic=True)
    return keys_pb2.KeyRecord(statement=data,
                              signatures=[k.sign(RECORD_CONTEXT + data) for k in keys])


def make_rotation(domain: str, old: Ed25519PrivateKey, new: Ed25519PrivateKey, *,
                  serial: int, now_ms: int) -> keys_pb2.KeyRecord:
    """A rotation from `old` to `new`, signed by both (old first)."""
    statement = keys_pb2.KeyStatement(
        domain=domain, serial=serial, issued_at_ms=now_ms,
        rotation=keys_pb2.KeyRotation(old_public_key=raw_key(old.public_key()),
                                      new_public_key=raw_key(new.public_key())))
    return _sign(statement, old, new)


def make_revocation(domain: str, revoked: Ed25519PublicKey, signer: Ed25519PrivateKey, *,
                    serial: int, now_ms: int) -> keys_pb2.KeyRecord:
    """A revocation of `revoked`, signed by `signer` (the key itself or its successor)."""
    statement = keys_pb2.KeyStatement(
        domain=domain, serial=serial, issued_at_ms=now_ms,
        revocation=keys_pb2.KeyRevocation(revoked_public_key=raw_key(revoked),
                                          signer_public_key=raw_key(signer.public_key())))
    return _sign(statement, signer)


def open_record(record: keys_pb2.KeyRecord) -> KeyChange:
    """Parse a record and check its signatures against the keys it names (KeyRecordError
    otherwise). Whether those keys belong to the domain is `derive`'s question."""
    if len(record.statement) > MAX_STATEMENT_BYTES:
        raise KeyRecordError("key record too large")
    try:
        st = keys_pb2.KeyStatement.FromString(record.statement)
    except Exception:  # DecodeError, or whatever the parser throws at junk
        raise KeyRecordError("malformed key record") from None
    if not is_valid_domain(st.domain):
        raise KeyRecordError(f"key record names an invalid domain {st.domain!r}")
    kind = st.WhichOneof("change")
    if kind == "rotation":
        old, new = st.rotation.old_public_key, st.rotation.new_public_key
        signers = [old, new]
        if old == new:
            raise KeyRecordError("a rotation to the same key")
    elif kind == "revocation":
        old, new = st.revocation.revoked_public_key, st.revocation.signer_public_key
        signers = [new]
    else:
        raise KeyRecordError("key record says neither rotation nor revocation")
    if len(record.signatures) != len(signers):
        raise KeyRecordError(f"a {kind} needs {len(signers)} signature(s),"
                             f" got {len(record.signatures)}")
    _public(old)
    data = RECORD_CONTEXT + record.statement
    for raw, signature in zip(signers, record.signatures, strict=True):
        try:
            _public(raw).verify(signature, data)
        except InvalidSignature:
            raise KeyRecordError(f"{kind} of {st.domain} has a bad signature") from None
    return KeyChange(st.domain, st.serial, st.issued_at_ms, kind, old, new, record)


@dataclass(frozen=True)
class DomainKeys:
    """What one domain's root and records come to."""

    current: bytes | None          # the key its messages verify with; None: no valid key
    # Earlier keys of the chain, not revoked, each with the wall time (s) until which
    # live messages under it still verify (the rotation's issued_at + overlap).
    earlier: tuple[tuple[bytes, float], ...]
    revoked: frozenset[bytes]
    chain: tuple[bytes, ...]       # root first, then each rotation's new key
    forked: bytes | None = None    # the key two rotations left from, if any
    records: tuple[KeyChange, ...] = ()  # the records the chain and revocations use


def derive(root: bytes, changes: Iterable[KeyChange], overlap_s: float) -> DomainKeys:
    """The keys a domain holds, from its root and its (verified) records; the same for
    any order or repetition of `changes`."""
    rotations: dict[bytes, dict[bytes, KeyChange]] = {}
    revocations: dict[bytes, KeyChange] = {}
    for c in changes:
        if c.kind == "rotation":
            rotations.setdefault(c.old, {})
            held = rotations[c.old].get(c.new)
            # The same step signed twice (two serials): keep one, chosen by content.
            if held is None or c.ident < held.ident:
                rotations[c.old][c.new] = c
        else:
            revocations[c.ident] = c
    chain = [root]
    used: list[KeyChange] = []
    ends: list[float] = []
    forked = None
    serial = -1
    while True:
        nexts = rotations.get(chain[-1], {})
        if not nexts:
            break
        if len(nexts) > 1:
            forked = chain[-1]
            break
        (step,) = nexts.values()
        if step.new in chain or step.serial <= serial:
            break  # a loop, or a step that does not go forward: not followed
        serial = step.serial
        chain.append(step.new)
        used.append(step)
        ends.append(step.issued_at_ms / 1000 + overlap_s)
    successor = {chain[i]: chain[i + 1] for i in range(len(chain) - 1)}
    revoked = set()
    for r in revocations.values():
        # Signed by the revoked key itself, or by its successor in this chain.
        if r.old in chain and (r.new == r.old or successor.get(r.old) == r.new):
            revoked.add(r.old)
            used.append(r)
    if forked is not None:
        revoked.add(forked)
    current = chain[-1] if chain[-1] not in revoked and forked is None else None
    earlier = tuple((k, end) for k, end in zip(chain[:-1], ends, strict=True)
                    if k not in revoked)
    return DomainKeys(current, earlier, frozenset(revoked), tuple(chain), forked,
                      tuple(sorted(used, key=lambda c: c.ident)))


def key_states(keys: DomainKeys, now: float) -> list[tuple[bytes, str, float | None]]:
    """Each key of a domain's chain, oldest first, with its state at `now` (wall s):
    "active" (it signs now), "overlap" (replaced, live messages still verify until the
    time given), "retired" (replaced; only stored evidence verifies) or "revoked"."""
    until = dict(keys.earlier)
    states: list[tuple[bytes, str, float | None]] = []
    for key in keys.chain:
        if key in keys.revoked:
            states.append((key, "revoked", None))
        elif key == keys.current:
            states.append((key, "active", None))
        elif until.get(key, 0.0) > now:
            states.append((key, "overlap", until[key]))
        else:
            states.append((key, "retired", until.get(key)))
    return states
