"""The failure detector of one SWIM member: probes, indirect probes, Nacks, suspicion
deadlines (SWIM with Lifeguard), the pace they keep, and reaching members again (seeds
while alone, seeds and DEAD members after a partition).

Theory of operation
-------------------
:class:`FailureDetector` is an object :class:`~fedorch.core.membership.swim.Swim` holds
and feeds: Swim hands it the probe messages (Ack, PingReq, IndirectAck, Nack) and its
timer turns (:meth:`FailureDetector.handle_timer`), and asks it for its next deadline.
It owns the probing state: the current probe round, the indirect probes it runs for
others (relays), the next probe time, the sequence numbers of its pings and the
backoff of its retries while alone. What it needs of the member it is given at
construction: the member table (which it judges and whose live members it probes), an
outbox (swim_sending.Datagrams), the merging of the claims a message carries, the
raising of a suspicion (swim_claims.ClaimMerger.accuse) and whether the member is leaving.

Each probe period it pings the next member of the table's shuffled round-robin order.
No ack within the probe timeout: it asks ``indirect_checks`` others to ping the target
(PingReq); they answer with an IndirectAck, or with a Nack when they could not reach it
either. Still nothing at the end of the period: the target is accused (SUSPECT). A
suspicion that runs out is checked twice more, one period apart, before a DEAD verdict
that the detector signs itself and spreads at once (see swim.py's docstring for why).

:class:`LocalHealth` is Lifeguard's local health score together with the smoothed round
trip of direct probes: both stretch every timing (``scale``). The detector moves it on
probe outcomes and round trips, the claim merger when we must refute a doubt of
ourselves, Swim when its timer was served late (a stall); it keeps the member table's
``timeout_scale`` equal to its scale, so suspicion deadlines stretch with it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from typing import Protocol

from fedorch.core.membership.swim_checks import SEQ_LIMIT
from fedorch.core.membership.swim_members import LAST_CHANCE_CHECKS, Member, MemberTable
from fedorch.core.membership.swim_profiles import SwimProfile, suspicion_bounds
from fedorch.core.membership.swim_types import (
    Ack,
    Claim,
    ClaimBody,
    ClaimKind,
    IndirectAck,
    MemberState,
    Message,
    Nack,
    Ping,
    PingReq,
    RemoteProtocolError,
    Signer,
    sign_claim,
)

MAX_RELAYS = 64  # outstanding indirect probes we run for others; more is abuse
_LIVE = (MemberState.ALIVE, MemberState.SUSPECT)


class Outbox(Protocol):
    """What the detector sends through (swim_sending.Datagrams)."""

    def send(self, address: str, dest_name: str | None,
             build: Callable[[tuple[Claim, ...]], Message], first: tuple[Claim, ...] = ()
             ) -> None: ...

    def send_gossip(self, member: Member) -> None: ...

    def push_pull(self, address: str, reply: bool = False) -> None: ...

    def spread_death(self, claim: Claim) -> None: ...


class ProbeRound:
    __slots__ = ("target", "address", "seq", "indirect_at", "acked", "indirect_done",
                 "expected_nacks", "nacks", "sent_at")

    def __init__(self, target: str, address: str, seq: int, indirect_at: float,
                 sent_at: float = 0.0) -> None:
        self.sent_at = sent_at
        self.target = target
        self.address = address
        self.seq = seq
        self.indirect_at = indirect_at
        self.acked = False
        self.indirect_done = False
        self.expected_nacks = 0  # one per PingReq sent
        self.nacks: set[str] = set()


class Relay:
    """An indirect probe we run for another member."""

    __slots__ = ("origin_address", "origin_seq", "target", "nack_at", "expires_at", "nacked")

    def __init__(self, origin_address: str, origin_seq: int, target: str, nack_at: float,
                 expires_at: float) -> None:
        self.origin_address = origin_address
        self.origin_seq = origin_seq
        self.target = target
        self.nack_at = nack_at
        self.expires_at = expires_at
        self.nacked = False


class LocalHealth:
    """Lifeguard's local health score and the smoothed round trip of direct probes; the
    factor every timing stretches by (see the module docstring)."""

    def __init__(self, profile: SwimProfile, table: MemberTable) -> None:
        self._profile = profile
        self._table = table
        self._score = 0
        self._srtt: float | None = None
        self._rttvar = 0.0

    @property
    def score(self) -> int:
        """0 is healthy; timings stretch by at least score + 1."""
        return self._score

    @property
    def scale(self) -> int:
        """The larger of score + 1 and the probe round trip (TCP's ``srtt + 4 rttvar``)
        in whole probe timeouts, capped at ``max_health + 1``."""
        scale = self._score + 1
        if self._srtt is not None:
            rto = self._srtt + 4 * self._rttvar
            need = -int(-rto // self._profile.probe_timeout)
            scale = max(scale, min(self._profile.max_health + 1, need))
        return scale

    def change(self, delta: int) -> None:
        self._score = min(self._profile.max_health, max(0, self._score + delta))
        self._table.timeout_scale = self.scale

    def sample_rtt(self, rtt: float) -> None:
        if rtt < 0:
            return
        if self._srtt is None:
            self._srtt, self._rttvar = rtt, rtt / 2
        else:
            self._rttvar = 0.75 * self._rttvar + 0.25 * abs(self._srtt - rtt)
            self._srtt = 0.875 * self._srtt + 0.125 * rtt
        self._table.timeout_scale = self.scale


class FailureDetector:
    """One member's probing (see the module docstring). `merge`: judge and apply the
    claims a message carries; `accuse`: raise our suspicion of a member at an
    incarnation; `leaving`: has the member announced its leave (then it judges nobody)."""

    def __init__(self, name: str, address: str, profile: SwimProfile, table: MemberTable,
                 health: LocalHealth, out: Outbox, signer: Signer, rng: random.Random,
                 stats: dict[str, int], now: float, *,
                 merge: Callable[[float, tuple[Claim, ...]], None],
                 accuse: Callable[[float, Member, int], None],
                 leaving: Callable[[], bool]) -> None:
        self.name = name
        self.address = address
        self.profile = profile
        self.stats = stats
        self._table = table
        self._health = health
        self._out = out
        self._signer = signer
        self._rng = rng
        self._merge = merge
        self._accuse = accuse
        self._leaving = leaving
        self._seq = 0
        self._probe: ProbeRound | None = None
        self._relays: dict[int, Relay] = {}
        self._seeds: tuple[str, ...] = ()
        self._lonely_attempts = 0
        self._next_lonely_retry = now
        # A random phase keeps members from probing in lockstep.
        self._next_probe_at = now + rng.random() * profile.probe_interval

    @property
    def next_probe_at(self) -> float:
        return self._next_probe_at

    @property
    def probe_round(self) -> ProbeRound | None:
        """The probe in progress, if any (read-only use)."""
        return self._probe

    def add_seeds(self, seeds: Iterable[str]) -> None:
        """Addresses to reach when alone or after a partition (Swim.join's seeds)."""
        self._seeds = tuple(dict.fromkeys(self._seeds + tuple(seeds)))

    def next_deadline(self) -> float:
        """The earliest time :meth:`handle_timer` has work: the next probe, the current
        probe's indirect stage, a relay's Nack or expiry."""
        deadline = self._next_probe_at
        probe = self._probe
        if probe is not None and not probe.acked and not probe.indirect_done:
            deadline = min(deadline, probe.indirect_at)
        for relay in self._relays.values():
            deadline = min(deadline, relay.expires_at if relay.nacked else relay.nack_at)
        return deadline

    def handle_timer(self, now: float, stalled: bool) -> None:
        """Relays, the probe round and suspicion deadlines due at `now`. `stalled`: the
        timer was served much later than asked (our own loop stalled)."""
        self._run_relays(now)
        self._run_probe(now, stalled)
        self._run_suspicions(now, stalled)

    def stop(self) -> None:
        """The member went quiet: no probe in progress, no relay owed."""
        self._probe = None
        self._relays.clear()

    # ---- message handlers ---------------------------------------------------------------

    def on_ack(self, now: float, source: str, msg: Ack) -> None:
        self._merge(now, msg.claims)
        probe = self._probe
        if probe is not None and probe.seq == msg.seq and probe.target == msg.sender:
            self._health.sample_rtt(now - probe.sent_at)
            self._probe_succeeded(probe)
            return
        relay = self._relays.get(msg.seq)
        if relay is not None and relay.target == msg.sender:
            del self._relays[msg.seq]
            # The target's newest claim goes first: if the requester is about to judge
            # it, that claim (a refutation) is what it lacks, and our queue may no
            # longer hold it.
            target = self._table.members.get(relay.target)
            first = (target.alive_claim,) if target is not None and target.alive_claim else ()
            self._out.send(relay.origin_address, None, lambda claims: IndirectAck(
                relay.origin_seq, self.name, relay.target, claims), first)
            return
        self.stats["unmatched_acks"] += 1

    def on_ping_req(self, now: float, source: str, msg: PingReq) -> None:
        if msg.target == self.name or msg.target == msg.sender:
            raise RemoteProtocolError("indirect probe of the requester or of ourselves")
        self._merge(now, msg.claims)
        if len(self._relays) >= MAX_RELAYS:
            raise RemoteProtocolError("too many indirect probes outstanding")
        # Ping the address we know for the target, if we know it: the requester's copy
        # matters only for a member that joined too recently for us to have heard of it.
        known = self._table.members.get(msg.target)
        address = known.address if known is not None and known.address else msg.target_address
        scale = self._health.scale
        seq = self._next_seq()
        self._relays[seq] = Relay(
            source, msg.seq, msg.target,
            nack_at=now + self.profile.probe_timeout * scale * self.profile.nack_fraction,
            expires_at=now + self.profile.probe_interval * scale)
        self._out.send(address, msg.target,
                       lambda claims: Ping(seq, self.name, msg.target, claims))

    def on_indirect_ack(self, now: float, source: str, msg: IndirectAck) -> None:
        self._merge(now, msg.claims)
        probe = self._probe
        if probe is not None and probe.seq == msg.seq and probe.target == msg.target:
            self._probe_succeeded(probe)
        else:
            self.stats["unmatched_acks"] += 1

    def on_nack(self, now: float, source: str, msg: Nack) -> None:
        self._merge(now, msg.claims)
        probe = self._probe
        if probe is not None and probe.seq == msg.seq and probe.target == msg.target:
            probe.nacks.add(msg.sender)

    # ---- timers -------------------------------------------------------------------------

    def _run_probe(self, now: float, stalled: bool) -> None:
        probe = self._probe
        if (probe is not None and not probe.acked and not probe.indirect_done
                and now >= probe.indirect_at):
            if stalled:
                self._probe = probe = None  # we cannot tell who was slow: judge nobody
            else:
                self._ask_for_indirect_probes(probe)
        if now < self._next_probe_at:
            return
        leaving = self._leaving()
        if probe is not None and not probe.acked and not stalled and not leaving:
            self._probe_failed(now, probe)
        self._probe = None
        scale = self._health.scale
        self._next_probe_at = now + self.profile.probe_interval * scale
        target = self._table.next_probe_target()
        if target is None:
            self._retry_seeds_while_alone(now)
            return
        self._lonely_attempts = 0
        if leaving:  # spread the leave instead of judging anyone
            self._out.send_gossip(target)
            return
        seq = self._next_seq()
        self._probe = ProbeRound(target.name, target.address, seq,
                                  now + self.profile.probe_timeout * scale, now)
        self.stats["probes_sent"] += 1
        self._out.send(target.address, target.name,
                       lambda claims: Ping(seq, self.name, target.name, claims))

    def _ask_for_indirect_probes(self, probe: ProbeRound) -> None:
        helpers = self._table.random_live(self.profile.indirect_checks,
                                          (self.name, probe.target))
        probe.indirect_done = True
        probe.expected_nacks = len(helpers)
        for helper in helpers:
            self.stats["indirect_probes"] += 1
            self._out.send(helper.address, helper.name, lambda claims: PingReq(
                probe.seq, self.name, probe.target, probe.address, claims))

    def _probe_succeeded(self, probe: ProbeRound) -> None:
        if not probe.acked:
            probe.acked = True
            # An answer that came only after the probe timeout (the indirect probes had
            # gone out) says timeouts are too short for how slow this member or its
            # peers are right now, as on a saturated host where every process waits
            # for CPU: be more patient (longer timeouts and suspicions) rather than
            # accuse members that answer late. An answer in time is a healthy sign.
            self._health.change(+1 if probe.indirect_done else -1)

    def _probe_failed(self, now: float, probe: ProbeRound) -> None:
        # Helpers that did not even nack suggest our own network or loop is the problem.
        self._health.change(probe.expected_nacks - len(probe.nacks))
        member = self._table.members.get(probe.target)
        if member is not None and member.state in _LIVE:
            self._accuse(now, member, member.incarnation)

    def _run_relays(self, now: float) -> None:
        for seq, relay in list(self._relays.items()):
            if not relay.nacked and now >= relay.nack_at:
                relay.nacked = True
                self._out.send(relay.origin_address, None, lambda claims, r=relay: Nack(
                    r.origin_seq, self.name, r.target, claims))
            if now >= relay.expires_at:
                del self._relays[seq]

    def _run_suspicions(self, now: float, stalled: bool) -> None:
        period = self.profile.probe_interval * self._health.scale
        due = self._table.due_suspicions(now)
        # How recent a sign of life postpones a verdict: the least time a suspicion runs
        # before a verdict (a refutation would have come within it).
        recent = suspicion_bounds(self.profile, self._table.live)[0] if due else 0.0
        for member in due:
            suspicion = member.suspicion
            assert suspicion is not None
            if stalled:  # refutations may be in flight to us: give them one period
                suspicion.deadline = now + period
                continue
            heard = member.last_heard
            if suspicion.checks >= LAST_CHANCE_CHECKS and heard is not None and (
                    heard > suspicion.checked_at or now - heard < recent):
                # The suspect itself sent us a message since our last check, or within
                # the shortest suspicion (a SWIM one, or any peer call it signed:
                # Swim.heard_from): it is alive, only slow (its refutation is still on
                # its way, or our check's answer came too late to count). One more check
                # instead of a verdict; a member that crashed sends nothing more, and is
                # judged once its last message is that old.
                suspicion.checks -= 1
            if suspicion.checks < LAST_CHANCE_CHECKS:
                self._check_suspect(now, member, period)
                continue
            claim = sign_claim(ClaimBody(ClaimKind.DEAD, member.name, member.incarnation,
                                         self.name), self.name, self._signer)
            self._table.apply(now, claim, own=True)
            self.stats["deaths_declared"] += 1
            self._out.spread_death(claim)  # at once, not on our next probe

    def _check_suspect(self, now: float, member: Member, period: float) -> None:
        """Before a verdict, probe the suspect again with the suspicion attached, directly
        and through k helpers, twice one period apart: if it is alive and our copy of its
        refutation was lost, one of 2(k+1) paths brings the refutation back."""
        suspicion = member.suspicion
        assert suspicion is not None
        suspicion.checks += 1
        suspicion.checked_at = now
        suspicion.deadline = now + period
        seq = self._next_seq()
        self.stats["probes_sent"] += 1
        self._out.send(member.address, member.name,
                       lambda claims: Ping(seq, self.name, member.name, claims))
        # The suspicion rides on each PingReq too: a helper that had not heard of it
        # passes it on to the suspect, whose ack then carries its refutation.
        doubt = (member.status_claim,) if member.status_claim else ()
        for helper in self._table.random_live(self.profile.indirect_checks,
                                              (self.name, member.name)):
            self.stats["indirect_probes"] += 1
            self._out.send(helper.address, helper.name, lambda claims: PingReq(
                seq, self.name, member.name, member.address, claims), doubt)

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) % SEQ_LIMIT
        return self._seq

    # ---- reaching members again ------------------------------------------------------

    def _retry_seeds_while_alone(self, now: float) -> None:
        """Knowing nobody (our join was lost, or every seed was down), retry the seeds
        with a doubling backoff rather than wait a whole rejoin interval."""
        seeds = [s for s in self._seeds if s != self.address]
        if not seeds or self._leaving() or now < self._next_lonely_retry:
            return
        self._out.push_pull(seeds[self._lonely_attempts % len(seeds)])
        backoff = self.profile.probe_interval * 2 ** min(self._lonely_attempts, 16)
        self._next_lonely_retry = now + min(self.profile.rejoin_interval, backoff)
        self._lonely_attempts += 1

    def rejoin(self) -> None:
        """Push-pull with a seed we do not see alive and with a member we hold DEAD: once
        a partition heals, its halves find each other this way without an operator."""
        live = self._table.live_addresses()
        unseen_seeds = [s for s in self._seeds if s != self.address and s not in live]
        targets = []
        if unseen_seeds:
            targets.append(unseen_seeds[int(self._rng.random() * len(unseen_seeds))])
        dead = self._table.rejoin_candidates()
        if dead:
            targets.append(dead[int(self._rng.random() * len(dead))].address)
        for address in dict.fromkeys(targets):
            self._out.push_pull(address)
