"""The trust store: which domains are in the federation, and their public keys.

Trust is explicit: a domain is trusted only if the operator listed its key (its
*root*). From there a domain's key changes only by its own signed records: a rotation
(signed by the old and the new key) moves it to a new key, the old one still verifying
live messages for an overlap (`overlap_s`, from the rotation's issued_at) and stored
evidence (votes in certificates) for good; a revocation ends a key at once, everywhere
(see key_records.py). Two files naming one domain with different, unrelated keys is a
configuration error, not something to resolve silently. `verify` never raises, so the
input boundary can treat every failure the same way.

Sans-I/O: the wall time comes in through `advance(now)`.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fedorch.core.identity.authority import Facts, Refused, authorize
from fedorch.core.identity.key_records import (
    DEFAULT_OVERLAP_S,
    DomainKeys,
    KeyChange,
    KeyRecordError,
    derive,
    open_record,
    raw_key,
)
from fedorch.core.identity.keys import KeyFileError, check_domain, load_public_key_file
from fedorch.gen.fedorch.v1 import keys_pb2
from nacl.bindings import crypto_sign_open


def _raw(key: Ed25519PublicKey) -> bytes:
    return raw_key(key)


# Signed evidence travels many times: each vote rides in every Paxos Accept and
# Accepted of its round and in the decision, and each hop verifies it again.
# Remembering the last few thousand good (domain, signature, bytes) triples, with the
# key that verified each, saves those repeats; a hit still counts only while that key
# is one the domain may sign with (a rotation's overlap ends, a revocation comes).
# A triple is remembered by its domain and the SHA-256 of signature and bytes, not by
# the bytes themselves (an envelope's whole body, some 7 KB at a coordinator, would
# make the full cache some 60 MB; the digest makes it about 1.5 MB). Finding another
# (signature, bytes) of one digest is a SHA-256 collision; and as every signature
# remembered is 64 bytes (`_key`), a digest stands for one signature and one message.
# What never comes twice is not remembered (`cache=False`): a live envelope carries a
# nonce of its own, so its entry could never be hit, and would only push out the entry
# of a vote, verified again in every Accept, Accepted and decision that carries it.
# Nor is it looked up: the digest of a 7 KB body is all a lookup that never hits buys.
VERIFIED_CACHE_SIZE = 8192
SIGNATURE_BYTES = 64
# Records that do not (yet) touch their domain's chain: a rotation heard before the one
# leading to its old key. Kept few per domain, as anyone can make such records.
PENDING_PER_DOMAIN = 16


class TrustStore:
    """Domain name -> its Ed25519 public key(s)."""

    def __init__(self, keys: Mapping[str, Ed25519PublicKey] = (),  # type: ignore[assignment]
                 overlap_s: float = DEFAULT_OVERLAP_S) -> None:
        self.overlap_s = overlap_s
        self._roots: dict[str, bytes] = {}
        self._keys: dict[str, Ed25519PublicKey | None] = {}  # current key (None: revoked)
        self._derived: dict[str, DomainKeys] = {}
        self._changes: dict[str, dict[bytes, KeyChange]] = {}
        self._pending: dict[str, OrderedDict[bytes, KeyChange]] = {}
        self._public: dict[bytes, Ed25519PublicKey] = {}
        self._now = -math.inf
        # (domain, digest of signature and bytes) -> the key that verified them
        self._verified: OrderedDict[tuple[str, bytes], bytes] = OrderedDict()
        # Verifies answered from the cache, verified and remembered, verified uncached
        # (`cache=False`): what the agent's metrics show (fedorch_signature_verifies).
        self.verify_counts: Counter[str] = Counter()
        # Told of the records that changed a domain's keys, and of how many were refused,
        # wherever they were learned (the runtime keeps, audits and relays them).
        self.on_learned: Callable[[list[KeyChange], int], None] | None = None
        for domain, key in dict(keys).items():
            self.add(domain, key)

    @classmethod
    def from_files(cls, paths: Iterable[str | Path],
                   overlap_s: float = DEFAULT_OVERLAP_S) -> TrustStore:
        """Build a store from `.pub` files; KeyFileError names the offending file."""
        store = cls(overlap_s=overlap_s)
        origin: dict[str, str | Path] = {}
        for path in paths:
            domain, key = load_public_key_file(path)
            if domain in store._roots and store._roots[domain] != _raw(key):
                raise KeyFileError(
                    f"{path}: domain {domain!r} already has a different key in {origin[domain]}"
                )
            store._set_root(domain, key)
            origin.setdefault(domain, path)
        return store

    def _set_root(self, domain: str, key: Ed25519PublicKey) -> None:
        raw = _raw(key)
        self._public[raw] = key
        self._roots[domain] = raw
        self._changes.setdefault(domain, {})
        self._rederive(domain)

    def add(self, domain: str, key: Ed25519PublicKey) -> None:
        """Trust `key` for `domain`. Re-adding the same key, or a later key of the
        domain's chain, is a no-op; another key for a domain already trusted raises
        ValueError (keys are replaced by signed rotations, not behind one's back)."""
        check_domain(domain)
        if not isinstance(key, Ed25519PublicKey):
            raise TypeError(f"key for {domain!r} must be an Ed25519PublicKey")
        if domain in self._roots:
            if not self.knows_key(domain, key):
                raise ValueError(f"domain {domain!r} is already trusted with a different key")
            return
        self._set_root(domain, key)

    def knows_key(self, domain: str, key: Ed25519PublicKey) -> bool:
        """Is `key` the root of `domain` or a key its rotations led to?"""
        derived = self._derived.get(domain)
        return derived is not None and _raw(key) in derived.chain

    def remove(self, domain: str) -> bool:
        """Stop trusting `domain`: its signatures no longer verify, cached ones included,
        and its rotation records are forgotten. False when it was not trusted."""
        if self._roots.pop(domain, None) is None:
            return False
        for table in (self._keys, self._derived, self._changes, self._pending):
            table.pop(domain, None)
        self._forget_verified(domain)
        return True

    def apply(self, wanted: TrustStore, keep: str) -> tuple[list[str], list[str]]:
        """Make this store trust exactly the domains of `wanted`, plus `keep` (this
        agent's own domain, which is never removed). A listed domain whose key is not
        one of its chain here raises ValueError before anything changes (a key is
        replaced by a signed rotation, not by editing a list). Returns (added, removed)."""
        for domain in wanted.domains():
            if domain in self._roots and not self.knows_key(domain, wanted.root(domain)):
                raise ValueError(f"domain {domain!r} is already trusted with a different key")
        added = [d for d in wanted.domains() if d not in self._roots]
        removed = [d for d in self.domains() if d not in wanted and d != keep]
        for domain in added:
            self.add(domain, wanted.root(domain))
        for domain in removed:
            self.remove(domain)
        return added, removed

    def root(self, domain: str) -> Ed25519PublicKey:
        return self._public[self._roots[domain]]

    def key(self, domain: str) -> Ed25519PublicKey | None:
        """The key `domain` signs with now; None when not trusted or its key is revoked."""
        return self._keys.get(domain)

    def live_keys(self, domain: str) -> list[Ed25519PublicKey]:
        """Every key a live message of `domain` may verify with now (the current one,
        then earlier ones within their overlap): what TLS anchors are made of."""
        return [self._public[k] for k in self._acceptable(domain, evidence=False)]

    def keys_of(self, domain: str) -> DomainKeys | None:
        return self._derived.get(domain)

    def domains(self) -> list[str]:
        return sorted(self._roots)

    def __contains__(self, domain: object) -> bool:
        return isinstance(domain, str) and domain in self._roots

    def __len__(self) -> int:
        return len(self._roots)

    # ---- time, records ---------------------------------------------------------------

    def advance(self, now: float) -> None:
        """The wall time (seconds since the epoch): rotation overlaps end by it."""
        self._now = max(self._now, now)

    def is_revoked(self, domain: str, key: bytes) -> bool:
        derived = self._derived.get(domain)
        return derived is not None and key in derived.revoked

    def records(self, domain: str) -> list[keys_pb2.KeyRecord]:
        """The records that make `domain`'s keys what they are here (to relay, to keep)."""
        derived = self._derived.get(domain)
        return [] if derived is None else [c.record for c in derived.records]

    def learn(self, records: Iterable[keys_pb2.KeyRecord]) -> tuple[list[KeyChange], int]:
        """Take rotation and revocation records (relayed by anyone). Returns the records
        that changed a trusted domain's keys, and how many were refused (malformed, bad
        signature). Records of domains not trusted here are ignored."""
        changed: list[KeyChange] = []
        refused = 0
        touched: set[str] = set()
        for record in records:
            try:
                change = open_record(record)
            except KeyRecordError:
                refused += 1
                continue
            domain = change.domain
            if domain not in self._roots or change.ident in self._changes[domain]:
                continue
            try:  # signed with another trusted domain's key: it speaks for no one else
                for key in {change.old, change.new}:
                    owner = self._owner_of(key)
                    if owner is not None:
                        authorize("key_record", owner, Facts(named=domain))
            except Refused:
                refused += 1
                continue
            pending = self._pending.setdefault(domain, OrderedDict())
            if change.ident in pending:
                continue
            pending[change.ident] = change
            if len(pending) > PENDING_PER_DOMAIN:
                pending.popitem(last=False)
            touched.add(domain)
        for domain in touched:
            changed += self._settle(domain)
        if (changed or refused) and self.on_learned is not None:
            self.on_learned(changed, refused)
        return changed, refused

    def _settle(self, domain: str) -> list[KeyChange]:
        """Move pending records that touch the domain's chain into its set, until none
        does; re-derive. Returns the records that took effect."""
        pending = self._pending[domain]
        held = self._changes[domain]
        before = self._derived[domain]
        while True:
            chain = set(self._derived[domain].chain)
            linked = [c for c in pending.values() if c.old in chain]
            if not linked:
                break
            for c in linked:
                del pending[c.ident]
                held[c.ident] = c
            self._rederive(domain)
        after = self._derived[domain]
        if after == before:
            return []
        old_ids = {c.ident for c in before.records}
        return [c for c in after.records if c.ident not in old_ids]

    def _rederive(self, domain: str) -> None:
        derived = derive(self._roots[domain], self._changes[domain].values(), self.overlap_s)
        for c in self._changes[domain].values():
            for raw in (c.old, c.new):
                if raw not in self._public:
                    self._public[raw] = Ed25519PublicKey.from_public_bytes(raw)
        if self._derived.get(domain) != derived:
            self._forget_verified(domain)
        self._derived[domain] = derived
        self._keys[domain] = (self._public[derived.current]
                              if derived.current is not None else None)

    def _owner_of(self, key: bytes) -> str | None:
        """The trusted domain whose chain holds `key`, if any."""
        return next((d for d, derived in self._derived.items() if key in derived.chain), None)

    def _acceptable(self, domain: str, *, evidence: bool) -> list[bytes]:
        derived = self._derived.get(domain)
        if derived is None:
            return []
        keys = [] if derived.current is None else [derived.current]
        keys += [k for k, until in reversed(derived.earlier) if evidence or self._now < until]
        return keys

    def _forget_verified(self, domain: str) -> None:
        for entry in [e for e in self._verified if e[0] == domain]:
            del self._verified[entry]

    # ---- verifying -------------------------------------------------------------------

    def verify(self, domain: str, data: bytes, signature: bytes, *,
               evidence: bool = False, cache: bool = True) -> bool:
        """True only if `domain` is trusted and `signature` is its signature over `data`
        by a key it may sign with: its current key, or an earlier one of its chain that
        is not revoked (live messages: within the rotation's overlap; `evidence`, a
        signed object stored or relayed, made before the rotation: always). `cache`:
        False for bytes that never come twice (an envelope, by its nonce), neither
        looked up nor remembered."""
        try:
            keys = self._acceptable(domain, evidence=evidence) if isinstance(domain, str) \
                else []
            if not keys:
                return False
            signature = bytes(signature)
            if len(signature) != SIGNATURE_BYTES:
                # libsodium takes signature and message as one buffer: a short signature
                # would borrow the message's first bytes, so only a whole one is looked at.
                return False
            data = bytes(data)
            counts = self.verify_counts
            entry = _key(domain, signature, data) if cache else None
            if entry is not None:
                hit = self._verified.get(entry)
                if hit is not None and hit in keys:
                    self._verified.move_to_end(entry)
                    counts["hit"] += 1
                    return True
            signed = signature + data
            for raw in keys:
                # libsodium (PyNaCl): about half the CPU of `cryptography`'s Ed25519
                # verify. Raises BadSignatureError (or ValueError) when it does not hold.
                try:
                    crypto_sign_open(signed, raw)
                except Exception:  # not this key's signature: try the next key
                    continue
                if entry is None:
                    counts["uncached"] += 1
                else:
                    counts["miss"] += 1
                    self._remember(entry, raw)
                return True
            return False
        except Exception:  # junk arguments: never raise at the boundary
            return False

    def _remember(self, entry: tuple[str, bytes], raw: bytes) -> None:
        self._verified[entry] = raw
        if len(self._verified) > VERIFIED_CACHE_SIZE:
            self._verified.popitem(last=False)

    def signed_here(self, domain: str, data: bytes, signature: bytes) -> None:
        """Remember a signature this agent made itself (its vote, which comes back inside
        every Accept and decision of its round): it verifies by construction."""
        current = self._derived.get(domain)
        signature = bytes(signature)
        if current is not None and current.current is not None \
                and len(signature) == SIGNATURE_BYTES:
            self._remember(_key(domain, signature, bytes(data)), current.current)

    def signed_by_revoked(self, domain: str, data: bytes, signature: bytes) -> bool:
        """Did a revoked key of `domain` make this signature (why a message is refused)?"""
        derived = self._derived.get(domain) if isinstance(domain, str) else None
        for raw in derived.revoked if derived is not None else ():
            try:
                self._public[raw].verify(bytes(signature), bytes(data))
                return True
            except Exception:  # InvalidSignature, junk: not this key
                continue
        return False


def _key(domain: str, signature: bytes, data: bytes) -> tuple[str, bytes]:
    """What the cache of verified signatures remembers a (domain, signature, bytes)
    triple by. The signature is always SIGNATURE_BYTES long here, so the digest of the
    two concatenated names one pair."""
    digest = hashlib.sha256(signature)
    digest.update(data)
    return domain, digest.digest()
