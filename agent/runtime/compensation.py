"""Sagas: the coordinator's and the participant's shells around
agent/core/workflow/compensation.py (see docs/sagas.md).

Coordinator. The write that ends a workflow FAILED or CANCELLED also writes the
compensations it owes (`owed`: one `compensations` row per SUCCEEDED step with a
`compensate` block). One driver task per such workflow then runs the core: each
attempt is on disk as RUNNING (with its number) before its request leaves, and each
answer is on disk before the next compensations start. A restarted coordinator finds
the rows not yet ended (`recover`) and drives them again; an attempt that was out is
sent again with the same number, and the domain answers what became of it.

Participant. A CompensateRequest from the workflow's coordinator, for a step this
domain ran and that SUCCEEDED here, runs the compensation through the executor of
`compensate.capability` (else the step's own). Its start is recorded in
`compensation_runs` before it runs, keyed (workflow, step, attempt): a duplicate
request is answered with the recorded end, or waits for the run in progress. A run
that was going when this agent stopped (its processes died with it: the step guard)
is resolved at start-up as a failed attempt, "interrupted by an agent restart"; the
coordinator retries it while `compensate.retries` allow.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from typing import TYPE_CHECKING

from fedorch.core.identity.authority import Facts, Refused, authorize
from fedorch.core.workflow import values
from fedorch.core.workflow.compensation import (
    CompAttempt,
    Compensation,
    CompState,
    CompStep,
    compensable,
    plan,
    summary,
)
from fedorch.gen.fedorch.v1 import peer_pb2, spec_pb2, status_pb2
from fedorch.runtime import telemetry
from fedorch.runtime.convert import step_state
from fedorch.runtime.executors.base import StepInvocation
from fedorch.runtime.executors.leftovers import run_marker
from fedorch.runtime.peers import PeerCallError
from fedorch.runtime.store.store import Statement, WorkflowRow

if TYPE_CHECKING:
    from fedorch.core.workflow.progress import Progress
    from fedorch.runtime.context import AgentContext

log = logging.getLogger("fedorch.sagas")

ENDS_THAT_COMPENSATE = frozenset({"FAILED", "CANCELLED"})
INTERRUPTED = "interrupted by an agent restart"
# A Compensate call waits for the attempt to end; past this (or the attempt's own
# timeout and a margin) the call is made again and waits for the same run.
CALL_TIMEOUT_S = 60.0
CALL_MARGIN_S = 10.0
# How long a coordinator keeps asking a domain that does not answer before that
# compensation ends COMPENSATION_FAILED (counted from this agent's start of the driver).
PATIENCE_S = 24 * 3600.0

_COMP_COLS = "step_id, domain, state, attempts, max_attempts, error"


def _comp_statement(workflow_id: str, s: CompStep) -> Statement:
    return ("INSERT OR REPLACE INTO compensations(workflow_id, step_id, domain, state,"
            " attempts, max_attempts, error) VALUES(?, ?, ?, ?, ?, ?, ?)",
            (workflow_id, s.step_id, s.domain, s.state.value, s.attempts, s.max_attempts,
             s.error))


class Compensations:
    def __init__(self, agent: AgentContext) -> None:
        self.agent = agent
        self._driven: set[str] = set()  # workflows whose driver runs
        # Participant: the compensation attempts running in this life, by idempotency key.
        self._runs: dict[tuple[str, str, int], asyncio.Future] = {}

    # ---- coordinator -----------------------------------------------------------------

    def owed(self, row: WorkflowRow, progress: Progress | None) -> list[Statement]:
        """The compensations a workflow that has just ended owes, as statements for the
        write that ends it (none unless it ended FAILED or CANCELLED)."""
        if row.state not in ENDS_THAT_COMPENSATE or progress is None:
            return []
        spec = spec_pb2.WorkflowSpec.FromString(row.spec)
        steps = plan(spec, {sid: s.state.value for sid, s in progress.steps.items()},
                     {sid: s.domain for sid, s in progress.steps.items()})
        return [_comp_statement(row.id, s) for s in steps]

    def begin(self, workflow_id: str) -> None:
        """Drive the compensations of a workflow (once they are on disk)."""
        if workflow_id not in self._driven:
            self._driven.add(workflow_id)
            self.agent.spawn(self._drive(workflow_id), name=f"compensate {workflow_id}")

    async def recover(self) -> None:
        """At start-up: resolve this agent's interrupted runs; resume the compensations
        of the workflows it coordinates that have not ended."""
        a = self.agent
        await a.store.apply([("UPDATE compensation_runs SET state='failed', error=?,"
                              " ended_ms=? WHERE state='running'", (INTERRUPTED, a.now_ms()))])
        rows = await a.store.select("SELECT DISTINCT workflow_id FROM compensations"
                                    " WHERE state IN ('PENDING', 'RUNNING')")
        for (workflow_id,) in rows:
            log.info("%s: resuming its compensations", workflow_id)
            self.begin(workflow_id)

    async def _load(self, workflow_id: str) -> list[CompStep]:
        rows = await self.agent.store.select(
            f"SELECT {_COMP_COLS} FROM compensations WHERE workflow_id=?", (workflow_id,))
        return [CompStep(r[0], r[1], r[4], CompState(r[2]), r[3], r[5]) for r in rows]

    async def _drive(self, workflow_id: str) -> None:
        a = self.agent
        try:
            row = await a.store.get_workflow(workflow_id)
            if row is None:
                return
            spec = spec_pb2.WorkflowSpec.FromString(row.spec)
            core = Compensation(spec, await self._load(workflow_id))
            answers: asyncio.Queue = asyncio.Queue()
            give_up_at = a.now() + PATIENCE_S
            async with asyncio.TaskGroup() as tg:
                while not core.done():
                    started = core.start_ready()
                    if started:  # RUNNING with its number on disk before it is asked
                        await a.store.apply([_comp_statement(workflow_id,
                                                             core.steps[x.step_id])
                                             for x in started])
                        await a.changes.bump(workflow_id)
                    for attempt in started:
                        tg.create_task(self._ask(row, spec, attempt, answers, give_up_at))
                    step_id, attempt, ok, error = await answers.get()
                    state = core.attempt_ended(step_id, attempt, ok, error)
                    if state is not CompState.RUNNING:
                        await a.store.apply([_comp_statement(workflow_id,
                                                             core.steps[step_id])])
                        await a.changes.bump(workflow_id)
                        log.info("%s: compensation of %s attempt %d: %s%s", workflow_id,
                                 step_id, attempt, state.value, f" ({error})" if error else "")
            log.info("%s: compensation %s", workflow_id, core.summary().value)
        finally:
            self._driven.discard(workflow_id)

    async def _ask(self, row: WorkflowRow, spec: spec_pb2.WorkflowSpec, x: CompAttempt,
                   answers: asyncio.Queue, give_up_at: float) -> None:
        """Ask the step's domain for one attempt until it answers (or patience ends)."""
        a = self.agent
        step = next(s for s in spec.steps if s.id == x.step_id)
        timeout = (step.compensate.timeout_s + CALL_MARGIN_S) if step.compensate.timeout_s \
            else CALL_TIMEOUT_S
        request = peer_pb2.CompensateRequest(workflow_id=row.id, step_id=x.step_id,
                                             attempt=x.attempt, epoch=row.epoch)
        backoff = 0.2
        while not a.stopping:
            result = None
            if x.domain == a.domain:
                result = await a.run_owned(self.run_here(a.domain, request), "compensate")
            else:
                endpoint = a.endpoint_of(x.domain, row.endpoints)
                try:
                    if endpoint is None:
                        raise PeerCallError("UNKNOWN", "no endpoint known")
                    body, _ = await a.peers.call(
                        endpoint, "Compensate", recipient=x.domain,
                        expect="compensation_result", timeout=timeout, compensate=request)
                    result = body.compensation_result
                    authorize("compensation_result", x.domain, Facts(
                        workflow_id=row.id, named=result.domain, placed_on=x.domain))
                    if (result.workflow_id, result.step_id, result.attempt) != \
                            (row.id, x.step_id, x.attempt):
                        raise PeerCallError("BAD_REPLY", "answers another compensation")
                except (PeerCallError, Refused) as e:
                    log.debug("%s: compensate %s at %s: %s", row.id, x.step_id, x.domain, e)
                    result = None
            if result is not None:
                await answers.put((x.step_id, x.attempt, result.ok, result.error))
                return
            if a.now() + backoff > give_up_at:
                await answers.put((x.step_id, x.attempt, False,
                                   f"{x.domain} did not answer for {PATIENCE_S:.0f}s"))
                return
            if not await a.sleep(backoff):
                return
            backoff = min(backoff * 2, 5.0)

    # ---- status ----------------------------------------------------------------------

    async def overlay(self, status: status_pb2.WorkflowStatus) -> status_pb2.WorkflowStatus:
        """A workflow's status with its compensations: each compensated step's state
        (COMPENSATED, COMPENSATION_FAILED with its error) and the summary."""
        if status.state not in (status_pb2.WORKFLOW_STATE_FAILED,
                                status_pb2.WORKFLOW_STATE_CANCELLED):
            status.compensation = status_pb2.COMPENSATION_SUMMARY_NONE
            return status
        rows = await self.agent.store.select(
            "SELECT step_id, state, error FROM compensations WHERE workflow_id=?",
            (status.id,))
        states = {r[0]: (CompState(r[1]), r[2]) for r in rows}
        for step in status.steps:
            known = states.get(step.id)
            if known is not None and known[0] in (CompState.COMPENSATED,
                                                  CompState.COMPENSATION_FAILED):
                step.state = step_state(known[0].value)
                step.error = known[1]
        status.compensation = status_pb2.CompensationSummary.Value(
            f"COMPENSATION_SUMMARY_{summary(s for s, _ in states.values()).value}")
        return status

    # ---- participant -----------------------------------------------------------------

    async def run_here(self, sender: str, request: peer_pb2.CompensateRequest
                       ) -> peer_pb2.CompensationResult:
        """Run (or answer for) one attempt of a compensation asked by `sender`."""
        key = (request.workflow_id, request.step_id, request.attempt)
        running = self._runs.get(key)
        if running is not None:  # a duplicate while it runs: the same answer
            return await asyncio.shield(running)
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._runs[key] = future
        try:
            result = await self._run_once(sender, request)
            future.set_result(result)
            return result
        except BaseException as e:
            future.set_exception(e)
            future.exception()  # retrieved: a duplicate waiter may never come
            raise
        finally:
            del self._runs[key]

    async def _run_once(self, sender: str, request: peer_pb2.CompensateRequest
                        ) -> peer_pb2.CompensationResult:
        a = self.agent
        wf, step_id, attempt = request.workflow_id, request.step_id, request.attempt

        def answer(ok: bool, error: str = "") -> peer_pb2.CompensationResult:
            return peer_pb2.CompensationResult(workflow_id=wf, step_id=step_id,
                                               attempt=attempt, domain=a.domain, ok=ok,
                                               error=error)

        key = (wf, step_id, attempt)
        recorded = await a.store.select(
            "SELECT state, error FROM compensation_runs WHERE workflow_id=? AND step_id=?"
            " AND attempt=?", key)
        if recorded:  # asked again after it ended (resolved at start-up if interrupted)
            state, error = recorded[0]
            # "running" here would be a run of an earlier life that recover() missed:
            # never run it again under the same attempt number.
            return answer(state == "succeeded", error or (
                INTERRUPTED if state == "running" else "failed"))
        row, steps = await a.store.get_workflow_with_steps(wf)
        mine = steps.get(step_id)
        spec = spec_pb2.WorkflowSpec.FromString(row.spec) if row is not None else None
        refusal = _refusal(a.domain, sender, wf, step_id, attempt, row, mine, spec,
                           epoch=request.epoch)
        if refusal:
            log.warning("refused a compensation of %s/%s from %s: %s", wf, step_id, sender,
                        refusal)
            return answer(False, refusal)
        step = next(s for s in spec.steps if s.id == step_id)  # type: ignore[union-attr]
        capability = step.compensate.capability or step.capability
        executor = a.executors.get(capability)
        try:  # the attempt's idempotency key, on disk before it runs
            await a.store.apply([("INSERT INTO compensation_runs(workflow_id, step_id,"
                                  " attempt, state, started_ms) VALUES(?, ?, ?, 'running', ?)",
                                  (*key, a.now_ms()))])
        except sqlite3.IntegrityError:  # recorded meanwhile by a concurrent request
            return await self._run_once(sender, request)
        with telemetry.compensation_attempt(wf, step_id, attempt, capability) as traced:
            if executor is None:
                ok, error = False, f"capability {capability} has no executor here"
            else:
                outcome = await executor.run(StepInvocation(
                    wf, step_id, attempt, values.read_object(step.compensate, "params"), {},
                    step.compensate.timeout_s or None,
                    run_marker=run_marker(a.domain, wf, f"{step_id}.compensate", attempt),
                    compensating=mine.outputs))  # type: ignore[union-attr]
                ok, error = outcome.ok, outcome.error
            traced.ended(ok, error)
        await a.store.apply([("UPDATE compensation_runs SET state=?, error=?, ended_ms=?"
                              " WHERE workflow_id=? AND step_id=? AND attempt=?",
                              ("succeeded" if ok else "failed", error, a.now_ms(), *key))])
        log.info("%s: compensation of %s attempt %d %s", wf, step_id, attempt,
                 "succeeded" if ok else f"failed: {error}")
        return answer(ok, error)


def _refusal(me: str, sender: str, wf: str, step_id: str, attempt: int,
             row: WorkflowRow | None, mine, spec: spec_pb2.WorkflowSpec | None,
             epoch: int = 0) -> str:
    """Why this compensation may not run here ("" if it may): the authority row of
    `compensate` with what this domain knows of the step (and of its coordinator's
    epoch: a successor after a takeover asks too)."""
    if row is None or spec is None:
        return f"workflow {wf} is not known here"
    try:
        authorize("compensate", sender, Facts(
            workflow_id=wf, epoch=epoch, held=(row.epoch, row.coordinator),
            participants=set(row.placement.values())))
    except Refused as e:
        return e.detail
    if row.placement.get(step_id) != me or mine is None or mine.domain not in ("", me):
        return f"step {step_id} of {wf} did not run here"
    if mine.state != "SUCCEEDED":
        return f"step {step_id} is {mine.state} here, not SUCCEEDED"
    if step_id not in compensable(spec):
        return f"step {step_id} has no compensate block"
    if attempt < 1:
        return "attempt numbers start at 1"
    return ""
