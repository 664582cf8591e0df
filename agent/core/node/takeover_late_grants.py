"""Grants of a claim for a saga's open plan: each granter is told the end once it is over.

Theory of operation
-------------------
Part of the Node's takeover part (takeover.py, whose header tells the whole),
composed by it as `late`. A participant that ended a workflow claims an epoch for
its saga's open plan when the plan's driver is gone in its view (saga_plans.py).
A domain of the workflow that grants that claim without knowing the end (back from a
restart, say) follows the claimant in that epoch and refuses every notice of a lower
one: the driver's end, told in its own epoch, never reaches it, and it keeps its
reservation of the workflow's round. Only a notice of the claimed epoch from its
holder, the claimant, moves it: and the claimant's view sees it alive, so it never
claims past the claimant. Two ways a claim can be over while a granter is held:

- the grant comes after the claim is over (the driver told the saga over, which
  closed the plan and ended the claims), late on the network (`told`, from the
  claim answers: takeover_claims.py; takeover soak seed 10001968: the grant came
  8 s late, the driver's end refused there every time);
- the grant came while the claim ran, and the plan closed before any member denied
  the claim with the end (the claim's own `_ended_claim_denied`, takeover_claim_answers.py,
  would have told it on): the saga-over notice came first (`plan_closed`, from
  saga_plans.py, before the claim's core is dropped with its `granters`).

Either way the claimant tells that granter its end in the granted epoch, which the
granter takes from the holder it follows, and releases what it holds. The end is the
one end there is (the driver's, which ended the workflow here); the saga is over, so
nothing more is driven, and nobody else is told (those that did not grant follow the
driver and hold its end).

Durable. The tell is all that releases its granter, so it must survive a restart of
the claimant: the granter and the epoch are written (`late_grants`, workflow ->
{granter: epoch}) in the write the tell waits for, the granter's entry is dropped in
the write of its acknowledgement (`acked`, running.py), and a restored Node tells every
entry again (`restore`), unless a notice of that epoch or a later one goes to that
granter already (an end it made or told on as the epoch's holder: takeover_ends.py).
Chosen over the granter asking alone (below, for the grants the claimant never
took): the claimant knows the case at once, where the asker waits a bound; the row
is one per such grant, of a workflow retention keeps anyway (claimed here: "taken
over"), and goes with it. Told again, the end is acknowledged again and
changes nothing there.

The grants of a claim still running, too. So the table holds every grant this Node
received for a claim of a workflow that ended here (for its saga's open plan), not
only those told the end: a row is written with each such grant (`granted`, called
as the grant is taken, in the write of the turn that counts it, before the core
steps on it), so a claimant restarted mid-claim whose plan then closes before it
claims again (the saga-over notice before its view) still knows whom to tell: its
restore reads the rows of a claim that runs again (rebuilt claiming:
takeover.py "Acting or claiming, on restore") back into `granters`
(takeover_claims.py), told nothing yet; the plan's close tells them (`plan_closed`)
as above. Before, `granters` was in memory only, and such a granter stayed held. While
the claim runs, an acknowledgement drops no row (it acknowledges no tell of ours: we
tell our epoch's end only once the claim is over, or on a denial with the end, which
ends the claim in the same turn: takeover_claim_answers.py `_ended_claim_denied`). Rows
of a claim that was overtaken (we granted or follow a later holder since: `granted`
names another) are told nothing after a restart, as the in-memory granters were
told nothing then; they go with the workflow. The extra write is one row per
grant of such a claim: rare (a claim for a saga's open plan, the driver cut off), and
no write for the grants of a running workflow's claims, whose end the claim's core
tells every member (the core's Announce, or the winner's end notices).
A grant the claimant never took (its answer lost on the way, or the claimant down
before the write of the turn that counts it) when the plan closes before the claim
goes again: nothing at the claimant names that granter, so nothing above tells it.
The granter asks instead (`tick`): a domain of the workflow, running it (not ended
here), whose core follows the holder of an epoch it granted, another domain, with no
proof that the holder won it (it never acted, as far as we know), asks that holder
for the workflow every `takeover_after_s` (the silence that makes a coordinator gone:
the bound a claimant has to act or claim again), first that long after the grant
(`gave`, from the grant's write; rebuilt on restore from `granted`, so the ask needs
no row of its own: the grant it stands on is durable already). The question is the
restarted participant's `PlacementQuery` (restart_check.py), sent to the same
coordinator (the one followed: `coordinator_now`), so no new message: a holder that
drives answers it with its placements, which the asker, holding nothing back, drops.
The holder answers with the end (`asked`, from restart_check.py `_tell_end`) only
where the case is the one above: it ended the workflow, the epoch it holds is its
own grant, e >= 1, never acted nor told on in (no `epochs` entry of it: an Act, or
the end told on after a denial, `_ended_claim_denied`, whose driver tells every
domain its end and plan itself), no later epoch granted or followed since, and its
plan is closed (the saga is over: no plan owed, so an end without one is the whole
end; while the claim runs or the saga goes on the asker is answered nothing and asks
again), and no end notice of ours goes to the asker already (the tell above, which
it acknowledges). The answer is the tell above, to a domain that names itself a
follower by asking (only a domain that follows us asks us), in our epoch, once, not
written: the asker asks again until the workflow ends there (asked once retention
forgot the workflow here, a granter cut off past our windows, the same end is answered
from the end's record: ended_records.py, for `keep_end_records_s`). A holder that answers
with its placements drives the workflow (only such a Node does: restart_check.py),
so it is asked no more (`answered`): its proof, in memory, is lost with a restart of
the asker, and the ask would go on while the workflow runs. Why safe: the end is the one end
there is (the driver's, taken here before the claim); the asker takes it through the
authority rules of any end notice (authority_ends.py), from the holder of the epoch
it follows, so one that granted or follows a later epoch since refuses it (and asks
that holder instead), and a holder that won shows its certificate to its granters,
which then stop asking (it drives, and tells its end itself). Chosen over the
claimant telling, at its plan's close, every elector it asked: those that never
granted (the claim lost on the way) follow the driver, and an end in our epoch would
move them onto a holder that never drives, without the plan they may still owe
(restart_check.py `_tell_end`, seed 5200672); and a claimant restarted before the
write has lost even whom it asked. The cost: one query per `takeover_after_s` per
granter of a claim that has not won within that bound, answered with nothing while
the claim runs.

A claim withdrawn, asked about. A claimant outside the electorate (a re-placement's
new domain) whose claim the coordinator it claimed past denied withdraws it and
follows that coordinator again (core/workflow/takeover_claiming.py, Withdrawn). A
member whose grant of it was lost on the way follows the claimant all the same and
asks it, as above; the claimant, not driving, answered nothing, and the workflow
never ended at that member. Asked now (`withdrawn_asked`, from restart_check.py
where the question finds us not driving), it steps its core with `Asked`, which
sends that member the withdrawn claim again: the member grants it again, and the
claim is taken up with that grant as a grant after the withdrawal is (the core's
`withdrawn_grant`, its argument for one driver per epoch there). No message changes;
the question of a member of an older build is answered alike, and a claimant of an
older build answers nothing, as before.

A rival of the claimed epoch. Two claimants may claim one epoch e (each had ended the
workflow, or one learned the end from a claim answer and told it on in e: the core's
Announce), and a granter follows the one it granted. Where our claim is denied with
the end by members that hold e for the rival (not a lower epoch: no
`_ended_claim_denied`), and the rival's end notice of e and its saga-over notice reach
us, we follow the rival in e as the saga's driver (EndNotices.on_final), and the claim
and the plan are over with no tell: `plan_closed` finds our core following the rival,
not claiming. Our granter follows us in e still, and refuses the rival's end (no
certificate: a claimant that never won has none) and the lower epoch's notices: it
kept its reservation for ever (takeover soak seed 140100077, with a cut one way). It
asks us, as above, and we answer it with the end in e: the epoch we follow is e, but
in a rival's hands, so we never acted in e, nor told the end on in it (an `epochs`
entry of e naming us), and nothing of ours tells it. The end is the one end there is
(ours, the driver's, taken before the claim), the saga is over (the plan closed), and
the granter takes it from the holder it follows, as any end notice. A grant we took
(its row) is told so with `reliable`, as `told` tells it, so that its acknowledgement
drops the row (kept, the row kept the workflow from retention for ever); one never
taken is answered once, as above, and, forgotten here, from the end's record
(ended_records.py). A rival that won e shows its certificate, which the granter takes
first; our answer then is the same end again.

A claim yielded to a rival. Two claimants of one epoch e whose rival answered our
claim as itself and ranks better: we yield (takeover_split.py, rule 2), our own grant
of e moves to the rival (`granted` and `epochs` name it in e), and we follow it. A
member's grant of our claim may reach us only after that (late on the network): a
follower drops it, and its member follows us in e, asking us as above. Where the
rival ends the workflow on an end it learned while claiming (told on in e, the
core's Announce: it never won, so it shows no certificate), we take that end from the
holder we follow, and our granter refuses it (it holds e for us, and the rival shows
no proof): it kept its reservation and its RUNNING row for ever, asking us every
`takeover_after_s`, and we answered nothing, our grant of e naming the rival
(takeover soak seed 158800091 with a cut one way: the original coordinator, back
from a crash, granted the yielded claim, then refused the rival's end for the rest of
the run). So `asked` takes that case too: the epoch we hold, granted to and followed
in a rival's hands (we never acted nor told the end on in it), ended here, the claim
and plan over, the asker a domain of the workflow: answered with the end in e, as the
rival case above. Why safe: the end is the one end there is (taken here through the
authority rules of any end notice, from the holder we follow), the saga is over (no
plan is owed with it), and the asker takes it only through those rules: a granter of
ours follows us in e and takes it from its holder; one that granted or follows a later
epoch refuses it. Only a domain that follows us asks us, but for the original
coordinator back in epoch 0, which asks every domain a few times (original_asks.py):
answered nothing before, it is now told that same end, which it takes or refuses by
the same rules as any participant's end of a later epoch. The original itself is
left out: not a claimant, it is asked by the domains that follow it in epoch 0 too,
and tells them the end in epoch 0 (restart_check.py `_tell_end`); asked so in e, it
moved them onto an epoch they do not hold (refused, asked again). Chosen over telling the
rival's end with a proof (none exists: the rival never won) or moving the granter
onto the rival (its grant of e is to us: only we may answer in e). No message
changes. Once retention forgot the workflow here, the end's record gives the same
answer (ended_records.py: `keep` records e to tell by the same test, `yielded`), so a
granter cut off from us past our retention is told too. An original coordinator
that claimed past a gone holder and yielded its epoch is not this rule (domains that
follow it in epoch 0 ask it too): it answers with its end in epoch 0 and in the
yielded epoch both (restart_check.py `_tell_end`; ended_records.py, "An original
that yielded").

Not told: an elector holding no step of the workflow (an extra acceptor of its
round). It holds no reservation, and it refuses a claimant's end of epoch 1 or
later for want of that epoch's certificate, which a claimant that never won lacks
(authority_ends.py): told, the end was resent to it for ever (takeover soak seed
10000294).

Pure: reads and writes the Node's tables and outbox only.
"""

from __future__ import annotations

from typing import Any

from fedorch.core.node.ended_records import yielded
from fedorch.core.node.records import FinalMsg, PlacementQuery
from fedorch.core.workflow.takeover import Asked, Role

# A withdrawn claim sent again to a member that asked us (see the header).
CLAIM_SENT_TO_THE_ASKER = "takeover withdrawn claim sent again to a member that asked"


class LateGrants:
    def __init__(self, takeovers: Any) -> None:
        # The takeover part that owns this one (takeover.py imports it, not the reverse).
        self.tk = takeovers
        self.n = takeovers.n
        self.reset()

    def reset(self) -> None:
        # As a granter: workflow -> when to ask the holder of the epoch we granted for
        # it next (see the header, "A grant the claimant never took"). In memory:
        # rebuilt from `granted` on restore.
        self.asks: dict[str, float] = {}

    def forget(self, wf: str) -> None:
        self.asks.pop(wf, None)

    def granted(self, wf: str, src: str, epoch: int) -> None:
        """`src`, a domain of `wf`, granted our running claim of `epoch`: written where
        `wf` ended here (a claim for its saga's open plan), so that a restart keeps it
        (see the header, "The grants of a claim still running")."""
        n = self.n
        d = n.state
        rows = d.late_grants.get(wf, {})
        if wf not in d.final or rows.get(src, 0) >= epoch:
            return
        n.point("takeover claim grant")
        d.late_grants[wf] = {**rows, src: epoch}

    def claim_runs(self, wf: str) -> bool:
        """Does our own claim for `wf` run (its core claiming for us)?"""
        core = self.tk.cores.get(wf)
        return core is not None and self.tk.live(wf) and core.role is Role.CLAIMING \
            and core.coordinator == self.n.name

    def told(self, src: str, wf: str, epoch: int) -> None:
        """`src` granted our claim of `epoch` of `wf`, ended here, and the claim is
        over: it is told the end in that epoch (see the header)."""
        n = self.n
        d = n.state
        if src not in n.replacement.domains_of(wf) and src != wf.rpartition(".")[0]:
            n.stats["takeover grant after the claim by an elector holding no step"] += 1
            return
        n.stats["takeover grant after the claim: end told to the granter"] += 1
        told = d.late_grants.get(wf, {})
        if told.get(src, 0) < epoch:
            n.point("takeover late grant")
            d.late_grants[wf] = {**told, src: epoch}
        # The latest epoch it granted us is the one it follows (grants come in any order).
        epoch = max(epoch, told.get(src, 0))
        n.reliable(src, ("final", wf, src), FinalMsg(wf, d.final[wf], epoch))

    def plan_closed(self, wf: str) -> None:
        """The saga's plan of `wf` closed here (its driver told the saga over), and our
        claim for it is over: the domains that granted it are told the end (see the
        header). Before its core and `granters` are dropped."""
        core = self.tk.cores.get(wf)
        granters = self.tk.claims.granters.get(wf)
        if core is None or not granters or wf not in self.n.state.final \
                or core.role is not Role.CLAIMING or core.coordinator != self.n.name:
            return
        for src in sorted(granters):
            self.told(src, wf, core.epoch)

    def acked(self, wf: str, src: str) -> None:
        """`src` acknowledged an end we told it (running.py): a tell to it is done."""
        d = self.n.state
        told = d.late_grants.get(wf)
        if told is None or src not in told or self.claim_runs(wf):
            return  # running, the claim told it nothing of ours: its grant stays
        left = {g: e for g, e in told.items() if g != src}
        if left:
            d.late_grants[wf] = left
        else:
            del d.late_grants[wf]

    def restore(self) -> None:
        """After a restore, once the ends this Node made went again (takeover_ends.py):
        the grants of a claim that runs again are known again (`granters`), told at its
        end; each tell not acknowledged goes again, unless a notice of its epoch or a
        later one goes to that granter already, or we granted or follow a later holder
        since (the claim was overtaken: its granters are told nothing, as before the
        restart)."""
        n = self.n
        d = n.state
        for wf, told in sorted(d.late_grants.items()):
            state = d.final.get(wf)
            if state is None:
                continue
            if self.claim_runs(wf):
                n.stats["takeover claim grants known again after a restart"] += len(told)
                self.tk.claims.granters.setdefault(wf, set()).update(told)
                continue
            if d.granted.get(wf, (0, n.name))[1] != n.name:
                continue
            for src, epoch in sorted(told.items()):
                going = n.pending.get(("final", wf, src))
                if going is not None and getattr(going[1], "epoch", -1) >= epoch:
                    continue
                n.stats["takeover late grant: end told again after a restart"] += 1
                n.reliable(src, ("final", wf, src), FinalMsg(wf, state, epoch))

    # ---- a grant the claimant never took (see the header) ---------------------------------

    def gave(self, now: float, wf: str, epoch: int, holder: str) -> None:
        """We granted (or follow) `holder` in `epoch` of `wf`, running here: asked from
        `takeover_after_s` on, unless it acts (or we follow another) by then."""
        if epoch >= 1 and holder != self.n.name and wf not in self.n.state.final:
            self.asks[wf] = now + self.tk.after_s

    def timer(self) -> float | None:
        return min(self.asks.values(), default=None)

    def tick(self, now: float) -> None:
        for wf in sorted(wf for wf, at in self.asks.items() if at <= now):
            holder = self._waits_on(wf)
            if holder is None:
                del self.asks[wf]
                continue
            self.n.stats["takeover granter asked a holder that never acted"] += 1
            self.n.send(holder, PlacementQuery(wf))
            self.asks[wf] = now + self.tk.after_s

    def _waits_on(self, wf: str) -> str | None:
        """The holder of the epoch we granted for `wf` and follow, if it never showed
        that it won it (a holder that did drives, and tells its end itself): whom we
        ask. None where nothing waits on it (ended here, or a later epoch held)."""
        n = self.n
        d = n.state
        epoch, holder = d.granted.get(wf, (0, ""))
        core = self.tk.cores.get(wf)
        if wf in d.final or wf not in n.progress or epoch < 1 or holder == n.name \
                or core is None or core.role is not Role.FOLLOWING \
                or (core.epoch, core.coordinator) != (epoch, holder) \
                or self.tk.coordinator_now(wf) != holder:
            return None
        proof = self.tk.proofs.get(wf)
        if proof is not None and proof[:2] == (epoch, holder):
            return None
        return holder

    def answered(self, src: str, wf: str) -> None:
        """`src` answered a PlacementQuery of `wf` with its placements: it drives the
        workflow (restart_check.py answers so only then), so it is asked no more."""
        if wf in self.asks and self.n.state.granted.get(wf, (0, ""))[1] == src:
            del self.asks[wf]

    def restore_asks(self, now: float) -> None:
        """After a restore: every epoch granted to another for a workflow running here
        is asked about again, `takeover_after_s` from now."""
        d = self.n.state
        for wf in sorted(self.n.progress):
            epoch, holder = d.granted.get(wf, (0, ""))
            self.gave(now, wf, epoch, holder)

    def withdrawn_asked(self, now: float, src: str, wf: str) -> None:
        """`src` asks us for `wf`, running here, which we do not drive: our core sends
        it a claim of ours it withdrew again, if it holds one and `src` is a member (see
        the header, "A claim withdrawn, asked about")."""
        core = self.tk.cores.get(wf)
        if core is None or not self.tk.live(wf) or core.role is not Role.FOLLOWING:
            return
        actions = core.step(now, Asked(src))
        if actions:
            self.n.stats[CLAIM_SENT_TO_THE_ASKER] += 1
            self.tk.apply(now, wf, core, actions)

    def asked(self, src: str, wf: str) -> bool:
        """`src` asks us, whom it follows, for `wf`, ended here: answered with the end
        in our epoch where it may be a granter our claim never took, or one left untold
        as we followed a rival of our epoch, the claim and the saga over (see the header,
        "A rival of the claimed epoch"), or one whose grant came after we yielded that
        epoch to a rival ("A claim yielded to a rival"). True if answered."""
        n = self.n
        d = n.state
        epoch, holder = d.granted.get(wf, (0, ""))
        followed = d.epochs.get(wf, (0, ""))
        # Our claim of `epoch` yielded to a better-ranked rival (takeover_split.py): our
        # grant moved to it, followed in that very epoch (see the header, "A claim
        # yielded"). Never the original: a domain following it in epoch 0 asks it too,
        # told there. The end's record tells it alike (ended_records.py, `yielded`).
        if holder != n.name and not yielded(d, n.name, wf) or epoch < 1 or wf not in d.final \
                or followed[0] > epoch or followed == (epoch, n.name) \
                or n.compensating.plans.plan_open(wf) or self.claim_runs(wf) \
                or (src not in n.replacement.domains_of(wf)
                    and src != wf.rpartition(".")[0]) \
                or n.pending.get(("final", wf, src)) is not None:
            return False  # not the case, or an end of ours goes to it already
        n.stats["takeover grant never taken: end told to the granter that asked"] += 1
        end = FinalMsg(wf, d.final[wf], epoch)
        if src in d.late_grants.get(wf, {}):
            # A grant taken, left untold (we followed a rival of our epoch, see the
            # header): told as `told` tells it, so the acknowledgement drops its row.
            n.reliable(src, ("final", wf, src), end)
        else:
            n.send(src, end)
        return True
