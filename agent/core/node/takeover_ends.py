"""The ends of the Node's takeover part: those a successor makes, and those it takes.

Theory of operation
-------------------
Part of the Node's takeover part (takeover.py, whose header tells the whole), composed
by it as `ends`: what a Node does with the end of a workflow it takes part in once
coordinator takeover is on.

Made. An acting successor ends the workflow once its progress has an outcome and
tells every participant and the original coordinator with its epoch (`FinalMsg.epoch`,
resent until acknowledged) and its certificate (`FinalMsg.won`), and with that
certificate every elector too (`told`: one holding no step may keep an older epoch's
end, told and never made, that only this end replaces, told_ends.py). A member that holds
that very epoch for a claimant that lost it (it heard the loser's claim first, e.g.
the original coordinator back from a stall) follows the winner and takes its end,
where it would refuse it for ever (its core follows a live domain, which never acts).
A claimant that learns the end before its claim won tells it on in its claimed epoch
(the core's `Announce`, with no certificate), as those that granted it refuse the
lower epoch's notice. It learns it from a member's answer to its claim, or from an
older epoch's notice with that epoch's certificate; one without (the original's) it
refuses (authority_ends.py), as under a grant to another: that may be an end told and
never made, which its teller voids once it grants a later claim, and made here at once
it stood against the end that claim's winner made (takeover soak seed 28000322).

Restarts. A restored successor that had acted ends the workflow at once if every
result is in (takeover.py's restore asks `successor_outcome`), and the ends this
agent made as a successor (or told on as a claimant, `epochs` naming it) go again to
whoever has not acknowledged them (`restore`): what it sent before was in memory only.

Taken. An end of the epoch granted here, from the domain it was granted to, makes
that domain followed (`follow_end`), where nothing did before. An acceptor's grant (no
step here, or a participant in doubt on a re-placement round only: takeover_claims.py)
is written to `granted`, not `epochs`: such a Node follows no coordinator. Taking that
epoch's end with its certificate, it kept the proof (`end_proofs`) but never showed
it, as an end's proof is shown only for the epoch followed (EndNotices.end_proof): the
original coordinator back in epoch 0 told its own end, was refused as of a stale epoch
for ever, and, its successor dead for good, stayed RUNNING (takeover soak seed
4802097). Following it, the Node answers that end with the later end and its proof,
as a participant that granted the claim does (EndNotices.answer_overtaken), and the
original follows it, or, the end being the same, makes it, acknowledged. Why it is
safe: no grant changes (`granted` names that very holder for that epoch already, and
`may_grant` reads the higher of the two); the end is taken as before; following only
says where our results go (to the domain that ended the workflow) and which proof
our answers carry (one verified here, of that epoch and holder). A participant's
grant follows its claimant at once (its core's `Adopted`): only an acceptor's grant
lacked it. An end of a later epoch than the one followed, taken while this Node holds
a grant of a still later epoch to another claimant (not known here to have won), is
followed too, once taken (EndNotices.on_final, Compensating.later_end: `epochs` only, the
grant stands): its teller drives the saga, and a step's domain that refused its tells
as not its coordinator's would leave the saga RUNNING for ever; should that claimant
win, it learns the end from this Node's denial and tells it on, and is followed then.

Pure: reads and writes the Node's tables and outbox only.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fedorch.core.node.records import FinalMsg
from fedorch.core.node.takeover_claims import held_of
from fedorch.core.node.takeover_grants import Certificate
from fedorch.core.workflow import lifecycle
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.core.workflow.progress import Outcome
from fedorch.core.workflow.takeover import Adopted, Announce, EndKnown, Proven, Role, Takeover


class Ends:
    def __init__(self, takeovers: Any) -> None:
        # The takeover part that owns this one (takeover.py imports it, not the reverse).
        self.tk = takeovers
        self.n = takeovers.n

    def restore(self) -> None:
        """After the Node's tables are read back: the ends this agent made as a successor
        go again to whoever has not acknowledged them (what it sent before was in memory
        only)."""
        n = self.n
        d = n.state
        for wf, state in d.final.items():
            epoch, coordinator = d.epochs.get(wf, (0, ""))
            if epoch < 1 or coordinator != n.name:
                continue
            acked = d.final_acked.get(wf, set())
            won = self.tk.proof.own_certificate(wf, epoch)  # () for a claimant's end
            for dst in sorted(self.told(wf, won) - acked):
                n.reliable(dst, ("final", wf, dst), FinalMsg(wf, state, epoch, won=won))

    def told(self, wf: str, won: Certificate) -> set[str]:
        """Who a successor's made end of `wf` goes to, resent until acknowledged: the
        workflow's domains and its original coordinator; with its certificate (`won`),
        every elector too. An elector holding no step may keep an older epoch's end
        told and never made (its teller died or granted this epoch before enough
        acknowledged it: elector_ends.py), which only this proven end replaces
        (told_ends.py); left out, it kept that end for good (takeover soak seed
        20600021: the original's CANCELLED, acknowledged by an extra acceptor and lost
        with the original's crash, against the successor's FAILED)."""
        n = self.n
        out = n.replacement.domains_of(wf) | {n.running.info(wf).coordinator}
        if won:
            out |= set(self.tk.electorate_of(wf) or ())
        return out - {n.name}

    def tell_rival(self, wf: str, epoch: int, holder: str, state: object) -> None:
        """`holder`, a rival claimant of `epoch` that told the end on alike, is no
        member here (a new domain the original placed a step on while we were cut off,
        its placement refused here before we ended): `told` never reached it, so it is
        told our end now, for saga_plans.rival_end to judge where we are a member.
        Untold, it drove the epoch's saga for ever beside ours (its end to us refused
        as a stranger's)."""
        n = self.n
        d = n.state
        if holder in ("", n.name) or d.epochs.get(wf) != (epoch, n.name) \
                or d.final.get(wf) != state or ("final", wf, holder) in n.pending \
                or holder in d.final_acked.get(wf, set()):
            return
        n.stats["claimant's end told to a rival holder of its epoch"] += 1
        won = self.tk.proof.own_certificate(wf, epoch)
        n.reliable(holder, ("final", wf, holder), FinalMsg(wf, d.final[wf], epoch, won=won))

    def follow_end(self, now: float, wf: str, epoch: int, src: str,
                   state: WorkflowState, won: Certificate = ()) -> None:
        """An end notice the boundary let through. Of a later epoch than held, or of the
        epoch held here for a claimant that lost it to the sender (its certificate,
        `won`): follow its sender; the original coordinator's row ends as the successor
        ended it; of the epoch granted here to its sender, unfollowed, too (header).
        Of an earlier epoch than our own claim (taken: the claim had not won, and the
        notice shows its epoch's certificate: authority_ends.py): the claimant tells it
        on, in its epoch, and ends the workflow here (see Announce)."""
        n = self.n
        d = n.state
        held_epoch, holder = held_of(d, wf, wf.rpartition(".")[0])
        later = epoch > held_epoch
        proven = bool(won) and epoch == held_epoch >= 1 and src != holder \
            and self.tk.proof.proven(wf, epoch, src, won)
        if epoch == held_epoch >= 1 and src == holder \
                and d.epochs.get(wf, (0, ""))[0] < epoch:
            # Granted here as an acceptor, never followed: its teller is followed, so
            # that the end's proof is shown to an older epoch's coordinator (header).
            n.stats["takeover end of the epoch granted here followed"] += 1
            self.tk.follow(wf, epoch, src)
        elif epoch > 0 and (later or proven):
            core = self.tk.cores.get(wf) if wf in n.progress else None
            if core is not None:
                self.tk.step(now, wf, core, Adopted(epoch, src) if later else Proven(epoch, src))
            else:
                self.tk.follow(wf, epoch, src)
            if proven:
                n.stats["takeover end of a proven winner followed"] += 1
        row = d.rows.get(wf)
        if row is not None and epoch > 0 and row.state is not state:
            d.rows[wf] = replace(row, state=state)
            if row.state is WorkflowState.NEGOTIATING:  # ended before its COMMIT came
                n.cancels.lost_to(wf, state)
        core = self.tk.core(wf)
        if core is not None and self.announce(now, wf, core, state):
            n.stats["takeover claimant told an earlier epoch's end on"] += 1

    def announce(self, now: float, wf: str, core: Takeover, state: WorkflowState) -> bool:
        """The end is known here: a claimant (or acting successor) makes it its own and
        tells everyone, those that granted its claim and follow it too: there is one
        end. False if the core leaves it to the coordinator it follows."""
        if wf not in self.n.progress:
            return False
        actions = core.step(now, EndKnown())
        self.tk.retime(wf, core)
        for x in actions:
            if isinstance(x, Announce):
                self.end_as_successor(now, wf, x.epoch, state)
                return True
        return False

    def successor_outcome(self, now: float, wf: str) -> None:
        """An acting successor ends the workflow once its progress has an outcome, or
        on a cancel it took (or, ended with a saga plan open, drives the plan)."""
        if wf in self.n.state.final:
            self.n.compensating.plans.adopt(now, wf)
            return
        core = self.tk.cores.get(wf)
        p = self.n.progress.get(wf)
        if core is None or p is None or core.role is not Role.ACTING or core.epoch < 1:
            return
        if self.n.cancels.holds_back(wf):  # a cancel it took ends it (cancel.py)
            self.n.cancels.carry_out(now, wf)
            return
        if self.n.domain_loss.holds(wf):  # a loss verdict's end, told first
            return
        told = self.n.domain_loss.releasing(wf)
        if told is not None:
            # Told in this epoch and acknowledged: the end, whatever the progress says
            # now. A member that took it keeps it against any other end of this epoch
            # (told_ends.py replaces only a later epoch's), and it answers claims with
            # it. The progress may say otherwise: a step the verdict failed, placed
            # again here by the epoch before (its round in doubt when the verdict was
            # made), committed and ran here, its result over the verdict's (takeover
            # soak seed 117000348: told FAILED, made SUCCEEDED).
            self.n.point("workflow outcome")
            self.end_as_successor(now, wf, core.epoch, told)
            return
        outcome = p.outcome()
        if outcome is None:
            return
        event = lifecycle.Succeeded() if outcome is Outcome.SUCCEEDED else lifecycle.Failed()
        state = lifecycle.step(WorkflowState.RUNNING, event)
        if self.n.domain_loss.tell_end(now, wf, state):
            return  # told first: made once enough acknowledged it (domain_loss.py)
        self.n.point("workflow outcome")
        self.end_as_successor(now, wf, core.epoch, state)

    def end_as_successor(self, now: float, wf: str, epoch: int,
                         state: WorkflowState) -> None:
        n = self.n
        d = n.state
        p = n.progress.get(wf)  # a FAILED end names its failed steps, as the original's
        reason = "; ".join(p.failure_reasons()) \
            if p is not None and state is WorkflowState.FAILED else ""
        row = d.rows.get(wf)
        if row is not None:  # the original coordinator, back and acting in a later epoch
            cancelled = state is WorkflowState.CANCELLED and wf in d.cancels
            d.rows[wf] = replace(row, state=state, reason=f"cancelled: {d.cancels[wf]}") \
                if cancelled else replace(row, state=state, reason=reason or row.reason)
        elif reason:  # a participant acting: no row of its own holds the end's reason
            d.end_reasons[wf] = reason
        core = self.tk.cores.get(wf)
        won = self.tk.proof.own_certificate(wf, epoch) \
            if core is not None and core.role is Role.ACTING and core.epoch == epoch >= 1 \
            else ()
        n.running.end_here(wf, state)
        n.note("coordinator_ended", wf, epoch, state)
        if d.epochs.get(wf) != (epoch, n.name):
            # A claimant's end, in the same write as the end: a restart tells it again
            # (restore), and the claim is never taken for won (no core is rebuilt).
            d.epochs[wf] = (epoch, n.name)
        for dst in sorted(self.told(wf, won)):
            n.reliable(dst, ("final", wf, dst), FinalMsg(wf, state, epoch, won=won))
        n.compensating.ended(now, wf, state)  # the successor drives the saga it owes
