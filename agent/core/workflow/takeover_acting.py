"""The acting role of coordinator takeover: an acting coordinator's answers and timer.

Theory of operation
-------------------
The ACTING rows of takeover.py's table (`TABLE`), whose header is the argument: what
the coordinator of the current epoch does with a late grant (kept; once everyone
follows, nothing is left to tell), with its claim timer (the claim again to those that
have not granted it, not to those holding a later epoch unproven), with a denial (a
later epoch's gone holder is claimed past, takeover_overtaken.py; a proven later epoch
is followed; an unproven one is kept and we keep acting, or, its holder gone here on an
elector's word, the next epoch is claimed: Denials), and with a later epoch adopted or
proven. Functions of the one `Takeover` they step, which starts every claim
(`Takeover._claim`) and every following (`Takeover._adopt`), as takeover_claiming.py's
are for the CLAIMING rows. `t` is typed loosely: takeover.py imports this module, never
the reverse, so the import graph has no cycle.

Pure: no I/O, time comes in as `now`.
"""

from __future__ import annotations

from typing import Any

from fedorch.core.workflow.takeover_events import (
    Action,
    Adopted,
    Deny,
    Grant,
    Proven,
    SendClaim,
    Timer,
    Unproven,
    Watch,
)
from fedorch.core.workflow.takeover_overtaken import claim_past

__all__ = ["adopt", "deny", "grant", "note_view", "proven", "timer"]


def note_view(t: Any, now: float, ev: Watch) -> list[Action]:
    # Acting: only who is gone is kept (takeover_overtaken.py).
    t._dead = frozenset(ev.dead)
    return []


def grant(t: Any, now: float, ev: Grant) -> list[Action]:
    if ev.epoch == t.epoch and ev.voter in t.audience:
        t._grants.add(ev.voter)
        if t._grants >= t.audience:
            t._claim_deadline = None  # everyone follows: nothing left to announce
    return []


def timer(t: Any, now: float, ev: Timer) -> list[Action]:
    if t._claim_deadline is None or now < t._claim_deadline:
        return []
    # Not those holding a later epoch, unproven: they follow no claim of ours.
    told = sorted(t.audience - t._grants - t._unproven)
    t._claim_deadline = now + t.claim_timeout_s if told else None
    return [SendClaim(d, t.epoch) for d in told]


def deny(t: Any, now: float, ev: Deny) -> list[Action]:
    if ev.epoch != t.epoch or ev.held_epoch <= t.epoch or ev.holder == t.me:
        return []
    # A member's word only (a stranger's denial counts for nothing).
    past = claim_past(t.epoch, t.me, ev.held_epoch, ev.holder, t._dead) \
        if ev.voter in t.electorate else None
    if past is not None:  # its holder is gone: the next epoch (takeover_overtaken)
        return t._claim(now, past)
    if ev.proven:  # a later epoch won: ours is over
        return proven(t, now, Proven(ev.held_epoch, ev.holder))
    if ev.holder_gone and ev.voter in t.electorate:
        # A later epoch on an elector's word, its holder gone here: no proof will
        # come (a holder shows its certificate as it wins, or never won), and that
        # elector, following it, refuses our epoch for ever. The next epoch, as a
        # follower of a proven gone holder claims it (Denials, "Unproven and gone").
        return t._claim(now, ev.held_epoch + 1)
    t._unproven.add(ev.voter)
    return [Unproven(ev.voter, ev.held_epoch, ev.holder)]  # keep acting (Denials)


def adopt(t: Any, now: float, ev: Adopted) -> list[Action]:
    if ev.epoch <= t.epoch:
        return []  # our epoch is agreed; nobody else holds it
    return t._adopt(now, ev)


def proven(t: Any, now: float, ev: Proven) -> list[Action]:
    if ev.epoch <= t.epoch:
        return []  # ours is agreed: a certificate of it for another cannot exist
    past = claim_past(t.epoch, t.me, ev.epoch, ev.coordinator, t._dead)
    if past is not None:  # its holder is gone: the next epoch (takeover_overtaken)
        return t._claim(now, past)
    return t._adopt(now, Adopted(ev.epoch, ev.coordinator))
