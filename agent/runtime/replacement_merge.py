"""How a domain merges a committed re-placement of a step into its view of a workflow.

The decision of a re-placement round (agent/runtime/replacement.py) carries a
Replacement: the step, the lost domain, the whole placement, the coordinator and its
epoch, and the outputs of the steps it needs that had SUCCEEDED. The new domain and
every other live domain of the workflow merge it here, so that results flow to and
from the new placement; the step's epoch becomes the round's number (Progress.
placed_again), so reports of any earlier placement are refused.
"""

from __future__ import annotations

import logging

from fedorch.core.workflow import values
from fedorch.core.workflow.progress import StepState
from fedorch.gen.fedorch.v1 import peer_pb2
from fedorch.runtime.context import Active

log = logging.getLogger("fedorch.coordinator")


def apply_replacement(active: Active, replacement: peer_pb2.Replacement, round_: int,
                      endpoints: dict[str, str]) -> bool:
    """Merge a committed re-placement into this agent's view of a running workflow:
    the step's new domain and epoch, the domains of steps not known here yet, and the
    outputs of the steps it needs. Returns whether anything changed (False: a repeat,
    or older than what is known here)."""
    progress, row = active.progress, active.row
    step_id = replacement.step_id
    new = replacement.placement.get(step_id, "")
    if progress is None or step_id not in progress.steps or not new:
        return False
    if not progress.placed_again(step_id, new, round_, replacement.lost_domain):
        return False
    row.placement[step_id] = new
    if replacement.coordinator and replacement.coordinator_epoch > max(
            row.epoch, row.granted_epoch):
        # Placed by a later coordinator epoch than held here (its certificate was checked
        # with the decision): that coordinator collects the results now.
        row.epoch, row.coordinator = replacement.coordinator_epoch, replacement.coordinator
    for other, domain in replacement.placement.items():
        if other in progress.steps and domain and not progress.steps[other].domain:
            progress.steps[other].domain = domain
        if domain and not row.placement.get(other):
            row.placement[other] = domain
    row.endpoints.update({d: e for d, e in endpoints.items() if e})
    for need in progress.steps[step_id].needs:
        text = replacement.inputs_json.get(need)
        known = progress.steps.get(need)
        if text is None or known is None or known.state is StepState.SUCCEEDED:
            continue
        try:
            outputs = values.loads_object(text)
        except values.JsonValueError as e:
            log.warning("%s: input %s of the re-placed step %s: %s", row.id, need, step_id, e)
            continue
        progress.apply_result(need, max(known.attempts, 1), StepState.SUCCEEDED, outputs, "")
    return True
