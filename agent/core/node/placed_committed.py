"""A re-placement round's COMMIT learned at its new domain (placed_here.py's part).

Theory of operation
-------------------
The new domain of a re-placement round learns the round's COMMIT (`committed_here`,
called from the Node's commit of the hold by placed_here.py): the placement is written
and taken; a successor's round (its epoch's range, its certificate checked at PREPARE)
makes it follow that successor; the lost domain's own result of an idempotent step now
ours, held here (it reached us, not the coordinator that placed it again; or, the step
unplaced here, taken by an original whose own loss verdict went void: seed 158000164),
is dropped then, and the step runs here (its older placement's result is refused by that
coordinator: this round's epoch is above every one before, so what we held is of none of
its placement); a Node new to the workflow builds its progress from the round's PREPARE
(its whole placement), but a step that placement names it for by another re-placement
round whose YES it holds in doubt is left unplaced (placed_here.py `resumed`,
Progress.placement_in_doubt) until that round's own COMMIT: the coordinator's log
decided it, yet its COMMIT waits until a majority of the electorate holds the placement
(replacement.py, "Told before made"), and a step run before then runs where a successor
may not know it is, its result of no placement epoch refused by the coordinator for ever
(takeover soak seed 3900560).
"""

from __future__ import annotations

from typing import Any

from fedorch.core.negotiation.messages import Key
from fedorch.core.node.authority_steps import earlier_for
from fedorch.core.workflow.epoch_certificate import epoch_of_round
from fedorch.core.workflow.progress import TERMINAL_STEP_STATES
from fedorch.core.workflow.takeover import Adopted

__all__ = ["committed_here"]


def committed_here(ph: Any, now: float, key: Key, steps: list) -> bool:
    """This Node is the new domain of a re-placement round and learned its COMMIT
    (the hold committed in this write): the placement is written and taken. False:
    not a re-placement round (the caller does what a workflow's commit does)."""
    n = ph.n
    d = n.state
    info = d.info.get(key)
    if info is None or not info.lost:
        return False
    wf, epoch = key
    _follow_successor(ph, now, key)
    placed = dict(d.placements.get(wf, {}))
    earlier = dict(d.earlier_domains.get(wf, {}))
    for step, _ in steps:
        known = placed.get(step)
        if known is None or known[0] <= epoch:
            earlier[step] = earlier_for(d, wf, step, info.lost, info.before, n.name)
            placed[step] = (epoch, n.name, info.lost)
    d.earlier_domains[wf] = earlier
    d.placements[wf] = placed
    if wf in d.final:  # ended meanwhile: what it holds here goes
        n.running.end_here(wf, d.final[wf])
        return True
    if wf not in d.committed:  # new to the workflow: its progress from this round
        d.committed[wf] = epoch
        n.running.resume(now, wf)
        return True
    p = n.progress.get(wf)
    lost_ran = [step for step, _ in steps if p is not None and step in p.steps
                and p.steps[step].domain in (info.lost, "") and p.steps[step].idempotent
                and p.steps[step].state in TERMINAL_STEP_STATES]
    if lost_ran:
        # The lost domain's own result of a step now ours, reported here before we
        # took it (its SUCCEEDED reached us, not the coordinator that placed it
        # again): of a placement that is over, refused by that coordinator, and, kept,
        # it would have us never run the step, the workflow waiting on it for ever
        # (takeover soak seed 8101903). Idempotent, placed again so: it runs here.
        # Unplaced here ("": our own void verdict sent it back, then the lost
        # domain's report was taken): the same (seed 158000164, classic 2PC).
        n.stats["result of an older placement dropped here"] += 1
        d.results[wf] = {k: v for k, v in d.results.get(wf, {}).items()
                         if k not in lost_ran}
        ph._drop_run_records(wf, lost_ran)
    if p is not None:
        for step, _ in steps:
            if p.placed_again(step, n.name, epoch, info.lost, afresh=step in lost_ran):
                n.note("placed_again", (wf, step), n.name, epoch,
                       p.steps[step].idempotent, now)
        n.running.start_ready(now, wf)
    return True


def _follow_successor(ph: Any, now: float, key: Key) -> None:
    """A successor's round (its epoch's range) committed here: its PREPARE showed
    the certificate of that epoch (authority.py), so this Node follows it, as a grant
    would, unless it holds that epoch or a later one already: its results go to it,
    and a Node new to the workflow builds its takeover core on it
    (replacement_successor.py)."""
    n = ph.n
    epoch = epoch_of_round(key[1])
    tx = n.tx_of(key)
    if epoch < 1 or n.takeover is None or tx is None or tx.coordinator == n.name \
            or ph.promised(key[0]) >= epoch:
        return
    n.stats["successor followed: its re-placement round committed here"] += 1
    core = n.takeover.cores.get(key[0])
    if core is not None:
        n.takeover.step(now, key[0], core, Adopted(epoch, tx.coordinator))
    else:
        n.takeover.follow(key[0], epoch, tx.coordinator)
