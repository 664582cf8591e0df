"""The step placement epochs a workflow's acting coordinator answers a query with.

A participant back from a restart or a silence, or one that learned a COMMIT without
the coordinator (agent/core/workflow/self_fencing.py), starts nothing of the workflow
until the coordinator it follows answers with each step's placement epoch and none of
its own steps is at a higher epoch there (runtime.in_doubt: placed_elsewhere). So an
honest coordinator answers with them whenever the workflow runs under it, held in
memory or not:

- In memory: each step's epoch as its progress holds it (a loss moves it on, a
  re-placement sets it to the round's number).
- Not in memory (read from the store): the epochs are not kept on disk, but where each
  step is placed is (the steps table and the row's placement). A step placed on the
  asker gets 0: the asker's own placement is current, whatever epoch it holds (0 is
  never above it). Any other step gets `above`: its placement on the asker, if it ever
  had one, is over.
- Either way, a step the asker lost (it is the step's `lost_to` or among its
  `replaced_from`, which the store keeps) and that is not placed on it now gets at
  least `above`: after a restart of this coordinator its epochs in memory start again
  at 0, and the asker may hold the number of a re-placement round.

`above` is one more than every round number the workflow ever used here (decisions on
record and re-placement rounds begun) and every epoch held in memory: a placement epoch
is a round's number (or one above the last, for a loss not yet placed again), so it is
above any the asker can hold. An answer names every step, so it is never empty: an
empty map means "no epochs" (an agent of an older version, not the acting coordinator,
or the workflow not running here).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.gen.fedorch.v1 import peer_pb2
from fedorch.runtime.convert import is_over, state_of
from fedorch.runtime.store import replacement_rounds

if TYPE_CHECKING:
    from fedorch.runtime.context import AgentContext


async def _above(agent: AgentContext, workflow_id: str, held: int) -> int:
    rows = await agent.store.select(
        "SELECT max(round) FROM decisions WHERE workflow_id = ?", (workflow_id,))
    begun = await replacement_rounds.last_recorded(agent.store, workflow_id)
    return max(held, int(rows[0][0] or 0), begun) + 1


async def answer_as_coordinator(agent: AgentContext, answer: peer_pb2.DecisionAnswer,
                                asker: str) -> None:
    """What the acting coordinator adds to its answer to `asker`'s QueryDecision while
    the workflow runs: each step's placement epoch, and, a successor (epoch >= 1), its
    epoch certificate, so that a participant that does not follow it yet (its own
    coordinator gone, it asks the other participants and the round's acceptors) can
    check that it acts."""
    wf = answer.workflow_id
    answer.step_epochs.update(await step_epochs(agent, wf, asker))
    if answer.step_epochs:
        certificate = agent.takeovers.certificates.certificate(wf)
        if certificate is not None:
            answer.epoch_certificate.CopyFrom(certificate)


async def step_epochs(agent: AgentContext, workflow_id: str, asker: str) -> dict[str, int]:
    """Each step's placement epoch for `asker`'s query, when this agent is the acting
    coordinator of `workflow_id` and it runs; else {} (see the module's docstring)."""
    a = agent
    active = a.active.get(workflow_id)
    if active is not None and active.progress is not None:
        row = active.row
        if row.coordinator != a.domain or is_over(row):
            return {}
        steps = active.progress.steps.values()
        epochs = {s.id: s.epoch for s in steps}
        lost = [s.id for s in steps if asker and s.domain != asker
                and (s.lost_to == asker or asker in s.replaced_from)]
        if lost:
            above = await _above(a, workflow_id, max(epochs.values(), default=0))
            for step_id in lost:
                epochs[step_id] = max(epochs[step_id], above)
        return epochs
    row, on_disk = await a.store.get_workflow_with_steps(workflow_id)
    if row is None or row.coordinator != a.domain \
            or state_of(row) is not WorkflowState.RUNNING:
        return {}
    above = await _above(a, workflow_id, 0)
    epochs = {}
    for step_id in sorted(set(row.placement) | set(on_disk)):
        kept = on_disk.get(step_id)
        domain = kept.domain if kept is not None else row.placement.get(step_id, "")
        epochs[step_id] = 0 if asker and domain == asker else above
    return epochs
