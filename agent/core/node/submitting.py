"""The Node's submission path: a client's workflow taken by the agent that coordinates it.

Theory of operation
-------------------
A `Submit` becomes the workflow's row (PENDING -> NEGOTIATING, written at the point
"workflow row", with the client's request id when it names one) and a Coordinator
core, started at once: its first round is placed and its PREPAREs go to the peers
with the row's write under Paxos Commit (prepares_ahead.py says why that is safe), and
follow it under classic 2PC and to this Node's own participant (negotiation.py runs
its actions). A retry of a request id on record makes
nothing (its workflow is the one on record: cancel.py, "Request ids").

The first round's placement comes in with the submission: the driver's placer made
it a moment before, against the member view the client service checked the spec
with (`Submit.placement`). When that placer found no domain for some steps
(`Submit.unplaceable`: each such step and why), the workflow is still taken, as the
shells took it: the row is written, and the core's first placement is that answer,
so the Coordinator ends the workflow at its start, ABORTED with the reason (`no
placement: STEP: WHY`, as coordinator.py words it), with no round, no PREPARE and no
reservation anywhere. The client gets a workflow id, its status says why, its audit
record and counters are those of any aborted workflow (they read the row's writes),
and a restored coordinator finds a finished row of round 0 (presumed nothing to do).
Why not refuse it at Submit: the shells accepted it and ended it ABORTED, and a client
that submits many workflows at once (SubmitStream) reads every end the same way.
Why not place it again here: the placer's answer is the one the client service made
from the same view; placing again could only disagree with it by the view's change
in between, and a step the placer found no domain for is not one a second look
should run.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from typing import Any

from fedorch.core.negotiation.coordinator import Coordinator, Placer
from fedorch.core.node.inputs import Submit
from fedorch.core.node.records import CoordRow, WfInfo
from fedorch.core.workflow import lifecycle
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.core.workflow.placement import Placement

__all__ = ["take_submission"]


def take_submission(n: Any, now: float, s: Submit) -> None:
    """`n`: the Node (typed loosely: the Node imports its parts, never the reverse)."""
    if s.request_id and s.request_id in n.state.requests:
        n.stats["submission of a known request id ignored"] += 1
        return  # a retry: its workflow is the one on record (cancel.py)
    fresh = s.workflow_id not in n.state.rows
    n.point("workflow row")
    if s.request_id:  # in the row's write: a retry after a restart finds it
        n.cancels.record_request(s.request_id, s.workflow_id)
    n.state.rows[s.workflow_id] = CoordRow(
        s.workflow_id, WfInfo(s.spec, {}, n.name, submission=s.submission),
        state=lifecycle.step(WorkflowState.PENDING, lifecycle.Submitted()))
    n.out.status.append((s.workflow_id, WorkflowState.NEGOTIATING))
    if s.unplaceable:
        n.stats["submission no domain can take: aborted"] += 1
        placer = _refused(s.placement or {}, s.unplaceable)
    else:
        placer = n.placer(s.spec, s.placement)
    core = Coordinator(s.workflow_id, placer=placer, max_rounds=n.t.max_rounds,
                       prepare_timeout_s=n.t.prepare_timeout_s,
                       consensus=None if n.t.classic else n.consensus(), me=n.name,
                       resend_s=n.t.resend_s, decision_resend_s=n.t.decision_resend_s,
                       query_interval_s=n.t.query_interval_s)
    n.coordinators[s.workflow_id] = core
    core.start(now)
    # Its first round's PREPAREs may leave with this write (prepares_ahead.py): the
    # row is in it, so a crash before it leaves no trace of the workflow here.
    n.negotiation.submitting = s.workflow_id if fresh else None
    try:
        n.negotiation.run(now, core.next_actions(), core)
    finally:
        n.negotiation.submitting = None


def _refused(assignment: Mapping[str, str], unplaceable: Mapping[str, str]) -> Placer:
    """The placer's answer as it came with the submission: the core's first round
    finds steps no domain can take and ends the workflow ABORTED, naming them."""

    def placed(excluded: Mapping[str, AbstractSet[str]]) -> Placement:
        return Placement(dict(assignment), dict(unplaceable))

    return placed
