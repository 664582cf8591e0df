"""The coordinator's answer to a lost domain: its steps resolved, its late reports refused.

A class of its own, built by Coordination (agent/runtime/coordination.py) and
handed the outcome path it ends workflows by. Membership calls
`domain_dead` (through Coordination) when a member is DEAD or LEFT (never on SUSPECT: a
suspect may only be slow). A domain that LEFT (its agent stopped gracefully) is lost as
a DEAD one is: its agent kills its steps' processes as it stops and reports no end of
them, so a workflow that waited for it would wait until it came back, perhaps never.
Each RUNNING workflow coordinated here with unfinished steps on that
domain has them resolved by the progress core (Progress.domain_lost, table in
agent/core/workflow/domain_loss.py); a step to place again gets a new negotiation
round (agent/runtime/replacement.py, Replacements); the workflow then ends or goes
on as after any step result: a FAILED step skips what is downstream and ends the workflow FAILED,
with end notices to every participant (the lost one too, resent until it is
back and acknowledges; a domain a step was taken from is told as well, see
Outcomes.end, though the final placement no longer names it).

Fencing: a loss ends the step's placement and moves its epoch on. A report
(result, RUNNING note) the lost placement still sends carries the older epoch
and is refused and logged (`refuse_fenced`), at the coordinator even after the
workflow has ended (FencedSteps remembers the lost steps, bounded). Refused so once
the workflow has ended, the answer carries its end (PeerService._report_step, for a
step placed elsewhere since), so a domain back after the end ends it there too.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING

from fedorch.core.workflow.progress import StepState
from fedorch.gen.fedorch.v1 import peer_pb2
from fedorch.runtime.context import Active
from fedorch.runtime.convert import is_over, step_state_name
from fedorch.runtime.replacement import Replacements

if TYPE_CHECKING:
    from fedorch.runtime.context import AgentContext

log = logging.getLogger("fedorch.coordinator")

# Steps taken from a lost domain, remembered after their workflow ended. Past this
# many, a late report of an ended workflow is still never applied (it is answered with
# the end); only the log line of its refusal is lost.
FENCED_MEMORY = 10_000


class FencedSteps:
    """(workflow, step) -> (lost domain, the step's epoch since the loss), bounded."""

    def __init__(self, limit: int = FENCED_MEMORY) -> None:
        self._limit = limit
        self._steps: OrderedDict[tuple[str, str], tuple[str, int]] = OrderedDict()

    def note(self, workflow_id: str, step_id: str, domain: str, epoch: int) -> None:
        self._steps[(workflow_id, step_id)] = (domain, epoch)
        while len(self._steps) > self._limit:
            self._steps.popitem(last=False)

    def get(self, workflow_id: str, step_id: str) -> tuple[str, int] | None:
        return self._steps.get((workflow_id, step_id))


class DomainLoss:
    """The lost domains' steps of the workflows coordinated here, and the fence against
    their late reports. `after_progress` is the coordinator's outcome path
    (Coordination.after_progress): True when it ended the workflow (and wrote it)."""

    def __init__(self, agent: AgentContext,
                 after_progress: Callable[[Active], Awaitable[bool]],
                 fenced: FencedSteps | None = None) -> None:
        self.agent = agent
        self._after_progress = after_progress
        self._fenced = fenced if fenced is not None else FencedSteps()
        # New rounds for the steps a loss sent back to be placed again.
        self.replacements = Replacements(agent, after_progress)

    def domain_dead(self, domain: str, state: str) -> None:
        """Membership: `domain` is lost, `state` saying how (DEAD or LEFT: both are lost
        here; the steps' reasons name it). Resolve its unfinished steps in every RUNNING
        workflow coordinated here (Progress.domain_lost), then let each workflow move on
        (FAILED end, skipped downstream steps, end notices) as after a step result."""
        self.domains_dead({domain: state})

    def domains_dead(self, domains: Mapping[str, str]) -> None:
        """As domain_dead, for each of `domains` (domain -> the state that made it lost).
        Membership also calls it now and then with every member that is DEAD or LEFT: a
        workflow committed after the loss (the domain voted YES, then died or left) or
        restored after a restart of this agent missed the event."""
        a = self.agent
        lost = {d: s for d, s in domains.items() if d != a.domain}
        if not lost:
            return
        for active in list(a.active.values()):
            row = active.row
            if row.coordinator != a.domain or active.progress is None or is_over(row):
                continue
            for domain in sorted(lost.keys() & set(row.placement.values())):
                self._lose(active, domain, lost[domain])

    def _lose(self, active: Active, domain: str, state: str) -> None:
        a = self.agent
        row = active.row
        # The coordinator the id names, or a successor with its epoch certificate
        # (runtime/replacement.py), places a lost step again: the same rounds.
        resolved = active.progress.domain_lost(domain, state=state, can_replace=True)
        if resolved:
            for step_id, action in resolved:
                step = active.progress.steps[step_id]
                self._fenced.note(row.id, step_id, domain, step.epoch)
                log.warning("%s: step %s lost with domain %s (%s, %s)%s", row.id,
                            step_id, domain, state, action.value, f": {step.error}" if step.error
                            else ": placing it again")
            a.spawn(self._after_loss(active), name=f"domain loss {row.id}")
        elif active.progress.awaiting_placement():  # the sweep: a round cut short
            self.replacements.start(active)

    async def _after_loss(self, active: Active) -> None:
        if not await self._after_progress(active):
            await self.agent.save(active)
            if active.progress is not None and active.progress.awaiting_placement():
                self.replacements.start(active)

    def refuse_fenced(self, sender: str, result: peer_pb2.StepResult) -> str | None:
        """Why a step report must be refused as coming from a placement that is over
        (logged and counted here), or None."""
        a = self.agent
        active = a.active.get(result.workflow_id)
        reason = None
        if active is not None and active.progress is not None:
            reason = active.progress.refuse_result(result.step_id, sender,
                                                   result.placement_epoch)
        lost = self._fenced.get(result.workflow_id, result.step_id)
        if reason is None and lost is not None and lost[0] == sender \
                and result.placement_epoch < lost[1]:
            reason = (f"step {result.step_id} placement epoch {result.placement_epoch} from"
                      f" {sender} is over (lost with domain {sender}); the step is at"
                      f" epoch {lost[1]}")
        if reason is not None:
            a.metrics.rejected_messages.labels("fenced_step_report").inc()
            log.warning("%s: refused a %s report: %s", result.workflow_id,
                        StepState(step_state_name(result.state)).value, reason)
        return reason
