"""Split claims: what a claimant of an epoch makes of denials that name a rival.

Theory of operation
-------------------
Two participants can claim one coordinator epoch at once when their membership views
differ (each thinks those before it in line are gone). Every member of the electorate
grants that epoch to one of them only (agent/core/workflow/takeover.py, `may_grant`),
so the votes can split: neither claimant gathers a majority, and before this rule both
waited their whole claim timeout to find out, then the lower name claimed the next
epoch. A denial says which domain holds the epoch at that voter (`Deny.holder`); from
the denials it has, a claimant decides here, at once, who goes next. The claimants'
ranks decide it: the lower name is the better rank (as in `successor`), so everyone
who applies the rule picks the same domain.

`resolve` is asked after every denial of the epoch claimed that names another holder
(and after a grant while such denials stand), and answers, in this order:

1. **No majority can be ours.** Count the members that may still grant us: the whole
   electorate, less the voters held for another (except a worse-ranked rival that
   answered as itself: it yields to us, see 2), less every better-ranked rival (it
   never yields to us), less the members we know gone (the coordinator we were taking
   over from, the participants membership holds DEAD; never a rival, which is plainly
   claiming) that have not granted. Fewer than a majority: this epoch is lost for us.
   With a better-ranked rival known, follow the best one: it claims the next epoch,
   or wins this one with our vote. Otherwise we are the best-ranked claimant known:
   claim the next epoch at once (every voter that holds this epoch may grant the next
   one), unless a rival could still hold a majority (its own vote, unless it granted
   us and so gave its claim up, the voters that hold the epoch for it, and the members
   not heard from): it may have won, its proof (or the claim timeout) tells, and a
   claim of the next epoch would only overthrow it.
2. **A better-ranked rival answered as itself.** It is alive, reachable and claiming
   this very epoch: yield to it now, which moves our own vote of the epoch to it.
3. **Otherwise** wait (for more answers, or the claim timeout as before) and ask the
   worse-ranked rivals that answered as themselves again soon: by rule 2 they yield to
   us as soon as our own denial of their claim reaches them, and then grant us.

A claimant follows only a better-ranked rival, never a worse one, even one whose
voters seem a majority: that rival may have yielded in turn (its voters' grants still
in flight), and two claimants following each other would wait for each other for ever.

Why this is safe. Nothing here makes any domain grant an epoch to two claimants: a
yielding claimant records the rival as the holder of the epoch (`Persist`) before
anything leaves, and never claims that epoch again (a claimant only ever claims an
epoch above the one it holds, and a restart claims again only an epoch it holds for
itself). Its own grant to itself counted for its own claim only, which it abandons
for good, so moving that one vote to the rival is the same as never having granted
itself: each voter's grant still counts for one claimant of the epoch, and two
majorities of one electorate still cannot both exist. A claim of the next epoch is a
claim like any other, made with a durable grant to oneself first. So the rule only
decides *when* a claimant stops waiting: at most one member acts in an epoch whatever
it concludes, even from denials that are late, duplicated or about a member whose
view has moved on since.

Why it is live. Ranks are a strict order and a claimant follows only a better-ranked
one, so following forms no cycle: the best-ranked claimant never yields, and either
wins the epoch (with the votes of the rivals that yielded to it), or finds it lost
by rule 1 and claims the next one at once, or is shown a rival's proof that it won
(the core's `Proven`), or, when it cannot tell (a member it needs stays silent),
claims the next one at its claim timeout as before. A claimant that yielded follows
the rival like any coordinator: if that rival dies in turn, the ordinary takeover
goes on from there.

Pure: no I/O, no time.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from fedorch.core.workflow.takeover_events import majority


@dataclass(frozen=True)
class Split:
    """What a claimant does about the denials of its epoch."""

    follow: str | None = None  # yield: follow this rival at the epoch claimed
    next_epoch: bool = False  # this epoch is lost for everyone we know: claim the next
    ask_again: frozenset[str] = frozenset()  # worse-ranked rivals to ask again soon


WAIT = Split()


def resolve(me: str, electorate: Collection[str], grants: Collection[str],
            denied: Mapping[str, str], gone: Collection[str]) -> Split:
    """`denied`: voter -> the other domain it holds our claimed epoch for. `grants`: the
    voters that granted it to us (ourselves included). `gone`: members we know will not
    answer (the coordinator we took over from, the participants held DEAD) or will grant
    this epoch to no one (they denied it naming a later epoch, unproven)."""
    members = frozenset(electorate)
    need = majority(members)
    rivals = frozenset(denied.values()) - {me}
    if not rivals:
        return WAIT
    better = sorted(r for r in rivals if r < me)
    yielding = frozenset(v for v, h in denied.items() if v == h and h > me)
    held_for_others = frozenset(v for v, h in denied.items() if h != me) - yielding
    silent = frozenset(gone) - frozenset(grants) - rivals  # a rival claiming is not gone
    possible = members - held_for_others - frozenset(better) - silent
    if len(possible) < need:  # rule 1
        if better:
            return Split(follow=better[0])
        # Not while a rival may hold a majority (its own vote too, unless it granted
        # us: then it gave its claim up): it may have won, and its proof tells (or the
        # claim timeout); a claim of the next epoch would only overthrow it.
        unknown = members - frozenset(grants) - frozenset(denied) - silent - {me}
        if not any(len(({r} | unknown | {v for v, h in denied.items() if h == r})
                       & members) >= need for r in rivals - frozenset(grants)):
            return Split(next_epoch=True)
    answered_better = sorted(r for r in better if denied.get(r) == r)
    if answered_better:
        return Split(follow=answered_better[0])  # rule 2
    return Split(ask_again=yielding - frozenset(grants))  # rule 3
