"""A workflow's outcome at its coordinator: when it is over, and its end.

A class of its own, built by Coordination (agent/runtime/coordination.py), which
hands it the decision envelopes of the rounds it still drives (an end that every
participant ran a step of takes the COMMIT certificate with it). After any change
of a workflow's progress, `after_progress` says whether it is over; `end` writes the
end in one write (the final state, every step, the holds released here, what the
caller hands over, the sagas owed) and tells every participant until acknowledged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from fedorch.core.identity.authority import coordinator_of
from fedorch.core.workflow.lifecycle import Event, Failed, Succeeded
from fedorch.core.workflow.progress import Outcome
from fedorch.gen.fedorch.v1 import peer_pb2
from fedorch.runtime.context import Active
from fedorch.runtime.convert import advance, end_notice_of, is_over
from fedorch.runtime.coordination_log import ran_a_step
from fedorch.runtime.store.store import Statement, Store

if TYPE_CHECKING:
    from fedorch.runtime.context import AgentContext

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
        await a.save(active, also=[*also, *released, *owed, a.audit.ended(active)])
        a.metrics.workflows.labels(row.state).inc()
        notice = end_notice_of(row)
        # After a takeover the original coordinator is told too: should it come back,
        # the end (of a later epoch than its own) makes it follow.
        original = {coordinator_of(row.id)} if row.epoch > 0 else set()
        for domain in sorted((set(row.placement.values()) | original) - {a.domain, told}):
            # Until acknowledged: a participant that misses it keeps its slots (it also
            # asks, see Participation.timer_loop, in case this agent stops first).
            a.spawn(a.deliver(domain, "CancelWorkflow", endpoints=row.endpoints,
                              give_up_after=END_NOTICE_PATIENCE_S, cancel=notice),
                    name=f"cancel {row.id} at {domain}")
        a.finished(row.id)
        if owed:
            a.compensation.begin(row.id)
        return True
