"""Membership: drives the SWIM core (agent.membership.swim) over gRPC.

A DEAD verdict reaches the rest of the agent (the workflows: domain loss, in-doubt
recovery, takeover) only once it has stood for the profile's `loss_grace` without a
sign of life from the accused (agent/core/membership/loss_grace.py); a LEFT at once.
What SWIM holds (members(), get(): the console, `members`, placement) is shown as is.

A doubt of this domain that SWIM heard (a SUSPECT or DEAD claim about us, refuted or
already moved past: Swim.doubts_heard) wakes the loop, whose look tells the hooks; the
node engine takes it (`take_doubt`) into the Node's member view input
(MemberViews.doubted): our refutation may never get out (a cut one way), and the
Node's step starts then ask their coordinator first (core/node/start_asks.py).

Datagrams to one address travel as one signed Swim call; the reply carries
whatever the receiver produced for the caller while handling them (the Ack to
a Ping, most often), so a probe costs one round trip. The core's claims are
signed with the domain key (runtime/claim_signing.py). Every task is owned by the
agent's TaskGroup; the core's clock is the agent's monotonic one (a wall clock
step must neither stall nor hurry probes and suspicions), and times shown to
people (`last_heard`) are turned into wall time on the way out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fedorch.core.identity.authority import record_is_own
from fedorch.core.membership import swim_codec
from fedorch.core.membership.loss_grace import (
    Acted,
    Alive,
    Check,
    Forget,
    HeardDuring,
    Held,
    Left,
    LossGrace,
    Output,
    Verdict,
    Withdrawn,
)
from fedorch.core.membership.loss_grace import Timer as GraceTimer
from fedorch.core.membership.swim import Swim
from fedorch.core.membership.swim_profiles import make_profile, typed_overrides
from fedorch.core.membership.swim_types import (
    EventKind,
    MemberState,
    MemberView,
    Message,
    PushPull,
    RemoteProtocolError,
)
from fedorch.gen.fedorch.v1 import peer_pb2, swim_pb2
from fedorch.runtime.claim_signing import ClaimSigner, ClaimVerifier
from fedorch.runtime.config import gossip_profile_name
from fedorch.runtime.membership_metrics import LossGraceCollector, SwimCollector
from fedorch.runtime.peers import PeerCallError
from fedorch.runtime.wakeups import Sleep

if TYPE_CHECKING:
    from fedorch.runtime.context import AgentContext

log = logging.getLogger("fedorch.membership")

PUSH_PULL_TIMEOUT_S = 5.0
# An agent whose seeds all stay silent this long after it started takes work anyway,
# with what it knows (itself at least): it may be the first of its federation up.
JOIN_PATIENCE_S = 2 * PUSH_PULL_TIMEOUT_S
# The member states in which a domain is lost to the workflows it takes part in: DEAD
# (crashed, or cut off for good) and LEFT (stopped gracefully: its agent kills its
# steps' processes as it stops, and whether it ever comes back is not known).
LOST_STATES = frozenset({MemberState.DEAD, MemberState.LEFT})


@dataclass(frozen=True)
class Member:
    """A member as the rest of the agent sees it."""

    domain: str
    address: str
    state: str  # ALIVE | SUSPECT | DEAD | LEFT
    incarnation: int
    last_heard: float | None  # wall seconds (since the epoch)
    record: peer_pb2.DomainRecord
    record_version: int


class Membership:
    def __init__(self, agent: AgentContext, incarnation: int) -> None:
        self.agent = agent
        g = agent.config.gossip
        self.profile = make_profile(gossip_profile_name(g.profile),
                                    **typed_overrides(dict(g.tuning)))
        self.swim = Swim(
            agent.domain, agent.endpoint, self.profile, ClaimSigner(agent.signer),
            ClaimVerifier(agent.trust), agent.rng, agent.now(), incarnation=incarnation,
        )
        self.sleep = Sleep("membership", agent.metrics.loop_wakeups, agent.now)
        self._records: dict[tuple[str, int], tuple[bytes, peer_pb2.DomainRecord]] = {}
        self._published: bytes | None = None
        self._published_at = float("-inf")
        self._leaving = False
        self._started = agent.now()
        self._rejoined = False
        self._publish_due: float | None = None  # a changed record held back until then
        self._offered_at = float("-inf")  # when the loop last offered the record
        # Member name by address, for the recipient of each outgoing call; checked
        # against the core on every use, rebuilt when it no longer holds.
        self._names: dict[str, str] = {}
        # DEAD verdicts held for the grace before the workflows act on them.
        self.grace = LossGrace(self.profile.loss_grace)
        self._doubts_told = 0  # Swim.doubts_heard as last taken (take_doubt)
        agent.metrics.registry.register(SwimCollector(self.swim))
        agent.metrics.registry.register(LossGraceCollector(self.grace))

    # ---- what the agent reads ----------------------------------------------------

    def members(self) -> list[Member]:
        to_wall = self.agent.now_ms() / 1000 - self.agent.now()  # the core's clock is monotonic
        return [m for view in self.swim.members()
                if (m := self._member(view, to_wall)) is not None]

    def _member(self, view: MemberView, to_wall: float) -> Member | None:
        # A domain no longer trusted (removed live) is no member here, whatever
        # others relay about it: no placement on it, nothing shown for it.
        if view.name != self.agent.domain and view.name not in self.agent.trust:
            return None
        record = self._record(view.name, view.record_version, view.record)
        heard = None if view.last_heard is None else view.last_heard + to_wall
        return Member(view.name, view.address, view.state.value, view.incarnation,
                      heard, record, view.record_version)

    def rejoined(self) -> bool:
        """May this agent place work yet? Once its own record is out and it has heard
        from another live member (or has no seeds, or they stayed silent past
        JOIN_PATIENCE_S). Before that, a just-restarted agent knows no one, and every
        workflow it took would be refused for "no members known"."""
        if self._rejoined:
            return True
        a = self.agent
        if self._published is None:
            return False
        seeds = [s for s in a.config.seeds if s != a.endpoint]
        heard = any(v.name != a.domain and v.state in (MemberState.ALIVE, MemberState.SUSPECT)
                    for v in self.swim.members())
        if heard or not seeds or a.now() - self._started >= JOIN_PATIENCE_S:
            self._rejoined = True
        return self._rejoined

    def get(self, domain: str) -> Member | None:
        # One member, not the whole list: the takeover watch asks for a workflow's
        # coordinator and each of its participants whenever it looks at the workflow.
        view = self.swim.member(domain)
        if view is None:
            return None
        return self._member(view, self.agent.now_ms() / 1000 - self.agent.now())

    def lost(self, domain: str) -> str | None:
        """DEAD or LEFT when the workflows are to take `domain` as lost: LEFT at once, a
        DEAD verdict once it has stood for the grace (see LossGrace); else None."""
        return self.grace.lost(domain)

    def state_for_work(self, domain: str) -> str:
        """`domain`'s state as the workflows act on it: SWIM's, except that a DEAD or LEFT
        member whose loss is not acted on (yet) reads SUSPECT, doubtful and not gone;
        "" when unknown (or no longer trusted)."""
        view = self.swim.member(domain)
        if view is None or (domain != self.agent.domain and domain not in self.agent.trust):
            return ""
        if view.state in LOST_STATES and domain != self.agent.domain:
            return self.grace.lost(domain) or MemberState.SUSPECT.value
        return view.state.value

    def take_doubt(self) -> bool:
        """Was a doubt of this domain heard since the last call (see the header)?"""
        news = self._doubt_untold()
        self._doubts_told = self.swim.doubts_heard
        return news

    def _doubt_untold(self) -> bool:
        return self.swim.doubts_heard != self._doubts_told

    def endpoint(self, domain: str) -> str | None:
        view = self.swim.member(domain)
        return view.address if view is not None and view.address else None

    def _record(self, name: str, version: int, raw: bytes) -> peer_pb2.DomainRecord:
        # Parsed once per (domain, version); the bytes are compared too (by identity
        # first, the usual case), so a record is never shown for another one that
        # carries the same version (as an older agent's new life could).
        key = (name, version)
        cached = self._records.get(key)
        if cached is not None and (cached[0] is raw or cached[0] == raw):
            return cached[1]
        record = peer_pb2.DomainRecord()
        try:
            record.ParseFromString(raw)
        except Exception:  # signed by its owner, but not a record: show it as empty
            record = peer_pb2.DomainRecord(domain=name)
        if record.domain and not record_is_own(name, record.domain):
            # Signed by `name` about another domain: it speaks for nobody (authority).
            self.agent.metrics.rejected_messages.labels("record_not_own").inc()
            log.warning("refused the record %s published for domain %r", name,
                        record.domain)
            record = peer_pb2.DomainRecord(domain=name)
        if len(self._records) > 4096:
            self._records.clear()
        self._records[key] = (raw, record)
        return record

    # ---- publishing this domain's record -----------------------------------------

    def publish(self, record: peer_pb2.DomainRecord, *, force: bool = False) -> None:
        """Publish when the record changed; capacity-only changes at most every publish
        interval (each publication is disseminated to every member)."""
        raw = record.SerializeToString(deterministic=True)
        if raw == self._published or self._leaving:
            return
        now = self.agent.now()
        interval = self.agent.config.gossip.publish_interval_s
        if not force and now < self._published_at + interval:  # (the deadline's own sum)
            # Held back: the loop publishes it once the interval has passed (a deadline,
            # woken for if it sleeps towards a later one).
            due = self._published_at + interval
            if self._publish_due is None or due < self._publish_due:
                self._publish_due = due
                if self.sleep.parked and (self.sleep.deadline is None
                                          or due < self.sleep.deadline):
                    self.wake()
            return
        self.swim.publish_record(now, raw)
        self._published, self._published_at = raw, now
        self._publish_due = None
        self.wake()

    def wake(self) -> None:
        self.sleep.wake()

    # ---- the driver ------------------------------------------------------------------

    async def run(self) -> None:
        a = self.agent
        self.swim.join(a.now(), [s for s in a.config.seeds if s != a.endpoint])
        while not a.stopping:
            self._flush()
            self._observe()
            # Until the core's next deadline (probe, suspicion, push-pull...), the loss
            # grace's or a held record's, whichever is first; a message that changed
            # one, or a record to publish, wakes it (_wake_if_needed).
            timers = [t for t in (self.swim.get_timer(), self._publish_due,
                                  self.grace.get_timer()) if t is not None]
            await self.sleep.until(min(timers) if timers else None)
            if self.swim.stopped:
                return
            now = a.now()
            if self._publish_due is not None and now >= self._publish_due:
                self._publish_due = None  # offered again just below
                self._offered_at = float("-inf")
            # Free slots change the record; offering it costs a record built and
            # serialized, so at most once a probe period (the loop turns far more often
            # than that in a big federation, and publishing is rate-limited anyway).
            if now >= self._offered_at + self.profile.probe_interval:
                self._offered_at = now
                a.publish_record_if_changed()
            self.swim.handle_timer(a.now())  # not `now`: publishing fed the core a later one

    @property
    def leaving(self) -> bool:
        """This agent announced its leave: the others take it as gone (LEFT)."""
        return self._leaving

    async def leave(self, grace_s: float) -> None:
        """Announce a graceful leave and give it a moment to spread: none when no other
        member is live, since nobody is there to hear it (a lone agent stops at once)."""
        others = self.swim.live - 1  # `live` counts this member too
        self._leaving = True
        self.swim.leave(self.agent.now())
        self._flush()
        if others > 0:
            await asyncio.sleep(min(grace_s, self.profile.leave_grace))

    def _flush(self) -> None:
        by_address: dict[str, list[Message]] = {}
        for address, msg in self.swim.datagrams_to_send():
            by_address.setdefault(address, []).append(msg)
        for address, msgs in by_address.items():
            self.agent.spawn(self._send(address, msgs), name=f"swim to {address}")

    async def _send(self, address: str, msgs: list[Message]) -> None:
        a = self.agent
        batch = swim_pb2.SwimBatch(reply_to=a.endpoint,
                                   messages=[swim_codec.encode(m) for m in msgs])
        bulky = any(isinstance(m, PushPull) for m in msgs)
        # A datagram's answer (an ack, perhaps carrying a refutation) counts until the
        # probe period ends, stretched as the core's own timers are (local health and the
        # measured round trip): on a starved host a call cut off earlier loses exactly
        # the answers that would clear a suspicion.
        period = self.profile.probe_interval * self.swim.timeout_scale
        timeout = PUSH_PULL_TIMEOUT_S if bulky else max(0.5, 2 * self.profile.probe_timeout,
                                                          period)
        recipient = self._name_at(address)
        try:
            body, envelope = await a.peers.call(
                address, "Swim", recipient=recipient, expect="swim", timeout=timeout,
                wait_for_ready=False, swim=batch)
        except PeerCallError as e:
            # Whatever it carried did not arrive, or not for sure: its gossip is sent again
            # (a loaded host's calls time out, and a record counted as sent on them would
            # leave the others with its old free slots until the next push-pull).
            given = self.swim.undelivered(msgs)
            log.debug("swim to %s failed: %s (%d claim(s) to send again)", address, e, given)
            return
        self._receive(address, body.sender, body.swim)
        # What the reply made the core say (an IndirectAck for a relayed probe) leaves
        # now, not at the loop's next timer.
        self._flush()
        self._wake_if_needed()

    def _wake_if_needed(self) -> None:
        """Wake the loop only when a message gave it something to do: events to look
        at, or a deadline earlier than the one it sleeps towards. Most messages change
        neither, and a turn of the loop costs more than the message did."""
        if self.swim.has_events or self._doubt_untold() or not self.sleep.parked:
            self.wake()
            return
        timer = self.swim.get_timer()
        if timer is not None and (self.sleep.deadline is None or timer < self.sleep.deadline):
            self.wake()

    def _name_at(self, address: str) -> str:
        name = self._names.get(address)
        if name is not None:
            view = self.swim.member(name)
            if view is not None and view.address == address:
                return name
        self._names = {view.address: view.name for view in self.swim.members()
                       if view.address}
        return self._names.get(address, "")  # "": a seed we have not heard from yet

    def heard_from(self, domain: str) -> None:
        """`domain` signed a peer call or answer that reached us just now (Swim.heard_from):
        the core notes it, and a check of that member, if one is due, waits for it; a DEAD
        verdict held in its grace starts its grace again. No wake-up: nothing is due
        sooner because of it."""
        now = self.agent.now()
        self.swim.heard_from(now, domain)
        if self.grace.holds(domain):
            self._act(self.grace.heard(now, domain))

    def handle_batch(self, sender: str, batch: swim_pb2.SwimBatch, *,
                     caller_gone: Callable[[], bool] | None = None) -> swim_pb2.SwimBatch:
        """An incoming Swim call: feed the core, answer with what it has for the caller.
        `caller_gone`: has the caller given up already (its deadline passed while the call
        waited to be served)? Then the answer will not arrive: its gossip is owed again."""
        reply_to = batch.reply_to
        self._receive(reply_to, sender, batch)
        mine, others = [], []
        for address, msg in self.swim.datagrams_to_send():
            (mine if address == reply_to else others).append((address, msg))
        if mine and caller_gone is not None and caller_gone():
            self.swim.undelivered([msg for _, msg in mine])
        for address, msg in others:
            self.agent.spawn(self._send(address, [msg]), name=f"swim to {address}")
        self._wake_if_needed()
        return swim_pb2.SwimBatch(reply_to=self.agent.endpoint,
                                  messages=[swim_codec.encode(m) for _, m in mine])

    def _receive(self, address: str, sender: str, batch: swim_pb2.SwimBatch) -> None:
        now = self.agent.now()
        for wire in batch.messages:
            try:
                msg = swim_codec.decode(wire)
                if msg.sender != sender:
                    raise RemoteProtocolError(f"{sender} sent a message as {msg.sender}")
            except RemoteProtocolError as e:
                self.agent.metrics.rejected_messages.labels("swim").inc()
                log.warning("refused SWIM message from %s: %s", sender, e)
                continue
            refused = self.swim.stats["unauthorised_claims"]
            self.swim.handle_message(now, address, msg)
            refused = self.swim.stats["unauthorised_claims"] - refused
            if refused:  # accusations at incarnations their subject never published
                self.agent.metrics.rejected_messages.labels(
                    "accusation_out_of_reach").inc(refused)
                log.warning("refused %d accusation(s) from %s beyond the incarnations"
                            " their subjects published", refused, sender)

    def _observe(self) -> None:
        now = self.agent.now()
        grace_timer = self.grace.get_timer()
        grace_due = grace_timer is not None and now >= grace_timer
        if not self.swim.has_events and not grace_due and not self._doubt_untold():
            # Nothing changed since the last look: the counts stand (a turn for a probe
            # timer need not scan every member).
            return
        outputs: list[Output] = []
        for event in self.swim.events():
            if event.kind in (EventKind.SUSPECT, EventKind.DEAD, EventKind.LEFT):
                log.info("member %s is %s (incarnation %d%s)", event.name, event.kind.name,
                         event.incarnation, f", by {event.accuser}" if event.accuser else "")
            elif event.kind is EventKind.ALIVE:
                log.info("member %s is ALIVE (incarnation %d)", event.name, event.incarnation)
            if event.name == self.agent.domain:
                continue
            # The one place a loss reaches the rest of the agent (never a SUSPECT: a
            # suspect may be only slow), through the grace: a LEFT at once, a DEAD verdict
            # once it stood for the grace (_act).
            if event.kind is EventKind.DEAD:
                outputs += self.grace.step(now, Verdict(event.name, event.incarnation))
            elif event.kind is EventKind.LEFT:
                outputs += self.grace.step(now, Left(event.name, event.incarnation))
            elif event.kind is EventKind.ALIVE:
                outputs += self.grace.step(now, Alive(event.name, event.incarnation))
            elif event.kind is EventKind.REAPED:
                outputs += self.grace.step(now, Forget(event.name))
        grace_timer = self.grace.get_timer()
        if grace_timer is not None and now >= grace_timer:  # (a grace of 0: at once)
            outputs += self.grace.step(now, GraceTimer())
        self._act(outputs)
        # After the grace's step: a DEAD verdict acted on in this look reads DEAD to the
        # hooks (state_for_work), not the SUSPECT it read before.
        for hook in self.agent.on_members_change:
            hook()
        counts = {s.value: 0 for s in MemberState}
        for view in self.swim.members():
            counts[view.state.value] += 1
        for state, n in counts.items():
            self.agent.metrics.members.labels(state).set(n)

    def _act(self, outputs: list[Output]) -> None:
        """What the loss grace decided: a loss acted on reaches the workflows; the rest is
        logged (and a direct check sent)."""
        a = self.agent
        for out in outputs:
            if isinstance(out, Acted):
                # The workflows act on it once the hooks (on_members_change) tell the Node
                # (state_for_work reads it DEAD or LEFT now). A graceful leave is a loss
                # as a death is: its steps stop with it, and what it still reports
                # (before it stops, or back at a new incarnation) comes from a placement
                # the loss ended, and is refused.
                if out.state == "DEAD":
                    log.warning("member %s: DEAD verdict (incarnation %d) stood for the"
                                " grace (%.1f s) without a sign of life: acted on",
                                out.name, out.incarnation, self.grace.grace)
            elif isinstance(out, Held):
                log.info("member %s: DEAD verdict (incarnation %d) held for the grace"
                         " (%.1f s) before its loss is acted on", out.name, out.incarnation,
                         self.grace.grace)
            elif isinstance(out, HeardDuring):
                log.info("member %s: heard from under its DEAD verdict (incarnation %d):"
                         " its grace starts again", out.name, out.incarnation)
            elif isinstance(out, Withdrawn):
                log.warning("member %s: DEAD verdict (incarnation %d) withdrawn: refuted"
                            " %.1f s after it came%s; nothing was acted on", out.name,
                            out.incarnation, out.stood,
                            " (heard from meanwhile)" if out.heard else "")
            elif isinstance(out, Check):
                if self.swim.remind(a.now(), out.name):
                    log.info("member %s: DEAD verdict in its grace, checked directly",
                             out.name)
                    self._flush()
