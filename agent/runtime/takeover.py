"""Coordinator takeover, the shell: a committed workflow finishes without its coordinator.

The I/O around agent/core/workflow/takeover.py (one core per committed workflow this
agent takes part in). No tick: the loop sleeps until the earliest `get_timer()` of
its cores, or until an event wakes it for the workflows it concerns. A member's state
change (Membership) wakes it for the workflows whose electorate holds that member
(an index member -> workflows), which are told the membership state of the coordinator
they follow (`Watch`); a workflow committed here (`track`) is looked at once, so its
core starts watching. A core that claims has its claims sent through
the Takeover RPC (`TakeoverClaim`), and their answers fed back. What a core asks to
persist (the epoch granted, and to whom) is in the workflow's row before any claim
or answer leaves (`granted_epoch`, `granted_to`; and `epoch`, `coordinator`: the
coordinator this agent follows or is).

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
hold's transaction, `hold_txs`) before its core is built, so that a later change of
its row (a re-placement) cannot change them. An extra acceptor that holds no step has
no workflow row: it grants only on the proof the claim carries, the round as its
coordinator signed it and a COMMIT of it (agent/runtime/round_proofs.py; the rule is
agent/core/workflow/acceptor_grant.py), to a participant of that round, and keeps its
grant in `takeover_grants`, written before the answer leaves. Its acceptor records
never grant on their own (a participant can plant one: a recovery PaxosPrepare carries
the round as its proposer states it); they refuse a proof that contradicts them. Both
refusals are counted. Grant rows and acceptor records are compacted together, in one
transaction, with their workflow's end; a grant is once per epoch either way.

Epoch certificates (agent/core/workflow/epoch_certificate.py, and the shell's part,
agent/runtime/epoch_certs.py): every grant names, signed, the committed round and the
electorate it is counted in; the successor keeps the grants it receives as evidence,
and a majority of them is the proof of its epoch that its re-placement rounds carry.
The grants are on disk before they count; a successor restarted (acting, or with its
claim cut short) reads them back before its core is built and feeds them to the core
as the grants they are, so its claim goes again only to the members it lacks. An
acting successor's claims carry its certificate (`TakeoverClaim.epoch_certificate`),
and so does its denial of a rival's claim of its epoch (`TakeoverAnswer.
epoch_certificate`): a member that claimed that epoch itself, or follows one that did,
verifies it and follows the winner at once (the core's `Proven`), then grants it.

A participant that holds a vote of the workflow but has not learned its decision (in
doubt, just back from a restart) answers a claim "in doubt here"
(`TakeoverAnswer.in_doubt`): neither a grant nor a refusal. The claimant asks it again
from the shortest pause: it learns the COMMIT within a recovery ballot. A held-back
workflow here (self-fencing, runtime.in_doubt) is told when the coordinator followed
changes, and asks the new one at once.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from typing import TYPE_CHECKING

from fedorch.core.identity.authority import Facts, Refused, authorize, coordinator_of
from fedorch.core.workflow.acceptor_grant import acceptor_grant
from fedorch.core.workflow.lifecycle import Ended
from fedorch.core.workflow.progress import TERMINAL_STEP_STATES
from fedorch.core.workflow.takeover import (
    Act,
    Adopted,
    Announce,
    Deny,
    EndKnown,
    Grant,
    Persist,
    Role,
    SendClaim,
    Takeover,
    Timer,
    Watch,
    may_grant,
)
from fedorch.gen.fedorch.v1 import peer_pb2
from fedorch.runtime import paxos_wire as wire
from fedorch.runtime.context import PEER_RPC_TIMEOUT_S, Active
from fedorch.runtime.convert import is_over, state_of
from fedorch.runtime.epoch_certs import EpochCertificates, held
from fedorch.runtime.keyed_locks import KeyedLocks
from fedorch.runtime.peer_service import count_refusal
from fedorch.runtime.peers import PeerCallError
from fedorch.runtime.round_proofs import RoundProofs
from fedorch.runtime.store.store import WorkflowRow
from fedorch.runtime.wakeups import Sleep

if TYPE_CHECKING:
    from fedorch.runtime.context import AgentContext

log = logging.getLogger("fedorch.takeover")

# A claim is sent again to a member that does not answer until it does: a returning
# old coordinator learns from it that its epoch is over.
CLAIM_PATIENCE_S = 24 * 3600.0
# A participant in doubt answered the claim: asked again after this (then the backoff),
# not after the claim timeout. It learns the decision within a recovery ballot.
IN_DOUBT_AGAIN_S = 0.2


class Takeovers:
    def __init__(self, agent: AgentContext) -> None:
        self.agent = agent
        self._cores: dict[str, Takeover] = {}
        self._claims: dict[tuple[str, str, int], asyncio.Task] = {}  # (wf, to, epoch)
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
        self._granting = KeyedLocks()  # one claim at a time per workflow: grant once
        # The workflows that may have a `takeover_grants` row (read once, then kept as
        # grants are made): every committed workflow asks, and almost none has one, so
        # the others are answered without a read. A row compaction deleted is dropped
        # from it at its next read.
        self._grant_rows: set[str] | None = None
        # The grants to us as evidence, and the epoch certificates made of them.
        self.certificates = EpochCertificates(self)
        # The proof of a committed round an acceptor that missed it needs (and checks).
        self.proofs = RoundProofs(agent)
        agent.on_settled.append(self._settled)
        # A domain removed from trust is no member any more (Membership.members), with no
        # SWIM event: every workflow is looked at again (a rare change).
        agent.on_trust_change.append(self._trust_changed)

    # ---- the cores ---------------------------------------------------------------------

    def _core(self, active: Active) -> Takeover | None:
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

    async def _prepare(self, active: Active) -> None:
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
        granted = await self._grant_record(row.id)
        if granted is not None and granted[0] > held(row)[0]:
            row.granted_epoch, row.granted_to = granted
            changed = True
        if changed:
            await a.save(active)
        epoch, holder = held(row)
        if holder == a.domain and epoch > 0:  # our claim: the grants it had, from disk
            await self.certificates.restore(row, epoch)
        self._prepared.add(row.id)

    def acting(self, active: Active) -> bool:
        """Is this agent the coordinator of the workflow (original, or agreed successor)?"""
        core = self._core(active)
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
            async with self._granting.hold(workflow_id):  # no claim answered meanwhile
                await self._prepare(active)
            if a.active.get(workflow_id) is not active:
                return
        core = self._core(active)
        self._due.discard(workflow_id)  # a core made just now: this look is its first
        if core is None:
            self.forget(workflow_id)
            return
        self.looked_at[workflow_id] = self.looked_at.get(workflow_id, 0) + 1
        now = a.now()
        if workflow_id in self._rebuilt:  # before its claim goes again (see replay)
            self._rebuilt.discard(workflow_id)
            if actions := self.certificates.replay(workflow_id, core, now):
                await self._apply(active, core, actions)
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
            await self._apply(active, core, core.step(now, Watch(state, dead)))
        timer = core.get_timer()
        if timer is not None and timer <= now:
            await self._apply(active, core, core.step(now, Timer()))
        self._arm(workflow_id, core)

    async def _apply(self, active: Active, core: Takeover, actions: list) -> None:
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
                    self._report_again(active)
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
        key = (active.row.id, action.to, action.epoch)
        task = self._claims.get(key)
        if task is None or task.done():
            task = self.agent.spawn(self._claim(active, core, action),
                                    name=f"takeover {active.row.id} claim to {action.to}")
            if task is not None:
                self._claims[key] = task

    async def _claim(self, active: Active, core: Takeover, claim: SendClaim) -> None:
        """Send one claim until answered (or the claim is over), and feed in the answer.
        A core that announced the end (`ended`) claims no more: its end notices, resent
        until answered, tell the members that never answered whom to follow."""
        a = self.agent
        row = active.row
        deadline = a.now() + CLAIM_PATIENCE_S
        backoff = 0.2
        in_doubt_there = False
        # An acceptor holding no step may have missed the committed round: the claim
        # shows it (agent/runtime/round_proofs.py).
        extra = claim.to not in core.participants and claim.to != core.original
        try:
            while core.epoch == claim.epoch and core.coordinator == a.domain and not core.ended:
                endpoint = a.endpoint_of(claim.to, row.endpoints)
                if endpoint is not None:
                    message = peer_pb2.TakeoverClaim(workflow_id=row.id, epoch=claim.epoch)
                    if core.role is Role.ACTING:  # won: the proof goes with it
                        if (cert := self.certificates.certificate(row.id)) is not None:
                            message.epoch_certificate.CopyFrom(cert)
                    proof = await self.proofs.claim_proof(row) if extra else None
                    if proof is not None:
                        message.round_tx.CopyFrom(proof[0])
                        message.commit.CopyFrom(proof[1])
                    try:
                        body, envelope = await a.peers.call(
                            endpoint, "Takeover", recipient=claim.to, expect="takeover_answer",
                            timeout=PEER_RPC_TIMEOUT_S, takeover_claim=message)
                    except PeerCallError as e:
                        log.debug("takeover claim of %s to %s: %s", row.id, claim.to, e)
                    else:
                        answer = body.takeover_answer
                        if answer.workflow_id == row.id and answer.final_state \
                                and not answer.granted and claim.to in core.audience:
                            await self._ended_meanwhile(active, core, answer)
                            return
                        if answer.workflow_id == row.id and answer.in_doubt \
                                and not answer.granted and claim.to in core.participants:
                            # Up, and about to learn the COMMIT: asked again soon, from
                            # the shortest pause the first time (it answered, so it is
                            # reachable; the pause grew while it was down), then the
                            # backoff as before (one that says so for ever is not asked
                            # more often than an unreachable one).
                            log.debug("takeover claim of %s to %s: in doubt there",
                                      row.id, claim.to)
                            if not in_doubt_there:
                                in_doubt_there, backoff = True, IN_DOUBT_AGAIN_S
                        elif answer.workflow_id == row.id and answer.epoch == claim.epoch:
                            if answer.granted:  # on disk before it counts
                                await self.certificates.keep(row, core, claim.to, answer,
                                                             envelope)
                            if a.active.get(row.id) is not active:
                                return
                            if not answer.granted and answer.holder == claim.to \
                                    and answer.HasField("epoch_certificate") \
                                    and await self.follow_proven(
                                        active, claim.to, answer.epoch_certificate):
                                return  # it won our epoch (or a later one): followed
                            event = Grant(claim.to, claim.epoch) if answer.granted else Deny(
                                claim.to, claim.epoch, answer.held_epoch, answer.holder)
                            await self._apply(active, core, core.step(a.now(), event))
                            return
                if a.now() + backoff > deadline or not await a.sleep(backoff):
                    return
                backoff = min(backoff * 2, 5.0)
        finally:
            self._claims.pop((row.id, claim.to, claim.epoch), None)

    async def _ended_meanwhile(self, active: Active, core: Takeover,
                               answer: peer_pb2.TakeoverAnswer) -> None:
        """A member of the workflow answered our claim with its end, as its coordinator
        told it (a participant's word on its own work). Still claiming or acting, we make
        that end ours and tell everyone, those that granted us and follow us too: there
        is one end (Participation.ended asks `end_known`). Otherwise it only ends here."""
        await self.agent.participation.ended(active.row.id, answer.final_state, answer.reason,
                                             told_by=answer.holder or "a participant")

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

    # ---- a claim received ---------------------------------------------------------------

    async def on_claim(self, sender: str, claim: peer_pb2.TakeoverClaim) -> peer_pb2.TakeoverAnswer:
        """Grant `claim` (and follow its sender) if no other claimant holds its epoch here.
        One claim of a workflow at a time: two claimants of one epoch never both read
        "not granted yet" before either grant is written."""
        async with self._granting.hold(claim.workflow_id):
            return await self._on_claim(sender, claim)

    async def _on_claim(self, sender: str,
                        claim: peer_pb2.TakeoverClaim) -> peer_pb2.TakeoverAnswer:
        a = self.agent
        answer = peer_pb2.TakeoverAnswer(workflow_id=claim.workflow_id, epoch=claim.epoch)
        active = a.active.get(claim.workflow_id)
        row = active.row if active is not None else await a.store.get_workflow(claim.workflow_id)
        if row is None and a.participant.keys_of(claim.workflow_id):
            # A vote of ours, no decision learned yet (in doubt, just back from a
            # restart, or setting the workflow up): not a refusal. Our grant will come
            # with the COMMIT; the claimant asks again shortly (it would otherwise wait
            # its whole claim timeout, and this domain claim in its turn meanwhile).
            answer.in_doubt = True
            answer.error = "in doubt here: the decision is not learned yet"
            return answer
        if row is None or not row.placement:
            return await self._on_claim_as_acceptor(sender, claim, answer)
        if active is not None and row.id not in self._prepared and not is_over(row):
            await self._prepare(active)  # its grant record, if any, is in the row now
        elif active is None:
            granted = await self._grant_record(row.id)
            if granted is not None and granted[0] > held(row)[0]:
                row.granted_epoch, row.granted_to = granted
        try:
            authorize("takeover_claim", sender, Facts(
                workflow_id=row.id, epoch=claim.epoch, participants=set(row.placement.values())))
        except Refused as e:
            count_refusal(a, sender, "takeover_claim", e)
            answer.error = e.detail
            return answer
        answer.held_epoch, answer.holder = held(row)
        again = (answer.held_epoch, answer.holder) == (claim.epoch, sender)
        if is_over(row):  # an ended workflow is not taken over: its end instead
            answer.final_state, answer.reason = state_of(row), row.reason
            return answer
        if not may_grant(answer.held_epoch, answer.holder, claim.epoch, sender) \
                and claim.HasField("epoch_certificate") and active is not None \
                and await self.follow_proven(active, sender, claim.epoch_certificate):
            # The sender won the epoch we hold for another (our own claim of it, or a
            # claimant that lost it): followed now, and granted it below like any
            # claimant of the epoch held here (the core's Proven).
            answer.held_epoch, answer.holder = held(row)
        if not may_grant(answer.held_epoch, answer.holder, claim.epoch, sender):
            if answer.holder == a.domain and active is not None and self.acting(active):
                # A rival claimant of our epoch: our proof, so that it follows us now.
                if (cert := self.certificates.certificate(row.id)) is not None:
                    answer.epoch_certificate.CopyFrom(cert)
            return answer
        core = self._core(active) if active is not None else None
        if core is not None:
            await self._apply(active, core, core.step(a.now(), Adopted(claim.epoch, sender)))
        else:  # not running here yet (or not set up): the grant is all there is to keep
            row.granted_epoch, row.granted_to = claim.epoch, sender
            row.epoch, row.coordinator = claim.epoch, sender
            if active is not None:
                await a.save(active)
            else:
                await a.store.save_workflow(row)
        answer.granted = True
        answer.held_epoch, answer.holder = claim.epoch, sender
        answer.committed_round = row.round
        answer.electorate[:] = sorted(self.certificates.electorate_of(row))
        log.info("%s: granted coordinator epoch %d to %s", row.id, claim.epoch, sender)
        if again and active is not None:  # asked again (it restarted, say): results again
            self._report_again(active)
        return answer

    async def follow_proven(self, active: Active, winner: str,
                             certificate: peer_pb2.EpochCertificate) -> bool:
        """`winner` shows its epoch certificate (with its claim, or its answer to ours):
        verified, it is fed to the core (`Proven`), which follows it if that epoch is
        not below ours. True when this agent now follows `winner`. A certificate that
        does not hold is refused and counted (its reason), and changes nothing."""
        core = self._core(active)
        proven = self.certificates.proven(active.row.id, winner, certificate) \
            if core is not None else None
        if proven is None:
            return False
        before = (core.epoch, core.coordinator)
        await self._apply(active, core, core.step(self.agent.now(), proven))
        if (core.epoch, core.coordinator) != before:
            log.info("%s: %s proved it won coordinator epoch %d: following it",
                     active.row.id, winner, proven.epoch)
        return (core.epoch, core.coordinator) == (proven.epoch, winner)

    async def _on_claim_as_acceptor(self, sender: str, claim: peer_pb2.TakeoverClaim,
                                    answer: peer_pb2.TakeoverAnswer) -> peer_pb2.TakeoverAnswer:
        """A claim of a workflow this agent holds no step of: as an acceptor of its
        committed round it is a member of the electorate all the same (Paxos Commit). It
        grants on the proof the claim carries, never on its records alone (a lying
        participant can plant one); agent/core/workflow/acceptor_grant.py decides."""
        a = self.agent
        wf = claim.workflow_id
        records = await self.proofs.records(wf)
        proof, proof_error = self.proofs.check(wf, claim)
        held_here = await self._grant_record(wf) or (0, coordinator_of(wf))
        verdict = acceptor_grant(a.domain, sender, claim.epoch, held_here, records,
                                 proof, proof_error)
        if verdict.granted:
            try:  # the authority table's row too (the peer service checked it first)
                authorize("takeover_claim", sender, Facts(
                    workflow_id=wf, epoch=claim.epoch, participants=verdict.basis.participants))
            except Refused as e:
                count_refusal(a, sender, "takeover_claim", e)
                answer.error = e.detail
                return answer
        if verdict.refused:
            answer.error = verdict.detail
            if proof is None and proof_error is None and verdict.reason == "not_committed":
                return answer  # nothing known here, nothing shown: no fault of the sender
            count_refusal(a, sender, "takeover_claim", Refused(verdict.reason, verdict.detail))
            if verdict.reason == "proof_disagrees":
                log.error("%s: %s claimed epoch %d with a round that contradicts this"
                          " acceptor's record: %s", wf, sender, claim.epoch, verdict.detail)
            return answer
        answer.held_epoch, answer.holder = held_here
        if not verdict.granted:
            return answer
        await self._grant_record(wf)  # the known rows are loaded before one is added
        await a.store.apply([(
            "INSERT OR REPLACE INTO takeover_grants(workflow_id, epoch, holder) VALUES (?, ?, ?)",
            (wf, claim.epoch, sender))])
        self._grant_rows.add(wf)  # type: ignore[union-attr]
        answer.granted = True
        answer.held_epoch, answer.holder = claim.epoch, sender
        # The round and electorate the grant is counted in: a certificate counts it only
        # if it is the committed round's.
        answer.committed_round = verdict.basis.round
        answer.electorate[:] = sorted(verdict.basis.acceptors)
        log.info("%s: granted coordinator epoch %d to %s (an acceptor holding no step,"
                 " shown round %d)", wf, claim.epoch, sender, verdict.basis.round)
        return answer

    async def _grant_record(self, workflow_id: str) -> tuple[int, str] | None:
        """The epoch this agent granted for `workflow_id` while it held no step of it."""
        store = self.agent.store
        if self._grant_rows is None:
            self._grant_rows = {r[0] for r in await store.select(
                "SELECT workflow_id FROM takeover_grants")}
        if workflow_id not in self._grant_rows:
            return None
        rows = await store.select(
            "SELECT epoch, holder FROM takeover_grants WHERE workflow_id = ?", (workflow_id,))
        if not rows:
            self._grant_rows.discard(workflow_id)
            return None
        return int(rows[0][0]), str(rows[0][1])

    def _report_again(self, active: Active) -> None:
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
