"""Domain keys in the negotiation simulator, and the key records that change them.

Each domain has a real Ed25519 key (from the run's seed, so runs replay); one honest
domain has rotated once and then revoked its first key, genuinely, before the run. Every
honest agent holds a real TrustStore (core/identity/trust.py) that learned those records
(kept on its disk, as the key_records table keeps them). Agents take KeyRecordsMsg from
anyone, as gossip relays records; the liar (liar.py) forges rotations and revocations of
other domains' keys and relays stale genuine records. The checker asks at the end that
every honest agent's view of every other domain's keys is the genuine one.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fedorch.core.identity.key_records import DomainKeys, make_revocation, make_rotation
from fedorch.core.identity.trust import TrustStore
from fedorch.gen.fedorch.v1 import keys_pb2

KEYS_EPOCH_MS = 1_800_000_000_000  # the simulation's wall clock at time 0


@dataclass(frozen=True, eq=False)
class KeyRecordsMsg:
    records: tuple[keys_pb2.KeyRecord, ...]


def _key(rng: random.Random) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(rng.randbytes(32))


class Keyring:
    """The run's keys: every domain's root (the liar's too) and the genuine records."""

    def __init__(self, names: list[str], liar: str | None, seed: int) -> None:
        rng = random.Random(seed * 31 + 7)
        self.keys = {n: _key(rng) for n in sorted([*names, *([liar] if liar else [])])}
        self.roots = {n: k.public_key() for n, k in self.keys.items()}
        self.records: list[keys_pb2.KeyRecord] = []
        self.stale: list[keys_pb2.KeyRecord] = []
        honest = sorted(names)
        if honest:
            rotated = honest[rng.randrange(len(honest))]
            first, second = self.keys[rotated], _key(rng)
            rotation = make_rotation(rotated, first, second, serial=1,
                                     now_ms=KEYS_EPOCH_MS - 120_000)
            revocation = make_revocation(rotated, first.public_key(), second, serial=2,
                                         now_ms=KEYS_EPOCH_MS - 60_000)
            self.keys[rotated] = second  # what it signs with now
            self.records = [rotation, revocation]
            self.stale = [rotation]  # superseded: relaying it again changes nothing
        self.expected = {n: keys for n, keys in self._view(self.records).items()}

    def _view(self, records: list[keys_pb2.KeyRecord]) -> dict[str, DomainKeys | None]:
        store = self.trust()
        store.learn(records)
        return {n: store.keys_of(n) for n in store.domains()}

    def trust(self) -> TrustStore:
        """A trust store of every domain's root, at the simulation's time 0."""
        store = TrustStore(dict(self.roots))
        store.advance(KEYS_EPOCH_MS / 1000)
        return store

    def honest_trust(self) -> TrustStore:
        """What an honest agent starts from: the roots and the genuine records."""
        store = self.trust()
        store.learn(self.records)
        return store

    def forgeries(self, liar: str, victim: str, rng: random.Random) -> list[keys_pb2.KeyRecord]:
        """What a trusted domain can make about another's keys: a rotation of the
        victim's key to one of its own (it cannot sign with the victim's key, so with
        its own as both), a rotation from its own key in the victim's name, and
        revocations of the victim's current key signed by its key or a new one."""
        mine, fresh = self.keys[liar], _key(rng)
        victim_key = self.keys[victim].public_key()
        serial = rng.randint(1, 50)
        now = KEYS_EPOCH_MS + rng.randint(0, 60_000)
        return [
            make_rotation(victim, mine, fresh, serial=serial, now_ms=now),
            make_rotation(victim, fresh, mine, serial=serial + 1, now_ms=now),
            make_revocation(victim, victim_key, mine, serial=serial + 2, now_ms=now),
            make_revocation(victim, victim_key, fresh, serial=serial + 3, now_ms=now),
            make_revocation(victim, mine.public_key(), mine, serial=serial + 4, now_ms=now),
        ]
