"""What one SWIM member sends: datagrams packed with gossip, full state, verdicts.

Theory of operation
-------------------
The core sends nothing itself: :class:`Datagrams` collects (address, message) pairs
that the shell takes (Swim.datagrams_to_send). Every datagram carries as much queued
gossip as fits in ``max_message_bytes``, least-sent first, each update about
``retransmit_mult * ceil(log10(N+1))`` times (DisseminationQueue). Claims that must go
first lead it: the buddy system puts our claim about a destination we suspect or hold
dead before anything else, so a live member hears of it and refutes within one round
trip; a Gossip to a member leads with our own claim. A PushPull carries our full state
(the member table's and our own claim). A DEAD verdict is sent at once to
``indirect_checks`` random members (`spread_death`), which is how a death floods the
federation. Messages and bytes sent are counted in the core's ``stats``.
"""

from __future__ import annotations

from collections.abc import Callable

from fedorch.core.membership.swim_claims import OwnClaim
from fedorch.core.membership.swim_dissemination import DisseminationQueue
from fedorch.core.membership.swim_members import Member, MemberTable
from fedorch.core.membership.swim_profiles import SwimProfile, retransmit_limit
from fedorch.core.membership.swim_types import (
    Claim,
    Gossip,
    MemberState,
    Message,
    PushPull,
    estimate_size,
)


class Datagrams:
    """This member's outgoing messages, built and packed (see the module docstring)."""

    def __init__(self, own: OwnClaim, profile: SwimProfile, table: MemberTable,
                 queue: DisseminationQueue, stats: dict[str, int]) -> None:
        self.name = own.name
        self.profile = profile
        self.stats = stats
        self._own = own
        self._table = table
        self._queue = queue
        self._outbox: list[tuple[str, Message]] = []

    def take(self) -> list[tuple[str, Message]]:
        """(destination address, message) pairs built since the last call."""
        out, self._outbox = self._outbox, []
        return out

    def push_pull(self, address: str, reply: bool = False) -> None:
        """Our full state, and our own claim, to `address` (a PushPull)."""
        claims = (*self._table.full_state(), self._own.claim)
        if not reply:
            self.stats["push_pulls"] += 1
        self._emit(address, PushPull(self.name, reply, claims))

    def send_gossip(self, member: Member) -> None:
        """A Gossip to `member` that leads with our own claim."""
        self.send(member.address, member.name, lambda claims: Gossip(self.name, claims),
                   first=(self._own.claim,))

    def send(self, address: str, dest_name: str | None,
             build: Callable[[tuple[Claim, ...]], Message], first: tuple[Claim, ...] = ()
             ) -> None:
        """Build a datagram with as much gossip as fits in ``max_message_bytes``.

        Buddy system: a destination we suspect or hold dead gets our claim about it first.
        """
        if dest_name is not None:
            dest = self._table.members.get(dest_name)
            if dest is not None and dest.state in (MemberState.SUSPECT, MemberState.DEAD):
                first = (dest.status_claim, *first) if dest.status_claim else first
        # Slack for the length prefixes that grow as claims are added.
        budget = self.profile.max_message_bytes - estimate_size(build(())) - 8
        priority = []
        for claim in first:
            if claim.wire_size <= budget:
                priority.append(claim)
                budget -= claim.wire_size
        limit = retransmit_limit(self.profile, self._table.live)
        gossip = self._queue.select(budget, limit, tuple(priority))
        self._emit(address, build((*priority, *gossip)))

    def _emit(self, address: str, msg: Message) -> None:
        self._outbox.append((address, msg))
        self.stats["messages_sent"] += 1
        self.stats["bytes_sent"] += estimate_size(msg)

    def spread_death(self, claim: Claim) -> None:
        """A verdict travels at once to ``indirect_checks`` members: whoever first learns
        of a death from gossip forwards it the same way, so the verdict floods the
        federation within a few round trips instead of a few probe periods (bounded:
        each member forwards each death once, when the member stops being live)."""
        exclude = (self.name, claim.signer, claim.parsed.subject)
        for peer in self._table.random_live(self.profile.indirect_checks, exclude):
            self.send(peer.address, peer.name, lambda claims: Gossip(self.name, claims),
                       first=(claim,))
