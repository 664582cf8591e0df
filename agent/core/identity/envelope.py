"""Signed envelopes: the one way a peer message enters or leaves an agent.

`seal` serialises the Body once and signs exactly those bytes. `open_message` verifies
the signature over `envelope.body` *as received* and never re-serialises: protobuf
encoding is not canonical (field order, unknown fields), so re-encoding could change the
bytes and break, or worse fake, a signature check. The replay guard runs last, so a
message that fails any other check cannot burn a genuine message's nonce.
"""

from __future__ import annotations

import itertools
import os

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from fedorch.core.identity.keys import check_domain
from fedorch.core.identity.replay import NONCE_BYTES, ReplayGuard
from fedorch.core.identity.trust import TrustStore
from fedorch.gen.fedorch.v1 import keys_pb2, peer_pb2
from nacl.bindings import crypto_sign, crypto_sign_seed_keypair

SIGNATURE_BYTES = 64
# Key records one envelope may carry: a chain of rotations and revocations, and a few
# relayed; more is junk, refused before any is looked at.
MAX_KEY_RECORDS = 32
PAYLOAD_FIELDS = frozenset(
    f.name for f in peer_pb2.Body.DESCRIPTOR.oneofs_by_name["payload"].fields
)


class AuthError(Exception):
    """A peer message is refused; `reason` goes back as UNAUTHENTICATED. `label`, when
    set, is the fixed word that counts it (fedorch_rejected_messages_total{reason})."""

    def __init__(self, reason: str, label: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.label = label


def _libsodium_secret(key: Ed25519PrivateKey) -> bytes:
    """The key as libsodium signs with it: the seed followed by the public key. Signing
    runs through libsodium (PyNaCl): about half the CPU of `cryptography`'s Ed25519 on
    this project's machines, and every peer message is signed."""
    seed = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                             serialization.NoEncryption())
    return crypto_sign_seed_keypair(seed)[1]


class Signer:
    """A domain's private key, with the domain it signs as."""

    def __init__(self, domain: str, key: Ed25519PrivateKey) -> None:
        self.domain = check_domain(domain)
        self._key = key
        self._secret = _libsodium_secret(key)
        # Rotation and revocation records every envelope carries (this domain's chain,
        # and others' being relayed): see key_records.py.
        self.key_records: list[keys_pb2.KeyRecord] = []

    def sign(self, data: bytes) -> bytes:
        # crypto_sign returns signature + message; Ed25519 signatures are deterministic, so
        # this is the same signature `cryptography` would make.
        return crypto_sign(bytes(data), self._secret)[:SIGNATURE_BYTES]

    def public_key(self) -> Ed25519PublicKey:
        return self._key.public_key()

    def private_key(self) -> Ed25519PrivateKey:
        """For what must hold the key itself (minting TLS certificates, key records)."""
        return self._key

    def rekey(self, key: Ed25519PrivateKey) -> None:
        """Sign with `key` from now on (after a rotation the trust store accepted)."""
        self._key = key
        self._secret = _libsodium_secret(key)

    def __repr__(self) -> str:  # never show key material
        return f"Signer({self.domain!r})"


# A nonce needs to be unique per sender, not secret: the replay guard refuses a
# (sender, nonce) it has seen. A random prefix drawn once per process and a counter
# give that without a getrandom system call per message (one per envelope sealed,
# some twenty per workflow; each cost about as much as building the Body here).
_NONCE_PREFIX = os.urandom(NONCE_BYTES - 8)
_nonce_counter = itertools.count()


def new_nonce() -> bytes:
    return _NONCE_PREFIX + next(_nonce_counter).to_bytes(8, "big")


def seal(
    signer: Signer, *, recipient: str, now_ms: int, nonce: bytes, **payload
) -> peer_pb2.Envelope:
    """Build and sign a Body carrying exactly one payload (e.g. `node_turn=NodeTurn(...)`)."""
    if len(payload) != 1:
        raise TypeError(f"seal() takes exactly one payload keyword, got {sorted(payload)}")
    ((kind, msg),) = payload.items()
    if kind not in PAYLOAD_FIELDS:
        raise TypeError(f"seal() got unknown payload {kind!r}; one of {sorted(PAYLOAD_FIELDS)}")
    body = peer_pb2.Body(
        sender=signer.domain, recipient=recipient, nonce=nonce, sent_at_ms=now_ms, **{kind: msg}
    )
    data = body.SerializeToString(deterministic=True)
    return peer_pb2.Envelope(body=data, signature=signer.sign(data),
                             key_records=signer.key_records)


def _authenticate(envelope: peer_pb2.Envelope, trust: TrustStore, *,
                  evidence: bool = False) -> peer_pb2.Body:
    """Key records first (the sender's new key may sign this very message), then
    signature length, parse, trusted sender, signature over the received bytes."""
    if envelope.key_records:
        if len(envelope.key_records) > MAX_KEY_RECORDS:
            raise AuthError(f"more than {MAX_KEY_RECORDS} key records", "key_records")
        trust.learn(envelope.key_records)
    signature = envelope.signature
    if len(signature) != SIGNATURE_BYTES:
        raise AuthError(f"signature must be {SIGNATURE_BYTES} bytes, got {len(signature)}")
    try:
        body = peer_pb2.Body.FromString(envelope.body)
    except Exception:  # DecodeError, or anything else the parser throws at junk
        raise AuthError("malformed message body") from None
    if body.sender not in trust:
        raise AuthError(f"untrusted sender {body.sender!r}")
    # A live message is never cached: its nonce makes every one new (trust.py, at
    # VERIFIED_CACHE_SIZE). Evidence is: an epoch's certificate rides in many messages.
    if not trust.verify(body.sender, envelope.body, signature, evidence=evidence,
                        cache=evidence):
        if trust.signed_by_revoked(body.sender, envelope.body, signature):
            raise AuthError(f"signed by a revoked key of {body.sender!r}", "revoked_key")
        raise AuthError(f"bad signature from {body.sender!r}")
    return body


def check_kind(body: peer_pb2.Body, expect: str | frozenset[str]) -> None:
    """AuthError unless the payload is of kind `expect` (one kind, or a set of them)."""
    kind = body.WhichOneof("payload")
    if kind != expect and not (isinstance(expect, frozenset) and kind in expect):
        wanted = expect if isinstance(expect, str) else " or ".join(sorted(expect))
        raise AuthError(f"expected {wanted}, got {kind or 'no payload'}")


def open_message(
    envelope: peer_pb2.Envelope,
    trust: TrustStore,
    guard: ReplayGuard,
    *,
    me: str,
    now_ms: int,
    expect: str | frozenset[str],
    allow_unaddressed: bool = False,
    mono_ms: int | None = None,
) -> peer_pb2.Body:
    """Authenticate a peer message addressed to `me`; AuthError on any failure.

    `allow_unaddressed` admits recipient "" too: only for gossip, where a joining
    agent knows a seed's address but not yet its domain. `now_ms` is the wall clock,
    `mono_ms` the monotonic one (see ReplayGuard).
    """
    trust.advance(now_ms / 1000)
    body = _authenticate(envelope, trust)
    if body.recipient != me and not (allow_unaddressed and body.recipient == ""):
        raise AuthError(f"message for {body.recipient!r} delivered to {me!r}")
    check_kind(body, expect)
    reason = guard.check_and_remember(body.sender, body.nonce, body.sent_at_ms, now_ms,
                                    mono_ms)
    if reason is not None:
        raise AuthError(reason)
    return body


def open_evidence(envelope: peer_pb2.Envelope, trust: TrustStore, *, expect: str) -> peer_pb2.Body:
    """Authenticate a relayed or stored signed object (a decision, a vote): signature,
    trust and payload kind only; it may be old and was not addressed to us."""
    body = _authenticate(envelope, trust, evidence=True)
    check_kind(body, expect)
    return body
