"""A participant's reservations in doubt, and its recovery after a restart.

A class of its own, built by Participation (agent/runtime/participation.py) and
handed what it uses of it (Settles: how a decision or an end is applied, how a
reloaded workflow's progress is rebuilt), its StepRuns, and its per-workflow
COMMIT locks. A YES voter never releases on a timer: when a lease passes without a decision it
asks the coordinator (classic 2PC), or the in-doubt termination of Paxos Commit
(runtime.consensus) drives a recovery ballot; a RESERVED reservation whose
YES never became durable ends with its lease. After a restart, `recover`
stops what is left of interrupted attempts, reloads reservations and running
workflows, resolves interrupted attempts (retried only when idempotent, and in
another coordinator's workflow only once that coordinator has said it has not
ended meanwhile), and puts YES votes without a learned decision back in doubt.
No step of a workflow read back at start-up starts until a message of it has been
heard in this life (self-fencing after a restart, agent/core/workflow/self_fencing.py):
a step held back for that has the coordinator asked again, with a backoff, until it
answers (`_ask_until_heard`); an answer that the workflow ended ends it here. The
coordinator asked is the one this agent follows: when that changes (a takeover,
`coordinator_changed`), the asking turns to the new one at once; while it is lost here
(LEFT, or DEAD past its loss grace: Membership.state_for_work; within the grace it is
still asked), the other participants are asked instead, and the one that proves it
acts as successor (its epoch certificate) is followed and its answer taken; the round's
acceptors that hold no step as far as this agent knows are asked too, since a successor
proves its epoch only as a member of the electorate, under Paxos Commit the round's
acceptors (runtime.who_coordinates). A COMMIT learned without the coordinator (from
the acceptors, a peer, or an answer without placement epochs) is held back by the same
asking.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Protocol

from fedorch.core.membership.swim_types import MemberState
from fedorch.core.negotiation.messages import Ballot
from fedorch.core.negotiation.participant import Hold, HoldState
from fedorch.core.workflow import self_fencing as rule
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.core.workflow.progress import TERMINAL_STEP_STATES, Progress, StepState
from fedorch.gen.fedorch.v1 import peer_pb2, spec_pb2
from fedorch.runtime import paxos_wire as wire
from fedorch.runtime import who_coordinates
from fedorch.runtime.context import Active
from fedorch.runtime.convert import state_of
from fedorch.runtime.peers import PeerCallError
from fedorch.runtime.ports import monotonic_at
from fedorch.runtime.step_runs import INTERRUPTED, StepRuns
from fedorch.runtime.store.store import Store
from fedorch.runtime.wakeups import Sleep

if TYPE_CHECKING:
    from fedorch.runtime.context import AgentContext
    from fedorch.runtime.keyed_locks import KeyedLocks

log = logging.getLogger("fedorch.participant")
# A restored workflow's coordinator, unreachable, is asked again after this, doubling.
ASK_AGAIN_FIRST_S = 0.5
ASK_AGAIN_MAX_S = 8.0
# The work-facing member states (Membership.state_for_work) in which a domain is lost.
LOST = frozenset({MemberState.DEAD.value, MemberState.LEFT.value})


def lease_after_restart(a: AgentContext, lease_expires_ms: int) -> float:
    """A stored lease expiry (wall ms, see reservation_row) as monotonic time now.

    Monotonic readings do not survive a restart, so the expiry is stored as wall time and
    re-based here. The wall clock may have stepped while the agent was down; the lease
    then ends early or late by the step. Neither is unsafe: an expired RESERVED hold had
    not said YES (it is released), and a PREPARED one is only asked about, never released
    on a timer. It is capped at one full lease from now, so a step back cannot make a
    reservation outlive its lease by more than the time the agent was down.
    """
    now = a.now()
    return min(monotonic_at(a.clock, lease_expires_ms), now + a.config.negotiation.lease_s)


def placed_elsewhere(active: Active, answer: peer_pb2.DecisionAnswer) -> list[str] | None:
    """The core's reading of a coordinator's answer for this agent's unfinished steps of
    `active` (agent/core/workflow/self_fencing.py, `taken_steps`): None, no epochs in
    it; else the steps a loss of this domain placed elsewhere (empty: contact). Logged
    here when it is not contact."""
    held = {} if active.progress is None else {
        s.id: s.epoch for s in active.progress.local_steps()
        if s.state not in TERMINAL_STEP_STATES}
    taken = rule.taken_steps(held, answer.step_epochs)
    wf = active.row.id
    if taken is None:
        # An agent of an older version, or not the workflow's coordinator any more:
        # asked again until one says where the steps are, or the workflow ends.
        log.info("%s: the coordinator's answer carries no placement epochs: nothing of it"
                 " starts here yet", wf)
    elif taken:
        # Their epoch moved on: nothing of the workflow starts here; its end will come.
        log.info("%s: steps %s are no longer placed here (placement epochs %s): nothing"
                 " of it starts here", wf, ", ".join(taken),
                 ", ".join(str(answer.step_epochs[s]) for s in taken))
    return taken


class Settles(Protocol):
    """What InDoubt uses of Participation."""

    async def decide(self, sender: str, envelope: peer_pb2.Envelope, *,
                     from_coordinator: bool = True) -> peer_pb2.Ack: ...

    async def ended(self, workflow_id: str, final_state: int, reason: str) -> None: ...

    def ensure_progress(self, active: Active, spec: spec_pb2.WorkflowSpec) -> Progress: ...

    async def fold_in_results(self, active: Active) -> None: ...


class InDoubt:
    """Reservations in doubt (the timer loop) and the participant's recovery.
    `committing`: the workflows whose COMMIT is being applied (Participation's locks):
    an idle check leaves them alone."""

    def __init__(self, agent: AgentContext, settles: Settles, runs: StepRuns,
                 committing: KeyedLocks) -> None:
        self.agent = agent
        self._settles = settles
        self.runs = runs
        self._committing = committing
        self.sleep = Sleep("in-doubt", agent.metrics.loop_wakeups, agent.now)
        # Held-back workflows being asked about: set when the coordinator they follow
        # changes, so that the asking turns to the new one at once.
        self._followed_changed: dict[str, asyncio.Event] = {}
        # A restored workflow's step held back until it is heard from: ask its coordinator.
        runs.fencing.on_held = self._ask_for_contact

    def wake(self) -> None:
        """A timer may have moved earlier: let the timer loop look again."""
        self.sleep.wake()

    # ---- in doubt ---------------------------------------------------------------------

    async def timer_loop(self) -> None:
        """Ask coordinators about reservations whose lease passed without a decision, and
        (every lease period) about committed ones with nothing left to run here; drive
        the in-doubt Paxos Commit transactions (runtime.consensus); end RESERVED
        reservations whose lease passed before their YES was recorded.

        It sleeps until the earliest of the cores' timers and the next idle check, no
        polling: whatever moves a timer earlier wakes it (Participation.wake, on a vote,
        a tracked transaction or a termination message)."""
        a = self.agent
        next_idle_check = a.now() + a.config.negotiation.lease_s
        while not a.stopping:
            for hold in a.participant.due_queries(a.now()):
                a.spawn(self._ask(hold), name=f"in-doubt {hold.workflow_id}/{hold.round}")
            if a.now() >= next_idle_check:
                next_idle_check = a.now() + a.config.negotiation.lease_s
                for hold in self._idle_holds():
                    a.spawn(self._ask(hold), name=f"ended? {hold.workflow_id}")
            for hold in a.participant.expire(a.now()):
                await a.store.delete_reservation(hold.workflow_id, hold.round)
            try:
                await a.consensus.on_timer()
            except Exception as e:  # one transaction's trouble must not stop the loop
                a.task_failed("in-doubt termination", e)  # (a broken invariant does)
            timers = [t for t in (a.participant.get_timer(), a.consensus.termination.get_timer())
                      if t is not None]
            # The idle check only while a committed hold of another coordinator is here
            # (looked for only when no other timer wakes the loop anyway); a hold commits
            # after its vote, whose lease timer wakes this loop meanwhile.
            if timers or self._committed_elsewhere():
                timers.append(next_idle_check)
            else:
                next_idle_check = max(next_idle_check, a.now() + a.config.negotiation.lease_s)
            # Not sooner than 50 ms: a timer that is due but left armed (a query whose
            # coordinator is unreachable) must not spin the loop.
            await self.sleep.until(max(min(timers), a.now() + 0.05) if timers else None)

    def _committed_elsewhere(self) -> bool:
        a = self.agent
        return any(hold.state is HoldState.COMMITTED and hold.coordinator != a.domain
                   for hold in a.participant.holds())

    def _idle_holds(self) -> list[Hold]:
        """Committed holds of other coordinators' workflows with nothing to run here: the
        end notice may have been missed."""
        a = self.agent
        idle = []
        for hold in a.participant.holds():
            if hold.state is not HoldState.COMMITTED or hold.coordinator == a.domain \
                    or hold.workflow_id in self._committing:
                continue
            active = a.active.get(hold.workflow_id)
            if active is None or active.progress is None or all(
                    s.state in TERMINAL_STEP_STATES for s in active.progress.local_steps()):
                idle.append(hold)
        return idle

    async def _ask(self, hold: Hold) -> None:
        a = self.agent
        a.metrics.in_doubt_queries.inc()
        endpoint = a.endpoint_of(hold.coordinator) or hold.coordinator_endpoint
        if hold.coordinator == a.domain:
            answer = await a.coordination.answer_query(hold.workflow_id, hold.round)
        else:
            try:
                body, _ = await a.peers.call(
                    endpoint, "QueryDecision", recipient=hold.coordinator,
                    expect="decision_answer", timeout=a.config.negotiation.prepare_timeout_s,
                    decision_query=peer_pb2.DecisionQuery(workflow_id=hold.workflow_id,
                                                          round=hold.round),
                )
            except PeerCallError as e:
                log.info("in doubt on %s round %d: coordinator unreachable (%s)",
                         hold.workflow_id, hold.round, e.code)
                return
            answer = body.decision_answer
        if answer.final_state:
            # The end first: a COMMIT learned now, of a workflow that ended meanwhile (its
            # steps here perhaps placed elsewhere), must start nothing here, and a COMMIT
            # of a workflow over here starts nothing (Participation._set_up).
            await self._settles.ended(hold.workflow_id, answer.final_state,
                                      answer.final_reason or "ended (asked)")
        if answer.known:
            await self._learned_late(hold, answer)

    async def _learned_late(self, hold: Hold, answer: peer_pb2.DecisionAnswer) -> None:
        """Apply the decision an in-doubt query learned. A COMMIT is applied as one
        learned without the coordinator (agent/core/workflow/self_fencing.py, A COMMIT
        learned without the coordinator): the workflow is set up with nothing started.
        The COMMIT alone says nothing of later placements: with the workflow still
        running at the coordinator, its answer carries each step's placement epoch, and
        when none of the steps here is at a higher epoch there, the answer is contact and
        what is ready starts. A step here at a higher epoch was placed elsewhere (or
        failed) while this domain was cut off: nothing of the workflow starts here (its
        end will come). An answer without epochs (an agent of an older version) leaves
        the workflow held back until the coordinator answers with them (the asking that
        a held-back step starts, `_ask_until_heard`)."""
        a = self.agent
        wf = hold.workflow_id
        await self._settles.decide(hold.coordinator, answer.decision, from_coordinator=False)
        active = a.active.get(wf)
        if active is None or answer.final_state or placed_elsewhere(active, answer) != []:
            return
        self.runs.fencing.heard(wf)  # the coordinator says they are still placed here
        await self.runs.start_ready(active)

    # ---- recovery ---------------------------------------------------------------------

    async def recover(self) -> None:
        """Reload reservations and running workflows; interrupted attempts count as failed.
        Paxos Commit reservations: a decision learned before the crash is applied now;
        a YES without one is in doubt again (with the last ballot it used, if any)."""
        a = self.agent
        await self.runs.stop_leftovers()  # nothing of an interrupted attempt runs on
        learned = await a.consensus.recover()
        holds = []
        for r in await a.store.list_reservations():
            lease = lease_after_restart(a, r.lease_expires_ms)
            info = await a.store.get_hold_tx(r.workflow_id, r.round)
            tx = wire.held_tx(info) if info is not None else None
            holds.append(Hold(r.workflow_id, r.round, r.coordinator, HoldState(r.state),
                              list(r.steps), lease, r.coordinator_endpoint, next_query=lease,
                              tx=tx))
        a.participant.restore(holds, {k: v.commit for k, v in learned.items()})
        for row in await a.store.list_workflows():
            if state_of(row) is not WorkflowState.RUNNING:
                continue
            active = Active(row)
            a.active[row.id] = active
            # Nothing of it heard in this life yet: none of its steps starts until it is.
            self.runs.fencing.restored(row.id)
            self._settles.ensure_progress(active, spec_pb2.WorkflowSpec.FromString(row.spec))
            await self._settles.fold_in_results(active)  # and any that came during recovery
            if self._may_have_ended_meanwhile(active):
                # Resolved once its coordinator has said whether it ended meanwhile.
                a.spawn(self._resolve_after_asking(active), name=f"ended? {row.id}")
                continue
            await self._resolve_interrupted(active)
        for h in holds:
            if h.tx is None:
                continue
            value = learned.get(h.key)
            if value is not None:  # learned, then the agent stopped before applying it
                await a.consensus.learn(h.key, value, h.tx)
            elif h.state is HoldState.PREPARED and h.tx.coordinator != a.domain:
                ballot = await a.store.get_ballot(*h.key)
                a.consensus.track(h.tx, h.lease_expires, Ballot(*ballot) if ballot else None)

    async def _resolve_interrupted(self, active: Active) -> None:
        """Interrupted local attempts end (retried only when idempotent); results that
        may not have arrived go again; what is ready starts."""
        a = self.agent
        for step in active.progress.local_steps():
            if step.state is StepState.RUNNING:
                state = active.progress.interrupted(step.id, INTERRUPTED)
                await self.runs.after_step(active, step.id, state,
                                       ended_run=(step.attempts, "failed"))
            elif step.state in (StepState.SUCCEEDED, StepState.FAILED):
                self.runs.report(active, step.id)  # it may not have arrived
        await a.save(active)
        await self.runs.start_ready(active)

    def _may_have_ended_meanwhile(self, active: Active) -> bool:
        """Would recovery run an interrupted attempt again in a workflow another agent
        coordinates? Then it asks first: while this agent was down it may have been
        declared DEAD and the workflow ended without it (agent/runtime/coordination_loss.py),
        and an attempt started now would run for nothing, its result refused."""
        if active.row.coordinator == self.agent.domain:
            return False
        return any(s.state is StepState.RUNNING and s.idempotent
                   and s.attempts < s.max_attempts for s in active.progress.local_steps())

    async def _ask_coordinator(self, active: Active) -> peer_pb2.DecisionAnswer | None:
        """The answer of the coordinator this agent follows to a query about the
        workflow's round (None: unreachable). An answer with each step's placement epoch
        that shows none of the steps here placed elsewhere is a message of the workflow
        in this life (self-fencing after a restart, or after a COMMIT learned without
        the coordinator), noted as such here; any other is not."""
        a = self.agent
        row = active.row
        if self._gone(row.coordinator):
            # No answer will come from it, and a call would only hold this loop for its
            # whole deadline: a successor may act already (its claim missed here, or on
            # its way); it is one of the other participants or of the round's acceptors.
            found = await who_coordinates.ask(a, active)
            if found is None:
                return None
            asked, answer = found
        else:
            asked = (row.coordinator, row.epoch)
            hold = next((h for h in a.participant.holds() if h.workflow_id == row.id), None)
            endpoint = a.endpoint_of(row.coordinator, row.endpoints) \
                or (hold.coordinator_endpoint if hold is not None else None)
            if not endpoint:
                return None
            try:
                body, _ = await a.peers.call(
                    endpoint, "QueryDecision", recipient=row.coordinator,
                    expect="decision_answer", timeout=a.config.negotiation.prepare_timeout_s,
                    wait_for_ready=False,  # not reachable now: asked again after a pause
                    decision_query=peer_pb2.DecisionQuery(workflow_id=row.id,
                                                          round=row.round))
            except PeerCallError as e:
                log.info("%s: coordinator unreachable after the restart (%s)", row.id,
                         e.code)
                return None
            answer = body.decision_answer
        if (active.row.coordinator, active.row.epoch) != asked:
            # This agent granted a later epoch while the question was out: the coordinator
            # asked speaks for an epoch that is over here, so its answer (an end, say) is
            # refused as its end notice would be. Asked again, of the one followed now.
            log.info("%s: the answer of %s (epoch %d) came after this agent followed %s"
                     " (epoch %d): not taken", row.id, asked[0], asked[1],
                     active.row.coordinator, active.row.epoch)
            return None
        if a.active.get(row.id) is active and not answer.final_state \
                and placed_elsewhere(active, answer) == []:
            self.runs.fencing.heard(row.id)
        return answer

    def _gone(self, domain: str) -> bool:
        """Is `domain` lost to the workflows here: LEFT, or DEAD past its loss grace
        (Membership.state_for_work)? A coordinator held DEAD within its grace is not: it
        is still asked. The verdict may be false (a stalled or starved agent refutes it
        within the grace), and then it is the one that answers; a successor claims only
        once a participant has taken the coordinator as lost (its own grace passed) or
        silent past `takeover_after_s`, and its claim reaches this agent anyway. A coordinator that did die costs one failed call per
        ask (refused at once, or its deadline), with the asking's backoff."""
        membership = self.agent.membership
        return membership is not None and membership.state_for_work(domain) in LOST

    def _ask_for_contact(self, active: Active) -> None:
        """A step of a restored workflow is held back until the workflow is heard from in
        this life: ask its coordinator until it answers (StepRuns' fencing calls this
        once per workflow)."""
        self.agent.spawn(self._ask_until_heard(active), name=f"heard? {active.row.id}")

    def coordinator_changed(self, workflow_id: str) -> None:
        """The coordinator this agent follows for `workflow_id` changed (a takeover: it
        granted or heard a successor's claim, or acts itself now): a held-back workflow's
        asking goes to the new one at once, not after the pause the old one's silence
        grew to (up to ASK_AGAIN_MAX_S)."""
        changed = self._followed_changed.get(workflow_id)
        if changed is not None:
            changed.set()

    async def _ask_until_heard(self, active: Active) -> None:
        a = self.agent
        wf = active.row.id
        fencing = self.runs.fencing
        pause = ASK_AGAIN_FIRST_S
        changed = self._followed_changed.setdefault(wf, asyncio.Event())
        try:
            # The acting coordinator is never held (it cannot lose itself): a takeover
            # that made this agent the successor ends the asking.
            while a.active.get(wf) is active and not fencing.heard_in_this_life(wf) \
                    and active.row.coordinator != a.domain and not a.stopping:
                changed.clear()
                asked = (active.row.coordinator, active.row.epoch)
                answer = await self._ask_coordinator(active)
                if answer is not None and answer.final_state:
                    if a.active.get(wf) is active:
                        await self._settles.ended(
                            wf, answer.final_state,
                            answer.final_reason or "ended while this agent was down (asked)")
                    return
                if fencing.heard_in_this_life(wf):
                    break
                # Unreachable, gone, no epochs, or its steps here taken: again, with a
                # backoff (the task ends with the workflow), or at once when this agent
                # follows another coordinator meanwhile (woken, or it changed while the
                # question was out), from the shortest pause again.
                if (active.row.coordinator, active.row.epoch) != asked \
                        or await self._paused(changed, pause):
                    pause = ASK_AGAIN_FIRST_S
                else:
                    pause = min(2 * pause, ASK_AGAIN_MAX_S)
        finally:
            fencing.asked(wf)
            if self._followed_changed.get(wf) is changed:
                del self._followed_changed[wf]
        if a.active.get(wf) is active and not a.stopping:
            await self.runs.start_ready(active)  # heard: what was held back starts

    async def _paused(self, changed: asyncio.Event, seconds: float) -> bool:
        """Wait `seconds`, or less: True when the coordinator followed changed meanwhile
        (or the agent stops: the loop then ends)."""
        if self.agent.stopping:
            return True
        try:
            async with asyncio.timeout(seconds):
                await changed.wait()
        except TimeoutError:
            return False
        return True

    async def _resolve_after_asking(self, active: Active) -> None:
        a = self.agent
        row = active.row
        interrupted = [(s.id, s.attempts) for s in active.progress.local_steps()
                       if s.state is StepState.RUNNING]
        answer = await self._ask_coordinator(active)
        # Unreachable: go on as after any restart, its retry held back until the
        # workflow is heard from (then asked again, until it answers).
        final_state = answer.final_state if answer is not None else 0
        final_reason = (answer.final_reason if answer is not None else "") \
            or "ended while this agent was down (asked)"
        still_active = a.active.get(row.id) is active
        if still_active and not final_state:
            await self._resolve_interrupted(active)
            return
        # Ended while this agent was down (the coordinator says so, or its end notice
        # came meanwhile): the interrupted attempts end here and none runs again.
        await a.store.apply([Store.end_run_statement(row.id, step_id, attempt, "failed",
                                                     a.now_ms())
                             for step_id, attempt in interrupted])
        log.info("%s ended while this agent was down: its interrupted steps do not run"
                 " again", row.id)
        if still_active:
            await self._settles.ended(row.id, final_state, final_reason)

    async def resolve_own_holds(self) -> None:
        """After the coordinator's recovery: our own YES votes in rounds we coordinate
        (Paxos Commit) are settled by our log, or by the coordinator core still deciding."""
        a = self.agent
        for h in a.participant.holds():
            if h.tx is not None and h.tx.coordinator == a.domain \
                    and h.state is HoldState.PREPARED:
                answer = await a.coordination.answer_query(h.workflow_id, h.round)
                if answer.known:
                    await self._settles.decide(a.domain, answer.decision)
