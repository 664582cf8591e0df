"""Grants a claimant holds after its claim is over: each granter is told the end.

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
changes nothing there. What stays in memory: `granters` (takeover_claims.py), which a
restart loses; a restored claimant whose plan is still open claims again once its
view comes, and each granter grants the same claim again (a grant then, or after the
plan closed, is counted or told here as above). Not built: a restored claimant whose
plan closes before it claims again (the saga-over notice before its view) never asks
those granters again, and they stay held.

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
        if told is None or src not in told:
            return
        left = {g: e for g, e in told.items() if g != src}
        if left:
            d.late_grants[wf] = left
        else:
            del d.late_grants[wf]

    def restore(self) -> None:
        """After a restore, once the ends this Node made went again (takeover_ends.py):
        each tell not acknowledged goes again, unless a notice of its epoch or a later
        one goes to that granter already."""
        n = self.n
        d = n.state
        for wf, told in sorted(d.late_grants.items()):
            state = d.final.get(wf)
            if state is None:
                continue
            for src, epoch in sorted(told.items()):
                going = n.pending.get(("final", wf, src))
                if going is not None and getattr(going[1], "epoch", -1) >= epoch:
                    continue
                n.stats["takeover late grant: end told again after a restart"] += 1
                n.reliable(src, ("final", wf, src), FinalMsg(wf, state, epoch))
