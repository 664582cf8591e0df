"""The Node's cancel part: a client's cancel of a workflow, and its request ids.

Theory of operation
-------------------
Only the coordinator of a workflow's current epoch takes a `Cancel`: its original
coordinator while the workflow negotiates, or while it runs at epoch 0 and follows no
later epoch; after a takeover, the successor acting in the epoch it won
(DomainLoss.drives says which). The driver's client service routes a cancel there
(to the holder of the highest epoch its members know) and checks who may ask. A
cancel is durable before anything it causes: its reason goes into the `cancels`
table in a write group of its own ("cancel") of the Ready that carries it out, ahead
of the round's ABORT or the end notices it sends, so a crash between the two finds it
on disk and `restore` carries it out again. What it does depends on where the
workflow is (the coordinator's row, the lifecycle core's state):

    (row state,   coordinator phase)  -> effect
    (NEGOTIATING, PREPARING)   the round is aborted (Coordinator.cancel): ABORT to the
                               participants, the row CANCELLED ("cancelled: reason")
    (NEGOTIATING, DECIDING)    a COMMIT is proposed and cannot be taken back: the cancel
                               waits on record; once the round is decided, a COMMIT
                               ends it as a running one (below), an ABORT ends it
                               CANCELLED (`finished_cancelled`), a next round is aborted
    (RUNNING,     -) / acting  the CANCELLED end, told first (below); once made: its
                               steps here stopped (`stop_steps`), what it holds here
                               released, the end notices resent until acknowledged,
                               the saga it owes run (compensating.py); a participant
                               that takes the end stops its steps and releases its
                               holds (Running.end_here)
    (terminal,    -)           refused: the workflow keeps its end, nothing is written
    an end told, not CANCELLED refused: that end (a loss verdict's, or one on results)
                               reached electors already and stands
    a later epoch held         refused, naming its holder (the client service cancels
                               there)
    (no row here, -)           refused: not coordinated here (or forgotten)

Why a running workflow's cancel is safe with coordinator takeover. A cancel is one
coordinator's decision, as a loss verdict is: a claimant that won a later epoch before
it heard of the cancel could end the workflow otherwise on its results. So the
CANCELLED end is told before it is made, exactly as a verdict's end is
(domain_loss.py, `tell_end`, `held`, `_release_if_told`): the end notice (FinalMsg
CANCELLED, in this Node's epoch, with its certificate for a successor) goes to every
participant, and the end is made here only once each participant not gone, and enough
electors that a majority of the electorate must meet one, acknowledged it. An elector
acknowledges an end of epoch k only while it holds no later epoch and then answers
every claim with that end: a later claimant finds CANCELLED and announces it, or never
wins. Until then the status shows the workflow RUNNING and no attempt starts here
(`holds_back`); a step's outcome or a loss verdict that comes meanwhile does not
replace the end told (`_hold` keeps CANCELLED while the cancel is on record).

A cancel overtaken. If this Node learns a later epoch before the CANCELLED end is
made (it granted a claim, or a claimant's end or certificate reached it), its told end
is void in that very step (DomainLoss.followed; `tick` for any other way it stops
driving): its notices go no more, nothing holds its attempts back (the epoch holder it
now follows decides), and the cancel is noted void (`cancel_void`, naming the holder)
before this Node does anything as a follower: an attempt it starts next (a step of its
own the holder's progress lets start) is never one started under the cancel (takeover
soak seed 1701568, where the note came a tick late). What the cancel held back starts
then, in that very step (`void`): a step of its own made ready while the end was told
(its needs' results in, or a restart let go while this Node drove) is made ready by
no later message (takeover soak seed 52000180). Likewise when the end made here
is another than CANCELLED (a later epoch's end, made before this Node heard of it and
taken from a claim's answer, even in an epoch of its own: the takeover part's
Announce): the cancel lost to an end that was made first, and is noted void (seed
4401924). So too a cancel that waited for a COMMIT proposed, this Node granting a later
epoch meanwhile: void as the round commits, before the progress starts anything
(`before_start`, seed 116571; so too when the later epoch's end was taken here before the
COMMIT came: seed 66000289), or as that epoch's end comes before the round's decision
does (`lost_to`, seed 69500487). Why that is sound: the end it lost to is the workflow's one end (made by an
epoch's holder, told first, or found by every later claimant), no CANCELLED was ever
made anywhere (a told end is made only where it was told, and this one was void
before), and the caller is answered: the client service, waiting on the cancel, sees
the later holder (and sends the cancel there, which refuses it with its end) or the
workflow ended otherwise (FAILED_PRECONDITION naming that end). It is not carried out here, but it does not
vanish: the caller is answered what happened. The client service, still waiting on
the cancel, sends it on to the holder it names (`holder_elsewhere`), which takes it
in its own epoch (or refuses it with the end it made); a caller whose deadline
passed is answered the status with its `coordinator` and `epoch`, and cancels again
there. A cancel on record is carried out again should this Node drive the workflow
once more (it wins a later epoch: the takeover part's Act, `successor_outcome`).

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
from fedorch.core.node.takeover_claims import held_of
from fedorch.core.workflow import lifecycle
from fedorch.core.workflow.lifecycle import TERMINAL, WorkflowState

__all__ = ["REQUESTS_KEPT", "REQUEST_WINDOW_MS", "Cancels", "holder_elsewhere", "refusal"]

REQUESTS_KEPT = 16_384
REQUEST_WINDOW_MS = 3_600_000  # a client retries within the hour its submission is valid


def refusal(node: Any, workflow_id: str) -> str | None:
    """Why this Node would refuse a cancel of `workflow_id` now (None: it takes it),
    asked when it steps a `Cancel` (the node engine's client service refuses an ended
    workflow's cancel from its durable status before it posts one)."""
    d = node.state
    wf = workflow_id
    row = d.rows.get(wf)
    if row is not None and row.state in TERMINAL:
        how = f" ({row.reason})" if row.reason else ""
        return f"{wf} already ended {row.state.name}{how}: nothing to cancel"
    if wf in d.final:
        return f"{wf} already ended {d.final[wf].name}: nothing to cancel"
    if node.domain_loss.drives(wf):
        told = node.domain_loss.held.get(wf)
        if told is not None and told is not WorkflowState.CANCELLED:
            return (f"{wf} is ending {told.name} (that end is told to its participants"
                    " already): nothing to cancel")
        return None
    if row is not None and row.state is WorkflowState.NEGOTIATING:
        return None  # no epoch before a commit: the original alone decides
    later = holder_elsewhere(node, wf)
    if later is not None:
        return (f"{wf} was taken over by {later[1]} (coordinator epoch {later[0]}):"
                " cancel it there")
    if claiming(node, wf):
        return (f"{wf}: {node.name} claims a later coordinator epoch and has not won it"
                " yet; cancel again shortly")
    return f"{wf} is not coordinated here"


def holder_elsewhere(node: Any, wf: str) -> tuple[int, str] | None:
    """The later coordinator epoch this Node holds for `wf` and its holder, if another
    domain: where a cancel of `wf` goes instead (None: none, or this Node's own)."""
    epoch, holder = held_of(node.state, wf, wf.rpartition(".")[0])
    if epoch < 1 or holder == node.name or not holder:
        return None
    return epoch, holder


def claiming(node: Any, wf: str) -> bool:
    """This Node claims a later epoch of `wf` and does not act in it (yet)."""
    epoch, holder = held_of(node.state, wf, wf.rpartition(".")[0])
    return epoch >= 1 and holder == node.name and not node.domain_loss.drives(wf)


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
        if wf not in d.cancels:
            n.point("cancel")
            d.cancels[wf] = c.reason
            n.stats["cancel taken"] += 1
        # Noted on each taking, in the epoch this Node drives (a successor may take the
        # cancel its original had to give up: the checker's `cancel_taken`).
        n.note("cancel_taken", wf)
        self.carry_out(now, wf)
        if d.rows.get(wf) is not None and d.rows[wf].state is WorkflowState.NEGOTIATING:
            n.stats["cancel waits for a COMMIT proposed"] += 1

    # ---- what the other parts call -----------------------------------------------------

    def holds_back(self, wf: str) -> bool:
        """A cancel of `wf` is on record here and this Node decides the workflow's end
        (it negotiates it, or drives the current epoch): none of its attempts may start,
        and no end but CANCELLED is told. A cancel overtaken by a later epoch (void:
        `void`) holds nothing back; the holder of that epoch decides."""
        n = self.n
        if wf not in n.state.cancels:
            return False
        row = n.state.rows.get(wf)
        if row is not None and row.state is WorkflowState.NEGOTIATING:
            return True
        return n.domain_loss.drives(wf)

    def finished_cancelled(self, wf: str) -> bool:
        """Its admission ended without a commit while a cancel waited: CANCELLED."""
        return wf in self.n.state.cancels

    def after_run(self, now: float, wf: str) -> None:
        """Its coordinator core acted: a cancel that waited (a COMMIT proposed) is
        carried out as far as the core's phase now allows."""
        if wf in self.n.state.cancels:
            self.carry_out(now, wf)

    def before_start(self, wf: str) -> None:
        """Our round of `wf` committed, its progress not built yet, with a cancel that
        waited for it (a COMMIT proposed) while this Node granted (or follows) a later
        epoch: void now, before the progress starts a step of ours as a follower (after
        it, the attempt started under a cancel the caller was never told had lost:
        takeover soak seed 116571). Driving the workflow, nothing here: `after_run`
        carries the cancel out, its attempts held back meanwhile (`holds_back`). The
        later epoch's end taken here already (its notice came before the COMMIT did)
        voids it too, unless that end is CANCELLED: the cancel lost to an end made
        first, and nothing else would note it (takeover soak seed 66000289)."""
        n = self.n
        if wf in n.state.cancels and n.state.final.get(wf) is not WorkflowState.CANCELLED \
                and holder_elsewhere(n, wf) is not None:
            self.void(wf)

    def lost_to(self, wf: str, state: WorkflowState) -> None:
        """Our round of `wf` still being decided here, a later epoch's end `state` (a
        successor's, this Node having granted its epoch) came first and ended the row:
        a cancel that waited for the COMMIT lost to that end, unless it is CANCELLED, and
        is void (takeover soak seed 69500487: `before_start` never came, the round
        never committed here, and the cancel stood untold against an end FAILED)."""
        if state is not WorkflowState.CANCELLED:
            self.void(wf)

    def restore(self, now: float) -> None:
        """A cancel on record whose workflow has not ended (a crash between the cancel's
        write and the writes that carry it out): carried out again, where this Node
        still decides the end (else it is void: `void`)."""
        d = self.n.state
        for wf in list(d.cancels):
            row = d.rows.get(wf)
            if wf not in d.final and (row is None or row.state not in TERMINAL):
                self.carry_out(now, wf)

    def void(self, wf: str) -> None:
        """The CANCELLED end told here is void, or the cancel on record can no longer be
        carried out here: a later epoch's holder decides `wf`'s end (or has ended it
        already: its end was taken here). Noted (the caller is answered what happened:
        the client service sends the cancel on to that holder, or answers the end),
        never carried out here in this epoch."""
        n = self.n
        if wf not in n.state.cancels:
            return
        later = holder_elsewhere(n, wf)
        n.stats["cancel void: a later epoch's holder decides"] += 1
        n.note("cancel_void", wf, *(later if later is not None else (0, "")))
        # It held our attempts back while this Node drove the workflow (`holds_back`):
        # a step of ours that became ready meanwhile starts now, as a follower's, for
        # no later message makes it ready again (takeover soak seed 52000180: the
        # original, restarted with its cancel's end held, granted a successor and never
        # started its step; the successor waited for that step's result for ever).
        n.running.start_ready(n.now, wf)

    # ---- carrying it out -----------------------------------------------------------------

    def carry_out(self, now: float, wf: str) -> None:
        n = self.n
        d = n.state
        if wf in d.final:
            return
        row = d.rows.get(wf)
        reason = d.cancels[wf]
        if row is not None and row.state is WorkflowState.NEGOTIATING:
            core = n.coordinators.get(wf)
            if core is not None and core.phase is Phase.PREPARING:
                n.stats["cancel aborted a round"] += 1
                core.cancel(now, reason)  # its Finished makes the row CANCELLED
                n.negotiation.run(now, core.next_actions(), core)
            return  # DECIDING: a COMMIT proposed; carried out once it is decided
        if not n.domain_loss.drives(wf):
            if holder_elsewhere(n, wf) is not None:
                self.void(wf)  # another epoch's holder decides (restore found it so)
            return  # else not running here yet (its progress is built as it commits)
        if n.domain_loss.tell_end(now, wf, WorkflowState.CANCELLED):
            return  # told first: made once enough acknowledged it (domain_loss.py)
        n.stats["cancel ended a running workflow"] += 1
        n.point("workflow cancelled")
        epoch = n.domain_loss.epoch(wf)
        if epoch == 0:
            n.running.end_as_coordinator(now, wf, lifecycle.Cancelled(f"cancelled: {reason}"))
        else:  # a successor, in the epoch it won
            n.takeover.ends.end_as_successor(now, wf, epoch, WorkflowState.CANCELLED)

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

