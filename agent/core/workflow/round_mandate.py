"""Round mandate: may a coordinator run one re-placement round now?

Theory of operation
-------------------
A successor acting in epoch e >= 1 (agent/core/workflow/takeover.py) places a lost step
again with a round of its own (agent/runtime/replacement.py). Its epoch may be over
without its knowing: cut off from the members that granted a later epoch e' > e to
another domain, it still believes it acts, and the later coordinator, which sees the
same domain lost, places the step too. Two placements of one step by two epochs run it
on two candidates; the later one's fencing refuses the older one's results but cannot
undo a side effect.

So before each round the successor sends its claim of e again to the whole electorate
(a member grants the same epoch to the same claimant again only while it holds it,
takeover.may_grant) and runs the round only on a *fresh majority*: grants of e given
in answer to this re-ask, its own included. Why that is enough: a later epoch e' won
needs a majority of the same electorate granting e', and two majorities meet; the
member in both grants only upwards, so once it granted e' it denies e. A fresh majority
of e therefore means no later epoch had won before the first of those members
answered. A denial naming a later epoch with its proof (the epoch certificate, verified
by the shell), or the successor's own core following a later epoch, ends the mandate at
once (`OVERTAKEN`): the successor follows that coordinator and places nothing. A denial
without proof ends nothing (`unproven` remembers it for `why_not`): it is not a grant,
so it never helps a round run, and a liar's word cannot stop one that a fresh majority
allows. Were the later epoch real, its majority meets the fresh answers needed, and its
member there denies: no round runs, believed or not.

What is *not* counted: the grants the successor kept from its takeover (on disk, from
members that may be dead since). A member that answers nothing may be dead, or alive
and cut off from us while it granted e' to someone else: from here the two look the
same. Counting kept grants after a timeout (as fedorch did before) let an old
successor, partitioned from every holder of e', place a step the later coordinator
placed too. Without a fresh majority by `deadline` the verdict is `NO_MAJORITY`: the
successor places nothing, and the caller fails the step as when no domain can take it
(docs/decisions.md says why failing, not waiting).

The original coordinator (epoch 0) has the same gap: cut off from the others, it sees a
participant lost while the others, seeing it gone, elect a successor that sees the same
loss. So it asks too, before each round: "do you still hold epoch 0 for me?" (a
TakeoverClaim of epoch 0, from the coordinator the workflow id names only: a member
answers from what it holds and writes nothing, agent/runtime/takeover_grants.py). A
later epoch won needs a majority of the electorate granting it; the original has
granted none (else it would follow), and a member that answers "epoch 0" has granted
none either. So it is enough that the fresh answers meet every majority: n - m + 1 of
the n members (m the majority), the original's own included. For an odd electorate
that is a majority; for an even one, one fewer (a coordinator with one participant,
classic two-phase commit: itself alone, since no takeover can win without its grant).
A successor needs a majority all the same: its round carries an epoch certificate,
the signed grants of a majority (agent/core/workflow/epoch_certificate.py).

The bound is a liveness choice, not a safety one: waiting longer only gives a member
that was slow, or back from a restart, the time to answer.

What a fresh majority does not close: a later epoch that wins *after* the members
answered, while the round runs (the later claimant must first see this successor gone
for `takeover_after_s`, or DEAD past its loss grace); see docs/failures.md, limits.

Transitions (`TABLE`):

    ASKING --Regranted(voter): enough fresh grants (`needed`)--> PLACE
    ASKING --Regranted(voter): fewer--> ASKING
    ASKING --Overtaken(epoch > ours, holder, proven)--> OVERTAKEN
    ASKING --Overtaken(epoch > ours, holder, not proven)--> ASKING (noted in `unproven`)
    ASKING --Timer: now >= deadline--> NO_MAJORITY
    PLACE, OVERTAKEN, NO_MAJORITY --anything--> (unchanged: a verdict is final)

Pure: no I/O, time comes in as `now`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection
from dataclasses import dataclass

from fedorch.core.workflow.takeover import majority


class Verdict(enum.Enum):
    ASKING = "asking"            # the re-ask is out; too few fresh grants yet
    PLACE = "place"              # a fresh majority granted our epoch: run the round
    OVERTAKEN = "overtaken"      # a member holds a later epoch: follow it, place nothing
    NO_MAJORITY = "no_majority"  # no fresh majority by the deadline: place nothing


@dataclass(frozen=True)
class Regranted:
    """`voter` granted our epoch again, in answer to this re-ask (held after it began)."""

    voter: str


@dataclass(frozen=True)
class Overtaken:
    """A member answered that it holds `epoch` (above ours) for `holder`. `proven`: with
    that epoch's certificate, verified (or our own core follows it now); otherwise only
    the member's word, which ends nothing."""

    epoch: int
    holder: str
    proven: bool = False


@dataclass(frozen=True)
class Timer:
    pass


Input = Regranted | Overtaken | Timer


class RoundMandate:
    """One re-ask of the electorate before one re-placement round."""

    def __init__(self, me: str, epoch: int, electorate: Collection[str], now: float,
                 bound_s: float) -> None:
        if epoch < 0:
            raise ValueError("a coordinator epoch is 0 (the original) or above")
        self.me = me
        self.epoch = epoch
        self.electorate = frozenset(electorate)
        self.deadline = now + max(0.0, bound_s)
        # Our own grant is always fresh; it counts only if we are a member (a participant
        # outside the electorate may win a takeover, its own grant counting for nothing).
        self.fresh: set[str] = {me} & self.electorate
        self.verdict = Verdict.ASKING
        self.later: tuple[int, str] | None = None
        self.unproven: set[tuple[int, str]] = set()  # later epochs claimed without proof
        self._decide()

    @property
    def needed(self) -> int:
        """Fresh grants enough to place: a majority for a successor (its certificate is
        one); for the original, as many as meet every majority (see above)."""
        if self.epoch == 0:
            return len(self.electorate) - majority(self.electorate) + 1
        return majority(self.electorate)

    def step(self, now: float, event: Input) -> Verdict:
        handler = TABLE.get((self.verdict, type(event)))
        if handler is not None:
            handler(self, now, event)
        return self.verdict

    def get_timer(self) -> float | None:
        return self.deadline if self.verdict is Verdict.ASKING else None

    def why_not(self) -> str:
        """Why no round runs, for the step's reason and the log (NO_MAJORITY)."""
        granted = ", ".join(sorted(self.fresh)) or "none"
        what = "majority" if self.epoch else "set of members meeting every majority"
        claimed = "".join(f"; epoch {e} claimed for {h} without proof"
                          for e, h in sorted(self.unproven))
        return (f"no {what} of the takeover electorate ({', '.join(sorted(self.electorate))})"
                f" granted coordinator epoch {self.epoch} again (granted: {granted};"
                f" {self.needed} needed{claimed}): the members that did not answer may be"
                " dead, or cut off from here and holding a later epoch")

    # ---- handlers ----------------------------------------------------------------------

    def _regranted(self, now: float, ev: Regranted) -> None:
        if ev.voter in self.electorate:
            self.fresh.add(ev.voter)
        self._decide()

    def _overtaken(self, now: float, ev: Overtaken) -> None:
        if ev.epoch <= self.epoch or ev.holder == self.me:
            return
        if not ev.proven:
            self.unproven.add((ev.epoch, ev.holder))
            return
        self.later = (ev.epoch, ev.holder)
        self.verdict = Verdict.OVERTAKEN

    def _timer(self, now: float, ev: Timer) -> None:
        if now >= self.deadline:
            self.verdict = Verdict.NO_MAJORITY

    def _decide(self) -> None:
        if len(self.fresh) >= self.needed:
            self.verdict = Verdict.PLACE


_Handler = Callable[[RoundMandate, float, object], None]

# (verdict, input) -> handler. Missing: the input changes nothing (a verdict is final).
TABLE: dict[tuple[Verdict, type], _Handler] = {
    (Verdict.ASKING, Regranted): RoundMandate._regranted,
    (Verdict.ASKING, Overtaken): RoundMandate._overtaken,
    (Verdict.ASKING, Timer): RoundMandate._timer,
}
