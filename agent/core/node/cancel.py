"""The Node's cancel part: a client's cancel of a workflow, and its request ids.

Theory of operation
-------------------
Only a workflow's coordinator takes a `Cancel` (the driver's client service routes it
there and checks who may ask). A cancel is durable before anything it causes: its
reason goes into the `cancels` table in a write group of its own ("cancel") of the
Ready that carries it out, ahead of the round's ABORT or the end notices it sends,
so a crash between the two finds it on disk and `restore` carries it out again.
What it does depends on where the workflow is (the coordinator's row, the lifecycle
core's state):

    (row state,   coordinator phase)  -> effect
    (NEGOTIATING, PREPARING)   the round is aborted (Coordinator.cancel): ABORT to the
                               participants, the row CANCELLED ("cancelled: reason")
    (NEGOTIATING, DECIDING)    a COMMIT is proposed and cannot be taken back: the cancel
                               waits on record; once the round is decided, a COMMIT
                               ends it as a running one (below), an ABORT ends it
                               CANCELLED (`finished_cancelled`), a next round is aborted
    (RUNNING,     -)           lifecycle Cancelled: the row CANCELLED, its steps here
                               stopped (`stop_steps`), what it holds here released, an
                               end notice (FinalMsg CANCELLED) sent to every participant
                               until acknowledged; a participant that takes it stops its
                               steps and releases its holds (Running.end_here)
    (terminal,    -)           refused: the workflow keeps its end, nothing is written
    (no row here, -)           refused: not coordinated here (or forgotten)

While a cancel waits on record, no step attempt of the workflow starts here
(`holds_back`): a COMMIT decided after the cancel starts nothing at the coordinator.
A workflow taken over by a successor (coordinator takeover: an epoch above 0 on
record) is refused here: its successor decides its end. With coordinator takeover
composed, a cancel of a committed workflow (or one whose COMMIT is proposed) is
refused: a claimant that won an epoch before it heard of the cancel would end it
otherwise, and two ends would stand (making the cancel an act of the electorate, as
a claim is, is not built); a cancel while the round is prepared stays safe, since
only a committed workflow is taken over.

Request ids. A client's retry of a submission carries its request id; the
coordinator keeps (request id -> workflow id, wall ms) in the `requests` table, in
the write of the workflow's row, so a retry after a restart finds the workflow the
first attempt made. The table is bounded as retention bounds ended workflows: at
most `REQUESTS_KEPT` ids, none older than `REQUEST_WINDOW_MS` (the oldest go first,
when a new one comes).
"""

from __future__ import annotations

from typing import Any

from fedorch.core.negotiation.rounds import Phase
from fedorch.core.node.inputs import Cancel
from fedorch.core.workflow import lifecycle
from fedorch.core.workflow.lifecycle import TERMINAL, WorkflowState

__all__ = ["REQUESTS_KEPT", "REQUEST_WINDOW_MS", "Cancels", "refusal"]

REQUESTS_KEPT = 16_384
REQUEST_WINDOW_MS = 3_600_000  # a client retries within the hour its submission is valid


def refusal(node: Any, workflow_id: str) -> str | None:
    """Why this Node would refuse a cancel of `workflow_id` now (None: it takes it),
    asked when it steps a `Cancel` (the node engine's client service refuses an ended
    workflow's cancel from its durable status before it posts one)."""
    d = node.state
    row = d.rows.get(workflow_id)
    if row is None:
        return f"{workflow_id} is not coordinated here"
    if row.state in TERMINAL:
        how = f" ({row.reason})" if row.reason else ""
        return f"{workflow_id} already ended {row.state.name}{how}: nothing to cancel"
    if d.epochs.get(workflow_id, (0, ""))[0] > 0:
        return f"{workflow_id} was taken over by {d.epochs[workflow_id][1]}: cancel it there"
    if node.takeover is not None and committing(node, workflow_id):
        return (f"{workflow_id} is committed: with coordinator takeover on, a cancel of a"
                " committed workflow is not built (a successor could end it otherwise)")
    return None


def committing(node: Any, workflow_id: str) -> bool:
    """Its COMMIT is proposed (DECIDING) or decided (RUNNING)."""
    row = node.state.rows[workflow_id]
    if row.state is WorkflowState.RUNNING:
        return True
    core = node.coordinators.get(workflow_id)
    return core is not None and core.phase is not Phase.PREPARING


class Cancels:
    def __init__(self, node: Any) -> None:
        # The Node that owns this part (typed loosely: the Node imports its parts,
        # never the reverse, so the import graph has no cycle).
        self.n = node

    # ---- inputs ----------------------------------------------------------------------

    def cancel(self, now: float, c: Cancel) -> None:
        n = self.n
        d = n.state
        wf = c.workflow_id
        why = refusal(n, wf)
        if why is not None:
            n.stats["cancel refused"] += 1
            n.note("cancel_refused", wf, why)
            return
        if wf in d.cancels:
            return  # taken already: it is being carried out
        n.point("cancel")
        d.cancels[wf] = c.reason
        n.note("cancel_taken", wf)
        n.stats["cancel taken"] += 1
        self.carry_out(now, wf)
        if d.rows[wf].state is WorkflowState.NEGOTIATING:
            n.stats["cancel waits for a COMMIT proposed"] += 1

    # ---- what the other parts call -----------------------------------------------------

    def holds_back(self, wf: str) -> bool:
        """A cancel of `wf` is on record here: none of its attempts may start."""
        return wf in self.n.state.cancels

    def finished_cancelled(self, wf: str) -> bool:
        """Its admission ended without a commit while a cancel waited: CANCELLED."""
        return wf in self.n.state.cancels

    def after_run(self, now: float, wf: str) -> None:
        """Its coordinator core acted: a cancel that waited (a COMMIT proposed) is
        carried out as far as the core's phase now allows."""
        if wf in self.n.state.cancels:
            self.carry_out(now, wf)

    def restore(self, now: float) -> None:
        """A cancel on record whose workflow has not ended (a crash between the cancel's
        write and the writes that carry it out): carried out again."""
        d = self.n.state
        for wf in list(d.cancels):
            row = d.rows.get(wf)
            if row is not None and row.state not in TERMINAL:
                self.carry_out(now, wf)

    # ---- carrying it out -----------------------------------------------------------------

    def carry_out(self, now: float, wf: str) -> None:
        n = self.n
        d = n.state
        row = d.rows.get(wf)
        if row is None or row.state in TERMINAL or d.epochs.get(wf, (0, ""))[0] > 0:
            return
        reason = d.cancels[wf]
        if row.state is WorkflowState.NEGOTIATING:
            core = n.coordinators.get(wf)
            if core is not None and core.phase is Phase.PREPARING:
                n.stats["cancel aborted a round"] += 1
                core.cancel(now, reason)  # its Finished makes the row CANCELLED
                n.negotiation.run(now, core.next_actions(), core)
            return  # DECIDING: a COMMIT proposed; carried out once it is decided
        if row.state is WorkflowState.RUNNING and wf not in d.final:
            n.stats["cancel ended a running workflow"] += 1
            n.point("workflow cancelled")
            n.running.end_as_coordinator(now, wf, lifecycle.Cancelled(f"cancelled: {reason}"))

    # ---- request ids -----------------------------------------------------------------------

    def record_request(self, request_id: str, wf: str) -> None:
        """In the write of `wf`'s row: a retry of `request_id` is answered `wf`."""
        n = self.n
        requests = n.state.requests
        wall = n.wall_ms(n.now)
        while requests:
            oldest = next(iter(requests))
            if len(requests) < REQUESTS_KEPT \
                    and requests[oldest][1] >= wall - REQUEST_WINDOW_MS:
                break
            del requests[oldest]
        requests[request_id] = (wf, wall)

