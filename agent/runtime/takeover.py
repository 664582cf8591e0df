"""Coordinator takeover, the shell: a committed workflow finishes without its coordinator.

The I/O around agent/core/workflow/takeover.py (one core per committed workflow this
agent takes part in), composed of three parts:

- this module, the watch: it owns the cores, tells each what membership says of the
  coordinator it follows, fires its timers, and carries out what it asks (`apply`);
- agent/runtime/takeover_claims.py: the claims this agent sends, each until answered,
  and their answers fed back to the core;
- agent/runtime/takeover_grants.py: a claim received, granted or refused (an extra
  acceptor holding no step included, on the proof of the round the claim carries);

with agent/runtime/epoch_certs.py (the grants kept as evidence, and the epoch
certificates made of them) and agent/runtime/round_proofs.py (the proof of the
committed round).

No tick: the loop sleeps until the earliest `get_timer()` of its cores, or until an
event wakes it for the workflows it concerns. A member's state change (Membership)
wakes it for the workflows whose electorate holds that member (an index member ->
workflows), which are told the membership state of the coordinator they follow
(`Watch`); a workflow committed here (`track`) is looked at once, so its core starts
watching. What a core asks to persist (the epoch granted, and to whom) is in the
workflow's row before any claim or answer leaves (`granted_epoch`, `granted_to`; and
`epoch`, `coordinator`: the coordinator this agent follows or is).

A participant that grants a claim follows the claimant at once: it sends the results
of its finished steps there again, and every later result goes there (its row's
coordinator). Once a majority of the electorate has granted, the claimant acts: the
workflow's outcome is worked out as at any coordinator (Coordination.after_progress)
with each result that comes, and its end goes to every participant (and the original
coordinator) as an end notice carrying the epoch. A returning old coordinator learns
its epoch is over from the claim, which is resent to it until it answers, and follows.
A claimant that learns the end before its claim wins (an end notice of the epoch it
still follows, or an answer to its claim) tells it on in its claimed epoch (`end_known`,
the core's `Announce`): those that granted it refuse the lower epoch's notice.

The electorate (agent/core/workflow/takeover.py) under Paxos Commit is the committed
round's acceptors: the coordinator has them in its row (`acceptors`, written before the
PREPARE); a participant copies them into its own row from the PREPARE it voted on (its
hold's transaction, `hold_txs`) before its core is built (`prepare`), so that a later
change of its row (a re-placement) cannot change them.

Epoch certificates: every grant names, signed, the committed round and the electorate
it is counted in; the successor keeps the grants it receives as evidence, and a
majority of them is the proof of its epoch that its re-placement rounds carry. The
grants are on disk before they count; a successor restarted (acting, or with its claim
cut short) reads them back before its core is built and feeds them to the core as the
grants they are, so its claim goes again only to the members it lacks. A member shown
a certificate of an epoch it claimed itself, or granted to a claimant that lost it,
follows the winner at once (`follow_proven`, the core's `Proven`), then grants it. A
denial naming a later epoch is followed only when its certificate verifies
(EpochCertificates.proven_denial); the core reports one without (`Unproven`), which
`apply` logs and counts (fedorch_rejected_messages{reason="unproven_denial"}).

A workflow held back here (self-fencing, runtime.in_doubt) is told when the
coordinator followed changes, and asks the new one at once.
"""

from __future__ import annotations

import heapq
import logging
from typing import TYPE_CHECKING

from fedorch.core.identity.authority import coordinator_of
from fedorch.core.workflow.lifecycle import Ended
from fedorch.core.workflow.progress import TERMINAL_STEP_STATES
from fedorch.core.workflow.takeover import (
    Act,
    Action,
    Adopted,
    Announce,
    EndKnown,
    Persist,
    Role,
    SendClaim,
    Takeover,
    Timer,
    Unproven,
    Watch,
)
from fedorch.gen.fedorch.v1 import peer_pb2
from fedorch.runtime import paxos_wire as wire
from fedorch.runtime.context import Active
from fedorch.runtime.convert import is_over
from fedorch.runtime.epoch_certs import EpochCertificates, held
from fedorch.runtime.round_proofs import RoundProofs
from fedorch.runtime.store.store import WorkflowRow
from fedorch.runtime.takeover_claims import ClaimSender
from fedorch.runtime.takeover_grants import ClaimAnswers
from fedorch.runtime.wakeups import Sleep

if TYPE_CHECKING:
    from fedorch.runtime.context import AgentContext

__all__ = ["Takeovers", "held"]

log = logging.getLogger("fedorch.takeover")


class Takeovers:
    def __init__(self, agent: AgentContext) -> None:
        self.agent = agent
        self._cores: dict[str, Takeover] = {}
        # Successors restored acting (a restart): their outcome is looked at once, since
        # every result may be in already and none comes to trigger it.
        self._restored: set[str] = set()
        # Member -> the workflows whose electorate holds it: a member's change wakes those.
        self._by_member: dict[str, set[str]] = {}
        self._due: set[str] = set()  # to look at in the next turn (an event named them)
        # (deadline, workflow): each core's timer as last armed; an entry whose deadline
        # is no longer its core's is stale and skipped.
        self._timers: list[tuple[float, str]] = []
        self._armed: dict[str, float] = {}
        self.sleep = Sleep("takeover", agent.metrics.loop_wakeups, agent.now)
        self.looked_at: dict[str, int] = {}  # workflow -> turns that looked at it
        # Workflows whose electorate and grant record were read into their row: only
        # those get a core (one built before would count grants in another set).
        self._prepared: set[str] = set()
        # Cores built for an epoch this agent claimed (a restart): the grants kept on
        # disk are fed to them in their first look, before their claim goes again.
        self._rebuilt: set[str] = set()
        # The grants to us as evidence, and the epoch certificates made of them.
        self.certificates = EpochCertificates(self)
        # The proof of a committed round an acceptor that missed it needs (and checks).
        self.proofs = RoundProofs(agent)
        self.claims = ClaimSender(self)  # the claims we send
        self.answers = ClaimAnswers(self)  # the claims we answer
        agent.on_settled.append(self._settled)
        # A domain removed from trust is no member any more (Membership.members), with no
        # SWIM event: every workflow is looked at again (a rare change).
        agent.on_trust_change.append(self._trust_changed)

    # ---- the cores ---------------------------------------------------------------------

    def core_for(self, active: Active) -> Takeover | None:
        """The takeover core of a committed, running workflow this agent takes part in."""
        a = self.agent
        row = active.row
        if active.progress is None or not row.placement or is_over(row):
            self.forget(row.id)
            return None
        core = self._cores.get(row.id)
        if core is None and row.id in self._prepared:
            participants = set(row.placement.values())
            original = coordinator_of(row.id)
            if a.domain not in participants | {original}:
                return None
            epoch, holder = held(row)
            neg = a.config.negotiation
            core = Takeover(a.domain, original, participants, acceptors=row.acceptors,
                            epoch=epoch, coordinator=holder,
                            takeover_after_s=neg.takeover_after_s or 10.0,
                            claim_timeout_s=max(1.0, neg.prepare_timeout_s),
                            # Our own grant on record, our acting not: the claim was cut
                            # short by a restart; it is asked again, never assumed won.
                            claiming=holder == a.domain and row.coordinator != a.domain)
            self._cores[row.id] = core
            for member in core.electorate:
                self._by_member.setdefault(member, set()).add(row.id)
            self._due.add(row.id)  # a new core: told of its coordinator in the next turn
            self.sleep.wake()
            if core.role is Role.ACTING and core.epoch > 0:
                self._restored.add(row.id)
            if core.role is not Role.FOLLOWING and core.epoch > 0:
                self._rebuilt.add(row.id)
        return core

    async def prepare(self, active: Active) -> None:
        """Before its core is built: the committed round's acceptors into a participant's
        row (from the PREPARE it voted on), and a grant this agent made while it held no
        step of the workflow (an extra acceptor, given a step by a re-placement since)."""
        a = self.agent
        row = active.row
        changed = False
        if not row.acceptors and coordinator_of(row.id) != a.domain:
            info = await a.store.get_hold_tx(row.id, row.round)
            if info is not None:
                acceptors = wire.tx_from_bytes(info.tx).acceptors
                if acceptors:
                    row.acceptors, changed = list(acceptors), True
        granted = await self.answers.records.get(row.id)
        if granted is not None and granted[0] > held(row)[0]:
            row.granted_epoch, row.granted_to = granted
            changed = True
        if changed:
            await a.save(active)
        epoch, holder = held(row)
        if holder == a.domain and epoch > 0:  # our claim: the grants it had, from disk
            await self.certificates.restore(row, epoch)
        self._prepared.add(row.id)

    def prepared(self, workflow_id: str) -> bool:
        return workflow_id in self._prepared

    def acting(self, active: Active) -> bool:
        """Is this agent the coordinator of the workflow (original, or agreed successor)?"""
        core = self.core_for(active)
        if core is None:
            return active.row.coordinator == self.agent.domain
        return core.role is Role.ACTING

    # ---- events --------------------------------------------------------------------

    def track(self, workflow_id: str) -> None:
        """A workflow committed here (it has its progress now): look at it next turn."""
        self._due.add(workflow_id)
        self.sleep.wake()

    def member_changed(self, domain: str) -> None:
        """Membership: `domain` changed state (joined, suspected, died, left, came back):
        wake the loop for the workflows whose electorate holds it, and those only."""
        workflows = self._by_member.get(domain)
        if workflows:
            self._due.update(workflows)
            self.sleep.wake()

    def _trust_changed(self) -> None:
        if self._cores:
            self._due.update(self._cores)
            self.sleep.wake()

    def _settled(self, workflow_id: str) -> None:
        if workflow_id not in self.agent.active:  # it ended here: nothing to watch
            self.forget(workflow_id)

    def _arm(self, workflow_id: str, core: Takeover) -> None:
        """Keep the core's timer in the heap; wake the loop if it is earlier than before."""
        timer = core.get_timer()
        if timer is None:
            self._armed.pop(workflow_id, None)
            return
        if self._armed.get(workflow_id) == timer:
            return
        self._armed[workflow_id] = timer
        heapq.heappush(self._timers, (timer, workflow_id))
        # Parked towards a later deadline (or none): sleep again towards this one. A busy
        # loop reads the heap before it sleeps anyway.
        if self.sleep.parked and (self.sleep.deadline is None or timer < self.sleep.deadline):
            self.sleep.wake()

    def _next_timer(self) -> float | None:
        while self._timers:
            timer, workflow_id = self._timers[0]
            if self._armed.get(workflow_id) == timer:
                return timer
            heapq.heappop(self._timers)  # stale: re-armed or disarmed since
        return None

    def _due_timers(self, now: float) -> set[str]:
        due = set()
        while (timer := self._next_timer()) is not None and timer <= now:
            _, workflow_id = heapq.heappop(self._timers)
            del self._armed[workflow_id]
            due.add(workflow_id)
        return due

    # ---- the loop ----------------------------------------------------------------------

    async def run(self) -> None:
        """Watch the coordinators of the workflows this agent takes part in: each turn
        looks at the workflows an event named and those whose timer is due, then sleeps
        until the next timer or event."""
        a = self.agent
        self._due.update(a.active)  # restored at start: each gets its core
        while not a.stopping:
            due, self._due = self._due, set()
            due |= self._due_timers(a.now())
            for workflow_id in sorted(due):
                await self._look(workflow_id)
            if not self._due:
                await self.sleep.until(self._next_timer())

    async def _look(self, workflow_id: str) -> None:
        """Tell one workflow's core what membership says of its coordinator and
        participants, and fire its timer if due."""
        a = self.agent
        active = a.active.get(workflow_id)
        if active is None:  # ended meanwhile
            self.forget(workflow_id)
            return
        if workflow_id not in self._prepared and active.progress is not None \
                and active.row.placement and not is_over(active.row):
            async with self.answers.granting.hold(workflow_id):  # no claim answered meanwhile
                await self.prepare(active)
            if a.active.get(workflow_id) is not active:
                return
        core = self.core_for(active)
        self._due.discard(workflow_id)  # a core made just now: this look is its first
        if core is None:
            self.forget(workflow_id)
            return
        self.looked_at[workflow_id] = self.looked_at.get(workflow_id, 0) + 1
        now = a.now()
        if workflow_id in self._rebuilt:  # before its claim goes again (see replay)
            self._rebuilt.discard(workflow_id)
            if actions := self.certificates.replay(workflow_id, core, now):
                await self.apply(active, core, actions)
                if a.active.get(workflow_id) is not active:
                    return
        if workflow_id in self._restored:
            self._restored.discard(workflow_id)
            if await a.coordination.after_progress(active):
                return  # it ended; else the next result looks again
        if core.role is not Role.ACTING and a.membership is not None:
            # As the workflows act on membership: a DEAD verdict counts once it stood
            # for the loss grace (until then the coordinator reads SUSPECT, and only
            # takeover_after_s of it makes it gone); LEFT at once.
            state = a.membership.state_for_work(core.coordinator)
            dead = frozenset(d for d in core.participants if a.membership.lost(d))
            await self.apply(active, core, core.step(now, Watch(state, dead)))
        timer = core.get_timer()
        if timer is not None and timer <= now:
            await self.apply(active, core, core.step(now, Timer()))
        self._arm(workflow_id, core)

    async def apply(self, active: Active, core: Takeover, actions: list[Action]) -> None:
        a = self.agent
        row = active.row
        for action in actions:
            if isinstance(action, Persist):
                row.granted_epoch, row.granted_to = action.epoch, action.coordinator
                follows = action.coordinator != a.domain
                if follows:
                    row.epoch, row.coordinator = action.epoch, action.coordinator
                await a.save(active)
                if follows:
                    self.report_again(active)
                    self._coordinator_changed(row.id)
            elif isinstance(action, SendClaim):
                self.claim(active, core, action)
            elif isinstance(action, Act):
                row.epoch, row.coordinator = action.epoch, a.domain
                await a.save(active)
                a.metrics.takeovers.inc()
                self._coordinator_changed(row.id)  # a held-back workflow here: not held
                log.warning("%s: took over as coordinator in epoch %d (%s was gone)",
                            row.id, action.epoch, coordinator_of(row.id) if action.epoch == 1
                            else "the coordinator of the previous epoch")
                if not await a.coordination.after_progress(active):
                    await a.save(active)
            elif isinstance(action, Unproven):
                # Not followed (the core's rule): a lie, or a true epoch whose proof the
                # denier lacks; its holder's own claim or answer shows it if it won.
                a.metrics.rejected_messages.labels("unproven_denial").inc()
                log.warning("%s: %s says %s holds coordinator epoch %d, without proof: not"
                            " followed (still %s epoch %d)", row.id, action.voter,
                            action.holder, action.held_epoch,
                            "acting in" if core.role is Role.ACTING else "claiming",
                            core.epoch)
        if self._cores.get(row.id) is core:
            self._arm(row.id, core)

    def _coordinator_changed(self, workflow_id: str) -> None:
        """The coordinator followed here changed: a workflow held back here (self-fencing,
        runtime.in_doubt) asks the new one at once; a successor's wait for a fresh
        majority before a re-placement round ends (its epoch is over)."""
        self.agent.participation.in_doubt.coordinator_changed(workflow_id)
        self.certificates.wake(workflow_id)

    def core_of(self, workflow_id: str) -> Takeover | None:
        return self._cores.get(workflow_id)

    def claim(self, active: Active, core: Takeover, action: SendClaim) -> None:
        """Send a claim until answered, unless it is on its way already."""
        self.claims.send(active, core, action)

    async def end_known(self, active: Active, end: Ended, told_by: str) -> bool:
        """The workflow's end is known here (verified by the caller: a claim's answer, or
        an end notice of an epoch below our claim, taken since the claim had not won).
        Claiming or acting, we tell it on in our epoch (the core's Announce): those that
        granted us refuse a lower epoch's end, and wait for ours. False: the end is the
        coordinator's we follow, and only ends here."""
        a = self.agent
        row = active.row
        core = self._cores.get(row.id)
        if is_over(row) or (core is None and row.id in self._prepared):
            return False
        if core is not None:
            announced = [x.epoch for x in core.step(a.now(), EndKnown())
                         if isinstance(x, Announce)]
        else:  # not looked at since a restart: a claim of ours is on record, if any
            epoch, holder = held(row)
            announced = [epoch] if holder == a.domain and epoch > 0 else []
        if not announced:
            return False
        row.epoch, row.coordinator = announced[0], a.domain  # written with the end
        log.warning("%s: ended before our claim of epoch %d won (%s says %s)", row.id,
                    announced[0], told_by, end.final.name)
        return await a.coordination.end_with(active, end)

    # ---- a claim received, a winner shown ----------------------------------------------

    async def on_claim(self, sender: str,
                       claim: peer_pb2.TakeoverClaim) -> peer_pb2.TakeoverAnswer:
        """A claim received (the peer service): agent/runtime/takeover_grants.py."""
        return await self.answers.on_claim(sender, claim)

    async def follow_proven(self, active: Active, winner: str,
                             certificate: peer_pb2.EpochCertificate) -> bool:
        """`winner` shows its epoch certificate (with its claim, or its answer to ours):
        verified, it is fed to the core (`Proven`), which follows it if that epoch is
        not below ours. True when this agent now follows `winner`. A certificate that
        does not hold is refused and counted (its reason), and changes nothing."""
        core = self.core_for(active)
        proven = self.certificates.proven(active.row.id, winner, certificate) \
            if core is not None else None
        if proven is None:
            return False
        before = (core.epoch, core.coordinator)
        await self.apply(active, core, core.step(self.agent.now(), proven))
        if (core.epoch, core.coordinator) != before:
            log.info("%s: %s proved it won coordinator epoch %d: following it",
                     active.row.id, winner, proven.epoch)
        return (core.epoch, core.coordinator) == (proven.epoch, winner)

    def report_again(self, active: Active) -> None:
        """A new coordinator is followed here: it collects the results, ours again (the
        old coordinator may have been the only one to hear them)."""
        if active.progress is None:
            return
        for step in active.progress.steps.values():
            if step.domain == self.agent.domain and step.state in TERMINAL_STEP_STATES:
                self.agent.participation.report(active, step.id)

    async def follow(self, active: Active | None, row: WorkflowRow, epoch: int,
                     coordinator: str) -> None:
        """An end notice of a later epoch than held here: its sender coordinates now."""
        if epoch <= held(row)[0]:
            return
        row.granted_epoch, row.granted_to = epoch, coordinator
        row.epoch, row.coordinator = epoch, coordinator
        core = self._cores.get(row.id)
        if core is not None:
            core.step(self.agent.now(), Adopted(epoch, coordinator))
            self._arm(row.id, core)
        if active is None:
            await self.agent.store.save_workflow(row)
        else:
            self._coordinator_changed(row.id)

    def forget(self, workflow_id: str) -> None:
        self.certificates.forget(workflow_id)
        self.proofs.forget(workflow_id)
        core = self._cores.pop(workflow_id, None)
        self._armed.pop(workflow_id, None)  # its heap entry is stale now
        self._restored.discard(workflow_id)
        self._rebuilt.discard(workflow_id)
        self._prepared.discard(workflow_id)
        self.looked_at.pop(workflow_id, None)
        if core is not None:
            for member in core.electorate:
                workflows = self._by_member.get(member)
                if workflows is not None:
                    workflows.discard(workflow_id)
                    if not workflows:
                        del self._by_member[member]
