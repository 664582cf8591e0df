"""The claiming role of coordinator takeover: a claimant's answers and its claim timer.

Theory of operation
-------------------
The CLAIMING rows of takeover.py's table (`TABLE`), whose header is the argument:
what a claimant does with a grant (a majority of the electorate makes it act:
`Takeover._won`), with a denial (a proven later epoch is followed; a later one on a
voter's word is kept as unproven, Denials; our epoch held for a rival settles a split
at once where it can, takeover_split.resolve), and when its claim times out (the
best-ranked of split claimants claims the next epoch, the others follow it; with no
answer, the same epoch is asked again). Functions of the one `Takeover` they step,
which starts every claim (`Takeover._claim`) and every following (`Takeover._adopt`).
`t` is typed loosely: takeover.py imports this module, never the reverse, so the
import graph has no cycle.

Withdrawn. A claimant outside the electorate (a re-placement's new domain) denied by
the very coordinator it claimed past, answering as itself in the epoch we claimed past
from, withdraws its claim and follows that coordinator again (`Takeover._withdraw`),
provided no member granted it. That coordinator is alive and drives; it denies such a
claim only when no live majority could grant it (agent/core/node/takeover_claims.py,
`_cannot_win`; a member's claim it would grant, and then follow). Kept, the claim
never won and never ended: our results went to our own claim, and a restart's
placement question to ourselves (agent/core/node/restart_check.py), so a step held
after a restart never started and the workflow stayed RUNNING for ever (takeover soak
seed 118000384). Safe: our own grant counts in no electorate, no member's grant of it
was counted, so no majority ever held this claim; following the driver again is
what we did before we claimed, and a later silence claims again, not before
`takeover_after_s` (a view still saying it DEAD would claim and be denied at once,
over and over).

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
    majority,
)
from fedorch.core.workflow.takeover_split import resolve

__all__ = ["claim_timed_out", "claim_timer", "deny", "grant", "split"]


def grant(t: Any, now: float, ev: Grant) -> list[Action]:
    if ev.epoch != t.epoch or ev.voter not in t.audience:
        return []
    t._grants.add(ev.voter)  # counted in the electorate only (_won)
    t._denied.pop(ev.voter, None)  # a rival that yielded to us, asked again
    won = t._won()
    if won or not t._denied:
        return won
    return split(t, now)  # the last answer we lacked may settle a split


def deny(t: Any, now: float, ev: Deny) -> list[Action]:
    if ev.epoch != t.epoch or ev.holder == t.me:
        return []
    if ev.proven:  # the holder's certificate, shown by the voter
        return t._proven(now, Proven(ev.held_epoch, ev.holder))
    if ev.held_epoch > t.epoch:
        # Someone claims a later epoch, on the voter's word: keep claiming (Denials).
        t._unproven.add(ev.voter)
        out = split(t, now) if t._denied else []  # a Persist stays first
        return [*out, Unproven(ev.voter, ev.held_epoch, ev.holder)]
    if ev.held_epoch < t.epoch and ev.voter == ev.holder == t._predecessor \
            and t.me not in t.electorate and not t._grants & t.electorate:
        # The coordinator we claimed past answers as itself: it drives, and denies a
        # claim no live majority could grant (Withdrawn, in the header).
        return t._withdraw(now, ev.held_epoch, ev.holder)
    if ev.held_epoch == t.epoch:  # a rival claimed our epoch: the votes may split
        t._denied[ev.voter] = ev.holder
        return split(t, now)
    return []


def split(t: Any, now: float) -> list[Action]:
    """Decide at once, from the denials, who goes next (takeover_split.resolve)."""
    verdict = resolve(t.me, t.electorate, t._grants, t._denied,
                      t._dead | ({t._predecessor} - {None}) | t._unproven)
    if verdict.follow is not None:
        return t._adopt(now, Adopted(t.epoch, verdict.follow), force=True)
    if verdict.next_epoch:
        return t._claim(now, t.epoch + 1)
    if verdict.ask_again and t._again_at is None:
        t._again_pause = t.rival_again_s
        t._again_at = now + t._again_pause
    return []


def claim_timer(t: Any, now: float, ev: Timer) -> list[Action]:
    if t._claim_deadline is not None and now >= t._claim_deadline:
        return claim_timed_out(t, now)
    if t._again_at is None or now < t._again_at:
        return []
    # The worse-ranked rivals that answered as themselves: they yield to us once our
    # denial of their claim reaches them, and then grant us this epoch.
    again = sorted(v for v, h in t._denied.items() if v == h and h > t.me)
    t._again_pause = min(2 * t._again_pause, t.claim_timeout_s)
    t._again_at = now + t._again_pause if again else None
    return [SendClaim(d, t.epoch) for d in again]


def claim_timed_out(t: Any, now: float) -> list[Action]:
    if t._denied:
        # Views differed and another claimed this epoch too, and the denials did not
        # settle it (a member stayed silent). Never a second claim of ours at this
        # epoch. The best-ranked (lowest) name claims the next epoch; the others
        # follow it (and grant it that epoch when asked), so they do not duel.
        best = min(t._denied.values())
        if t.me < best:
            return t._claim(now, t.epoch + 1)
        return t._adopt(now, Adopted(t.epoch, best), force=True)
    gone = (t._dead | ({t._predecessor} - {None}) | t._unproven) - t._grants
    if t._unproven and len(t.electorate - gone) < majority(t.electorate):
        # Lost to voters holding a later epoch they cannot prove: the next epoch,
        # one at a time (a lie moves us one epoch per claim timeout at most).
        return t._claim(now, t.epoch + 1)
    # No majority and no rival: the electorate did not answer; ask again (the same
    # epoch: granting it to us again is allowed, see may_grant).
    t._claim_deadline = now + t.claim_timeout_s
    asked = t.electorate - t._grants - t._unproven  # those deny ours for good
    return [SendClaim(d, t.epoch) for d in sorted(asked)]
