"""Who hears an end told before it is made, and the notice it is told with.

Part of the Node's domain loss (domain_loss.py, `DomainLoss`, whose header says why an
end is told first and when it may be made). A held end is told to its participants
(the committed placement's, and each domain a step was placed again on that is an
elector), to every elector (an extra acceptor holding no step keeps it,
elector_ends.py), and, by a successor, to the original coordinator; the notice carries
the successor's epoch and certificate, or the original's `settled`. Its own module
because it only reads who takes part and in which epoch: functions of the one
`DomainLoss` (typed loosely: domain_loss.py imports this module).
"""

from __future__ import annotations

from typing import Any

from fedorch.core.node.records import FinalMsg
from fedorch.core.workflow.lifecycle import WorkflowState

__all__ = ["end_notice", "participants", "told_to"]


def participants(loss: Any, wf: str) -> set[str]:
    """The participants a held end is told to and waits for: the committed
    placement's, and each domain a step was placed again on that is an elector. Not
    one outside the electorate: it would end the workflow on an end not yet made
    and, claiming as the successor it takes itself for, tell it on beside the real
    successor's other end (seed 237 of the takeover runs); it hears the end once
    made (`Replacements.domains_of`)."""
    n = loss.n
    out = set(n.running.info(wf).placement.values())
    electorate = n.takeover.electorate_of(wf) if n.takeover is not None else None
    if electorate:
        out |= n.replacement.domains_of(wf) & set(electorate)
    return out


def told_to(loss: Any, wf: str, among: set[str] | None = None) -> set[str]:
    """Who is told a held end: the participants (`among`, if the caller has them),
    every elector (the committed round's acceptors: one holding no step keeps the end,
    elector_ends.py), and the original coordinator when a successor tells it (as it
    tells every end: takeover.py)."""
    n = loss.n
    told = (participants(loss, wf) if among is None else among) \
        | set(n.takeover.electorate_of(wf) or ())
    if loss.epoch(wf) >= 1:
        told.add(n.running.info(wf).coordinator)
    return told - {n.name}


def end_notice(loss: Any, wf: str, epoch: int, state: WorkflowState) -> FinalMsg:
    """The end notice told first: a successor's carries its epoch and certificate,
    so a member holding that epoch for a claimant that lost it follows it too; the
    original's says whether the workflow is settled, as the made end's does
    (Running.settled), so that the made end need not be told again."""
    if epoch < 1:
        return FinalMsg(wf, state, settled=loss.n.running.settled(wf))
    won = loss.n.takeover.proof.own_certificate(wf, epoch)
    return FinalMsg(wf, state, epoch, won=won)
