"""End notices told to a Node: taken, or answered with a later epoch's end.

Theory of operation
-------------------
A workflow's end comes to a participant as a `FinalMsg` from the coordinator it
follows (authority_ends.py checks who may tell it). `on_final` takes it: an elector
holding no step keeps it (elector_ends.py), a Node that forgot the workflow only
acknowledges it, a told-first end is replaced by a later one (told_ends.py), a saga's
driver of an overtaken epoch stops, and the end is made here (Running.end_here) once,
then acknowledged (a saga's plan or end by saga_plans.py instead).

An end taken from a successor of a later epoch keeps that epoch's certificate with it
(`keep_end_proof`, in `end_proofs`, written with the end). With it this Node answers
a sender still in an older epoch (an original coordinator back after its successor
ended the workflow and died): its end notice (`answer_overtaken`) or its reports as
the one that drives the workflow (`tell_overtaken`) get the later end and its proof,
as an answer to a takeover claim does, never an acknowledgement, so it follows the
later epoch (takeover_claims.py) instead of waiting for ever.

Ended in a later epoch with no proof kept (its end came from an epoch-0 notice, or
from a claimant's Announce, which carries none), a participant answers the original
coordinator's older-epoch end notice as an elector that holds no end does
(elector_ends.py): a denial naming the later epoch it holds and its holder, with the
holder's certificate where one is kept (`show_later_epoch`). Never acknowledged: it
holds that later epoch, and an acknowledgement given then would count toward a
majority that a claimant of that epoch may not meet (domain_loss.py). The denial
grants nothing and says only what is held here; with it the original, where its view
holds that holder gone, claims the next epoch (core/workflow/takeover_overtaken.py)
and takes the end the electors answer its claim with. Refused silently instead, the
original resent its end for ever and stayed RUNNING once that holder died for good
(takeover soak seed 101830).

An end told on. A claimant of an epoch it never won that tells on the end it learned
with its proof (the takeover part's Announce) keeps that proof (`end_proof`), from an
end notice or a claim's answer alike (takeover_claims.py): so it takes the proven
holder's own notice of that end, of an epoch below its claim, only to acknowledge it
(authority_ends.py). Its notice to that holder, told on in its unproven epoch, is one
the holder refuses where the claimant is the original coordinator, no participant
(authority_ends.py: a later epoch's end from a non-participant needs its
certificate). The holder's notice says it holds that very end, as its acknowledgement
would: so the claimant's notice to it is settled as acknowledged
(`settled_by_proven_end`), never where the ends differ. Before, each resent its notice
for ever and neither forgot the workflow (takeover soak seed 191000086: the original,
back, claimed epoch 2 past epoch 1's holder gone in its view, on an elector's answer
that showed that holder's SUCCEEDED and its certificate).

An end told on in an epoch never won. A claimant of epoch m that it never won (no
certificate of m kept here: the original coordinator, back and claiming past a holder
gone in its view) learns the end from a member's denial that shows none, and tells it
on in m with no certificate (the takeover part's Announce). A member that follows an
older epoch refuses that notice (a later epoch's end from a non-participant needs its
certificate: authority_ends.py) and no rule answers it; where no proof was kept,
`settled_by_proven_end` settles nothing either. But that member says it holds that very
end: in its denial of our claim (`final`, naming another as the epoch's holder:
takeover_claim_answers.py), or in its own end notice of an older epoch, proven or not
(the holder's, or its own claim's end told on). Our notice to it is then settled as
acknowledged (`settled_by_same_end`), for that very end only, of an epoch later than
the member's word, never a saga's plan or end, and only at the original coordinator
placing no step: a participant's notice of its claimed epoch is taken by the members
and followed, so its saga's late results and compensations reach it (a participant
that settled so left a late result's compensation undriven: takeover soak seed
213000082, found by the soak of this rule). Sound. One end: the end is made here
and held there alike; settling writes only `final_acked` and drops the resend, and no
end is taken or replaced anywhere. An acknowledgement counts toward making only an end
told first (domain_loss.py), and none made here is: a hold left from before the end
was made here (the original, back, told its end again in epoch 0 before its claim
learned it) is void at the acknowledgement (`drives` is false once the end is made
here), as at the next tick. That hold once kept the notice: the member's word came
between the Announce and the tick, and it refused ours for ever after (takeover soak
seed 216000061: d5's notice of epoch 1, with d2's epoch-2 notice pending, the hold
of d2's epoch-0 SUCCEEDED not yet void). At most one driver per epoch:
nothing is granted, claimed or followed; and a granter of our claim (`late_grants`),
which follows us in m and refuses older notices, is left to be told as before. Nothing
run twice: no step, round or saga plan moves. A denial that names its sender as the
holder is left to that holder's own notice, which it resends until acknowledged here.
Before, each side resent or refused for ever (takeover soak seed 210001702: the
original, back, claimed epoch 2 past epoch 1's holder d0 gone in its view, was denied
by d2 with SUCCEEDED and no certificate, and told SUCCEEDED on in epoch 2 to d0 and d2
every 8 s to the run's end; d0's proven notice of epoch 1, acknowledged, settled
nothing, no proof kept. Seeds 210101818 and 210102662 with a cut one way are the same
shape, the second's member itself a claimant of epoch 1 telling FAILED on unproven).

The same end, unproven (authority_ends.py): the original's epoch-0 notice of the very
end held here, where the later epoch held is this Node's own, is acknowledged, not
answered with that epoch (`show_later_epoch` leaves it to the acknowledgement); a
stranger's end of the epoch held here for another is acknowledged and never followed
(`stranger_rival`: `rival_end` is not asked).

The same end, shown with a later epoch. A participant that answers the original's
epoch-0 end notice with the later epoch it holds for another (`show_later_epoch`)
shows in that answer the end it holds where it is the very end the notice tells
(`ClaimAnswerMsg.final`, no proof), never where the holder it names is itself (an
original whose end is told first takes a member's end shown naming the member as
its holder, as a found end: takeover one-way soak seed 222100932, where it had
claimed past before). The original that made that end settles its
notice to that participant as acknowledged (`settled_by_later_member`, called first
by takeover_claim_answers.py). Either way, made or only told first (domain_loss.py
`held`, which settles nothing), it reads the answer on with the end left out: the
denial showing the later epoch it was before, so a holder gone in its view is still
claimed past (core/workflow/takeover_overtaken.py) and no end is taken on that word.
Before, nothing settled it: the epoch's holder, ended alike, never told the
original, and the original resent its end every 8 s for ever, its view holding that
holder alive (takeover soak seed 220000311: d0, past d2 in its view, claimed epoch 1
and, granted late by d3 after both had ended FAILED, told FAILED on to d3 alone; d3
then answered d2's FAILED of epoch 0 with epoch 1, holder d0, and no end).
Settling, not adopting. Nothing is taken here: the end was made here before (an end
told first is not settled so: it is not in `final`), and no epoch, holder, proof or
end of the answer is kept. The only change is the one an acknowledgement from that
participant makes (`final_acked`, the resend dropped), and a made end's
acknowledgement counts toward nothing (domain_loss.py counts them only for an end
told first). So the answer is worth no more than an acknowledgement the participant
could send unasked, signed by it alike: a trusted domain that lies gains nothing it
did not have, and takes no end anywhere without proof (docs/architecture.md,
Principles 8, authority). Sound on the participant's side too: it acknowledges
nothing, so no majority that makes the original's end meets the grant it gave the
later epoch; it only says which end it holds, as its answer to any claim does
(takeover_claims.py). Epoch 0 only: an answer of an epoch >= 1 may be one to a claim,
and its end is read as before. Not built yet: the same for the original's saga-over
notice, which that participant refuses as of an overtaken epoch (its saga plan stays
open there, and the original resends it until the workflow is forgotten).

Settled, from an overtaken epoch. An older epoch's notice let through only to be
acknowledged (authority_ends.py, "Settled": the original's same end marked `settled`)
marks nothing settled here: the mark is taken only from a notice of the epoch held
here or a later one (takeover soak seed 222000312).

Pure: no clock, no I/O; what it says goes through the Node's outbox.
"""

from __future__ import annotations

from typing import Any

from fedorch.core.identity.authority import coordinator_of
from fedorch.core.node.authority_ends import shows_later_epoch
from fedorch.core.node.authority_steps import epoch_of
from fedorch.core.node.elector_ends import elector_takes
from fedorch.core.node.records import AckMsg, ClaimAnswerMsg, FinalMsg
from fedorch.core.node.takeover_claims import held_of
from fedorch.core.node.told_ends import later_end_replaces
from fedorch.core.workflow.lifecycle import WorkflowState


class EndNotices:
    def __init__(self, node: Any) -> None:
        # The Node that owns this part (typed loosely: the Node imports its parts,
        # never the reverse, so the import graph has no cycle).
        self.n = node

    def on_final(self, now: float, src: str, msg: FinalMsg) -> None:
        n = self.n
        saga = msg.owed or msg.saga_over  # its driver's saga plan, or its end
        ack = AckMsg(("saga" if saga else "final", msg.workflow_id, n.name), gen=msg.gen)
        forgotten = n.retain is not None and not n.retain.knows(msg.workflow_id)
        if forgotten and self.answer_overtaken(src, msg):
            return  # the original, told its successor's end from the record
        if elector_takes(n, src, msg):
            return  # an elector holding no step keeps a held end (elector_ends.py)
        if forgotten:
            n.send(src, ack)
            return  # forgotten here (or never ours): acknowledged, nothing kept
        if self.answer_overtaken(src, msg) or self.show_later_epoch(src, msg):
            return
        later_end_replaces(n, src, msg)  # a told end, never made: followed below
        n.compensating.later_end(msg.workflow_id, msg.epoch, src)  # an epoch over: stop
        if not self.stranger_rival(src, msg):
            n.compensating.plans.rival_end(now, msg.workflow_id, msg.epoch, src, msg.state,
                                           msg.won)  # a rival's end of our epoch: one drives
        held = epoch_of(n.state, msg.workflow_id)[0]
        if msg.settled and n.retain is not None and msg.workflow_id not in n.state.settled \
                and (held is None or msg.epoch >= held[0]):  # an overtaken teller: no say
            n.point("settled")
            n.state.settled.add(msg.workflow_id)
        if msg.workflow_id not in n.state.final and n.takeover is not None:
            self.keep_end_proof(src, msg)
            n.takeover.ends.follow_end(now, msg.workflow_id, msg.epoch, src, msg.state,
                                  msg.won)
        if msg.workflow_id not in n.state.final:  # a claimant that told it on ended it
            n.running.end_here(msg.workflow_id, msg.state)
            # Its teller followed, of a later epoch than followed here, where follow_end
            # did not (a grant here of a still later epoch, to a claimant not known to
            # have won): it drives the saga, and its tells are taken.
            n.compensating.later_end(msg.workflow_id, msg.epoch, src)
        if saga:  # the plan written (saga_plans.on_plan acknowledges it)
            n.compensating.plans.on_plan(src, msg)
        else:
            n.send(src, ack)
            self.settled_by_proven_end(now, src, msg)

    def stranger_rival(self, src: str, msg: FinalMsg) -> bool:
        """Is `msg` a rival claimant's end of the epoch held here for another holder,
        unproven, from a domain not known here as a member (authority_ends.py lets the
        very end held here through only to be acknowledged)? Never followed:
        `rival_end` would yield to it by rank (the header, "The same end, unproven").
        A proven winner's end is followed, as before."""
        n = self.n
        wf = msg.workflow_id
        held = n.state.epochs.get(wf)
        return not msg.won and held is not None and held[0] == msg.epoch >= 1 \
            and held[1] not in (n.name, src) and n.compensating.known(wf) \
            and src not in n.compensating.plans.members(wf)

    def settled_by_proven_end(self, now: float, src: str, msg: FinalMsg) -> None:
        """`src`, the proven holder of the epoch whose end this Node keeps the proof of,
        told that very end (just acknowledged here), while our notice of it, told on in
        a later epoch, still waits for `src` (the header, "An end told on"): `src`
        holds the end, as its acknowledgement would say, so our notice is settled as
        acknowledged. So too where our notice's epoch is one this Node never won, from
        any teller of that very end in an older epoch, proof or none (the header, "An
        end told on in an epoch never won": `settled_by_same_end`)."""
        n = self.n
        wf = msg.workflow_id
        proof = n.state.end_proofs.get(wf)
        entry = n.pending.get(("final", wf, src))
        if entry is None or proof is None or proof[:2] != (msg.epoch, src) or not msg.won \
                or n.state.final.get(wf) is not msg.state or entry[1].state is not msg.state \
                or entry[1].epoch <= msg.epoch:
            if not msg.owed and not msg.saga_over:
                self.settled_by_same_end(now, src, wf, msg.state, msg.epoch)
            return
        n.stats["end told on settled by its proven holder's same end"] += 1
        n.running.on_ack(now, src, AckMsg(("final", wf, src)))

    def settled_by_same_end(self, now: float, src: str, wf: str, state: WorkflowState,
                            epoch: int) -> None:
        """`src` said it holds `state`, the end made here, in `epoch` (its end notice,
        or its answer to our claim, takeover_claim_answers.py), while our notice of that
        very end, told on in a later epoch this Node never won, still waits for `src`
        (the header, "An end told on in an epoch never won"): `src` holds the end, as
        its acknowledgement would say, so our notice is settled as acknowledged."""
        n = self.n
        entry = n.pending.get(("final", wf, src))
        participants = epoch_of(n.state, wf)[1]
        if entry is None or n.takeover is None or n.state.final.get(wf) is not state \
                or coordinator_of(wf) != n.name or participants is None \
                or n.name in participants:
            return  # a participant's notice is taken and followed (its saga's driver)
        told = entry[1]
        if told.state is not state or told.epoch <= epoch or told.owed or told.saga_over \
                or n.takeover.proof.own_certificate(wf, told.epoch) \
                or src in n.state.late_grants.get(wf, {}):
            return  # another end, not a later epoch's, an epoch won here, or
            # a granter of our claim (it follows us in that epoch: told reliably)
        n.stats["end told on in an unwon epoch settled by its member's same end"] += 1
        n.running.on_ack(now, src, AckMsg(("final", wf, src)))

    def keep_end_proof(self, src: str, msg: FinalMsg) -> None:
        """A later epoch's end, about to be taken here with its certificate: the proof
        kept with it (`end_proofs`, in the same write as the end), for `answer_overtaken`."""
        n = self.n
        wf = msg.workflow_id
        if msg.epoch >= 1 and msg.won and not msg.owed and not msg.saga_over \
                and n.takeover.proven(wf, msg.epoch, src, msg.won):
            self.keep_proof(wf, msg.epoch, src, msg.won)

    def keep_proof(self, wf: str, epoch: int, holder: str, won: tuple) -> None:
        """The proof (checked by the caller) of the end about to be taken here: that of
        an end notice, or of a claim's answer that shows a proven holder's end (a
        claimant that tells it on in the epoch it claimed keeps it the same: `end_proof`
        says why)."""
        self.n.point("end proof kept")
        self.n.state.end_proofs[wf] = (epoch, holder, won)

    def end_proof(self, wf: str) -> tuple[int, str, tuple] | None:
        """The proof of the end made here of `wf` in a later epoch: the certificate of
        the successor whose end was taken, or our own when we made it as one; a
        claimant that never won its epoch told on the end it learned, whose proof it
        kept (takeover soak seed 8700249: no proof, the original refused for ever)."""
        d = self.n.state
        if wf not in d.final:
            return None
        epoch, holder = d.epochs.get(wf, (0, ""))
        kept = d.end_proofs.get(wf)
        if holder == self.n.name and epoch >= 1 and self.n.takeover is not None:
            won = self.n.takeover.proof.own_certificate(wf, epoch)
            if won:
                return (epoch, holder, won)
            return kept if kept is not None and kept[0] < epoch else None
        return kept if kept is not None and kept[0] == epoch else None

    def answer_overtaken(self, src: str, msg: FinalMsg) -> bool:
        """An end notice of an epoch older than the end made here (the original
        coordinator back after its successor ended the workflow and died, telling a
        loss verdict's end): answered with our end and its proof, as an answer to a
        claim is (`ClaimAnswerMsg.final`, `won`), never acknowledged, so its sender
        follows the later epoch and takes that end (takeover_claims.py)."""
        n = self.n
        wf = msg.workflow_id
        later = self.later_end(src, wf)
        if later is None or msg.epoch >= later[0] or msg.owed or msg.saga_over \
                or msg.state is later[3]:
            return False  # the same end told on (an Announce): acknowledged as before
        epoch, holder, won, end = later
        n.stats["end of an overtaken epoch answered with the later end"] += 1
        n.send(src, ClaimAnswerMsg(wf, msg.epoch, False, epoch, holder, end, won=won))
        return True

    def later_end(self, src: str, wf: str) -> tuple[int, str, Any, WorkflowState] | None:
        """The end of `wf` made here in a later epoch and its proof (`end_proof`), as
        (epoch, holder, certificate, end); forgotten here, the one its record keeps
        for the original coordinator (ended_records.py, `overtaken`): retention's
        window over, that original, back after its successor ended the workflow and
        died for good, was answered nothing and stayed RUNNING for ever."""
        n = self.n
        proof = self.end_proof(wf)
        if proof is not None:
            return proof[0], proof[1], proof[2], n.state.final[wf]
        if n.retain is None:
            return None
        later = n.retain.ends.overtaken(src, wf)
        if later is not None:
            n.stats["later end read from a forgotten workflow's record"] += 1
        return later

    def show_later_epoch(self, src: str, msg: FinalMsg) -> bool:
        """The original coordinator's end notice of an epoch older than the one held
        here, at a participant that ended `wf` and keeps no proof of it (the header):
        answered with the later epoch and its holder, never acknowledged. Not the end
        of an original that is a participant too (authority_ends.py takes it only to
        be acknowledged: authority_ends.shows_later_epoch). True if answered."""
        n = self.n
        d = n.state
        wf = msg.workflow_id
        if not shows_later_epoch(n, src, msg):
            return False
        epoch, holder = held_of(d, wf, src)
        n.stats["end of an overtaken epoch answered with the later epoch"] += 1
        same = msg.state if msg.epoch == 0 and holder not in (n.name, "") \
            and d.final.get(wf) is msg.state else None  # the header, "shown with a later"
        n.send(src, ClaimAnswerMsg(wf, msg.epoch, False, epoch, holder, same,
                                   won=n.takeover.proof.proof_of(wf, epoch, holder)))
        return True

    def settled_by_later_member(self, now: float, src: str, msg: ClaimAnswerMsg) -> bool:
        """`src` answered our end notice of epoch 0 with a later epoch it holds for
        another and, unproven, the very end this Node holds (`show_later_epoch`): our
        notice of that end to it is settled as acknowledged where the end is made here
        (the header, "The same end, shown with a later epoch"), never where it is only
        told first (domain_loss.py `held`). True where `msg` is such an answer, settled
        or not: the caller reads it on as the denial it was before the end was shown."""
        n = self.n
        wf = msg.workflow_id
        made = n.state.final.get(wf)
        if msg.epoch != 0 or msg.granted or msg.final is None or msg.held_epoch < 1 \
                or msg.holder in (src, "") or coordinator_of(wf) != n.name \
                or msg.final is not (made or n.domain_loss.held.get(wf)):
            return False
        entry = n.pending.get(("final", wf, src))
        told = entry[1] if entry is not None else None
        if made is not None and told is not None and told.state is made \
                and told.epoch == 0 and not told.owed and not told.saga_over:
            n.stats["end notice settled by a later epoch's member showing the same end"] += 1
            n.running.on_ack(now, src, AckMsg(("final", wf, src)))
        return True

    def tell_overtaken(self, src: str, wf: str) -> bool:
        """`src`, the original coordinator of `wf`, reports as one that drives it, and
        this Node ended it in a later epoch, whose proof it keeps: answered as its end
        notice is (`answer_overtaken`), so it follows the later epoch. Back after its
        successor ended the workflow and died for good, with no verdict to tell, it
        would wait for ever for results their ended domains never send (takeover soak
        seed 4003045). True if answered."""
        n = self.n
        # The original is the coordinator the id names: a Node that took the end without
        # ever holding the COMMIT (a re-placement's new domain told the end) has no
        # round to read it from (takeover soak seed 4700416: a KeyError stopped it).
        if src != coordinator_of(wf):
            return False
        later = self.later_end(src, wf)
        if later is None or src == later[1]:
            return False
        epoch, holder, won, end = later
        n.stats["original coordinator told the later end"] += 1
        n.send(src, ClaimAnswerMsg(wf, 0, False, epoch, holder, end, won=won))
        return True
