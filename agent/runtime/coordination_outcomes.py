"""A workflow's outcome at its coordinator: when it is over, and its end.

A class of its own, built by Coordination (agent/runtime/coordination.py), which
hands it the decision envelopes of the rounds it still drives (an end that every
participant ran a step of takes the COMMIT certificate with it). After any change
of a workflow's progress, `after_progress` says whether it is over; `end` writes the
end in one write (the final state, every step, the holds released here, what the
caller hands over, the sagas owed, the end notices owed) and tells every participant
until acknowledged.

After a takeover (epoch > 0) the end notices owed are on disk
(agent/runtime/store/end_notices.py), one row per domain, in the very write of the end:
there is no instant at which the end is durable and the notices to send are not. A row
goes once its domain answers (or the delivery gives up, END_NOTICE_PATIENCE_S after the
end). A restarted successor sends every notice still owed again (`resend_owed`, at
start), the one to the original coordinator among them, with what is left of the
patience. Why only then: a participant that misses the end of a workflow its original
coordinator ended asks that coordinator (it is the one the workflow id names: see
Participation's timer loop), which answers from its record after any restart, so a row
per notice would buy nothing there and cost two statements per workflow on the busiest
path; after a takeover the participants would ask the original coordinator, which may
be gone for good, and the original coordinator itself asks no one.
"""

from __future__ import annotations

import logging
from collections.abc import Coroutine, Sequence
from typing import TYPE_CHECKING, Any

from fedorch.core.identity.authority import coordinator_of
from fedorch.core.workflow.lifecycle import Event, Failed, Succeeded
from fedorch.core.workflow.progress import Outcome
from fedorch.gen.fedorch.v1 import peer_pb2
from fedorch.runtime.context import Active
from fedorch.runtime.convert import advance, end_notice_of, is_over
from fedorch.runtime.coordination_log import ran_a_step
from fedorch.runtime.store import end_notices
from fedorch.runtime.store.store import Statement, Store, WorkflowRow

if TYPE_CHECKING:
    from fedorch.runtime.context import AgentContext

log = logging.getLogger("fedorch.coordination")

END_NOTICE_PATIENCE_S = 24 * 3600.0


class Outcomes:
    """Whether a workflow coordinated here is over, and its end. `envelopes`: the
    signed decision of each round whose core is still driven (Coordination's)."""

    def __init__(self, agent: AgentContext,
                 envelopes: dict[tuple[str, int], peer_pb2.Envelope]) -> None:
        self.agent = agent
        self._decisions = envelopes

    async def after_progress(self, active: Active, also: Sequence[Statement] = (),
                             told: str | None = None) -> bool:
        """Called whenever the coordinator's progress changed: is the workflow over? If
        so it ends, and its end is written with the statements in `also` (a caller may
        hand over the write it would have made); True then, else nothing is written.
        `told`: a participant that learns the end from the answer to its step result
        (see end_notice), and is sent no end notice."""
        progress = active.progress
        if progress is None or is_over(active.row):
            return False
        outcome = progress.outcome()
        if outcome is None:
            return False
        if outcome is Outcome.FAILED:
            reason = "; ".join(progress.failure_reasons())
            return await self.end(active, Failed(reason), also, told)
        return await self.end(active, Succeeded(), also, told)

    async def end_notice(self, workflow_id: str) -> peer_pb2.CancelNotice | None:
        """The end of a workflow coordinated here that has ended, as its end notice; None
        if it has not. A step result of an ended workflow is answered with it: the
        participant whose result ended it is sent no notice (`told`), and should that
        answer be lost, the result comes again and its answer carries the end again."""
        a = self.agent
        saved = a.saved_final(workflow_id)
        row = saved.row if saved is not None else await a.store.get_workflow(workflow_id)
        if row is None or row.coordinator != a.domain or not is_over(row):
            return None
        return end_notice_of(row)

    async def end(self, active: Active, event: Event,
                  also: Sequence[Statement] = (), told: str | None = None) -> bool:
        """End a running workflow by `event` (False, nothing done, if it has ended): stop
        what still runs anywhere, tell every participant (but `told`, which has the end
        in the answer to its result: see end_notice). One write: the final state, every
        step, the holds released here, and `also`."""
        a = self.agent
        row = active.row
        if not advance(row, event):
            return False
        if active.progress is not None:
            for step_id in active.progress.cancel(row.reason):
                task = active.running.get(step_id)
                if task is not None:
                    task.cancel()
        released = [Store.delete_reservation_statement(hold.workflow_id, hold.round)
                    for hold in a.participant.release_workflow(row.id)]
        key = (row.id, row.round)
        if key in self._decisions and key not in active.collect \
                and set(row.placement.values()) <= ran_a_step(active):
            # Each participant learned the COMMIT to run a step: its certificate goes in
            # this write, not in one of its own once the results have reached the core.
            active.collect.append(key)
        owed = a.compensation.owed(row, active.progress)  # sagas: written with the end
        # After a takeover the original coordinator is told too: should it come back,
        # the end (of a later epoch than its own) makes it follow.
        original = {coordinator_of(row.id)} if row.epoch > 0 else set()
        # A domain a step was taken from when it was lost is told too: back after the end,
        # it would otherwise keep the workflow RUNNING there for ever.
        lost = set() if active.progress is None else {
            d for step in active.progress.steps.values()
            for d in (*step.replaced_from, step.lost_to) if d}
        told_of_end = sorted((set(row.placement.values()) | original | lost)
                             - {a.domain, told})
        durable = row.epoch > 0  # see the module's docstring
        notices = end_notices.owed_statements(row.id, told_of_end, a.now_ms()) \
            if durable else []
        await a.save(active, also=[*also, *released, *owed, *notices, a.audit.ended(active)])
        a.metrics.workflows.labels(row.state).inc()
        for domain in told_of_end:
            # Until acknowledged: a participant that misses it keeps its slots (it also
            # asks, see Participation.timer_loop, in case this agent stops first).
            self._tell(row, domain, END_NOTICE_PATIENCE_S, durable=durable)
        a.finished(row.id)
        if owed:
            a.compensation.begin(row.id)
        return True

    async def resend_owed(self) -> int:
        """At start: send again every end notice still owed (see the module's docstring),
        with what is left of its patience; returns how many. A row whose workflow is
        gone, not ended or no longer coordinated here, or whose patience is spent, is
        owed no more and is deleted."""
        a = self.agent
        rows: dict[str, WorkflowRow | None] = {}
        due: list[tuple[WorkflowRow, str, float]] = []
        dropped: list[Statement] = []
        for notice in await end_notices.owed(a.store):
            if notice.workflow_id not in rows:
                rows[notice.workflow_id] = await a.store.get_workflow(notice.workflow_id)
            row = rows[notice.workflow_id]
            left = END_NOTICE_PATIENCE_S - (a.now_ms() - notice.owed_since_ms) / 1000.0
            if row is None or not is_over(row) or row.coordinator != a.domain or left <= 0:
                dropped.append(end_notices.delivered_statement(notice.workflow_id,
                                                               notice.domain))
                continue
            due.append((row, notice.domain, left))
        if dropped:
            await a.store.apply(dropped)
            log.info("%d end notices owed no more (workflow gone or patience spent)",
                     len(dropped))
        if due:
            log.info("resending %d end notices of %d ended workflows", len(due),
                     len({row.id for row, _, _ in due}))
        for row, domain, left in due:
            self._tell(row, domain, left, durable=True)
        return len(due)

    def _tell(self, row: WorkflowRow, domain: str, patience_s: float, *,
              durable: bool) -> None:
        """Deliver the end notice of `row` to `domain` in a task the agent owns
        (`durable`: its row is on disk, to delete once answered)."""
        sending = self.agent.deliver(domain, "CancelWorkflow", endpoints=dict(row.endpoints),
                                     give_up_after=patience_s, cancel=end_notice_of(row))
        if self.agent.spawn(self._until_answered(sending, row.id, domain, patience_s,
                                                 durable),
                            name=f"cancel {row.id} at {domain}") is None:
            sending.close()  # the agent is stopping: still owed, sent at the next start

    async def _until_answered(self, sending: Coroutine[Any, Any, peer_pb2.Ack | None],
                              workflow_id: str, domain: str, patience_s: float,
                              durable: bool) -> None:
        a = self.agent
        a.metrics.end_notices_owed.inc()
        try:
            answer = await sending
        finally:
            a.metrics.end_notices_owed.dec()
        if answer is None:
            if a.stopping:
                return  # still owed: the next start sends it again
            log.warning("gave up telling %s the end of %s: no answer in %.0f s", domain,
                        workflow_id, patience_s)
        if durable:
            await a.store.apply([end_notices.delivered_statement(workflow_id, domain)])
