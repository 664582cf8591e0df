"""A successor places a lost step again: its fresh majority first, then its round.

Theory of operation
-------------------
The coordinator of a workflow's current epoch resolves the steps of a gone domain
through the loss table (domain_loss.py); a step the table would place again goes to
replacement.py, which runs a negotiation round for it alone. The original coordinator
(epoch 0) runs it at once; a successor acting in epoch e >= 1 (takeover.py) asks this
part first, and its round differs in three ways:

1. A fresh majority before each round. Its epoch may be over without its knowing:
   cut off from the members that granted a later epoch to another, it still acts. So
   it sends its claim of e again (with its certificate) to every other elector, and
   feeds the pure RoundMandate core (core/workflow/round_mandate.py) the grants of e
   that come back (`regranted`, from the claim answers: takeover_claims.py); a member
   grants the same epoch to the same claimant again only while it holds it
   (`may_grant`). On a majority, its own grant included, the round runs (`PLACE`);
   with none by one lease (`Timing.lease_s`: members dead, or cut off and holding a
   later epoch, which from here look the same) the step FAILS naming the lost domain
   and why (`NO_MAJORITY`, RoundMandate.why_not), a verdict held like any other
   (domain_loss.py). A denial with a later epoch's proof makes the takeover part
   follow that epoch: this Node no longer drives the workflow, and the mandate is
   dropped at its next look (nothing placed; the later holder judges the loss). The
   claims go again every `resend_s` to the electors that have not granted, as a
   claim or its answer may be lost on the way.
2. Its rounds are numbered in its epoch's own range (epoch_certificate.round_range:
   `first_round`), above every number it wrote before (`replaced_rounds`, written
   before the first PREPARE), so no two coordinators of one workflow ever use one
   round number, and a placement of a later epoch has a higher placement epoch (the
   round's number) than any older epoch's.
3. Its PREPARE carries its epoch and certificate (PrepareMsg.held_epoch, won): the
   candidate, a domain that never saw the workflow included, checks them before
   anything else (authority.py: the holder of that epoch, its certificate holding, no
   later epoch held there), takes the submission as the original coordinator vouched
   for it (node.py `check_submission`, the daemon's admit hook), votes by its policy
   as usual, and, on the round's COMMIT, follows the successor (placed_here.py
   `committed_here`), to whom its results go.

Why the placement is safe, and why the mandate is a gate, not the proof. Once
decided, the round's placement is told before its COMMIT is made, exactly as the
original's (replacement_telling.py): its PlacedMsg carries e, a member that granted a
later epoch refuses it (placed_here.py), so its COMMIT leaves only once a majority
that had granted no later epoch holds it, and the holder of any later epoch, elected by
a majority that meets that one, learns it from a grant (`learn_from_grant`) and waits
for the step on its new domain. That holds whatever the mandate saw: a later epoch
won after the fresh majority answered is covered by it too. The fresh majority spares
the round when it cannot end well: a successor that cannot reach a majority would
have a candidate hold its reservation for a COMMIT that can never leave, and the step
neither placed nor failed; with it, the step fails at once, as when no domain can
take it, and nothing is asked of a domain outside the workflow. A grant answer that
was on its way before the re-ask began is counted as fresh (a claim carries no
nonce): it only lets a round run that the telling then fences.

A coordinator that starts acting in an epoch it won (the original past a holder gone
in its view included: its rounds are then that epoch's, its certificate on the
PREPARE as any holder's) asks at once for each step still waiting to be placed
again (replacement.py, `acting`): a round of its own cut short while it followed
another's epoch left the step neither placed nor failed, and no loss would come to
start another.

Restarts. The mandate is in memory, and needs no row: nothing of it is acted on
before its verdict, and each verdict is durable in its own write (PLACE: the round's
numbers, `replaced_rounds`, before its PREPARE; NO_MAJORITY: the step's FAILED
result). A restart loses the grants gathered and the lease's start, nothing else:
the restored successor still acts in its epoch (its `epochs` and certificate), its
rebuilt progress has the step on its lost domain (the send-back was in memory too),
and once its view says that domain is gone its loss table sends the step back again
and a fresh majority is asked anew, with a new lease (so a step fails for want of one
at most one lease after the view came back, not after the first ask). A round cut short
has no decision on record: its candidate's YES is answered ABORT when it asks (its
lease: replacement.py, `answer`), and the next round takes a number above the written
ones. A grant on its way before the restart counts for the new ask, as any grant
before a re-ask does (above). Tests: test_replacement_successor.py, the successor
restarted while it asks and mid-round.
"""

from __future__ import annotations

from typing import Any

from fedorch.core.workflow.epoch_certificate import round_range
from fedorch.core.workflow.round_mandate import Regranted, RoundMandate, Timer, Verdict
from fedorch.core.workflow.takeover import SendClaim


class Mandates:
    def __init__(self, replacements: Any) -> None:
        # The re-placement part that owns this one (replacement.py imports it).
        self.r = replacements
        self.n = replacements.n
        self.reset()

    def reset(self) -> None:
        """A restore: the re-asks under way are gone (see the header)."""
        # Workflow -> the mandate being asked for its next round.
        self.asking: dict[str, RoundMandate] = {}
        # Workflow -> when its claims go again to the electors that have not granted.
        self.again_at: dict[str, float] = {}

    def first_round(self, wf: str) -> int | None:
        """The number of the next round of `wf` this Node runs: the original's after
        every round the workflow used, a successor's in its epoch's range (see the
        header); None when the range is spent."""
        n = self.n
        d = n.state
        epoch = n.domain_loss.epoch(wf)
        used = d.replaced_rounds.get(wf, 0)
        if epoch == 0:
            return max(d.rows[wf].round, used) + 1
        rounds = round_range(epoch)
        first = max(rounds.start - 1, used) + 1
        return first if first + n.t.max_rounds - 1 < rounds.stop else None

    # ---- the re-ask ------------------------------------------------------------------

    def ask(self, now: float, wf: str) -> None:
        """A successor wants a round for `wf`: its claim goes again to its electorate,
        unless a re-ask of its epoch is out already. One of an older epoch is over (we
        won a later one while it was out: its grants are no answer) and is asked anew
        now, as its drop at the next look would leave the step waiting for ever
        (takeover soak seed 107034)."""
        n = self.n
        if n.takeover is None:
            return
        out = self.asking.get(wf)
        if out is not None and self._still_ours(wf, out):
            return
        if out is not None:
            n.stats["re-placement: fresh majority dropped, epoch over"] += 1
            self.drop(wf)
        epoch = n.domain_loss.epoch(wf)
        electorate = n.takeover.electorate_of(wf) or frozenset()
        mandate = RoundMandate(n.name, epoch, electorate, now, n.t.lease_s)
        self.asking[wf] = mandate
        n.stats["re-placement: fresh majority asked"] += 1
        if mandate.verdict is Verdict.PLACE:  # an electorate of this Node alone
            self._decided(now, wf)
            return
        self._claim(now, wf)

    def _claim(self, now: float, wf: str) -> None:
        n = self.n
        mandate = self.asking[wf]
        core = n.takeover.cores.get(wf)
        if core is None:
            return
        for dst in sorted(mandate.electorate - mandate.fresh - {n.name}):
            n.takeover.claims.send(wf, core, SendClaim(dst, mandate.epoch))
        self.again_at[wf] = now + n.t.resend_s

    def regranted(self, now: float, wf: str, src: str, epoch: int) -> None:
        """`src` granted our epoch `epoch` of `wf` again (a claim answer, its grant
        verified: takeover_claims.py)."""
        mandate = self.asking.get(wf)
        if mandate is None or epoch != mandate.epoch or not self._still_ours(wf, mandate):
            return
        if mandate.step(now, Regranted(src)) is Verdict.PLACE:
            self._decided(now, wf)

    def timer(self) -> float | None:
        if not self.asking:
            return None  # asked after every turn: none asking is the rule
        return min((t for wf, m in self.asking.items()
                    for t in (m.get_timer(), self.again_at.get(wf)) if t is not None),
                   default=None)

    def tick(self, now: float) -> None:
        for wf, mandate in list(self.asking.items()):
            if not self._still_ours(wf, mandate):
                # Another epoch's now (a proven denial was followed), or ended: the
                # holder of that epoch judges the loss.
                self.n.stats["re-placement: fresh majority dropped, epoch over"] += 1
                self.drop(wf)
                continue
            if mandate.step(now, Timer()) is not Verdict.ASKING:
                self._decided(now, wf)
            elif self.again_at.get(wf, now) <= now:
                self._claim(now, wf)

    def drop(self, wf: str) -> None:
        self.asking.pop(wf, None)
        self.again_at.pop(wf, None)

    def _still_ours(self, wf: str, mandate: RoundMandate) -> bool:
        dl = self.n.domain_loss
        return dl.drives(wf) and dl.epoch(wf) == mandate.epoch

    def _decided(self, now: float, wf: str) -> None:
        n = self.n
        mandate = self.asking[wf]
        self.drop(wf)
        if mandate.verdict is Verdict.PLACE:
            n.stats["re-placement: fresh majority granted"] += 1
            self.r.start(now, wf, mandated=True)
            return
        p = n.progress.get(wf)
        waiting = p.awaiting_placement() if p is not None else []
        if not waiting:
            return
        n.stats["re-placement: no fresh majority"] += 1
        step = waiting[0]
        lost = p.steps[step].lost_to
        self.r.failed(now, wf, step, lost, mandate.why_not())
        if wf in n.progress and not n.domain_loss.holds(wf):
            self.r.start(now, wf)  # the next step waiting, if any, asks again
