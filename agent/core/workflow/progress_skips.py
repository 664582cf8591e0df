"""What a FAILED step of a workflow's progress skips, and what waits again, sans I/O.

A FAILED step skips everything downstream of it (SKIPPED, naming it); a FAILED
fan-out instance skips only once its fan-out step has failed (then its instances not
started are skipped too: the rollout stops). A FAILED result dropped (a step placed
again afresh: Progress.placed_again) unskips what it skipped, and every step still
FAILED skips again. The theory of operation is progress.py's.

Apart from progress.py because skipping is one whole of its own, walked over the
DAG from the failed step; the functions take the Progress (typed loosely: it imports
this module) and change its steps' states as its methods did.
"""

from __future__ import annotations

from typing import Any

from fedorch.core.workflow.progress_states import Outcome, StepState


def failed(p: Any, step_id: str) -> None:
    """A step FAILED: skip what is after it; for an instance, only once its fan-out
    step has failed (then its instances not started are skipped too: the rollout
    stops)."""
    group_id = p._group_of.get(step_id)
    if group_id is None:
        skip_downstream(p, step_id)
        return
    if p.group_outcome(group_id) is not Outcome.FAILED:
        return  # on_failure: continue, and min_success still within reach
    reason = f"fan-out step {group_id} failed (instance {step_id} failed)"
    for instance in p.groups[group_id].instances:
        step = p.steps[instance]
        if step.state in (StepState.WAITING, StepState.PENDING):
            step.state, step.error = StepState.SKIPPED, reason
        skip_downstream(p, instance)


def unskip(p: Any, step_id: str) -> None:
    """`step_id`'s FAILED was dropped (placed again afresh): what it skipped, after it
    (and, for an instance, its group's instances), waits again, unplaced ones to be
    placed; then every step still FAILED skips again, so a step after another failed
    step stays SKIPPED. Kept, they never ran here, their coordinator waiting for ever
    (takeover soak seed 100546)."""
    group = p._group_of.get(step_id)
    pending = list(p._downstream[step_id])
    if group is not None:
        pending.extend(p.groups[group].instances)
    seen: set[str] = set()
    while pending:
        step = p.steps[pending.pop()]
        if step.id in seen or step.state is not StepState.SKIPPED:
            continue
        seen.add(step.id)
        step.state = StepState.WAITING if step.domain else StepState.PENDING
        step.error = ""
        pending.extend(p._downstream[step.id])
    for step in list(p.steps.values()):
        if step.state is StepState.FAILED:
            failed(p, step.id)


def skip_downstream(p: Any, step_id: str) -> None:
    pending = list(p._downstream[step_id])
    while pending:
        sid = pending.pop()
        step = p.steps[sid]
        if step.state in (StepState.WAITING, StepState.PENDING):
            step.state, step.error = StepState.SKIPPED, f"upstream step {step_id} failed"
            pending.extend(p._downstream[sid])
