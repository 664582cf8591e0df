"""Overtaken by a gone holder: the original told of a later epoch whose holder is gone.

Theory of operation
-------------------
The original coordinator acting in epoch 0 (back from a restart or a cut) learns that
its epoch is over when an elector answers one of its messages (a placement told, an
end notice) with the later epoch e >= 1 that elector granted and the domain it granted
it to (a denial, `Deny`, with the holder's certificate where the elector keeps one:
placed_here.py, elector_ends.py). Before this rule it followed a proven holder and
ignored an unproven one; either way, where that holder had died for good (a claimant
that won and died before it ended the workflow, or one that never won), nothing moved
again: the electors that granted e refuse every message of epoch 0, the holder never
acts, and the original, no participant, was never in line to claim past it (takeover
soak seeds 4900724: a re-placement round's YES held PREPARED for ever; 5201830: a held
end refused for ever; 4900679: the original had granted the dead claimant itself).

The rules:
- acting in epoch 0, denied by a member of the electorate (or shown a proof) naming a
  later epoch e whose holder the membership view holds DEAD or LEFT: claim e + 1 at
  once (`claim_past`), with the ordinary ballot (a durable grant to oneself, then the
  electorate asked: takeover.py `_claim`);
- following a holder that is gone (DEAD or LEFT, or silent for takeover_after_s), the
  original claims too, ranked after every participant: once no live participant is
  left in line (each has its takeover_after_s to claim first: takeover.py
  `_maybe_claim`).
It then either wins and drives the workflow in its epoch (its placements told again
in it, its end told in it, which the electors that granted it take), or is denied or
shown a proof of a later epoch still and follows that one, as any claimant.

Why it is safe. Nothing here grants anything, and nothing acts without the grants of
a majority of the electorate for its own epoch, each member granting an epoch at most
once, durably, before its answer leaves (takeover.py, "Safety"): so at most one domain
ever acts in e + 1, whoever claims it, and a holder of e (were the view wrong and it
alive) learns its epoch is over from that majority as after any takeover on a false
DEAD. The original is as good a claimant as a participant: it signed the committed
round and holds its COMMIT (its proof to an acceptor holding no step), and, since it
may claim, a successor that is the only participant tells its end first too
(domain_loss.py `tell_end`), so a later epoch of the original's meets an elector that
holds that end. Epochs stay monotonic: the claim is of an epoch above every one held
here, and every member grants only above what it holds. A lying elector (a false
epoch, a false holder) can only make the original claim, once: a claim that cannot win
leaves it claiming or following as any lost claim does, never acting; a stranger's
denial counts for nothing. Why epoch 0 only: an acting successor that claimed past a
holder its view wrongly holds gone could be overthrown the same way in turn, for as
long as two views disagree; the original leaves epoch 0 once, and a successor told of
a later epoch follows it on its proof and claims past it in line, as a participant.
(A successor told of a gone holder's later epoch without proof claims past it too,
as no proof will come: takeover.py, "Denials"; the proven word it follows.)

Only a holder the view names gone counts at once, never a silent one: a partitioned
holder keeps its epoch until membership says DEAD (SUSPECT is not DEAD).

Pure: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Collection


def claim_past(epoch: int, me: str, held_epoch: int, holder: str,
               dead: Collection[str]) -> int | None:
    """The epoch the coordinator acting in `epoch` (`me`) claims at once, told that
    `holder` holds `held_epoch`: that epoch plus one when we are the original (epoch 0),
    it is later and its holder is gone here; else None (follow, or keep on, as before)."""
    if epoch != 0 or held_epoch <= epoch or holder == me or holder not in dead:
        return None
    return held_epoch + 1
