"""A participant's step runs: starting the steps that are ready, running them, and
passing their results on.

A class of its own, built by Participation (agent/runtime/participation.py) and
handed what it uses of it (WorkflowEnds: how a workflow's end is applied). An
attempt's start record is written with its step's RUNNING state before it runs
(the record is the attempt's idempotency key: a start that is already on disk is
never run again). Where a write is due anyway (a workflow set up here, a result
or a step's end saved), the steps it makes ready start in that same write. A
step's end, the reservation it frees and the workflow's steps are one write;
then its result goes, until acknowledged, to the coordinator and to the owners
of the steps that need it. At the coordinator, the result that ends the
workflow is written with the end.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from fedorch.core.negotiation.messages import DecisionAck, Key
from fedorch.core.negotiation.participant import Hold
from fedorch.core.workflow import values
from fedorch.core.workflow.progress import TERMINAL_STEP_STATES, StartAttempt, StepState
from fedorch.gen.fedorch.v1 import peer_pb2, status_pb2
from fedorch.runtime import logs, telemetry
from fedorch.runtime.context import Active
from fedorch.runtime.convert import end_notice_of, is_over, step_state, step_state_name
from fedorch.runtime.dataflow_policy import egress_checked
from fedorch.runtime.executors.base import StepInvocation
from fedorch.runtime.executors.leftovers import kill_leftovers, run_marker
from fedorch.runtime.paxos_wire import coordinator_of
from fedorch.runtime.ports import Clock, wall_ms_at
from fedorch.runtime.self_fencing import SelfFencing
from fedorch.runtime.store.store import ReservationRow, Statement, StepRow, Store

if TYPE_CHECKING:
    from fedorch.runtime.context import AgentContext

log = logging.getLogger("fedorch.participant")
EARLY_RESULTS_MEMORY = 10_000  # workflows; past it, senders are asked to retry later
RESULT_PATIENCE_S = 24 * 3600.0
# A step still running this long after it started is reported RUNNING to its
# coordinator (a progress note); a quicker one reports only its result, which spares
# the coordinator a message and a write per step.
RUNNING_NOTE_AFTER_S = 0.2
# A participant that learned a COMMIT from the acceptors acknowledges it to the
# coordinator only if no result of its steps has reached the coordinator this long
# after: a result (or a RUNNING note) says as much, and spares a message per workflow.
# Well under the coordinator's commit_notice_s (a slow workflow draws no notice) and its
# ACK_GRACE_S (the core of an ended workflow still counts it).
ACK_AFTER_S = 0.5
INTERRUPTED = "interrupted by an agent restart"
# What a step's domain may report: not UNSPECIFIED nor a number no state has, and not
# COMPENSATED or COMPENSATION_FAILED, which only the coordinator's compensation sets
# (runtime/compensation.py).
_REPORTABLE_STATES = frozenset(
    step_state(s.value) for s in StepState
    if s not in (StepState.COMPENSATED, StepState.COMPENSATION_FAILED))


def reservation_row(h: Hold, clock: Clock) -> ReservationRow:
    # The core's lease expiry is monotonic time, which means nothing after a restart: it
    # is stored as wall time and re-based when read back (in_doubt.lease_after_restart).
    return ReservationRow(h.workflow_id, h.round, h.coordinator, h.state.value, list(h.steps),
                          wall_ms_at(clock, h.lease_expires), h.coordinator_endpoint)


class WorkflowEnds(Protocol):
    """What StepRuns uses of Participation: a workflow's end, as its coordinator told it
    (in the answer to a result), applied here."""

    async def ended(self, workflow_id: str, final_state: int, reason: str) -> None: ...


class StepRuns:
    """Starts the steps that are ready, runs them, and sends and receives results."""

    def __init__(self, agent: AgentContext, ends: WorkflowEnds) -> None:
        self.agent = agent
        self._ends = ends
        # Workflows with attempts an earlier life of this agent started and never ended
        # (read at start-up): only their end has such attempts to close (Participation).
        self.earlier_life: set[str] = set()
        # Results that arrived before their workflow's COMMIT (messages reorder). Kept
        # in memory, filled and drained with no await in between, so none is lost to a
        # COMMIT handled concurrently (Participation.fold_in_results drains it); also on
        # disk, for a crash in the meantime.
        self.early: dict[str, list[tuple[str, int, StepState, dict, str, str]]] = {}
        # COMMITs learned from the acceptors whose DecisionAck may still be due.
        self._acks_due: dict[str, asyncio.TimerHandle] = {}
        # Fan-out waves here that wait out their pause_s (_wake_for_next_wave).
        self._waves_due: dict[str, asyncio.TimerHandle] = {}
        # Stops a step here once this agent is cut off from its workflow (self-fencing).
        self.fencing = SelfFencing(agent, self)

    async def start_ready(self, active: Active) -> None:
        while ready := self._take_ready(active):
            await self._start_each(active, ready)

    async def save_starting(self, active: Active, *, reservation: ReservationRow | None = None,
                             also: Sequence[Statement] = ()) -> list[int]:
        """Save the workflow here and, in the same write, start the steps now ready: each
        attempt's start record goes with its step's RUNNING state, as in _start_each.
        Returns how many rows each statement of `also` changed."""
        a = self.agent
        ready = self._take_ready(active)
        starts = [s for x in ready for s in (
            Store.start_run_statement(active.row.id, x.step_id, x.attempt, a.now_ms()),
            a.audit.step_started(active.row.id, x.step_id, x.attempt))]
        try:
            counts = await a.save(active, reservation=reservation, also=[*also, *starts])
        except sqlite3.IntegrityError:
            if not starts:
                raise
            # One of them was started before a crash (nothing was written): the rest
            # first, without those steps, then the attempts one at a time.
            taken = {x.step_id for x in ready}
            counts = await a.save(active, [s for s in active.progress.steps if s not in taken],
                                  reservation=reservation, also=also)
            await self._start_each(active, ready)
            return counts
        for attempt in ready:
            self._spawn_run(active, attempt)
        return counts[:len(also)]

    def _take_ready(self, active: Active) -> list[StartAttempt]:
        """The attempts to start now (marked started in the progress), if any may start."""
        a = self.agent
        progress = active.progress
        if progress is None or is_over(active.row) or self._leaving():
            return []
        if a.participant.status((active.row.id, active.row.round)) in ("reserved", "prepared"):
            # Our own vote is not committed here yet (a coordinator restarted between its
            # COMMIT and applying it to its own reservation): applying it starts the steps.
            return []
        if not self.fencing.may_start(active):
            # Read back at start-up and not heard from in this life: this domain may have
            # been cut off since before the restart (self-fencing, After a restart). The
            # coordinator is asked; its answer, or any message of the workflow, starts it.
            return []
        ready = progress.start_ready(a.now())
        self._wake_for_next_wave(active)
        return ready

    def _wake_for_next_wave(self, active: Active) -> None:
        """A fan-out wave here waits out its pause_s (core/workflow/progress.py): look
        again when it is over. One timer per workflow; it ends with the workflow."""
        due = active.progress.next_start_at()
        if due is None or active.row.id in self._waves_due:
            return
        wf = active.row.id

        def look_again() -> None:
            self._waves_due.pop(wf, None)
            if self.agent.active.get(wf) is active:
                self.agent.spawn(self.start_ready(active), name=f"next wave of {wf}")

        self._waves_due[wf] = asyncio.get_running_loop().call_later(
            max(0.0, due - self.agent.now()), look_again)

    async def _start_each(self, active: Active, ready: list[StartAttempt]) -> None:
        a = self.agent
        for attempt in ready:
            # The attempt's start and the step's RUNNING state in one transaction,
            # before it runs; the start record is the attempt's idempotency key.
            try:
                await a.save(active, [attempt.step_id], also=[Store.start_run_statement(
                    active.row.id, attempt.step_id, attempt.attempt, a.now_ms()),
                    a.audit.step_started(active.row.id, attempt.step_id, attempt.attempt)])
            except sqlite3.IntegrityError:
                # This attempt was started before a crash: never run it again. It ends
                # as interrupted (retried only if idempotent), through the same path as
                # any attempt (save, release, tell).
                state = active.progress.interrupted(attempt.step_id, INTERRUPTED,
                                                    attempt.attempt)
                await self.after_step(active, attempt.step_id, state,
                                       ended_run=(attempt.attempt, "failed"))
                continue
            self._spawn_run(active, attempt)

    def _leaving(self) -> bool:
        """This agent announced its leave: the others treat it as lost and place its steps
        that had not started elsewhere, so none may start here now (it would run beside
        its replacement until this agent stops)."""
        membership = self.agent.membership
        return membership is not None and membership.leaving

    def _spawn_run(self, active: Active, attempt: StartAttempt) -> None:
        if self._leaving():
            # Its start is on disk (written before the leave): never run, it is resolved
            # at the next start like any attempt started without an end.
            return
        why = self.fencing.refusal(active)
        if why is not None:
            # Cut off from its workflow past the lease since the last contact (a retry or
            # the next step here, started by a local end): never run, it ends fenced.
            self.agent.spawn(self.fencing.end_fenced(active, attempt.step_id,
                                                     attempt.attempt, why),
                             name=f"fenced {active.row.id}/{attempt.step_id}#{attempt.attempt}")
            return
        task = self.agent.spawn(
            self._run(active, attempt),
            name=f"step {active.row.id}/{attempt.step_id}#{attempt.attempt}")
        if task is not None:
            active.running[attempt.step_id] = task
            self.fencing.started(active, attempt.step_id, attempt.attempt)

    async def _run(self, active: Active, attempt: StartAttempt) -> None:
        a = self.agent
        row = active.row
        step = active.progress.steps[attempt.step_id]
        executor = a.executors.get(step.capability)
        invocation = StepInvocation(
            row.id, attempt.step_id, attempt.attempt, attempt.params, attempt.inputs,
            attempt.timeout_s, run_marker=run_marker(a.domain, row.id, attempt.step_id,
                                                     attempt.attempt),
            on_started=lambda pgid: self._record_group(row.id, attempt.step_id,
                                                       attempt.attempt, pgid))
        note = asyncio.get_running_loop().call_later(
            RUNNING_NOTE_AFTER_S, self._report, active, attempt.step_id, False)
        with telemetry.step_attempt(row.id, attempt.step_id, attempt.attempt) as traced, \
                logs.about(row.id, attempt.step_id):
            try:
                outcome = await executor.run(invocation)
            finally:
                note.cancel()
                active.running.pop(attempt.step_id, None)
                self.fencing.ended(row.id, attempt.step_id, attempt.attempt)
            traced.ended(outcome.ok, outcome.error)
        state = active.progress.attempt_ended(attempt.step_id, attempt.attempt, outcome.ok,
                                              outcome.outputs, outcome.error)
        a.metrics.steps.labels("ok" if outcome.ok else "failed").inc()
        await self.after_step(active, attempt.step_id, state,
                               ended_run=(attempt.attempt, "succeeded" if outcome.ok
                                          else "failed"))

    def _record_group(self, workflow_id: str, step_id: str, attempt: int, pgid: int) -> None:
        """Keep an attempt's process group with its start record, for a restart to stop
        what is left of it. Not awaited by the run: the run marker finds the processes
        even if this write never lands."""
        self.agent.spawn(self.agent.store.set_run_pgid(workflow_id, step_id, attempt, pgid),
                         name=f"group of {workflow_id}/{step_id}#{attempt}")

    async def stop_leftovers(self) -> None:
        """At start-up, before anything runs: stop whatever is left of every attempt
        recorded as started without an end (its processes outlived the last life).
        Recovery then resolves those attempts (Progress.interrupted)."""
        a = self.agent
        runs = await a.store.unfinished_runs()
        if not runs:
            return
        self.earlier_life = {wf for wf, _, _, _ in runs}
        groups = {run_marker(a.domain, wf, step, attempt): pgid
                  for wf, step, attempt, pgid in runs}
        killed = await asyncio.to_thread(kill_leftovers, groups)
        for x in killed:
            log.warning("stopped process %d (group %d) left by attempt %s of an earlier run"
                        " of this agent", x.pid, x.pgid, x.marker)
        log.info("%d attempts recorded as started without an end; %d leftover processes"
                 " stopped", len(runs), len(killed))
        # Those of a workflow already ended here (its end cancelled them as the last life
        # stopped) are over now: recovery resolves only the workflows still running.
        ended = [Store.end_run_statement(wf, step, attempt, "failed", a.now_ms())
                 for wf, step, attempt, _ in runs
                 if (row := await a.store.get_workflow(wf)) is not None and is_over(row)]
        if ended:
            await a.store.apply(ended)

    async def after_step(self, active: Active, step_id: str, state: StepState, *,
                          ended_run: tuple[int, str] | None = None) -> None:
        """A step's state changed here. One transaction records the attempt's end
        (`ended_run`: attempt, "succeeded" or "failed"), the reservation it frees and
        the workflow's steps (skipped downstream steps change too)."""
        a = self.agent
        also = []
        attested = None
        if ended_run is not None:
            also.append(Store.end_run_statement(active.row.id, step_id, ended_run[0],
                                                ended_run[1], a.now_ms()))
            step = active.progress.steps[step_id]
            if active.row.coordinator == a.domain and state in TERMINAL_STEP_STATES \
                    and (step.attempts, step.state.value) == (ended_run[0],
                                                              ended_run[1].upper()):
                # The final result it sends, signed once: its attestation is also the
                # audit record's evidence.
                attested = self._result(active, step_id, reliable=True)
            also.append(a.audit.step_ended(active, step_id, ended_run[0], ended_run[1].upper(),
                                           attested))
        if state in TERMINAL_STEP_STATES:
            hold = a.participant.step_ended(active.row.id, step_id)
            if hold is not None:
                also.append(Store.reservation_statement(reservation_row(hold, a.clock)) if hold.steps
                            else Store.delete_reservation_statement(hold.workflow_id,
                                                                    hold.round))
        # At the coordinator, the step that ends the workflow is written with its end.
        if not (active.row.coordinator == a.domain
                and await a.coordination.after_progress(active, also)):
            await self.save_starting(active, also=also)
        if state in TERMINAL_STEP_STATES:
            self._report(active, step_id, reliable=True, result=attested)
        await self.start_ready(active)

    def report(self, active: Active, step_id: str) -> None:
        """Send a finished step's result again (to a coordinator that took over)."""
        self._report(active, step_id, reliable=True)

    def _result(self, active: Active, step_id: str, reliable: bool) -> peer_pb2.StepResult:
        """A step's state as sent; a final one (`reliable`) also signed alone, evidence
        for audit proofs."""
        a = self.agent
        step = active.progress.steps[step_id]
        result = peer_pb2.StepResult(
            workflow_id=active.row.id, step_id=step_id, attempt=step.attempts, domain=a.domain,
            state=step_state(step.state.value), error=step.error, placement_epoch=step.epoch,
            trace_parent=telemetry.result_parent(active.row.id, step_id),
        )
        values.write_object(result, "outputs", step.outputs)
        if reliable:
            a.audit.attest_result(result)
        return result

    def _report(self, active: Active, step_id: str, reliable: bool,
                result: peer_pb2.StepResult | None = None) -> None:
        """Send a step's state to the coordinator and the owners of downstream steps
        (`result`: the final result already built and attested)."""
        a = self.agent
        step = active.progress.steps[step_id]
        if not reliable and (step.state is not StepState.RUNNING or a.active.get(
                active.row.id) is not active):
            return  # a progress note that is out of date
        if result is None:
            result = self._result(active, step_id, reliable)
        targets = active.progress.result_recipients(step_id, active.row.coordinator)
        if not reliable:  # progress notes (RUNNING) go to the coordinator only, best effort
            targets = [t for t in targets if t == active.row.coordinator]
        for domain in targets:
            sent = egress_checked(a, domain, result)  # outputs leave only where egress allows
            a.spawn(self._send_result(active, domain, sent, reliable),
                    name=f"result {active.row.id}/{step_id} to {domain}")

    async def _send_result(self, active: Active, domain: str, result: peer_pb2.StepResult,
                           reliable: bool) -> None:
        ack = await self.agent.deliver(
            domain, "ReportStep", endpoints=active.row.endpoints,
            # Final results until acknowledged: the receiver may be restarting, and
            # nothing else would tell it.
            give_up_after=RESULT_PATIENCE_S if reliable else 2.0, step_result=result)
        if ack is not None and ack.ok and domain == active.row.coordinator:
            # The coordinator counts it as our acknowledgement of the COMMIT.
            handle = self._acks_due.pop(active.row.id, None)
            if handle is not None:
                handle.cancel()
            if ack.HasField("end") and ack.end.workflow_id == active.row.id \
                    and ack.end.epoch >= active.row.epoch:  # else from an epoch over here
                # The workflow has ended (our result ended it, or came after): its end
                # notice is this, the coordinator sends no other.
                await self._ends.ended(active.row.id, ack.end.final_state, ack.end.reason)

    def acknowledge_later(self, coordinator: str, key: Key) -> None:
        """We learned a COMMIT without the coordinator's notice. Any result of ours that
        reaches the coordinator tells it we hold the COMMIT; a DecisionAck goes only if
        none has after ACK_AFTER_S (our steps may never run: skipped after a failure)."""
        if key[0] not in self._acks_due:
            self._acks_due[key[0]] = asyncio.get_running_loop().call_later(
                ACK_AFTER_S, self._acknowledge, coordinator, key)

    def _acknowledge(self, coordinator: str, key: Key) -> None:
        self._acks_due.pop(key[0], None)
        self.agent.consensus.send(coordinator, DecisionAck(key, self.agent.domain))

    async def late_result(self, workflow_id: str) -> peer_pb2.Ack:
        """The answer to a result for a workflow neither live nor awaited here."""
        row = await self.agent.store.get_workflow(workflow_id)
        if row is not None and is_over(row):
            return peer_pb2.Ack(ok=True)  # ended here: nothing more to do with it
        return peer_pb2.Ack(ok=False, error=f"no workflow {workflow_id!r} here: never known,"
                                             " or ended and removed by retention")

    async def on_result(self, sender: str, result: peer_pb2.StepResult) -> peer_pb2.Ack:
        """A step's state from the domain that runs it."""
        a = self.agent
        if sender != result.domain:
            return peer_pb2.Ack(ok=False, error="a step result must come from its own domain")
        if result.state not in _REPORTABLE_STATES:  # bad input changes nothing
            known = result.state in status_pb2.StepState.values()
            name = status_pb2.StepState.Name(result.state) if known else str(result.state)
            return peer_pb2.Ack(ok=False, error=f"step state {name} is no step result")
        # Ran (or runs) a step, so it applied the COMMIT: as good as its DecisionAck.
        a.coordination.result_from(sender, result.workflow_id)
        fenced = a.coordination.refuse_fenced(sender, result)
        if fenced is not None:  # from a placement that is over: never applied
            end = await a.coordination.end_notice(result.workflow_id)
            # An ended workflow's end goes back, so the sender stops and sends no more.
            return peer_pb2.Ack(ok=True, end=end) if end is not None \
                else peer_pb2.Ack(ok=False, error=fenced)
        telemetry.result_received(sender, result)
        state = StepState(step_state_name(result.state))
        try:
            outputs = values.read_object(result, "outputs")
        except values.JsonValueError as exc:
            return peer_pb2.Ack(ok=False, error=f"outputs of {result.step_id}: {exc}")
        active = a.active.get(result.workflow_id)
        if active is None and coordinator_of(result.workflow_id) == a.domain:
            # Ended here: the answer carries the end (see Coordination.end_notice).
            end = await a.coordination.end_notice(result.workflow_id)
            if end is not None:
                return peer_pb2.Ack(ok=True, end=end)
        if result.workflow_id in a.recently_finished:
            return peer_pb2.Ack(ok=True)
        if active is None and not a.participant.keys_of(result.workflow_id):
            # Not live here, and no vote of ours awaits its COMMIT: a late result, not an
            # early one. Answered from the store; kept nowhere (no orphan row).
            return await self.late_result(result.workflow_id)
        if active is None or active.progress is None:
            # Not committed here yet (reordering): keep it for the COMMIT.
            if len(self.early) >= EARLY_RESULTS_MEMORY:  # the sender retries
                return peer_pb2.Ack(ok=False, retry_later=True,
                                    error="too many results for unknown workflows")
            self.early.setdefault(result.workflow_id, []).append(
                (result.step_id, result.attempt, state, outputs, result.error, sender))
            await a.store.save_step_result(StepRow(result.workflow_id, result.step_id, sender,
                                                   state.value, result.attempt, outputs,
                                                   result.error))
            await a.store.apply(a.audit.result_records(sender, result))  # its own write
            return peer_pb2.Ack(ok=True)
        if active.row.placement.get(result.step_id) != sender:
            return peer_pb2.Ack(ok=False, error=f"{result.step_id} is not placed on {sender}")
        if active.progress.apply_result(result.step_id, result.attempt, state, outputs,
                                        result.error):
            self.fencing.heard(active.row.id)  # contact with the workflow (self-fencing)
            audit = a.audit.result_records(sender, result)
            # At the coordinator, the result that ends the workflow is written with its end,
            # and the answer to it tells its sender the end (no end notice of its own).
            if active.row.coordinator == a.domain \
                    and await a.coordination.after_progress(active, audit, told=sender):
                return peer_pb2.Ack(ok=True, end=end_notice_of(active.row))
            await self.save_starting(active, also=audit)
            await self.start_ready(active)
        return peer_pb2.Ack(ok=True)
