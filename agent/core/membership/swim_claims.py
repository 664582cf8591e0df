"""Claims at one SWIM member: its own, and its judgement of everyone else's.

Theory of operation
-------------------
:class:`OwnClaim` is what a member says about itself: its incarnation, its domain
record and the signed ALIVE (or LEFT) claim that carries them. Only the member raises
its incarnation: to publish a new record and to leave (Swim.publish_record, Swim.leave),
and to refute a doubt about itself (here). The record's version is the incarnation it
was published in, monotonic across lives.

:class:`ClaimMerger` judges every claim a message carries before it can change
anything. An accusation (SUSPECT or DEAD) at an incarnation far above the one held for
its subject is refused first (authority.ACCUSATION_LEAD: the subject never published
it, and could not refute it). A claim about ourselves that doubts us is refuted with a
new ALIVE at a higher incarnation, and marks the message as doubting us (`doubted`),
so that the core answers its sender at once; so does a doubt we have moved past. Both
are counted (`OwnClaim.doubts`): a doubt heard may mean our refutation never gets out
(a cut one way), which the agent's step starts must know (core/node/start_asks.py). A
DEAD claim in someone's full state about a member we see live becomes our own
suspicion, so that the member gets a suspicion's time to refute (after a partition
heals, each side holds the other DEAD). A DEAD verdict first learned from gossip is
sent on at once (Datagrams.spread_death). Everything else goes to the member table
(swim_members), which verifies each claim's signature and applies the one table of
transitions (swim_table); only changes are queued for relay.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from fedorch.core.identity.authority import accusation_in_reach
from fedorch.core.membership.swim_dissemination import DisseminationQueue
from fedorch.core.membership.swim_members import Member, MemberTable, UntrustedClaim
from fedorch.core.membership.swim_table import Age, Outcome, Standing, compare, transition
from fedorch.core.membership.swim_types import (
    Claim,
    ClaimBody,
    ClaimKind,
    RemoteProtocolError,
    Signer,
    sign_claim,
)

_LIVE_STANDINGS = (Standing.ALIVE, Standing.SUSPECT)


class Sender(Protocol):
    """What the merger sends (swim_sending.Datagrams)."""

    def send_gossip(self, member: Member) -> None: ...

    def spread_death(self, claim: Claim) -> None: ...


class OwnClaim:
    """This member's incarnation, record, and the claim it signs about itself."""

    def __init__(self, name: str, address: str, signer: Signer, incarnation: int) -> None:
        self.name = name
        self.address = address
        self.signer = signer
        self.incarnation = incarnation
        self.record = b""
        self.record_version = 0
        self.claim: Claim | None = None  # signed once the record is checked (Swim)
        self.doubted = False  # set while handling a message that doubts us
        # Every SUSPECT or DEAD claim about us heard (verified), refuted or moved past:
        # the shell tells the Node, whose starts ask first (core/node/start_asks.py).
        self.doubts = 0

    def sign_alive(self) -> Claim:
        """Our ALIVE claim at the current incarnation, with our address and record."""
        return sign_claim(ClaimBody(ClaimKind.ALIVE, self.name, self.incarnation, self.name,
                                    self.address, self.record_version, self.record),
                          self.name, self.signer)


class ClaimMerger:
    """Merges the claims of received messages (see the module docstring). `leaving`:
    has this member announced its leave (then doubts of it go unanswered);
    `change_health`: moves the member's local health score (swim_detector.LocalHealth);
    `reject`: the core's INPUT_REJECTED event."""

    def __init__(self, own: OwnClaim, table: MemberTable, queue: DisseminationQueue,
                 out: Sender, stats: dict[str, int], *, leaving: Callable[[], bool],
                 change_health: Callable[[int], None],
                 reject: Callable[[float, str, str], None]) -> None:
        self.name = own.name
        self.stats = stats
        self._own = own
        self._signer = own.signer
        self._table = table
        self._queue = queue
        self._out = out
        self._leaving = leaving
        self._change_health = change_health
        self._reject = reject

    def merge(self, now: float, claims: tuple[Claim, ...], bulk_from: str | None) -> None:
        """Each claim judged and, if it changes anything, applied to the member table."""
        table = self._table
        for claim in claims:
            try:
                if not isinstance(claim, Claim):
                    raise RemoteProtocolError("claim of the wrong type")
                body = claim.parsed
                if body.kind in (ClaimKind.SUSPECT, ClaimKind.DEAD):
                    self._check_accusation(body)
                if body.subject == self.name:
                    self._judge_claim_about_us(now, claim, body)
                elif bulk_from is not None and body.kind is ClaimKind.DEAD:
                    self._merge_bulk_death(now, claim, body)
                elif bulk_from is None and body.kind is ClaimKind.DEAD:
                    was_live = table.standing(body.subject)[0] in _LIVE_STANDINGS
                    if table.apply(now, claim) is Outcome.BECOME_DEAD and was_live:
                        self._out.spread_death(claim)
                else:
                    table.apply(now, claim,
                                relay_if_new=bulk_from is None or body.subject == bulk_from)
            except UntrustedClaim as exc:
                self.stats["untrusted_claims"] += 1
                self._reject(now, getattr(claim, "signer", ""), str(exc))
            except RemoteProtocolError as exc:
                self.stats["invalid_claims"] += 1
                self._reject(now, getattr(claim, "signer", ""), str(exc))

    def _check_accusation(self, body: ClaimBody) -> None:
        """Only the subject raises its own incarnation: an accusation far above the one
        held for it names a value the subject never published, and would leave it no
        room to refute (see authority.ACCUSATION_LEAD). Refused before anything."""
        if body.subject == self.name:
            held: int | None = self._own.incarnation
        else:
            member = self._table.members.get(body.subject)
            held = member.incarnation if member is not None else None
        if not accusation_in_reach(body.incarnation, held):
            self.stats["unauthorised_claims"] += 1
            raise RemoteProtocolError(
                f"{body.kind.name} of {body.subject} at incarnation {body.incarnation} by"
                f" {body.issuer}: {body.subject} never published it (held: {held})")

    def _merge_bulk_death(self, now: float, claim: Claim, body: ClaimBody) -> None:
        """A DEAD claim in someone's full state about a member we see live becomes our own
        suspicion: the member gets a suspicion's time to refute instead of dying at once
        (after a partition heals, each side holds the other DEAD)."""
        standing, member = self._table.standing(body.subject)
        if standing in (Standing.ALIVE, Standing.SUSPECT) and member is not None:
            if compare(body.incarnation, member.incarnation) is not Age.OLDER:
                self._table.verify(claim)
                self.accuse(now, member, body.incarnation)
            return
        self._table.apply(now, claim, relay_if_new=False)

    def _judge_claim_about_us(self, now: float, claim: Claim, body: ClaimBody) -> None:
        if self._leaving() or claim is self._own.claim:
            return
        age = compare(body.incarnation, self._own.incarnation)
        outcome = transition(Standing.SELF, body.kind, age)
        if outcome is Outcome.IGNORE:
            if body.kind in (ClaimKind.SUSPECT, ClaimKind.DEAD):
                self._table.verify(claim)  # a forged doubt earns no answer
                self._own.doubted = True
                self._own.doubts += 1
            return
        if outcome is Outcome.REFUTE_IF_DIFFERENT and claim.body == self._own.claim.body:
            return
        self._table.verify(claim)
        self._own.doubted = True  # whoever sent this holds an outdated view of us
        self._own.incarnation = max(self._own.incarnation, body.incarnation) + 1
        if body.kind is ClaimKind.ALIVE and body.record_version >= self._own.record_version:
            # An earlier life of ours published further: keep versions monotonic.
            self._own.record_version = body.record_version + 1
        if body.kind in (ClaimKind.SUSPECT, ClaimKind.DEAD):
            self._change_health(+1)  # being doubted hints that we are the slow one
            self._own.doubts += 1
        self.stats["refutations"] += 1
        self._own.claim = self._own.sign_alive()
        self._queue.push(self._own.claim)

    def accuse(self, now: float, member: Member, incarnation: int) -> None:
        suspicion = member.suspicion
        if (suspicion is not None and member.incarnation == incarnation
                and self.name in suspicion.accusers):
            return
        claim = sign_claim(ClaimBody(ClaimKind.SUSPECT, member.name, incarnation, self.name),
                           self.name, self._signer)
        if self._table.apply(now, claim, own=True) is not Outcome.IGNORE:
            self.stats["suspicions_raised"] += 1
            # Buddy system: tell the suspect now (the fresh claim leads the piggy-back
            # queue), so a live member refutes within a round trip, not at the deadline.
            self._out.send_gossip(member)
