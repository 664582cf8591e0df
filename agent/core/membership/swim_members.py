"""The member table: what one member believes about every other, and the claim judge.

:meth:`MemberTable.apply` is the single place where remote claims change state. It looks
the claim up in :data:`~agent.membership.swim_table.TRANSITIONS`, verifies the signature
only when the outcome would change something (stale duplicates are the common case and
cost nothing), and carries the outcome out: state, suspicion timer, events, relaying.
Claims about the local member never reach this table; the core answers them itself.
"""

from __future__ import annotations

import random

from fedorch.core.membership.swim_dissemination import DisseminationQueue
from fedorch.core.membership.swim_profiles import SwimProfile, suspicion_timeout
from fedorch.core.membership.swim_table import Age, Outcome, Standing, compare, transition
from fedorch.core.membership.swim_types import (
    Claim,
    ClaimKind,
    EventKind,
    MemberEvent,
    MemberState,
    MemberView,
    RemoteProtocolError,
    Verifier,
)


class UntrustedClaim(RemoteProtocolError):
    """The signature does not verify against a trusted key."""


_STANDING = {
    MemberState.ALIVE: Standing.ALIVE,
    MemberState.SUSPECT: Standing.SUSPECT,
    MemberState.DEAD: Standing.DEAD,
    MemberState.LEFT: Standing.LEFT,
}
_LIVE = (MemberState.ALIVE, MemberState.SUSPECT)
_GONE_EVENT = {MemberState.DEAD: EventKind.DEAD, MemberState.LEFT: EventKind.LEFT}


# Checks of the suspect before a verdict, one probe period apart; the last one is
# answered within the period that follows the suspicion timeout (see _arm_suspicion).
LAST_CHANCE_CHECKS = 2


class Suspicion:
    __slots__ = ("started", "accusers", "deadline", "checks", "checked_at")

    def __init__(self, started: float, first_accuser: str) -> None:
        self.started = started
        self.accusers = {first_accuser}
        self.deadline = started  # when the next check (or, after the last, the verdict) is due
        self.checks = 0  # last-chance checks of the suspect sent so far
        self.checked_at = started  # when the last check went out


class Member:
    __slots__ = ("name", "state", "incarnation", "address", "alive_claim", "status_claim",
                 "last_heard", "since", "reaped_at", "suspicion")

    def __init__(self, name: str, now: float, state: MemberState, incarnation: int,
                 address: str = "", alive_claim: Claim | None = None,
                 status_claim: Claim | None = None) -> None:
        self.name = name
        self.state = state
        self.incarnation = incarnation
        self.address = address
        self.alive_claim = alive_claim  # its newest own alive claim: address, record
        self.status_claim = status_claim  # the claim behind the current state
        self.last_heard: float | None = None
        self.since = now
        self.reaped_at: float | None = None  # set once it is only a tombstone
        self.suspicion: Suspicion | None = None

    def view(self) -> MemberView:
        body = self.alive_claim.parsed if self.alive_claim is not None else None
        return MemberView(self.name, self.address, self.state, self.incarnation,
                          self.last_heard, body.record if body else b"",
                          body.record_version if body else 0)


class MemberTable:
    def __init__(self, self_name: str, profile: SwimProfile, verifier: Verifier,
                 queue: DisseminationQueue, events: list[MemberEvent], rng: random.Random
                 ) -> None:
        self._self_name = self_name
        self._profile = profile
        self._verifier = verifier
        self._queue = queue
        self._events = events
        self._rng = rng
        self.members: dict[str, Member] = {}
        self.live = 1  # ALIVE or SUSPECT members, ourselves included: the N of all formulas
        # Lifeguard local health + 1, kept by the detector: suspicion timeouts count probe
        # periods, and a sick member's periods are stretched by it, so its suspicions are
        # too. When every process on a host is starved, every member is sick: each then
        # waits long enough for refutations that come late, instead of declaring live
        # members DEAD because it was slow to hear from them.
        self.timeout_scale = 1
        self.suspects: dict[str, Member] = {}
        self.gone: dict[str, Member] = {}  # DEAD and LEFT, tombstones included
        # Shuffled round-robin: every live member is probed once per pass, in an order
        # no one can predict; members that join are slotted in at a random later place.
        self._probe_order: list[str] = []
        self._probe_position = 0

    # ---- judging claims ---------------------------------------------------------------

    def standing(self, name: str) -> tuple[Standing, Member | None]:
        member = self.members.get(name)
        return (Standing.UNKNOWN, None) if member is None else (_STANDING[member.state], member)

    def verify(self, claim: Claim) -> None:
        try:
            trusted = self._verifier.verify(claim.signer, claim.body, claim.signature)
        except Exception:  # a verifier choking on garbage is a refusal, not our crash
            trusted = False
        if not trusted:
            raise UntrustedClaim(f"claim signed as {claim.signer!r} does not verify")

    def apply(self, now: float, claim: Claim, *, relay_if_new: bool = True,
              own: bool = False) -> Outcome:
        """Judge one claim about another member; raises RemoteProtocolError if bad.

        ``relay_if_new`` False keeps claims about members we had never heard of out of the
        gossip queue (bulk state from a push-pull is not news to the federation).
        ``own`` marks claims this member just signed: no need to verify them.
        """
        body = claim.parsed
        member = self.members.get(body.subject)
        if member is None:
            standing, age = Standing.UNKNOWN, Age.NEWER
        else:
            if claim is member.status_claim or claim is member.alive_claim:
                return Outcome.IGNORE
            standing = _STANDING[member.state]
            age = compare(body.incarnation, member.incarnation)
        outcome = transition(standing, body.kind, age)
        if outcome is Outcome.IGNORE:
            if member is not None and body.kind is ClaimKind.ALIVE:
                self._keep_newer_alive_claim(now, member, claim)
            return outcome
        if outcome is Outcome.DUPLICATE:
            assert member is not None and member.status_claim is not None
            if claim.body == member.status_claim.body:
                return Outcome.IGNORE
            self.verify(claim)  # only a proven contradiction is held against the member
            raise RemoteProtocolError(f"{body.subject} signed two different "
                                      f"{body.kind.name} claims at one incarnation")
        if outcome is Outcome.CONFIRM:
            assert member is not None and member.suspicion is not None
            if body.issuer in member.suspicion.accusers:
                return Outcome.IGNORE  # this accuser was counted already
        if not own:
            self.verify(claim)
        relay = relay_if_new or member is not None
        if outcome is Outcome.BECOME_ALIVE:
            self._become_alive(now, member, claim)
        elif outcome is Outcome.BECOME_SUSPECT:
            assert member is not None
            self._become_suspect(now, member, claim)
        elif outcome is Outcome.CONFIRM:
            assert member is not None and member.suspicion is not None
            member.suspicion.accusers.add(body.issuer)
            self._arm_suspicion(member, now)
        else:  # BECOME_DEAD or BECOME_LEFT
            gone_state = MemberState.DEAD if outcome is Outcome.BECOME_DEAD else MemberState.LEFT
            self._become_gone(now, member, claim, gone_state)
        if relay:
            self._queue.push(claim)
        return outcome

    def _keep_newer_alive_claim(self, now: float, member: Member, claim: Claim) -> None:
        """An alive claim that changes no state may still carry a newer address or record
        (we hold a suspicion at an incarnation whose alive claim we missed)."""
        held = member.alive_claim
        body = claim.parsed
        if member.reaped_at is not None:  # a tombstone keeps no record
            return
        if held is not None and body.incarnation <= held.parsed.incarnation:
            return
        self.verify(claim)
        old_version = held.parsed.record_version if held is not None else 0
        member.alive_claim = claim
        member.address = body.address
        if body.record_version > old_version and member.state in _LIVE:
            self._emit(EventKind.RECORD_UPDATED, member, now, version=body.record_version)

    def _become_alive(self, now: float, member: Member | None, claim: Claim) -> None:
        body = claim.parsed
        if member is None:  # the common case while joining: kept short
            member = Member(body.subject, now, MemberState.ALIVE, body.incarnation,
                            body.address, claim, claim)
            self.members[body.subject] = member
            self.live += 1
            self._add_to_probe_order(member.name)
            self._emit(EventKind.ALIVE, member, now)
            if body.record_version:
                self._emit(EventKind.RECORD_UPDATED, member, now, version=body.record_version)
            return
        previous = member.state
        old_version = member.alive_claim.parsed.record_version if member.alive_claim else 0
        member.state = MemberState.ALIVE
        member.incarnation = body.incarnation
        member.alive_claim = member.status_claim = claim
        member.address = body.address
        member.since = now
        member.suspicion = None
        self.suspects.pop(member.name, None)
        if previous not in _LIVE:
            self.live += 1
            member.reaped_at = None
            self.gone.pop(member.name, None)
            self._add_to_probe_order(member.name)
        if previous is not MemberState.ALIVE:
            self._emit(EventKind.ALIVE, member, now)
        if body.record_version > old_version:
            self._emit(EventKind.RECORD_UPDATED, member, now, version=body.record_version)

    def _become_suspect(self, now: float, member: Member, claim: Claim) -> None:
        body = claim.parsed
        member.state = MemberState.SUSPECT
        member.incarnation = body.incarnation
        member.status_claim = claim
        member.since = now
        member.suspicion = Suspicion(now, body.issuer)
        self.suspects[member.name] = member
        self._arm_suspicion(member, now)
        self._emit(EventKind.SUSPECT, member, now, accuser=body.issuer)

    def _arm_suspicion(self, member: Member, now: float) -> None:
        suspicion = member.suspicion
        assert suspicion is not None
        if suspicion.checks:  # the checks' answers are awaited, not shortened
            return
        confirmations = len(suspicion.accusers) - 1
        # The checks start so that the last falls when the timeout runs out and the verdict
        # one probe period later. Never in the past: a deadline served late is how the
        # core notices its own stalls.
        scale = self.timeout_scale
        timeout = suspicion_timeout(self._profile, self.live, confirmations) * scale
        early = (LAST_CHANCE_CHECKS - 1) * self._profile.probe_interval * scale
        suspicion.deadline = max(now, suspicion.started + max(0.0, timeout - early))

    def _become_gone(self, now: float, member: Member | None, claim: Claim,
                     state: MemberState) -> None:
        body = claim.parsed
        if member is None:  # remembered so that an older alive claim cannot revive it
            member = Member(body.subject, now, state, body.incarnation)
            self.members[body.subject] = member
            previous = None
        else:
            previous = member.state
        member.state = state
        member.incarnation = body.incarnation
        member.status_claim = claim
        member.suspicion = None
        self.suspects.pop(member.name, None)
        if previous in _LIVE:
            self.live -= 1
        if previous is not state:
            member.since = now
        self.gone[member.name] = member
        if previous is not None and previous is not state:
            self._emit(_GONE_EVENT[state], member, now, accuser=body.issuer)

    def _emit(self, kind: EventKind, member: Member, now: float, *, accuser: str = "",
              version: int = 0) -> None:
        self._events.append(MemberEvent(kind, member.name, member.incarnation, now,
                                        accuser, version))

    # ---- probing ------------------------------------------------------------------------

    def _add_to_probe_order(self, name: str) -> None:
        remaining = len(self._probe_order) - self._probe_position
        slot = self._probe_position + int(self._rng.random() * (remaining + 1))
        self._probe_order.insert(slot, name)

    def next_probe_target(self) -> Member | None:
        for _ in range(2):
            while self._probe_position < len(self._probe_order):
                name = self._probe_order[self._probe_position]
                self._probe_position += 1
                member = self.members.get(name)
                if member is not None and member.state in _LIVE:
                    return member
            # A pass is over: reshuffle the members live now (this also drops duplicates
            # left by members that died and came back within one pass).
            self._probe_order = [m.name for m in self.members.values() if m.state in _LIVE]
            self._rng.shuffle(self._probe_order)
            self._probe_position = 0
        return None

    def random_live(self, count: int, exclude: tuple[str, ...],
                    states: tuple[MemberState, ...] = (MemberState.ALIVE,)) -> list[Member]:
        """Up to ``count`` distinct members in ``states``, sampled from the probe order
        (which holds every live member) so that no full scan is needed."""
        order = self._probe_order
        if not order or count <= 0:
            return []
        chosen: dict[str, Member] = {}
        for _ in range(4 * count + 8):
            name = order[int(self._rng.random() * len(order))]
            member = self.members.get(name)
            if (member is not None and member.state in states and name not in exclude
                    and name not in chosen):
                chosen[name] = member
                if len(chosen) == count:
                    break
        return list(chosen.values())

    def heard(self, name: str, now: float) -> None:
        member = self.members.get(name)
        if member is not None:
            member.last_heard = now

    def due_suspicions(self, now: float) -> list[Member]:
        return [m for m in self.suspects.values()
                if m.suspicion is not None and m.suspicion.deadline <= now]

    def next_suspicion_deadline(self) -> float | None:
        deadlines = [m.suspicion.deadline for m in self.suspects.values() if m.suspicion]
        return min(deadlines) if deadlines else None

    # ---- lifecycle ----------------------------------------------------------------------

    def reap(self, now: float) -> None:
        """DEAD/LEFT members leave the list after ``dead_retention`` but stay as tombstones
        (state, incarnation, the claim that ended them, address) for ``tombstone_ttl``."""
        for member in list(self.gone.values()):
            if member.reaped_at is None:
                if now - member.since >= self._profile.dead_retention:
                    member.reaped_at = now
                    member.alive_claim = None  # the record goes; the address stays
                    self._emit(EventKind.REAPED, member, now)
            elif now - member.reaped_at >= self._profile.tombstone_ttl:
                del self.gone[member.name]
                del self.members[member.name]

    def rejoin_candidates(self) -> list[Member]:
        return [m for m in self.gone.values() if m.state is MemberState.DEAD and m.address]

    def live_addresses(self) -> set[str]:
        return {m.address for m in self.members.values() if m.state in _LIVE}

    def full_state(self) -> list[Claim]:
        claims: list[Claim] = []
        for member in self.members.values():
            if member.alive_claim is not None:
                claims.append(member.alive_claim)
            if member.status_claim is not None and member.status_claim is not member.alive_claim:
                claims.append(member.status_claim)
        return claims

    def views(self) -> list[MemberView]:
        return [m.view() for m in self.members.values() if m.reaped_at is None]
