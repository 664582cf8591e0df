"""Who hears an end told before it is made, and the notice it is told with.

Part of the Node's domain loss (domain_loss.py, `DomainLoss`, whose header says why an
end is told first and when it may be made). A held end is told to its participants
(the committed placement's, and each domain a step was placed again on that is an
elector), to every elector (an extra acceptor holding no step keeps it,
elector_ends.py), and, by a successor, to the original coordinator; the notice carries
the successor's epoch and certificate, or the original's `settled`.

In two stages. The electors (and the teller) are told first; a domain outside the
electorate (a participant that is no acceptor, the original coordinator told by a
successor) only once the electors that have not acknowledged the end, the teller aside,
are fewer than a majority of the electorate (`electors_hold`). Such a domain takes the
end at once and answers no claim as an elector does; were it told first, it could
acknowledge the end and die for good while the teller, cut off from the electorate,
never reached a majority: a successor elected by electors none of which held the end
decides its own (its verdict on that very domain, gone), and the end kept on the dead
domain's disk is one no coordinator made, never replaced (told_ends.py needs it back):
takeover soak seed 94021920 (keep_ended_s 10), the original's SUCCEEDED at a participant
dead for good against the successor's FAILED. Told once enough electors hold it, it
keeps an end every later epoch finds: the majority that elects a successor meets the
electors that acknowledged it, each of which answers the claim with it (the argument
of domain_loss.py's header, which makes the end on the same count). Without an
electorate on record everyone is told at once, as before. Its own module
because it only reads who takes part and in which epoch: functions of the one
`DomainLoss` (typed loosely: domain_loss.py imports this module).
"""

from __future__ import annotations

from typing import Any

from fedorch.core.node.records import FinalMsg
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.core.workflow.takeover_events import majority

__all__ = ["electors_hold", "end_notice", "participants", "told_to"]


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
    tells every end: takeover.py); those outside the electorate only once enough
    electors hold it (`electors_hold`, the header)."""
    n = loss.n
    electorate = set(n.takeover.electorate_of(wf) or ())
    told = (participants(loss, wf) if among is None else among) | electorate
    if loss.epoch(wf) >= 1:
        told.add(n.running.info(wf).coordinator)
    if electorate and not electors_hold(loss, wf, electorate):
        told &= electorate
    return told - {n.name}


def electors_hold(loss: Any, wf: str, electorate: set[str]) -> bool:
    """Do the electors that acknowledged the end held of `wf`, with this Node, meet
    every majority of `electorate`: are those that have not, this Node aside, fewer
    than a majority?"""
    n = loss.n
    acked = n.state.final_acked.get(wf, set())
    return len(electorate - {n.name} - acked) < majority(electorate)


def end_notice(loss: Any, wf: str, epoch: int, state: WorkflowState) -> FinalMsg:
    """The end notice told first: a successor's carries its epoch and certificate,
    so a member holding that epoch for a claimant that lost it follows it too; the
    original's says whether the workflow is settled, as the made end's does
    (Running.settled), so that the made end need not be told again."""
    if epoch < 1:
        return FinalMsg(wf, state, settled=loss.n.running.settled(wf))
    won = loss.n.takeover.proof.own_certificate(wf, epoch)
    return FinalMsg(wf, state, epoch, won=won)
