"""The trust store: which domains are in the federation, and their public keys.

Trust is explicit: a domain is trusted only if the operator listed its key. A domain has
exactly one key; two files naming one domain with different keys is a configuration
error, not something to resolve silently. `verify` never raises, so the input boundary
can treat every failure the same way.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fedorch.core.identity.keys import KeyFileError, check_domain, load_public_key_file
from nacl.bindings import crypto_sign_open


def _raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


# Signed evidence travels many times: each vote rides in every Paxos Accept and
# Accepted of its round and in the decision, and each hop verifies it again.
# Remembering the last few thousand good (domain, signature, bytes) triples saves
# those repeats; a key is never replaced, so a triple that verified stays valid while its
# domain stays trusted (remove forgets the domain's triples).
VERIFIED_CACHE_SIZE = 8192


class TrustStore:
    """Domain name -> Ed25519 public key."""

    def __init__(self, keys: Mapping[str, Ed25519PublicKey] = ()) -> None:  # type: ignore[assignment]
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._verified: OrderedDict[tuple[str, bytes, bytes], None] = OrderedDict()
        # Raw public key bytes per domain, made on first use: verification runs through
        # libsodium (PyNaCl), about half the CPU of `cryptography`'s Ed25519 verify.
        self._raw: dict[str, bytes] = {}
        for domain, key in dict(keys).items():
            self.add(domain, key)

    @classmethod
    def from_files(cls, paths: Iterable[str | Path]) -> TrustStore:
        """Build a store from `.pub` files; KeyFileError names the offending file."""
        store = cls()
        origin: dict[str, str | Path] = {}
        for path in paths:
            domain, key = load_public_key_file(path)
            if domain in store._keys and _raw(store._keys[domain]) != _raw(key):
                raise KeyFileError(
                    f"{path}: domain {domain!r} already has a different key in {origin[domain]}"
                )
            store._keys[domain] = key
            origin.setdefault(domain, path)
        return store

    def add(self, domain: str, key: Ed25519PublicKey) -> None:
        """Trust `key` for `domain`. Re-adding the same key is a no-op; a different key for a
        domain already trusted raises ValueError (keys are not replaced behind one's back)."""
        check_domain(domain)
        if not isinstance(key, Ed25519PublicKey):
            raise TypeError(f"key for {domain!r} must be an Ed25519PublicKey")
        old = self._keys.get(domain)
        if old is not None and _raw(old) != _raw(key):
            raise ValueError(f"domain {domain!r} is already trusted with a different key")
        self._keys[domain] = key

    def remove(self, domain: str) -> bool:
        """Stop trusting `domain`: its signatures no longer verify, cached ones included.
        False when it was not trusted (removing twice is a no-op)."""
        self._raw.pop(domain, None)
        if self._keys.pop(domain, None) is None:
            return False
        for entry in [e for e in self._verified if e[0] == domain]:
            del self._verified[entry]
        return True

    def apply(self, wanted: TrustStore, keep: str) -> tuple[list[str], list[str]]:
        """Make this store trust exactly the domains of `wanted`, plus `keep` (this
        agent's own domain, which is never removed). A listed domain whose key differs
        from the one trusted raises ValueError before anything changes (a key is replaced
        by a signed rotation, not by editing a list). Returns (added, removed)."""
        for domain in wanted.domains():
            old = self._keys.get(domain)
            if old is not None and _raw(old) != _raw(wanted._keys[domain]):
                raise ValueError(f"domain {domain!r} is already trusted with a different key")
        added = [d for d in wanted.domains() if d not in self._keys]
        removed = [d for d in self.domains() if d not in wanted and d != keep]
        for domain in added:
            self.add(domain, wanted._keys[domain])
        for domain in removed:
            self.remove(domain)
        return added, removed

    def key(self, domain: str) -> Ed25519PublicKey | None:
        return self._keys.get(domain)

    def domains(self) -> list[str]:
        return sorted(self._keys)

    def __contains__(self, domain: object) -> bool:
        return isinstance(domain, str) and domain in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def verify(self, domain: str, data: bytes, signature: bytes) -> bool:
        """True only if `domain` is trusted and `signature` is its signature over `data`."""
        try:
            key = self._keys.get(domain) if isinstance(domain, str) else None
            if key is None:
                return False
            entry = (domain, bytes(signature), bytes(data))
            if entry in self._verified:
                self._verified.move_to_end(entry)
                return True
            if len(entry[1]) != 64:
                # libsodium takes signature and message as one buffer: a short signature
                # would borrow the message's first bytes, so only a whole one is looked at.
                return False
            raw = self._raw.get(domain)
            if raw is None:
                raw = self._raw[domain] = _raw(key)
            # Raises BadSignatureError (or ValueError on a malformed signature).
            crypto_sign_open(entry[1] + entry[2], raw)
            self._verified[entry] = None
            if len(self._verified) > VERIFIED_CACHE_SIZE:
                self._verified.popitem(last=False)
            return True
        except Exception:  # InvalidSignature, or junk arguments: never raise at the boundary
            return False

    def signed_here(self, domain: str, data: bytes, signature: bytes) -> None:
        """Remember a signature this agent made itself (its vote, which comes back inside
        every Accept and decision of its round): it verifies by construction."""
        self._verified[(domain, bytes(signature), bytes(data))] = None
        if len(self._verified) > VERIFIED_CACHE_SIZE:
            self._verified.popitem(last=False)
