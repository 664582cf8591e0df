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
  the claim with the end (the claim's own `_ended_claim_denied`, takeover_claims.py,
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
Chosen over the granter asking for the end once held past a lease: that needs a new
question, its timer and an answer at every member, where the claimant knows the case
already; the row is one per such grant, of a workflow retention keeps anyway (claimed
here: "taken over"), and goes with it. Told again, the end is acknowledged again and
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
ends the claim in the same turn: takeover_claims.py `_ended_claim_denied`). Rows
of a claim that was overtaken (we granted or follow a later holder since: `granted`
names another) are told nothing after a restart, as the in-memory granters were
told nothing then; they go with the workflow. The extra write is one row per
grant of such a claim: rare (a claim for a saga's open plan, the driver cut off), and
no write for the grants of a running workflow's claims, whose end the claim's core
tells every member (the core's Announce, or the winner's end notices).
Not built: a grant the claimant never took (its answer lost on the way, or the
claimant down before its write) when the plan closes before the claim goes again:
nothing here names that granter, and it stays held.

Not told: an elector holding no step of the workflow (an extra acceptor of its
round). It holds no reservation, and it refuses a claimant's end of epoch 1 or
later for want of that epoch's certificate, which a claimant that never won lacks
(authority_ends.py): told, the end was resent to it for ever (takeover soak seed
10000294).

Pure: reads and writes the Node's tables and outbox only.
"""

from __future__ import annotations

from typing import Any

from fedorch.core.node.records import FinalMsg
from fedorch.core.workflow.takeover import Role


class LateGrants:
    def __init__(self, takeovers: Any) -> None:
        # The takeover part that owns this one (takeover.py imports it, not the reverse).
        self.tk = takeovers
        self.n = takeovers.n

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
