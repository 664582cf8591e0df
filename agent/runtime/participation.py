"""The participant half of an agent: votes, decisions, step runs, results.

The I/O shell around agent.negotiation.participant.Participant (votes and
reservations) and agent.workflow.progress.Progress (which steps may run). A
YES vote's reservation and a step attempt's start are on disk before anyone
hears of them.

Votes on PREPAREs are in runtime.votes (Voting): a YES is durable before it
leaves; with Paxos Commit the hold is then in doubt (runtime.consensus) until a
decision is learned, applied here (`apply_decision`), as classic decisions are
(`decide`).

Running the steps and passing on their results are in runtime.step_runs
(StepRuns); what a participant does about reservations in doubt, and its
recovery after a restart, are in runtime.in_doubt (InDoubt); checking and
applying a classic decision notice is in runtime.classic_decisions
(ClassicDecisions). Each is a class of its own built here and given what it
uses; the entry points other shells call stay here, delegating.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from fedorch.core.identity.authority import Facts, Refused, authorize
from fedorch.core.negotiation.errors import RemoteProtocolError
from fedorch.core.negotiation.messages import Key, TxInfo, Value
from fedorch.core.negotiation.participant import DecisionEffect, HoldState
from fedorch.core.workflow.lifecycle import Committed, Ended, WorkflowState
from fedorch.core.workflow.progress import TERMINAL_STEP_STATES, Progress, StepState
from fedorch.gen.fedorch.v1 import peer_pb2, spec_pb2
from fedorch.runtime.classic_decisions import (
    DECISION_REFUSALS,
    ClassicDecisions,
    refused_decision,
)
from fedorch.runtime.context import Active
from fedorch.runtime.convert import advance, is_over
from fedorch.runtime.in_doubt import InDoubt
from fedorch.runtime.keyed_locks import KeyedLocks
from fedorch.runtime.peer_service import count_refusal
from fedorch.runtime.replacement_merge import apply_replacement
from fedorch.runtime.step_runs import StepRuns, reservation_row
from fedorch.runtime.store.store import (
    HoldTxRow,
    ReservationRow,
    Statement,
    StepRow,
    Store,
    WorkflowRow,
)
from fedorch.runtime.votes import Voting

if TYPE_CHECKING:
    from fedorch.runtime.context import AgentContext

log = logging.getLogger("fedorch.participant")


class Participation:
    def __init__(self, agent: AgentContext) -> None:
        self.agent = agent
        self.runs = StepRuns(agent, self)  # step attempts and their results
        # One COMMIT application at a time per workflow: a repeated COMMIT (or an
        # "ended?" answer) must not set up a second copy while the first is awaiting.
        self._committing = KeyedLocks()  # by workflow id
        # Reservations in doubt (the timer loop), and recovery after a restart.
        self.in_doubt = InDoubt(agent, self, self.runs, self._committing)
        # The PREPAREs behind our YES votes, as written with them: applying the COMMIT
        # needs them, and reading them back cost a round trip to the store's thread on
        # every participant's path to its first step. Bounded; a miss reads the disk.
        self._hold_txs: OrderedDict[Key, HoldTxRow] = OrderedDict()
        self.votes = Voting(agent, self._hold_txs, self.wake)  # PREPAREs answered
        # Classic 2PC decision notices, checked and applied.
        self.classic = ClassicDecisions(agent, self.votes, self.runs, self._committing,
                                        self._committed)

    # ---- step runs (runtime.step_runs) --------------------------------------------------

    async def start_ready(self, active: Active) -> None:
        """Start the steps of `active` that are ready here."""
        await self.runs.start_ready(active)

    def report(self, active: Active, step_id: str) -> None:
        """Send a finished step's result again (to a coordinator that took over)."""
        self.runs.report(active, step_id)

    def acknowledge_later(self, coordinator: str, key: Key) -> None:
        """A COMMIT learned from the acceptors (see StepRuns.acknowledge_later)."""
        self.runs.acknowledge_later(coordinator, key)

    async def on_result(self, sender: str, result: peer_pb2.StepResult) -> peer_pb2.Ack:
        """A step's state from the domain that runs it (see StepRuns.on_result)."""
        return await self.runs.on_result(sender, result)

    # ---- in doubt (runtime.in_doubt) ---------------------------------------------------

    def wake(self) -> None:
        """A timer may have moved earlier: let the timer loop look again."""
        self.in_doubt.wake()

    async def timer_loop(self) -> None:
        """The in-doubt loop (see InDoubt.timer_loop)."""
        await self.in_doubt.timer_loop()

    async def recover(self) -> None:
        """Reload what the store holds after a restart (see InDoubt.recover)."""
        await self.in_doubt.recover()

    async def resolve_own_holds(self) -> None:
        """After the coordinator's recovery (see InDoubt.resolve_own_holds)."""
        await self.in_doubt.resolve_own_holds()

    # ---- PREPARE (runtime.votes) ---------------------------------------------------------

    async def prepare(self, coordinator: str, req: peer_pb2.PrepareRequest) -> peer_pb2.Envelope:
        """Vote on a PREPARE; the reply is the signed vote (see Voting.prepare)."""
        return await self.votes.prepare(coordinator, req)

    # ---- decisions --------------------------------------------------------------

    async def decide(self, sender: str, envelope: peer_pb2.Envelope, *,
                     from_coordinator: bool = True) -> peer_pb2.Ack:
        """Apply a signed decision notice after checking it.

        Paxos Commit transactions: from any trusted sender, when the decision proves
        itself (a COMMIT by its certificate, an ABORT by its signer: the coordinator
        or a participant). Classic ones: only from the coordinator that signed it,
        and a COMMIT with a certificate too. Nothing changes before the check passes.
        `from_coordinator`: False for an answer to a query, which is no contact by
        itself: a COMMIT is then learned without the coordinator (see _set_up).
        """
        a = self.agent
        try:
            opened = await a.consensus.open_decision(envelope)
            if opened is None:
                return await self.classic.decide(sender, envelope, from_coordinator)
            signer, value, tx = opened
        except DECISION_REFUSALS as e:
            return refused_decision(a, sender, e)
        direct = from_coordinator and sender == signer == tx.coordinator
        await a.consensus.on_decision(signer, value, tx, from_coordinator=direct)
        return peer_pb2.Ack(ok=True)

    async def apply_decision(self, key: Key, value: Value, tx: TxInfo,
                             also: Sequence[Statement] = (), *, heard: bool = True) -> bool:
        """Apply a learned Paxos Commit decision to this participant's hold. The caller
        hands over, in `also`, the write that makes the decision durable here when a
        COMMIT sets up our steps: it goes in the set-up's write (True then; False: not
        written, the caller writes it). Otherwise the decision is durable already."""
        a = self.agent
        if a.participant.status(key) is None:
            if not value.commit:  # remembered: a late PREPARE of this round cannot reserve
                a.participant.decide(a.now(), key[0], key[1], False)
            return False  # a NO voter, or the PREPARE never came
        try:
            effect = a.participant.decide(a.now(), key[0], key[1], value.commit)
        except RemoteProtocolError as e:
            log.error("decision of %s round %d: %s", key[0], key[1], e)
            return False
        if effect is DecisionEffect.RELEASED:
            self._hold_txs.pop(key, None)
            await a.store.delete_reservation(*key)
            self.wake()
        elif effect is DecisionEffect.COMMITTED:
            hold = a.participant.hold(key)
            info = self._hold_txs.pop(key, None)
            # The PREPARE came in this incarnation: whatever this agent wrote of the
            # workflow since, it wrote in this process and keeps in memory (see fresh).
            fresh = info is not None
            if info is None:
                info = await a.store.get_hold_tx(*key)
            if hold is None or info is None:  # pragma: no cover - written with the hold
                log.error("%s round %d committed, but its PREPARE is not on record", *key)
                return False
            endpoints = {tx.coordinator: info.coordinator_endpoint}
            await self._committed(key[0], key[1], tx.coordinator,
                                  spec_pb2.WorkflowSpec.FromString(info.spec), info.placement,
                                  endpoints, reservation_row(hold, a.clock), also, fresh=fresh,
                                  acceptors=tx.acceptors, heard=heard)
            return True
        return False

    async def commit_own_steps(self, active: Active, key: Key,
                               also: Sequence[Statement]) -> list[int]:
        """At the coordinator, the write of its own COMMIT decision (`also`, with the
        workflow's move to RUNNING): our YES of that round commits in it, and our steps
        now ready start in it, instead of in a set-up write of their own once the
        decision is applied here. Returns how many rows each statement of `also` changed."""
        a = self.agent
        reservation = None
        if a.participant.status(key) == "prepared":
            a.participant.decide(a.now(), key[0], key[1], True)
            hold = a.participant.hold(key)
            reservation = reservation_row(hold, a.clock) if hold is not None else None
            self._hold_txs.pop(key, None)
        return await self.runs.save_starting(active, reservation=reservation, also=also)

    async def _committed(self, workflow_id: str, round_: int, coordinator: str,
                         spec: spec_pb2.WorkflowSpec, placement: dict[str, str],
                         endpoints: dict[str, str], reservation: ReservationRow | None,
                         also: Sequence[Statement] = (), *, fresh: bool = False,
                         replaced: peer_pb2.Replacement | None = None,
                         acceptors: Sequence[str] = (), heard: bool = True) -> None:
        """Set the committed workflow up here. The COMMITTED reservation and the workflow
        row are written in one transaction (with `also`): a crash leaves both or neither
        (then the PREPARED reservation is in doubt and asks again). One at a time per
        workflow: a repeated COMMIT must not set up a second copy while the first is
        awaiting. `fresh`: its PREPARE came in this incarnation, so no row of the
        workflow is on disk (an end notice that came first released the hold, and this
        is not reached) and its early results are in memory: nothing is read.
        `acceptors`: the committed round's (Paxos Commit), kept in a new row, so that the
        takeover watch need not read them back from the PREPARE on record."""
        async with self._committing.hold(workflow_id):
            await self._set_up(workflow_id, round_, coordinator, spec, placement, endpoints,
                               reservation, also, fresh, replaced, acceptors, heard)

    async def _set_up(self, workflow_id: str, round_: int, coordinator: str,
                      spec: spec_pb2.WorkflowSpec, placement: dict[str, str],
                      endpoints: dict[str, str], reservation: ReservationRow | None,
                      also: Sequence[Statement] = (), fresh: bool = False,
                      replaced: peer_pb2.Replacement | None = None,
                      acceptors: Sequence[str] = (), heard: bool = True) -> None:
        """`heard`: the COMMIT came from the coordinator, which is contact; else none of
        the workflow's steps starts until it answers with their placement epochs."""
        a = self.agent
        active = a.active.get(workflow_id)
        on_disk = None
        if active is None:
            row, on_disk = (None, None) if fresh \
                else await a.store.get_workflow_with_steps(workflow_id)
            if row is None:
                row = WorkflowRow(
                    id=workflow_id, name=spec.name, coordinator=coordinator,
                    state=WorkflowState.PENDING.name,
                    spec=spec.SerializeToString(deterministic=True), placement=dict(placement),
                    endpoints=dict(endpoints), round=round_, created_ms=a.now_ms(),
                    updated_ms=a.now_ms(), acceptors=list(acceptors),
                )
                advance(row, Committed())
            elif is_over(row):
                self.runs.early.pop(workflow_id, None)  # ended before it was set up here
                statements = list(also)
                if reservation is not None:  # it ended (notice first): nothing to hold
                    statements += [Store.delete_reservation_statement(h.workflow_id, h.round)
                                   for h in a.participant.release_workflow(workflow_id)]
                if statements:
                    await a.store.apply(statements)
                return
            active = Active(row, fresh=fresh)
            a.active[row.id] = active
        active.row.endpoints.update({k: v for k, v in endpoints.items() if v})
        self.ensure_progress(active, spec)
        if replaced is not None:  # a step placed here again: its epoch, inputs, neighbours
            step = active.progress.steps.get(replaced.step_id)
            if apply_replacement(active, replaced, round_, endpoints) and step is not None \
                    and step.domain == a.domain and step.state in TERMINAL_STEP_STATES:
                # It ran here already, set up from another round's COMMIT that named this
                # placement first: its report went under the epoch known then (refused at
                # the coordinator); again, under the round's epoch.
                self.runs.report(active, replaced.step_id)
        await self.fold_in_results(active, on_disk)
        if heard:
            self.runs.fencing.heard(active.row.id)  # its COMMIT: contact with the workflow
        else:
            self.runs.fencing.not_heard(active.row.id)
        if reservation is not None:  # as it is now: steps may have ended meanwhile
            hold = a.participant.hold((reservation.workflow_id, reservation.round))
            committed = hold is not None and hold.state is HoldState.COMMITTED
            reservation = reservation_row(hold, a.clock) if committed else None
        await self.runs.save_starting(active, reservation=reservation, also=also)
        await self.runs.start_ready(active)

    def ensure_progress(self, active: Active, spec: spec_pb2.WorkflowSpec) -> Progress:
        if active.progress is None:
            active.progress = Progress(spec, active.row.placement, self.agent.domain)
            # Committed here: the takeover shell watches its coordinator from now on.
            self.agent.takeovers.track(active.row.id)
        return active.progress

    async def fold_in_results(self, active: Active,
                              on_disk: dict[str, StepRow] | None = None) -> None:
        """Results that came before this agent had the workflow's progress (on disk, and
        those kept in memory): with Paxos Commit a participant may learn the COMMIT, run
        and report before its coordinator has heard that it was chosen; and peers are
        answered while a restarted agent is still reloading its workflows. `on_disk`:
        the workflow's step rows, if the caller has just read them."""
        placement = active.row.placement
        if not active.fresh:  # rows from before a restart may be on disk only
            if on_disk is None:
                on_disk = {s.step_id: s for s in await self.agent.store.get_steps(active.row.id)}
            # Kept before the placement was known here: only a step's own domain counts.
            self._apply_rows(active, [s for s in on_disk.values()
                                      if placement.get(s.step_id) == s.domain])
            active.fresh = True
        for *early, sender in self.runs.early.pop(active.row.id, ()):
            if placement.get(early[0]) == sender:
                active.progress.apply_result(*early)
            else:
                self.agent.metrics.rejected_messages.labels("not_step_domain").inc()
                log.warning("dropped a result of %s step %s from %s: placed on %s",
                            active.row.id, early[0], sender, placement.get(early[0]))

    async def placed_on(self, workflow_id: str, step_id: str) -> str | None:
        """The domain `step_id` is placed on as this agent knows the workflow ("" if
        it is not placed), or None when the workflow is not known here yet."""
        a = self.agent
        active = a.active.get(workflow_id)
        row = active.row if active is not None else await a.store.get_workflow(workflow_id)
        if row is not None:
            return row.placement.get(step_id, "")
        # Voted YES, the COMMIT not applied yet: the placement of the PREPARE voted on.
        for key in reversed(a.participant.keys_of(workflow_id)):
            info = self._hold_txs.get(key) or await a.store.get_hold_tx(*key)
            if info is not None:
                return info.placement.get(step_id, "")
        return None

    @staticmethod
    def _apply_rows(active: Active, rows: Iterable[StepRow]) -> None:
        for s in rows:
            if s.replaced_from:  # placed again after a loss: kept for status
                active.progress.steps[s.step_id].replaced_from = list(s.replaced_from)
            if s.state in (StepState.SUCCEEDED, StepState.FAILED, StepState.RUNNING):
                active.progress.apply_result(s.step_id, s.attempts, StepState(s.state),
                                             s.outputs, s.error)

    async def on_cancel(self, sender: str, notice: peer_pb2.CancelNotice) -> peer_pb2.Ack:
        """The coordinator ended the workflow (any terminal state): stop and release. The
        coordinator of the epoch the notice names, that is (coordinator takeover): an end
        from an epoch that is over here is refused, one from a later epoch makes its
        sender the coordinator followed here."""
        a = self.agent
        active = a.active.get(notice.workflow_id)
        row = active.row if active is not None else await a.store.get_workflow(notice.workflow_id)
        known = row is not None and bool(row.placement)
        try:
            authorize("cancel", sender, Facts(
                workflow_id=notice.workflow_id, epoch=notice.epoch,
                # The coordinator followed: our own claim, not won yet, is none, so an
                # end its predecessor made meanwhile is still taken.
                held=(row.epoch, row.coordinator) if known else None,
                participants=set(row.placement.values()) if known else None))
        except Refused as e:
            count_refusal(a, sender, "cancel", e)
            return peer_pb2.Ack(ok=False, error=e.detail)
        if notice.epoch > 0 and not known:  # a successor's: checked once committed here
            return peer_pb2.Ack(ok=False, retry_later=True,
                                error="the workflow is not committed here yet")
        try:
            end = Ended.from_wire(notice.final_state, notice.reason)
        except RemoteProtocolError as e:  # refused, nothing changed
            return peer_pb2.Ack(ok=False, error=str(e))
        if known:
            await a.takeovers.follow(active, row, notice.epoch, sender)
        # Our own claim took an end of an earlier epoch: those that granted it refuse
        # that epoch's word, so the end goes on to them in ours (takeover.Announce).
        if active is not None and known and await a.takeovers.end_known(active, end, sender):
            return peer_pb2.Ack(ok=True)
        try:
            await self._end_here(notice.workflow_id, end)
        except RemoteProtocolError as e:  # refused, nothing changed
            return peer_pb2.Ack(ok=False, error=str(e))
        return peer_pb2.Ack(ok=True)

    async def ended(self, workflow_id: str, final_state: int, reason: str, *,
                    told_by: str = "") -> None:
        """Apply a workflow's end (its coordinator's word, as received: the answer to a
        step result or to a question) here; an end without a terminal state is logged and
        changes nothing. Our own claim, not won yet, that learns the end so tells it on
        in its epoch, as from an end notice (on_cancel): those that granted the claim
        refuse the lower epoch's word, and its answers carry none to them."""
        a = self.agent
        try:
            end = Ended.from_wire(final_state, reason)
            active = a.active.get(workflow_id)
            if active is not None and await a.takeovers.end_known(
                    active, end, told_by or active.row.coordinator):
                return
            await self._end_here(workflow_id, end)
        except RemoteProtocolError as e:
            log.warning("%s: end refused: %s", workflow_id, e)

    async def _end_here(self, workflow_id: str, end: Ended) -> None:
        """Apply a workflow's end here, whether or not this agent has it loaded (the
        notice may come before the COMMIT, or while recovery has not reached it).
        RemoteProtocolError, before anything changes, if the workflow cannot end so."""
        a = self.agent
        active = a.active.get(workflow_id)
        if active is None:
            row = await a.store.get_workflow(workflow_id)
            if row is None:  # remembered, so that a late COMMIT cannot start it here
                row = WorkflowRow(id=workflow_id, name="", spec=b"",
                                  coordinator=workflow_id.rpartition(".")[0],
                                  state=WorkflowState.PENDING.name,
                                  created_ms=a.now_ms(), updated_ms=a.now_ms())
            advance(row, end)  # a repeated end leaves the first
            for hold in a.participant.release_workflow(workflow_id):
                await a.store.delete_reservation(hold.workflow_id, hold.round)
            await a.store.save_workflow(row, also=await self._interrupted_runs(workflow_id))
            a.finished(workflow_id)
            return
        advance(active.row, end)
        if active.progress is not None:
            for step_id in active.progress.cancel(end.reason):
                task = active.running.get(step_id)
                if task is not None:
                    task.cancel()
        for hold in a.participant.release_workflow(workflow_id):
            await a.store.delete_reservation(hold.workflow_id, hold.round)
        await a.save(active, also=await self._interrupted_runs(workflow_id, active))
        a.finished(workflow_id)

    async def _interrupted_runs(self, workflow_id: str,
                                active: Active | None = None) -> list[Statement]:
        """The attempts of an ending workflow started in an earlier life of this agent
        and never ended (their leftovers were stopped at its start), closed as failed
        with the end: a lost domain back after its workflow ended elsewhere (its steps
        placed again) may learn the end before recovery resolves them, and nothing else
        would close them. One this end cancels now stays open: should its processes
        outlive it, the next start stops them (StepRuns.stop_leftovers closes it then)."""
        a = self.agent
        if workflow_id not in self.runs.earlier_life:  # the usual end: nothing to read
            return []
        running = active.running if active is not None else {}
        return [Store.end_run_statement(workflow_id, step_id, attempt, "failed", a.now_ms())
                for step_id, attempt, state in await a.store.runs_of(workflow_id)
                if state == "running" and step_id not in running]
