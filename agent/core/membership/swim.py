"""Sans-I/O SWIM membership core with Lifeguard refinements.

Theory of operation
-------------------
Every member runs one :class:`Swim`. It never reads a clock, opens a socket or draws
unseeded randomness: the shell feeds it messages (:meth:`Swim.handle_message`), wakes it
at the deadline it asks for (:meth:`Swim.get_timer` / :meth:`Swim.handle_timer`), and
sends what :meth:`Swim.datagrams_to_send` returns. :meth:`Swim.events` reports membership
changes, :meth:`Swim.members` the current view.

*Failure detection.* Each probe period the core pings the next member of a shuffled
round-robin order. No ack within the probe timeout: it asks ``indirect_checks`` others
to ping the target for it (PingReq). Those answer with an IndirectAck, or with a Nack
when they could not reach it either. Still nothing at the end of the period: the target
becomes SUSPECT, never directly DEAD. A suspicion names the target's incarnation and is
signed by the accuser. The suspected member refutes it by signing a new ALIVE claim with
a higher incarnation; only the member itself can do that. A suspicion that nobody
refutes in time turns into a DEAD verdict, signed by whoever's timer ran out first.
The probing is swim_detector.py's :class:`FailureDetector`, an object Swim holds: Swim
hands it the probe messages (Ack, PingReq, IndirectAck, Nack) and its timer turns.

*Lifeguard.* (1) Local health: a score that rises when our own probes fail without the
expected Nacks (the fault is likely ours), when we must refute a suspicion of ourselves,
or when our timers fire late (our loop stalled), and falls with each successful probe.
Probe interval and timeouts are multiplied by score + 1, so a sick member slows down
instead of accusing healthy ones. A stall also voids the probe it interrupted and pushes
back suspicion deadlines by a period: a member that just woke up judges nobody.
(2) Dynamic suspicion: the timeout starts at beta times the shortest (alpha * log10 N
probe periods) and shrinks logarithmically with each independent accuser. (3) Buddy
system: any message to a member we suspect (or think dead) carries that claim first,
so the member hears of it and refutes within one round trip. Two additions of ours
close the gap left when a refutation is lost on its way to one member: whoever sends us
a doubt about ourselves, current or already refuted, gets our current claim back at
once; and before its own DEAD verdict a member checks the suspect twice, one probe period
apart, the last when the suspicion timeout runs out: a ping and ``indirect_checks``
PingReqs, all with the suspicion attached, so the suspect's ack carries its refutation
and a helper answers with the suspect's newest claim first. The verdict comes one period
after the last check, unless the suspect itself has talked to us since that check: any
message it signed counts, a SWIM one or, through :meth:`Swim.heard_from`, any peer call
the shell authenticated (a busy coordinator on a starved host answers probes late but
keeps sending its PREPAREs): then one more check, a period later.

*Pacing.* Timings stretch by the larger of (health + 1) and the smoothed round trip of
direct probes in whole probe timeouts (TCP's ``srtt + 4 rttvar``), capped at
``max_health + 1``: a member whose probes come back slowly (its host saturated) probes
less often, instead of growing every queue with probes the host cannot serve.

*Dissemination.* Accepted changes are queued and piggy-backed on every outgoing message,
each about ``retransmit_mult * ceil(log10(N+1))`` times, least-sent first, within the
byte bound. While timings are stretched and an update waits, a Gossip goes to a random
member once a base probe period on which no probe goes out. Every ``push_pull_interval``
(stretched above 32 members) the core exchanges its full state with a random member
(PushPull), which repairs anything gossip lost; news of a member it did not know brings
that exchange forward to within ``SETTLE_PUSH_PULL_PERIODS`` base periods.
A DEAD verdict does not wait for the next probe: its signer, and every member that first
learns of it from gossip, sends it at once to ``indirect_checks`` random members.

*Lifecycle.* :meth:`Swim.join` push-pulls with seeds. :meth:`Swim.leave` signs LEFT at a
higher incarnation and tells a few members directly. DEAD and LEFT members are listed for
``dead_retention``, then kept as tombstones for ``tombstone_ttl``: a tombstone ignores
every claim but a higher incarnation signed by the member, so no ghost comes back. Every
``rejoin_interval`` the core push-pulls with a seed it does not see alive and with a member
it holds DEAD, so that the halves of a healed partition find each other again.

*Trust.* Every claim is verified against its issuer's key before it can change anything;
only changes are queued for relay, so nothing untrusted is ever passed on (claims are
judged in swim_claims.py, messages built and packed in swim_sending.py). Bad peer input
raises :class:`RemoteProtocolError` inside, is counted in :attr:`Swim.stats` and dropped;
misuse by the shell raises :class:`LocalProtocolError`. State transitions live in one
table, :data:`fedorch.core.membership.swim_table.TRANSITIONS`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from typing import Any

from fedorch.core.membership.swim_checks import check_message, check_text, check_time
from fedorch.core.membership.swim_claims import ClaimMerger, OwnClaim
from fedorch.core.membership.swim_detector import FailureDetector, LocalHealth
from fedorch.core.membership.swim_dissemination import DisseminationQueue
from fedorch.core.membership.swim_members import MemberTable
from fedorch.core.membership.swim_profiles import SwimProfile, push_pull_interval, retransmit_limit
from fedorch.core.membership.swim_sending import Datagrams
from fedorch.core.membership.swim_types import (
    MAX_ADDRESS_BYTES,
    MAX_NAME_BYTES,
    MESSAGE_TYPES,
    Ack,
    Claim,
    ClaimBody,
    ClaimKind,
    EventKind,
    Gossip,
    IndirectAck,
    LocalProtocolError,
    MemberEvent,
    MemberState,
    MemberView,
    Message,
    Nack,
    Ping,
    PingReq,
    PushPull,
    RemoteProtocolError,
    Signer,
    Verifier,
    sign_claim,
)

STAT_NAMES = (
    "probes_sent", "indirect_probes", "suspicions_raised", "refutations", "deaths_declared",
    "messages_sent", "bytes_sent", "push_pulls", "invalid_messages", "invalid_claims",
    "untrusted_claims", "unmatched_acks", "stalls", "unauthorised_claims",
)
_LIVE = (MemberState.ALIVE, MemberState.SUSPECT)

# After news of a member it did not know, a member exchanges full state within this many
# (unstretched) probe periods rather than at its next anti-entropy period: in a join storm,
# gossip about a late joiner can run out of retransmissions before it reaches a member
# that was busy, and only a push-pull repairs that (1.8 s on `lan`, 3 s on `local`).
SETTLE_PUSH_PULL_PERIODS = 6


class Swim:
    """One member's membership state machine. See the module docstring."""

    def __init__(self, name: str, address: str, profile: SwimProfile, signer: Signer,
                 verifier: Verifier, rng: random.Random, now: float, *,
                 record: bytes = b"", incarnation: int = 0) -> None:
        """``incarnation`` should exceed any this member used before (a shell without a
        persisted counter can pass a wall-clock second count)."""
        check_text("name", name, MAX_NAME_BYTES)
        check_text("address", address, MAX_ADDRESS_BYTES)
        if not isinstance(incarnation, int) or incarnation < 0:
            raise LocalProtocolError("incarnation must be a non-negative int")
        self.name = name
        self.address = address
        self.profile = profile
        self._signer = signer
        self._now = check_time(now)
        self._own = OwnClaim(name, address, signer, incarnation)
        self._leaving = False
        self._stopped = False
        self._leave_deadline: float | None = None
        self.stats: dict[str, int] = dict.fromkeys(STAT_NAMES, 0)
        self._events: list[MemberEvent] = []
        self._queue = DisseminationQueue()
        self._table = MemberTable(name, profile, verifier, self._queue, self._events, rng)
        self._out = Datagrams(self._own, profile, self._table, self._queue, self.stats)
        self._health = LocalHealth(profile, self._table)
        self._claims = ClaimMerger(self._own, self._table, self._queue, self._out, self.stats,
                                   leaving=lambda: self._leaving,
                                   change_health=self._health.change, reject=self._reject)
        self._detector = FailureDetector(
            name, address, profile, self._table, self._health, self._out, signer, rng,
            self.stats, now, merge=self._merge, accuse=self._claims.accuse,
            leaving=lambda: self._leaving)
        detector = self._detector  # the probe messages are the detector's
        self._handlers: dict[type, Callable[[float, str, Any], None]] = {
            Ping: self._on_ping, Ack: detector.on_ack, PingReq: detector.on_ping_req,
            IndirectAck: detector.on_indirect_ack, Nack: detector.on_nack,
            Gossip: self._on_gossip, PushPull: self._on_push_pull}
        # Random phases keep members from exchanging state in lockstep. The detector drew
        # its probe phase first: the order of draws is part of what a seed reproduces.
        self._next_push_pull_at = now + rng.random() * profile.push_pull_interval
        self._next_gossip_at = now + profile.probe_interval
        self._next_rejoin_at = now + (0.5 + 0.5 * rng.random()) * profile.rejoin_interval
        self._reap_period = min(profile.dead_retention, profile.tombstone_ttl) / 4
        self._next_reap_at = now + self._reap_period
        if record:
            self._check_record(record)
            self._own.record, self._own.record_version = record, max(1, incarnation)
        self._own.claim = self._own.sign_alive()
        self._queue.push(self._own.claim)

    # ---- inputs -----------------------------------------------------------------------

    def join(self, now: float, seeds: Iterable[str]) -> None:
        """Exchange full state with every seed address (any existing members)."""
        self._advance(now)
        self._require_running("join")
        seeds = tuple(seeds)
        for seed in seeds:
            check_text("seed address", seed, MAX_ADDRESS_BYTES)
        self._detector.add_seeds(seeds)
        for seed in seeds:
            if seed != self.address:
                self._out.push_pull(seed)

    def leave(self, now: float) -> None:
        """Announce a graceful leave; the core goes quiet after ``leave_grace``."""
        self._advance(now)
        if self._stopped:
            raise LocalProtocolError("leave() after the member stopped")
        if self._leaving:
            return
        self._leaving = True
        self._own.incarnation += 1
        self._own.claim = sign_claim(
            ClaimBody(ClaimKind.LEFT, self.name, self._own.incarnation, self.name),
            self.name, self._signer)
        self._queue.push(self._own.claim)
        self._events.append(MemberEvent(EventKind.LEFT, self.name, self._own.incarnation, now))
        for member in self._table.random_live(self.profile.leave_fanout, (self.name,), _LIVE):
            self._out.send_gossip(member)
        self._leave_deadline = now + self.profile.leave_grace

    def publish_record(self, now: float, record: bytes) -> int:
        """Replace the local domain record; returns its version (monotonic, across this
        member's lives too)."""
        self._advance(now)
        self._require_running("publish_record")
        self._check_record(record)
        if record != self._own.record:
            self._own.record = record
            # A new incarnation makes the new record win everywhere over the old claim.
            self._own.incarnation += 1
            # The record's version is the incarnation it is published in: monotonic
            # across lives too (a restarted member's incarnation exceeds any it used
            # before), so a new life's record replaces the old one's wherever versions
            # are compared or records cached by version, never mistaken for it.
            self._own.record_version = max(self._own.record_version + 1, self._own.incarnation)
            self._own.claim = self._own.sign_alive()
            self._queue.push(self._own.claim)
            self._events.append(MemberEvent(EventKind.RECORD_UPDATED, self.name,
                                            self._own.incarnation, now, "",
                                            self._own.record_version))
        return self._own.record_version

    def handle_message(self, now: float, source: str, msg: Message) -> None:
        """One message from ``source``, the address replies go to. Never raises for bad
        peer input: that is counted in ``stats`` and reported as an INPUT_REJECTED event."""
        self._advance(now)
        if not isinstance(msg, MESSAGE_TYPES):
            raise LocalProtocolError(f"not a membership message: {type(msg).__name__}")
        if not isinstance(source, str):
            raise LocalProtocolError("source must be an address string")
        if self._stopped:
            return
        try:
            check_message(msg, self.profile.max_claims_per_message)
            if msg.sender == self.name:
                raise RemoteProtocolError("message claims to come from ourselves")
            self._table.heard(msg.sender, now)
            self._own.doubted = False
            self._handlers[type(msg)](now, source, msg)
        except RemoteProtocolError as exc:
            self.stats["invalid_messages"] += 1
            self._reject(now, getattr(msg, "sender", ""), str(exc))
            return
        if self._own.doubted and not self._leaving:
            # The message doubted us (a suspicion we just refuted, or one about an
            # incarnation we have moved past, so our refutation missed the sender):
            # answer the sender now rather than let its suspicion run out.
            self._own.doubted = False
            self._out.send(source, msg.sender, lambda claims: Gossip(self.name, claims),
                           first=(self._own.claim,))

    def heard_from(self, now: float, name: str) -> None:
        """`name` itself signed a message that reached us just now outside membership (a
        peer call or the answer to ours, authenticated by the shell): proof that it was
        alive then, as good as a SWIM message of its own. A suspect that keeps talking to
        us is only slow (a busy coordinator on a starved host), so our last-chance check
        waits another period instead of judging it; one that crashed says nothing more and
        is judged as before. Changes no state, sends nothing, wakes nothing."""
        self._advance(now)
        if name != self.name:
            self._table.heard(name, now)

    def remind(self, now: float, name: str) -> bool:
        """Send `name`, a member held SUSPECT or DEAD here, our claim about it now, outside
        the probe order (the buddy system's message): a live member refutes in its answer.
        The shell's loss grace asks for it once per verdict (see
        agent/core/membership/loss_grace.py). False: nothing to send."""
        self._advance(now)
        if self._stopped:
            return False
        member = self._table.members.get(name)
        if member is None or member.reaped_at is not None or not member.address \
                or member.state not in (MemberState.SUSPECT, MemberState.DEAD):
            return False
        self._out.send_gossip(member)
        return True

    def handle_timer(self, now: float) -> None:
        """Run everything due at ``now``. Calling it early or twice is harmless."""
        self._advance(now)
        if self._stopped:
            return
        due = self.get_timer()
        if due is None or due > now:
            return
        # A timer served much later than asked means this member itself was stalled.
        stalled = now - due > self.profile.probe_interval
        if stalled:
            self.stats["stalls"] += 1
            self._health.change(+1)
        if self._leave_deadline is not None and now >= self._leave_deadline:
            self._stopped = True
            self._detector.stop()
            return
        self._detector.handle_timer(now, stalled)
        self._run_gossip(now)
        if now >= self._next_push_pull_at:
            self._next_push_pull_at = now + push_pull_interval(self.profile, self._table.live)
            for peer in self._table.random_live(1, (self.name,)):
                self._out.push_pull(peer.address)
        if now >= self._next_rejoin_at:
            self._next_rejoin_at = now + self.profile.rejoin_interval
            self._detector.rejoin()
        if now >= self._next_reap_at:
            self._next_reap_at = now + self._reap_period
            self._table.reap(now)

    # ---- outputs and queries ------------------------------------------------------------

    def get_timer(self) -> float | None:
        """The next deadline at which :meth:`handle_timer` must be called."""
        if self._stopped:
            return None
        deadline = min(self._detector.next_deadline(), self._next_push_pull_at,
                       self._next_rejoin_at, self._next_reap_at)
        if self._gossip_due():
            deadline = min(deadline, self._next_gossip_at)
        suspicion = self._table.next_suspicion_deadline()
        if suspicion is not None:
            deadline = min(deadline, suspicion)
        if self._leave_deadline is not None:
            deadline = min(deadline, self._leave_deadline)
        return deadline

    def undelivered(self, messages: Iterable[Message]) -> int:
        """Messages of ours that did not arrive (the shell's call failed, or its caller had
        given up before our reply): their gossip is owed its transmissions again (see
        DisseminationQueue.give_back). A PushPull's full state came from no queue."""
        claims = [claim for msg in messages if not isinstance(msg, PushPull)
                  for claim in msg.claims]
        return self._queue.give_back(claims, retransmit_limit(self.profile, self._table.live))

    def datagrams_to_send(self) -> list[tuple[str, Message]]:
        """(destination address, message) pairs; a PushPull goes on a stream, not UDP."""
        return self._out.take()

    @property
    def has_events(self) -> bool:
        """Whether :meth:`events` has anything: a shell that need not look skips it."""
        return bool(self._events)

    def events(self) -> list[MemberEvent]:
        out = self._events[:]
        self._events.clear()
        return out

    def members(self) -> list[MemberView]:
        """Every member we list (tombstones excluded), ourselves first."""
        return [self._me(), *self._table.views()]

    def _me(self) -> MemberView:
        state = MemberState.LEFT if self._leaving else MemberState.ALIVE
        return MemberView(self.name, self.address, state, self._own.incarnation, self._now,
                          self._own.record, self._own.record_version)

    def member(self, name: str) -> MemberView | None:
        if name == self.name:  # not the whole list for its first entry
            return self._me()
        found = self._table.members.get(name)
        return found.view() if found is not None and found.reaped_at is None else None

    @property
    def doubts_heard(self) -> int:
        """How many SUSPECT or DEAD claims about us were heard, refuted or moved past."""
        return self._own.doubts

    @property
    def own_claim(self) -> Claim:
        """Our current signed ALIVE (or LEFT) claim: what a shell hands to a joiner."""
        return self._own.claim

    @property
    def live(self) -> int:
        """Members ALIVE or SUSPECT, this one included."""
        return self._table.live

    @property
    def incarnation(self) -> int:
        return self._own.incarnation

    @property
    def health(self) -> int:
        """Lifeguard local health score: 0 is healthy; timings stretch by health + 1."""
        return self._health.score

    @property
    def timeout_scale(self) -> int:
        """The factor probe timings and suspicion timeouts stretch by now (local health
        and the probes' measured round trip)."""
        return self._health.scale

    @property
    def stopped(self) -> bool:
        return self._stopped

    # ---- message handlers ---------------------------------------------------------------

    def _on_ping(self, now: float, source: str, msg: Ping) -> None:
        if msg.target != self.name:
            raise RemoteProtocolError(f"ping meant for {msg.target!r}")
        self._merge(now, msg.claims)  # first, so a refutation rides on this very ack
        first = (self._own.claim,) if self._own.doubted else ()
        self._own.doubted = False
        self._out.send(source, msg.sender, lambda claims: Ack(msg.seq, self.name, claims),
                       first)

    def _on_gossip(self, now: float, source: str, msg: Gossip) -> None:
        self._merge(now, msg.claims)

    def _on_push_pull(self, now: float, source: str, msg: PushPull) -> None:
        # A doubt about us in a reply is answered by handle_message with a Gossip: the
        # peer may never probe us (after a partition it holds us DEAD).
        self._merge(now, msg.claims, bulk_from=msg.sender)
        if not msg.reply:
            self._own.doubted = False  # the reply carries our claim anyway
            self._out.push_pull(source, reply=True)

    # ---- claims -----------------------------------------------------------------------

    def _merge(self, now: float, claims: tuple[Claim, ...], bulk_from: str | None = None
               ) -> None:
        table = self._table
        known = len(table.members)
        self._claims.merge(now, claims, bulk_from)
        if len(table.members) > known and bulk_from is None:
            # News of a member we did not know: the federation is changing (a join
            # storm), and gossip that ran out of retransmissions before reaching us may
            # have missed others. Full state soon, not at the next anti-entropy period.
            settle = now + SETTLE_PUSH_PULL_PERIODS * self.profile.probe_interval
            self._next_push_pull_at = min(self._next_push_pull_at, settle)

    # ---- sending ------------------------------------------------------------------------

    def _gossip_due(self) -> bool:
        return len(self._queue) > 0 and self._table.timeout_scale > 1 and not self._leaving

    def _run_gossip(self, now: float) -> None:
        """While probing is stretched (a slow member or host), updates still leave once a
        base probe period: what would have ridden on the probes not sent goes to a random
        member. Nothing is sent when no update waits, so a settled federation pays nothing."""
        if now < self._next_gossip_at:
            return
        self._next_gossip_at = now + self.profile.probe_interval
        if (not self._gossip_due()
                or self._detector.next_probe_at - now < self.profile.probe_interval):
            return  # a probe goes out within the period anyway, with the updates on it
        for member in self._table.random_live(1, (self.name,)):
            self._out.send(member.address, member.name,
                           lambda claims: Gossip(self.name, claims))

    # ---- checks -------------------------------------------------------------------------

    def _advance(self, now: float) -> None:
        now = check_time(now)
        if now < self._now:
            raise LocalProtocolError(f"time went backwards: {now} < {self._now} "
                                     "(the shell must feed a monotonic clock)")
        self._now = now

    def _require_running(self, what: str) -> None:
        if self._leaving or self._stopped:
            raise LocalProtocolError(f"{what}() after leave()")

    def _check_record(self, record: bytes) -> None:
        if not isinstance(record, bytes):
            raise LocalProtocolError("record must be bytes")
        if len(record) > self.profile.max_record_bytes:
            raise LocalProtocolError(f"record of {len(record)} bytes exceeds "
                                     f"max_record_bytes={self.profile.max_record_bytes}")

    def _reject(self, now: float, sender: str, reason: str) -> None:
        self._events.append(MemberEvent(EventKind.INPUT_REJECTED,
                                        sender if isinstance(sender, str) else "", 0, now,
                                        detail=reason))

