"""The queue of claims waiting to be piggy-backed on outgoing messages.

Each accepted change is sent a bounded number of times (the caller passes the limit,
``retransmit_mult * ceil(log10(N+1))``), which is enough for an epidemic to reach every
member with high probability. When a message has room for only some claims, the least
transmitted go first, newest first among equals: fresh news spreads fastest, and no claim
starves behind one that was already sent many times.

A transmission counts when the claim is put in a message; a message the shell then could
not deliver (its call failed, or its caller had given up before the reply) gives its
claims back (``give_back``): each is owed the transmission again, even one that had used
up its limit, unless a newer claim about its member came meanwhile. Without that, a host
too loaded to answer in time spent a record's few transmissions on calls that timed out,
and the others saw its old free slots until the next push-pull.
"""

from __future__ import annotations

from collections import OrderedDict

from fedorch.core.membership.swim_types import Claim, ClaimKind

# The smallest claim worth trying once the budget is nearly spent.
_SMALLEST_CLAIM_BYTES = 40
# Members whose claims used up their transmissions are remembered (their claims) so that an
# undelivered last transmission can be given back; bounded (a claim forgotten here is only
# not sent again).
_SPENT_MEMORY = 4096


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
        # Claims whose transmissions are used up, by member and key, until a newer claim
        # about their member is pushed: the ones `give_back` may queue again.
        self._spent: OrderedDict[str, dict[tuple[str, str], Claim]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._pending)

    def push(self, claim: Claim) -> None:
        body = claim.parsed
        is_suspicion = body.kind is ClaimKind.SUSPECT
        self._forget_spent(body.subject, keep=body.incarnation if is_suspicion else None)
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

    def give_back(self, claims: tuple[Claim, ...] | list[Claim], limit: int) -> int:
        """Claims of a message that did not arrive: each is owed the transmission it was
        counted for. A queued one gets it back; one that had used up its transmissions is
        queued again for one more, unless a newer claim about its member was pushed since.
        Claims are compared by value: the shell may hand back decoded copies.
        Returns how many were given back."""
        given = 0
        for claim in claims:
            body = claim.parsed
            key = (body.subject, body.issuer if body.kind is ClaimKind.SUSPECT else "")
            entry = self._pending.get(key)
            if entry is not None:
                if entry.claim == claim and entry.transmits > 0:
                    entry.transmits -= 1
                    given += 1
                continue
            spent = self._spent.get(key[0])
            if spent is None or spent.get(key) != claim:
                continue  # never queued here (a buddy claim), or superseded
            del spent[key]
            if not spent:
                del self._spent[key[0]]
            self._order += 1
            entry = _Pending(key, claim, self._order)
            entry.transmits = max(0, limit - 1)
            self._pending[key] = entry
            self._by_subject.setdefault(key[0], set()).add(key)
            given += 1
        return given

    def _count_transmission(self, entry: _Pending, limit: int) -> None:
        entry.transmits += 1
        if entry.transmits >= limit:
            self._remove(entry.key)
            subject = entry.key[0]
            self._spent.setdefault(subject, {})[entry.key] = entry.claim
            self._spent.move_to_end(subject)
            while len(self._spent) > _SPENT_MEMORY:
                self._spent.popitem(last=False)

    def _forget_spent(self, subject: str, keep: int | None) -> None:
        """A new claim about `subject`: its spent claims are not given back any more, but
        for other accusers' suspicions of the same incarnation (`keep`), which still
        count as confirmations (as in `push`)."""
        spent = self._spent.get(subject)
        if spent is None:
            return
        for key, claim in list(spent.items()):
            held = claim.parsed
            if keep is None or held.kind is not ClaimKind.SUSPECT or held.incarnation != keep:
                del spent[key]
        if not spent:
            del self._spent[subject]

    def _remove(self, key: tuple[str, str]) -> None:
        self._pending.pop(key, None)
        keys = self._by_subject.get(key[0])
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_subject[key[0]]
