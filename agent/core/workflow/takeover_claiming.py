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
from, withdraws its claim and follows that coordinator again (`withdraw`),
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
over and over). Its epoch goes back (it claimed e+1 and follows e again): only its
own, whose grant counts in no electorate; a member's never does
(tests/unit/core/workflow/test_takeover_withdrawal.py states what holds instead).

A member's grant makes a claim unwithdrawable: any epoch's, since we last followed
another (`_member_granted`), not only the one claimed now: a claim moved on to the
next epoch (a split, voters naming a later one) leaves the member that granted the
earlier one following us in it.

A grant after the withdrawal. A member may grant the claim after we withdrew it: its
answer late on the network, or asked again while the denial was on its way; or its
view, unlike the coordinator's, saying that coordinator DEAD. It follows us in that
epoch since, refuses the coordinator's older-epoch word, and, seeing us alive, never
claims past us: before, the grant was dropped here (no Grant in FOLLOWING) and that
member was held for ever. Such a grant takes the claim up again
(`withdrawn_grant`): the epoch withdrawn is claimed again, that grant counted when it
is of that very epoch (a member that granted an earlier one grants this one when
asked), and, a member holding it, it is withdrawn no more. It wins on the
coordinator's grant: the claim shows it the members' signed grants it holds, which
it counts as given, alive in its view or not (agent/core/node/takeover_claims.py,
`_cannot_win`). Before, it counted the live electors only, so a member that granted
after the withdrawal and then died for good left the claim denied for want of its
vote until it was back, and the workflow waited on a dead domain: the claimant,
withdrawn no more, kept its results, where before the rule above it followed the
coordinator, which finished. At most one driver per epoch still holds: that rule
adds denials only, of claims `may_grant` allows, so a coordinator that grants where
it denied before grants an epoch it may grant, to one claimant, as any member does;
and the claim then holds a majority of that epoch's grants, which no other claimant
of it can (two majorities share a member). Why not release the member instead (tell
it to follow the coordinator in its older epoch; one dead for good would never hear
it, and needs none: it drives nothing, and its grant counts): its grant is a promise,
durable, never to grant that epoch to another, and we may not cancel it
for it, as we cannot make our renouncing it durable (our tables hold the epoch we
follow, and a restart would claim that same epoch again, counting the old grant,
which a released member may have given to a rival since: two winners). Claiming it
again breaks no rule: a member grants an epoch to one claimant, and grants it to
that same claimant again; a grant that came late is of that epoch to us, as good as
one that came at once, so driving on a majority of grants some of which came after a
withdrawal is driving on a majority (the coordinator we claimed past is overtaken as
by any winner: its rounds need fresh grants of its own epoch).

A grant lost on the way. A member's grant may never reach us: it follows us in the
epoch granted all the same, and, its epoch held for us, asks us every
`takeover_after_s` where the workflow stands (agent/core/node/takeover_late_grants.py,
`tick`), which we, not driving, answered with nothing: the member was held for ever,
and the workflow never ended there (its results, the end, the compensations). Asked
so by a member while a claim of ours is withdrawn (`Asked`), we send it that claim
again, of the epoch withdrawn (`withdrawn_asked`), as a claim timeout sends a claim
again: a member that granted it grants it again (`may_grant`: the same epoch to the
same claimant), signed, and that grant arrives as any grant after the withdrawal
(`withdrawn_grant`, above), through the claim answer's checks (the statement verified
over the bytes as received, of our claim, in our electorate). A member that granted an
earlier epoch of ours grants the later one withdrawn (`may_grant`: a higher epoch),
and one that holds a later epoch for another denies it (a denial is nothing to a
follower: no row in the table). At most one driver per epoch still holds: the answer
is a claim, and grants nothing; the asker grants it only as `may_grant` lets any
member grant any claim; we act only on a majority of that epoch's grants, which no
other claimant of it can gather; and the grant so taken up is a grant after the
withdrawal, whose argument is above. Only a member asks us (the shell's question goes
to the coordinator the asker follows, so to us only from a domain that granted or
follows us); one that had not granted would grant now and be taken up the same way,
which costs the withdrawal, not safety. Chosen over the question carrying the
asker's grant: no message gains a field, and the grant travels the one path grants
travel (a fresh statement, checked as every claim answer's). Mixed builds: a member
of an older build that asks grants our claim as any build grants a claim of an epoch
it holds for its claimant; an older claimant answers nothing, as before, and the
member stays held until it is upgraded. The cost: one claim per question, one
question per `takeover_after_s` per member so held. The withdrawn epoch
restored after a restart (below), a member asking is answered so then too.

Restarted. What a claim withdrew and the grants a claim holds are kept durably by the
shell (agent/core/node/takeover.py): `withdrawn`, the epoch withdrawn (`withdrawn`
here), in the write of the withdrawal's Persist, dropped in the write of the next
claim or epoch followed; `claim_grants`, the members' signed grants of the epoch
claimed, as received, each written before it counts. Both come back on restore
(`Takeover(withdrawn=, granted_by=)`). Restored withdrawn, a member's grant of the
epoch withdrawn takes the claim up again as above, and no claim is made for
`takeover_after_s` from the first look; before, what we withdrew was in memory only:
the late grant was dropped (that member held for ever), and a view still saying the
coordinator DEAD claimed again at once, denied at once, at every restart. Restored
claiming, the members' grants kept are counted again and shown with the claim, so a
claim a member granted is withdrawn no more; before, it showed none, and the
coordinator's denial withdrew it again unless that member was there to grant again;
and one restarted between a grant's write and its act's, holding a majority's
grants, acts at its first timer (`claim_timed_out`), where before it waited for a
member to grant again, which one dead for good never does. Counting them is sound: each is a signed statement we checked on receipt, of that
very epoch, to us, in our electorate, and its granter keeps it durably.

The coordinator claimed past. A claim counts the coordinator it claimed past
(`_predecessor`: the one it followed when it claimed) as gone when it decides whether
the voters that deny it, naming a later epoch without proof, leave it a majority
(`claim_timed_out`, `split`): that coordinator, gone, will not answer. Restored, the
claim gets it back from the shell (the coordinator followed as written, `epochs`, else
the original at epoch 0; None where that is ourselves: an original or a successor
that acted and claimed past a later holder, which had none or one not written).
Before, a restored claim had none: it waited for that coordinator's vote for ever,
asking it again at every claim timeout, and never claimed the next epoch (takeover
soak seed 178100853 with a cut one way: the participant claimed epoch 1 past the
original, restarted mid-claim; the only other live member held epoch 2 for the
original, which had claimed it past the participant and died for good; the claimant
asked the dead original alone, for ever, and the workflow never ended there). It is
only when to move on: a claim of the next epoch is as safe as any (it acts only on a
majority's grants of it), and the claim, restored, moves on as it would have had it
not restarted. The rule Withdrawn names that coordinator too: a restored claimant
outside the electorate, denied by it as itself, withdraws as before its restart (where
its `_member_granted` is rebuilt from the kept grants of the epoch claimed only, a
member that granted an earlier one and is left following us asks us, and is answered
as in "A grant lost on the way"); nothing of that makes a claim act.

Never below the epoch withdrawn: a claim made while withdrawn is of max(epoch
followed + 1, epoch withdrawn) (`Takeover._maybe_claim`). Before, of the epoch
followed + 1, below the one withdrawn where that claim had moved on past a split: a
member holding the withdrawn epoch for us denies the lower one naming us as holder,
a denial the claim does not take, and the claim never won while that member was
needed. The epoch withdrawn itself, not the one after: a member may hold it for us
(its grant late, or one kept), and claiming it again counts that grant, even of a
member dead for good (shown, signed); the epoch after would need it to grant again.
At most one driver per epoch still holds: it rests on the members' grants alone
(each grants an epoch once, durably, to one claimant; two majorities share a
member), and only a claimant outside the electorate withdraws, whose own grant
counts in none. So going back from w and claiming w again makes no second majority
of w: a member that granted w to another denies us, one that granted it to us
grants it again (`may_grant`), and each grant of w counted for us, kept or fresh,
is one its member gave to us and to no other.

Pure: no I/O, time comes in as `now`.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from fedorch.core.workflow.takeover_events import (
    Action,
    Adopted,
    Asked,
    Deny,
    Grant,
    Persist,
    Proven,
    Role,
    SendClaim,
    Timer,
    Unproven,
    majority,
)
from fedorch.core.workflow.takeover_split import resolve

__all__ = ["claim_timed_out", "claim_timer", "deny", "grant", "restored", "split", "withdraw",
           "withdrawn_asked", "withdrawn_grant"]


def grant(t: Any, now: float, ev: Grant) -> list[Action]:
    if ev.epoch != t.epoch or ev.voter not in t.audience:
        return []
    t._grants.add(ev.voter)  # counted in the electorate only (_won)
    t._member_granted |= ev.voter in t.electorate and ev.voter != t.me
    t._denied.pop(ev.voter, None)  # a rival that yielded to us, asked again
    won = t._won()
    if won or not t._denied:
        return won
    return split(t, now)  # the last answer we lacked may settle a split


def withdrawn_grant(t: Any, now: float, ev: Grant) -> list[Action]:
    """A member's grant of an epoch we claimed and withdrew, come after (Withdrawn, "A
    grant after the withdrawal"): the epoch withdrawn claimed again, that member
    counted if its grant is of that very epoch (else it grants it when asked)."""
    w = t._withdrawn
    if w is None or not t.epoch < ev.epoch <= w \
            or ev.voter not in t.electorate or ev.voter == t.me:
        return []
    out = t._claim(now, w)
    t._quiet_until = t._withdrawn = None
    t._member_granted = True
    if ev.epoch == w:
        t._grants.add(ev.voter)
    return out + t._won()


def withdrawn_asked(t: Any, now: float, ev: Asked) -> list[Action]:
    """A member asks us where the workflow stands while a claim of ours is withdrawn
    (the header, "A grant lost on the way"): that claim sent to it again, of the epoch
    withdrawn, so that a grant of it lost on the way comes again."""
    w = t._withdrawn
    if w is None or ev.voter not in t.electorate or ev.voter == t.me:
        return []
    return [SendClaim(ev.voter, w)]


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
            and t.me not in t.electorate and not t._grants & t.electorate \
            and not t._member_granted:
        # The coordinator we claimed past answers as itself: it drives, and denies a
        # claim no live majority could grant (Withdrawn, in the header).
        return withdraw(t, now, ev.held_epoch, ev.holder)
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
    won = t._won()  # a claim restored with a majority's grants kept (Restarted)
    if won:
        t._claim_deadline = now + t.claim_timeout_s  # acting: the claim again then
        return won
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


def withdraw(t: Any, now: float, epoch: int, coordinator: str) -> list[Action]:
    """Our claim withdrawn, `coordinator` (the one we claimed past, alive, in
    `epoch`) followed again (the header, Withdrawn): only a claimant
    outside the electorate, whose own grant counts nowhere, that no member granted.
    No claim again for `takeover_after_s`, whatever the view says meanwhile: a view
    still saying it DEAD would claim at once, be denied at once, for ever."""
    t._withdrawn = t.epoch
    t.role = Role.FOLLOWING
    t.epoch, t.coordinator = epoch, coordinator
    t._grants.clear()
    t._claim_deadline = None
    t._denied.clear()
    t._unproven.clear()
    t._again_at = None
    t._unseen_since, t._gone = None, False  # watched anew
    t._passed.clear()
    t._waiting = None
    t._quiet_until = now + t.takeover_after_s
    return [Persist(epoch, coordinator)]


def restored(t: Any, claiming: bool, withdrawn: int | None, granted_by: Collection[str],
             predecessor: str | None = None) -> None:
    """A core rebuilt on restore from the tables (Restarted): claiming again the epoch it
    holds for itself, with the members' grants kept and the coordinator it claimed past
    (`predecessor`, the one followed as written); or following, its epoch withdrawn."""
    me, epoch = t.me, t.epoch
    if claiming:
        # Restarted with our own grant of `epoch` on record but no agreement that we
        # won it: claim it again (granting it to us again is allowed), at once.
        if t.coordinator != me or epoch < 1:
            raise ValueError("only an epoch held by this domain can be claimed again")
        t.role = Role.CLAIMING
        t._grants = {me}
        t._gone = True
        t._claim_deadline = float("-inf")
        # The members' grants of it we held, kept with them (Withdrawn, "Restarted"):
        # counted again, and a claim a member granted is withdrawn no more.
        t._grants |= set(granted_by) & t.audience
        t._member_granted = bool(t._grants & t.electorate - {me})
        # The coordinator it claimed past, as before the restart (Restarted, "The
        # coordinator claimed past"): gone, not waited for, when voters deny us.
        t._predecessor = predecessor if predecessor != me else None
    if withdrawn is not None and t.role is Role.FOLLOWING and withdrawn > epoch:
        # Restarted after a withdrawal (takeover_claiming.py, "Restarted"): the epoch
        # withdrawn is taken up again on a member's grant of it, no claim is below
        # it, and none is made for `takeover_after_s` from the first look.
        t._withdrawn = withdrawn
        t._quiet_on_first_look = True
