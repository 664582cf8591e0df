"""The queue of claims waiting to be piggy-backed on outgoing messages.

Each accepted change is sent a bounded number of times (the caller passes the limit,
``retransmit_mult * ceil(log10(N+1))``), which is enough for an epidemic to reach every
member with high probability. When a message has room for only some claims, the least
transmitted go first, newest first among equals: fresh news spreads fastest, and no claim
starves behind one that was already sent many times.
"""

from __future__ import annotations

from fedorch.core.membership.swim_types import Claim, ClaimKind

# The smallest claim worth trying once the budget is nearly spent.
_SMALLEST_CLAIM_BYTES = 40


class _Pending:
    __slots__ = ("key", "claim", "size", "transmits", "order")

    def __init__(self, key: tuple[str, str], claim: Claim, order: int) -> None:
        self.key = key
        self.claim = claim
        self.size = claim.wire_size
        self.transmits = 0
        self.order = order


class DisseminationQueue:
    def __init__(self) -> None:
        # Keyed by (subject, accuser): suspicions of one member by several accusers all
        # travel, because each is an independent confirmation; any other claim about a
        # member replaces whatever was queued about it.
        self._pending: dict[tuple[str, str], _Pending] = {}
        self._by_subject: dict[str, set[tuple[str, str]]] = {}
        self._order = 0

    def __len__(self) -> int:
        return len(self._pending)

    def push(self, claim: Claim) -> None:
        body = claim.parsed
        is_suspicion = body.kind is ClaimKind.SUSPECT
        keys = self._by_subject.setdefault(body.subject, set())
        for key in list(keys):
            held = self._pending[key].claim.parsed
            still_current = (is_suspicion and held.kind is ClaimKind.SUSPECT
                             and held.incarnation == body.incarnation)
            if not still_current:
                self._remove(key)
        key = (body.subject, body.issuer if is_suspicion else "")
        self._order += 1
        self._pending[key] = _Pending(key, claim, self._order)
        self._by_subject.setdefault(body.subject, set()).add(key)

    def contains(self, claim: Claim) -> bool:
        return any(entry.claim is claim for entry in self._pending.values())

    def select(self, budget: int, limit: int, already: tuple[Claim, ...] = ()) -> list[Claim]:
        """Claims fitting in ``budget`` bytes, counting one transmission each.

        ``already`` are claims the caller placed in the message itself (buddy claims); if
        they are queued their transmission is counted and they are not repeated.
        """
        chosen: list[Claim] = []
        if not self._pending:
            return chosen
        for claim in already:
            for entry in list(self._pending.values()):
                if entry.claim is claim:
                    self._count_transmission(entry, limit)
        ordered = sorted(self._pending.values(), key=lambda e: (e.transmits, -e.order))
        for entry in ordered:
            if budget < _SMALLEST_CLAIM_BYTES:
                break
            if entry.size > budget or entry.claim in already:
                continue
            chosen.append(entry.claim)
            budget -= entry.size
            self._count_transmission(entry, limit)
        return chosen

    def _count_transmission(self, entry: _Pending, limit: int) -> None:
        entry.transmits += 1
        if entry.transmits >= limit:
            self._remove(entry.key)

    def _remove(self, key: tuple[str, str]) -> None:
        self._pending.pop(key, None)
        keys = self._by_subject.get(key[0])
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_subject[key[0]]
