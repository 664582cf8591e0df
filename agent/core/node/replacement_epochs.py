"""A step sent back in one coordinator epoch, its round run in another.

Theory of operation
-------------------
The loss table's "not started" (core/workflow/domain_loss.py) is the judgement of the
Node that drives the workflow, from what it saw; it holds because the lost domain,
following that Node, asks it before it starts a step while cut off from it
(start_asks.py), and is told the step is over. It does not hold across an epoch this
Node did not drive: the holder of a later epoch drives the workflow itself and starts
each step placed on its own domain once it is ready there, asking nobody. That epoch
may have been won while this Node still drove, unaware (paused, or cut off), or
between two epochs of its own; when its holder is the lost domain, the step may have
started there, though the verdict said not.

Takeover soak seed 154001212 (`--one-way`): the original d2 paused for twenty seconds;
d0 took the workflow over in epoch 1 and, driving it, ran its own step s1 (not
idempotent); then a cut one way hid d0 and the others judged it DEAD. d2 woke to a view
saying d0 DEAD before the queue that held s0's SUCCEEDED and d0's claims: its epoch-0
verdict sent s1 back as not started and began a round at d3; d2 then followed d0's
epoch 1 (its proof came), claimed epoch 2 past it, and the round's YES came while it
claimed. `later_holder` (replacement_handover.py) found its own claim the latest
epoch granted here, the round committed, and s1 ran again at d3.

Two rules.
1. A round's YES decides a COMMIT only at a Node that drives the workflow in the epoch
   the round began in (its number lies in that epoch's range: epoch_of_round, as every
   round's does, replacement_successor.py); otherwise the round is ABORTED, as when a
   later epoch is granted to another (`stale`, read by Replacements.on_vote). A
   claimant drives nothing yet, and a Node acting in a newer epoch than the round's
   would commit on the verdict of an epoch that is over.
2. A step sent back in an epoch lower than the one this Node drives when a round for
   it is to start (`sent_back`, noted by Replacements.step_lost) is judged again as a
   successor judges a loss (domain_loss_verdict.py): on a copy of the progress with
   `reports_missed`, a need on a third domain that may have succeeded counts as met.
   A step not idempotent that may have started on its lost domain is not placed
   again (`judged_again`): it FAILS as a started step lost with its domain does
   (Replacements.failed: with takeover its end is told before it is made). Otherwise
   it is placed again as before, judged now in this epoch.
Why the successor's rule covers the holders in between: a holder started a step of
its own only once each need was SUCCEEDED as it saw it; here each such need is either
SUCCEEDED on record (placed on this Node, whose results are written before they
leave), or placed elsewhere and counted as possibly SUCCEEDED (domain_loss_verdict.py's
header: the same argument as for a successor's own verdict).

The cost: a round begun in an epoch that is over is aborted (its step judged again,
and placed again by the epoch driven now where it may be); a step whose needs
succeeded after it was sent back may now FAIL where it could have been placed again.
Both only after an epoch change in the middle of a loss.

Memory only: a restart rebuilds the step on its lost domain (replacement.py,
"Restore"), and the verdict that sends it back again is one of the epoch driven then.

Followed away (`given_back`). A Node that follows another's later epoch drives no
more, and a step it sent back with no placement decided (waiting, unplaced) is put
back where a restore would rebuild it: its lost domain, at the placement epoch on
record (0, or the last committed round's), WAITING. Kept unplaced, it outlived the
verdict, which is void once the Node follows (domain_loss.py): the Node reported
the results that step needs to nobody but the coordinator, and the holder of the
later epoch, which never judged that loss, waited for ever for the step at its
domain, which never heard its need had SUCCEEDED (takeover soak seed 184001792: d1,
acting in epoch 1 cut off from d3, sent d3's s3 back; following d2's epoch 2, it ran
s2 and told its SUCCEEDED to d2 alone). Sound as a restart is: the step is exactly
what a restore builds (the placements on record, applied to the committed
placement), and a restart may come at any moment; no placement of it left this Node
(a decided one is on record and `placed_again` placed it), a round of ours still
under way ABORTS at its YES (rule 1), and the holder followed now judges the lost
domain itself. Only where the lost domain is the one on record: a step sent back
after its new domain answered a placement void (replacement_handover.py) stays
waiting, as a restore would not rebuild it there. The needs' results run here go to
the step's domain again (`report_needs`).

Not built yet: a round whose COMMIT was decided while this Node drove an epoch that was
already overtaken unknown to it. Told before made keeps that COMMIT from leaving in
the old epoch (a member that granted the later epoch refuses the placement), but once
this Node acts in an epoch of its own again it hands the placement out
(replacement_handover.py, `adopt`), judged in the old epoch.
"""

from __future__ import annotations

import copy
from typing import Any

from fedorch.core.workflow.epoch_certificate import epoch_of_round
from fedorch.core.workflow.progress import StepState

__all__ = ["STALE", "given_back", "judged_again", "sent_back", "stale"]


def sent_back(n: Any, wf: str, step: str) -> None:
    """`step` of `wf` is sent back to be placed again now, in the epoch driven here."""
    n.replacement.sent_back_in[(wf, step)] = n.domain_loss.epoch(wf)


STALE = "begun in an epoch not driven here now"


def stale(n: Any, wf: str, round_: int) -> str | None:
    """Why the YES of round `round_` of `wf` must abort it (rule 1 of the header), or
    None."""
    if not n.domain_loss.drives(wf) or epoch_of_round(round_) != n.domain_loss.epoch(wf):
        return STALE
    return None


def judged_again(n: Any, wf: str, step: str) -> str | None:
    """Why `step`, waiting to be placed again, must not be, judged again in the epoch
    driven now (rule 2 of the header), or None."""
    epoch = n.domain_loss.epoch(wf)
    before = n.replacement.sent_back_in.get((wf, step))
    if before is None or before >= epoch:
        return None
    n.replacement.sent_back_in[(wf, step)] = epoch
    judged = copy.deepcopy(n.progress[wf])
    judged.reports_missed = True
    s = judged.steps[step]
    if s.idempotent or not judged.may_have_started(step):
        return None
    n.stats["re-placement given up: judged again in a later epoch"] += 1
    return (f"sent back in coordinator epoch {before}, judged again in epoch {epoch}:"
            f" it may have started on {s.lost_to} meanwhile, and the step is not"
            " idempotent (idempotent: false)")


def given_back(n: Any, wf: str) -> None:
    """This Node follows another's later epoch of `wf` now: each step it sent back and
    never placed again goes back to its lost domain, as a restore rebuilds it (the
    header, "Followed away")."""
    p = n.progress.get(wf)
    if p is None:
        return
    info = n.running.info(wf)
    placed = n.state.placements.get(wf, {})
    for step in p.awaiting_placement():
        s = p.steps[step]
        epoch, domain, lost = placed.get(step, (0, info.placement.get(step, ""), ""))
        if domain != s.lost_to:
            continue
        n.replacement.sent_back_in.pop((wf, step), None)
        s.domain, s.epoch, s.lost_to, s.state = domain, epoch, lost, StepState.WAITING
        n.stats["step sent back given back to its domain: a later epoch followed"] += 1
        n.running.report_needs(wf, step)
