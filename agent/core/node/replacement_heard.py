"""A step waiting to be placed again, heard started on the domain it was lost on.

Theory of operation
-------------------
The loss table judges whether a step may have started on its lost domain from what
the coordinator saw when the loss came (core/workflow/domain_loss.py). That judgement
can be wrong one way only: a need on a third domain whose result was held up on its
way here (this coordinator paused or cut off, the result lost and resent) may have
reached the lost domain in time, which then started the step; the step is judged not
started and placed again (domain_loss.py's header: the gap that asking the need's
producer would close). The lost domain reports what it starts to the coordinator, so
its own report of that very start may be held up with the need's result and come just
after the verdict (takeover soak seed 92000324: a coordinator paused for ten seconds
took, on waking, the view with the domain DEAD before the queue that held the need's
SUCCEEDED and the lost domain's RUNNING and SUCCEEDED of the step; it placed the
not-idempotent step again and it ran twice).

Such a report (RUNNING or SUCCEEDED: an attempt did start; a FAILED may be a self-fenced
attempt that never ran, self_fencing.py) comes from the lost placement, whose epoch is
over, and fencing refuses it (running.py). While the step still waits to be placed
again, the coordinator's progress keeps the attempt: the step counts as started from
then on, for every later judgement (a round started again after this coordinator
followed a later epoch and acts anew, say). A step not idempotent is then not placed
again (`not_again`, asked before each round: Replacements.start): it FAILS as a started
step lost with its domain does, its reason naming the report (Replacements.failed:
with takeover its end is told before it is made), and the round under way for it,
still preparing (no COMMIT made), is cancelled first (its ABORT releases the
candidate's reservation). A round already decided COMMIT is past taking back, and a
report that never comes proves nothing: both stay the open case of domain_loss.py's
header. An idempotent step is placed again as before.
"""

from __future__ import annotations

from typing import Any

from fedorch.core.negotiation.coordinator import Phase
from fedorch.core.node.records import ResultMsg
from fedorch.core.workflow.progress import StepState

__all__ = ["heard_started", "not_again"]

_STARTED = (StepState.RUNNING, StepState.SUCCEEDED)


def heard_started(n: Any, now: float, wf: str, src: str, msg: ResultMsg) -> bool:
    """`msg`, refused as from an older placement of a step waiting to be placed again,
    is the lost domain's word that the step started there: the progress keeps the
    attempt (it counts as started from now on, whoever judges it), and a step not
    idempotent is not placed again (`not_again`), its round under way, still preparing,
    cancelled. Returns whether the word was taken."""
    p = n.progress.get(wf)
    if p is None or not n.domain_loss.drives(wf) or msg.state not in _STARTED:
        return False
    s = p.steps.get(msg.step_id)
    if s is None or src != s.lost_to or msg.step_id not in p.awaiting_placement():
        return False
    entry = n.replacement.cores.get(wf)
    under_way = entry is not None and entry[1] == msg.step_id
    if under_way and entry[0].phase is not Phase.PREPARING:
        return False  # decided: past taking back (see the header)
    s.attempts = max(s.attempts, msg.attempt)
    if s.idempotent:
        return True
    n.stats["re-placement given up: the step was heard started where it was lost"] += 1
    if under_way:  # its end starts the next round, which `not_again` turns down
        entry[0].cancel(now, f"the step was heard started on {src}")
        n.replacement._run(now, wf, cut_short=True)
    else:
        n.replacement.start(now, wf)
    return True


def not_again(s: Any) -> str | None:
    """Why a step waiting to be placed again must not be (heard started where it was
    lost, and not idempotent: `heard_started`), or None."""
    if s.attempts and not s.idempotent:
        return (f"{s.lost_to} reported attempt {s.attempts} started after the loss,"
                " and the step is not idempotent (idempotent: false)")
    return None
