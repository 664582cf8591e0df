"""Overtaken by a gone holder: a coordinator told of a later epoch whose holder is gone.

Theory of operation
-------------------
A coordinator acting in epoch e (the original at 0, back from a restart; or a
successor) learns that its epoch is over when an elector answers one of its messages
(a placement told, an end notice, a claim) with the later epoch e' > e that elector
granted, and the domain it granted it to (a denial, `Deny`: signed as claim answers
are, with the holder's certificate where the elector keeps one). Before this rule it
followed a proven holder and ignored an unproven one; either way, where that holder
had died for good (a claimant that won and died before it ended the workflow, or one
that never won), nothing moved again: the electors that granted e' refuse every
message of the older epoch, the holder never acts, and the original, no participant
of the workflow, is never in line to claim past it (takeover soak seeds 4900724: a
re-placement round's YES held PREPARED for ever; 5201830: a held end refused for
ever).

The rule (`claim_past`): acting or claiming, denied with a later epoch e' whose holder
the membership view holds DEAD or LEFT, claim e' + 1 at once, with the ordinary ballot
(a durable grant to oneself, then the electorate asked: takeover.py `_claim`). It then
either wins and drives the workflow in e' + 1 (its placements and its end told anew in
that epoch, which the electors that granted it hold), or is denied or shown a proof of
a later epoch still and follows that one, as any claimant.

Why it is safe. Nothing here grants anything, and nothing acts without the grants of
a majority of the electorate for its own epoch, each member granting an epoch at most
once, durably, before its answer leaves (takeover.py, "Safety"): so at most one domain
ever acts in e' + 1, whoever claims it, and a holder of e' (were the view wrong and it
alive) learns its epoch is over from that majority as after any takeover on a false
DEAD. Epochs stay monotonic: the claim is of an epoch above the one held here, and
every member grants only above what it holds. A lying elector (a false epoch, a false
holder) can only make us claim: an epoch number above any honest one wastes nothing
but that number (a member may claim any epoch above its own already), and a claim
that cannot win leaves us claiming or following as any lost claim does, never acting.
Two coordinators that both apply the rule claim past the same gone holder; their votes
split as rival claimants' do and settle by rank (takeover_split.py).

Only the holder the view names gone counts, never a silent one: a partitioned holder
keeps its epoch until membership says DEAD (SUSPECT is not DEAD).

Pure: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Collection


def claim_past(epoch: int, me: str, held_epoch: int, holder: str,
               dead: Collection[str]) -> int | None:
    """The epoch a coordinator of `epoch` (`me`) claims at once, told that `holder`
    holds `held_epoch`: that epoch plus one when it is later and its holder is gone
    here, else None (follow, or keep on, as before)."""
    if held_epoch <= epoch or holder == me or holder not in dead:
        return None
    return held_epoch + 1
