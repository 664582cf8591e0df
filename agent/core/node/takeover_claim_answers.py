"""The Node's answers to its takeover claims: what it makes of each, and the ends in them.

Theory of operation
-------------------
Part of the Node's takeover claims (takeover_claims.py sends the claims and answers
those of others; takeover.py's header tells the whole). `Claims` (takeover_claims.py)
takes these methods from `ClaimAnswers`, which keeps no state of its own: what it reads
and writes (`again`, `again_at`, `granters`) is the claims' own.

Answers to our claim (`on_claim_answer`): a member's end (the workflow ended
meanwhile) is taken and told on; a claimant that had ended the workflow already (it
claims for its open saga plan) and is denied with the end by a member holding a
lower epoch, once a domain of the workflow granted it, tells the end on in its
claimed epoch and drives the saga, so those that granted it are not left refusing
the lower epoch's notices for ever (`_ended_claim_denied`), and so does one denied so
by the original coordinator as the holder of epoch 0 while it follows a later epoch
(below, "The original's end below the epoch followed"); a grant that comes once
the claim is over (the plan closed), and one that came while it ran when the plan
closes before a denial told the end, gets that end in the granted epoch, for the
same reason (takeover_late_grants.py, which keeps the tell durable); "in doubt" is asked
again; a certificate shown by a rival is followed; a grant or a denial goes to the
core (`Grant`, `Deny`), and the two ways a split claim settles on the denials are
counted. An end found without a proof is followed under the holder the answer names
when it names one of epoch >= 1, not under the member that answered: that member may
answer from the record of a workflow it forgot (ended_records.py), and, followed as
the holder, refuses our reports (takeover soak seed 115458). A denial that shows the
end its sender holds, naming another as the epoch's holder, settles our notice of that
very end to it, told on in an epoch we never won, as its acknowledgement would
(`_member_holds_end`; running_ends.py, "An end told on in an epoch never won": the
member refuses that notice, with no certificate, for ever; takeover soak seed
210001702). So does the answer to our epoch-0 end notice by a member holding a later
epoch for another that shows the very end we made (`settled_by_later_member`, first:
running_ends.py, "The same end, shown with a later epoch"); that answer is read on
without its end, as the denial it was before (takeover soak seed 220000311).

A found end against a told one. A successor acting in epoch m that holds an end it
told in m (a loss verdict's, one on results, a cancel's: domain_loss.py `held`) does
not take a different end a member answers it without a proof of epoch m or later
(`_told_end_stands`); its own stays held. Why that is safe: it won m with the grants of
a majority of the electorate, and an elector that ended the workflow grants no later
epoch, one that granted m takes no older epoch's end (authority.py); an end made in an
epoch below m was acknowledged by more than a minority of the electorate, so that
majority would hold one of them. So no end of an older epoch was made or ever will be:
the member's is one told and never made (the original's, say, told to that
participant alone before it granted a later epoch), and the epoch-m notice replaces it
there (told_ends.py). Why it is needed: the told end may be kept already by electors
(elector_ends.py keeps it at once) that will answer a later claim with it; taking the
member's end made a second end of epoch m, and a later claimant found the first
(takeover soak seed 8450680: epoch 3 told FAILED, then took SUCCEEDED from a
participant the original had told it to).

A found end below a won epoch. A claimant takes no end a member answers at an epoch
k below an epoch m it follows or granted for another domain whose certificate it
holds (its holder won m; the winner shows it to its granters). By the argument above
no end of an epoch below m was made or ever will be: the answer is a teller's end
told and never made, and m's holder may have told another, kept by an elector (the
original back from a crash answers a claim with its loss verdict of epoch 0, told
to a member it may have reached: takeover soak seed 148002554, the epoch-1
successor's SUCCEEDED kept by a participant, the original's FAILED taken by the
claimant of epoch 2 and told on in it). The answer counts as the denial it is; the
end comes from m's holder, a member holding m or later, or a proof. The member is
shown m and its certificate (takeover_below_won.py): the end's teller, driving still,
follows m, its told end void, and grants the next claim. Without that
certificate m may never have been won and the end made (its claimant gone for good:
seed 117826), so the end is taken as before. An epoch m this Node won itself counts
the same once it follows or granted a later epoch of another domain: its own
certificate of m is on record (`certificates`), and the answer is a late one to its
claim of m (takeover soak seed 154300317 with a cut one way: d1 won epoch 1, granted
d2's epoch 2, then took the original's FAILED of epoch 0 from such an answer and made
it, while d2 ended SUCCEEDED on its results). Acting in m, nothing changes: its own
told end stands against the answer's (`_told_end_stands`), and with none it takes it.

The original's end below the epoch followed. A claimant that ended the workflow (its
end told on in an epoch k >= 1 it follows: a claimant's Announce, or a successor's
notice), its saga's plan open, claims k' > k for that plan once k's holder is gone.
The original coordinator denies it with that very end as the holder of epoch 0: the
end it told and has not made (domain_loss.py `held`; answered so once a member keeps
it), or made in epoch 0. With no member's grant of the claim, the claim went on for
ever: the original's notices of epoch 0 (its end, its saga's plan and its end) are
answered with the later epoch or refused here (running_ends.py `show_later_epoch`,
authority_ends.py), as at every member that took k's end, so its told end is never
made with our acknowledgement and no saga-over of its closes our plan; and the
original never grants while a member keeps its told end (takeover_claims.py). The
original stayed RUNNING, the claim and the plan open, for ever (takeover soak seed
202101940 with a cut one way, `--keep-ended-s 5 --end 300`: d0 told FAILED, d6's
acknowledgement lost with d0's crash, d2 claimed epoch 1, told that end on and died
for good, d6 claimed epoch 2 for the plan). So the claimant tells the end on in its
claimed epoch and drives the saga in it, as for a claim a member granted
(`_ended_claim_denied`, `_original_below`): the original takes that end (a
participant's later-epoch end, authority_ends.py), follows k' and its told end is
void (the same end, made on the notice: domain_loss.py `tick`); the members that
followed k follow k' too. Why it holds:
- one end: the end told on is ours, the same the original answered (checked), as k's
  holder told us; no end is decided, so none differs from one made or kept anywhere;
- at most one driver per epoch: we tell in k' on our own durable grant of k' (no
  other claimant of k' counts it); a rival that wins k' without it tells its end in
  k' too, and a rival's end of the epoch we drive in leaves one driver
  (saga_plans.py `rival_end`), as for the claimant's Announce; the drivers of lower
  epochs stop once told k' (Compensating.later_end: the original drives nothing until
  it makes its end, which it then makes as k's end), and a domain following k'
  refuses their older-epoch tells;
- no non-idempotent step twice: an ended workflow starts no step, and none is placed;
- no saga run twice: the plan driven is the one k's holder told us (adopted,
  compensating.ended); each compensation goes under its attempt number, and a domain
  answers an attempt it recorded with its record (compensating.py), so an attempt an
  earlier driver ran is not run again; a step's compensation runs only where its
  result said it ran.
Not otherwise: a denial by the original as holder of epoch 0 while this Node follows
no later epoch is one from the driver we claimed past, alive after all (the claim
ends when it tells the saga over: tests/unit/core/node/test_takeover_claims.py). Not
built so: acknowledging the original's end notice instead while our claim goes on
(the original makes its end in epoch 0 and drives a saga that every member following
k refuses as stale: the claims and its saga-over notices went on for ever), and an
acknowledgement from a Node holding a later epoch would count toward the original's
majority against the elector rule (domain_loss.py).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fedorch.core.node.records import ClaimAnswerMsg, FinalMsg
from fedorch.core.node.takeover_below_won import show_won
from fedorch.core.workflow.takeover import GONE_AT_ONCE, Deny, Grant, Role, Takeover

CLAIM_AGAIN_S = 1.0
# The Node's stats of a claim withdrawn, and of one taken up again on a member's grant
# that came after (takeover_claiming.py, Withdrawn; fedorch_node_takeover_claims).
WITHDRAWN = "takeover claim withdrawn"
TAKEN_UP_AGAIN = "takeover withdrawn claim taken up again on a member's grant"
# A claim for an open plan, denied with our end by the original as the holder of epoch
# 0 while we follow a later epoch: the end told on in the claimed epoch.
ORIGINAL_BELOW = "takeover claim denied with our end by the original below our epoch"


class ClaimAnswers:
    """The answers to our claims, a part of `Claims` (takeover_claims.py), whose state
    (the claims sent again, the granters) it reads and writes through `claims`."""

    def __init__(self, claims: Any) -> None:
        self.claims = claims
        self.n = claims.n
        self.tk = claims.tk

    def on_claim_answer(self, now: float, src: str, msg: ClaimAnswerMsg) -> None:
        n, tk = self.n, self.tk
        wf = msg.workflow_id
        if n.end_notices.settled_by_later_member(now, src, msg):
            # Our end notice answered with a later epoch of another and the very end
            # made here (running_ends.py, "The same end, shown with a later epoch"):
            # settled; read on as the denial showing that epoch it was before.
            msg = replace(msg, final=None)
        core = tk.cores.get(wf)
        if msg.granted and msg.placements and wf in n.state.final:
            # Ended here already (a claimant's end told on, its core gone): a placement
            # the granter knows and we did not gets our end (placed_here.py).
            n.placed_here.learn_from_grant(now, wf, msg.placements, msg.before)
        if core is None or not tk.live(wf):
            if msg.granted and wf in n.state.final \
                    and n.state.granted.get(wf) == (msg.epoch, n.name):
                tk.late.told(src, wf, msg.epoch)
            return
        if msg.final is not None and wf in n.state.final and not msg.granted:
            # Ended here, a saga plan open: the end is no news, and no grant. But a
            # member that granted our claim follows us and refuses every notice of
            # a lower epoch: so, denied by one that holds a lower epoch, the claim is
            # over and the end is told on in its epoch (`_ended_claim_denied`).
            if core.role is Role.CLAIMING and core.coordinator == n.name \
                    and msg.held_epoch < core.epoch and (self.claims.granters.get(wf)
                                                         or self._original_below(wf, src,
                                                                                 core, msg)):
                self._ended_claim_denied(now, wf, core)
            self._member_holds_end(now, src, msg)
            return
        if msg.final is not None and msg.holder == n.name and not msg.granted \
                and n.domain_loss.held.get(wf) is msg.final \
                and msg.held_epoch == n.domain_loss.epoch(wf):
            # Our own end, told first and not made yet (domain_loss.py), as the member
            # keeps it: no news; it is made once enough acknowledged it, with its
            # verdict's reasons (taken as a found end, the steps it failed were shown
            # CANCELLED: sim test_a_successor_fails_the_dead_coordinators_own_step).
            return
        if msg.final is not None and wf not in n.state.final and src in core.audience \
                and show_won(n, src, wf, msg.held_epoch):
            # An end of an epoch below one a proven holder won, held here (the header,
            # "A found end below a won epoch"): not taken, a denial; its teller is
            # shown that epoch (takeover_below_won.py).
            n.stats["takeover found end below a won epoch left"] += 1
            msg = replace(msg, final=None)
        if msg.final is not None and wf not in n.state.final and src in core.audience:
            # Ended meanwhile: a member of the workflow says so, as its coordinator told
            # it (a participant's word about its own workflow; one outside the electorate
            # too: it may have been the coordinator of an epoch that ended it, and its
            # end is then the only one there is). A claimant (or acting successor) makes
            # that end its own and tells everyone, those that granted its claim and follow
            # it too: there is one end.
            # With its proof (a later epoch's end: EndNotices.answer_overtaken), the
            # epoch's holder is followed, not the member that told it.
            proven = msg.won and msg.held_epoch >= 1 \
                and tk.proof.proven(wf, msg.held_epoch, msg.holder, msg.won)
            if self._told_end_stands(wf, core, msg, proven):
                return
            n.stats["takeover found the end"] += 1
            if proven:  # kept with the end, as an end notice's is (running_ends.py)
                n.end_notices.keep_proof(wf, msg.held_epoch, msg.holder, msg.won)
            # Unproven, the holder the answer names where it names one of a later epoch
            # than the original's: the member may have forgotten the workflow since
            # (ended_records.py answers with its record), and, followed as the holder,
            # refused our reports and left the saga's driver refused here (takeover
            # soak seed 115458: a step run here, placed again, never compensated).
            holder = msg.holder if proven or (msg.held_epoch >= 1 and msg.holder) else src
            claiming = core.role is Role.CLAIMING and msg.held_epoch < core.epoch
            if msg.placements:  # its placements first (takeover_claims.py, "Grants.",
                # "Ends in denials.")
                n.placed_here.learn_from_grant(now, wf, msg.placements, msg.before)
            if not tk.ends.announce(now, wf, core, msg.final):
                tk.ends.follow_end(now, wf, msg.held_epoch, holder, msg.final,
                              msg.won if holder != src else ())
                if wf not in n.state.final:
                    n.running.end_here(wf, msg.final)
            elif claiming:  # an older epoch's end, told on in the epoch it claims
                n.stats["takeover claimant told an earlier epoch's end on"] += 1
            self._member_holds_end(now, src, msg)
            return
        if msg.in_doubt and not msg.granted:
            if src in core.participants and core.coordinator == n.name \
                    and core.epoch == msg.epoch:
                self.claims.again.setdefault(wf, set()).add(src)
                if self.claims.again_at is None:
                    self.claims.again_at = now + CLAIM_AGAIN_S
            return
        if msg.won and not msg.granted and (msg.holder == src or msg.epoch == 0) \
                and tk.follow_proven(now, wf, msg.holder, msg.held_epoch, msg.won):
            # The winner's certificate, shown by it; or, to an original's end notice,
            # relayed by an elector that granted it (elector_ends.py).
            return
        if msg.granted and not tk.proof.grant_received(wf, core, src, msg.epoch, msg.grant):
            return  # a grant we could not show: not counted (a certificate holds it)
        if msg.granted and src != n.name and src in core.electorate:
            self._keep_grants(wf, msg.epoch)
        if msg.granted and src != n.name and (src in core.participants
                                              or src == core.original):
            self.claims.granters.setdefault(wf, set()).add(src)
            tk.late.granted(wf, src, msg.epoch)  # kept across a restart (takeover_late_grants)
        if msg.granted:  # its placements known before it counts (restart_check.py)
            n.placed_here.learn_from_grant(now, wf, msg.placements, msg.before)
        proven = False
        if msg.won and not msg.granted:
            # A relayed proof: the voter holds the holder's certificate, carried and
            # checked here; kept, so that our denials carry it too.
            proven = tk.proof.saw_proof(wf, msg.held_epoch, msg.holder, msg.won)
            if not proven:
                n.stats["takeover denial with a proof that does not hold"] += 1
        elif not msg.granted and msg.held_epoch > msg.epoch:
            n.stats["takeover denial without proof"] += 1
        event = Grant(src, msg.epoch) if msg.granted \
            else Deny(src, msg.epoch, msg.held_epoch, msg.holder, proven,
                      holder_gone=n.members.get(msg.holder) in GONE_AT_ONCE)
        if msg.granted:  # a successor's fresh majority (replacement_successor.py), before
            # the core steps: the grant that wins the epoch is no answer to a re-ask
            n.replacement.mandates.regranted(now, wf, src, msg.epoch)
        before = (core.role, core.epoch, core.coordinator)
        tk.step(now, wf, core, event)
        if before[0] is Role.CLAIMING and msg.held_epoch == before[1] and not msg.granted:
            # A split claim settled on the denials (takeover_split), not at a timeout.
            if core.epoch == before[1] and core.coordinator not in (before[2], n.name):
                n.stats["takeover claimant yielded to a better-ranked rival"] += 1
            elif core.epoch > before[1] and core.coordinator == n.name:
                n.stats["takeover next epoch claimed on the denials"] += 1
        if before[0] is Role.ACTING and core.role is Role.CLAIMING and not proven:
            n.stats["takeover acting coordinator claimed past an unproven gone holder"] += 1
        if before[0] is Role.CLAIMING and core.role is Role.FOLLOWING \
                and core.epoch < before[1]:
            n.stats[WITHDRAWN] += 1  # takeover_claiming.py, Withdrawn
        elif before[0] is Role.FOLLOWING and core.role is not Role.FOLLOWING:
            n.stats[TAKEN_UP_AGAIN] += 1  # a member's grant of the epoch withdrawn

    def _keep_grants(self, wf: str, epoch: int) -> None:
        """The members' signed grants of our claim of `epoch`, as received, kept before
        the grant counts (takeover_claiming.py, "Restarted"): a restarted claimant still
        claiming it counts them again and shows them (`ClaimMsg.grants`), and a claim a
        member granted is withdrawn no more. A later epoch's replace them."""
        d = self.n.state
        held = d.claim_grants.get(wf)
        if held is not None and held[0] > epoch:
            return  # an earlier claim's grant, come late: not the claim we keep
        grants = self.tk.proof.collected.of(wf, epoch)
        grants.pop(self.n.name, None)
        d.claim_grants[wf] = (epoch, tuple(grants[v] for v in sorted(grants)))

    def _member_holds_end(self, now: float, src: str, msg: ClaimAnswerMsg) -> None:
        """A denial that shows the end `src` holds, an epoch's holder named that is not
        `src` (a member's word of its end; the holder's own notice settles ours by
        itself, running_ends.py): our notice to `src` of that very end, told on in an
        epoch this Node never won, is settled as acknowledged (the header, "An end told
        on in an epoch never won")."""
        if not msg.granted and msg.final is not None and msg.holder != src:
            self.n.end_notices.settled_by_same_end(now, src, msg.workflow_id, msg.final,
                                                   msg.held_epoch)

    def _told_end_stands(self, wf: str, core: Takeover, msg: ClaimAnswerMsg,
                         proven: bool) -> bool:
        """A member's end, answered to the successor acting in the epoch it won, while
        it holds another end it told in that epoch: its own told end stands (see the
        header, "A found end against a told one"). True if the member's is not taken."""
        n = self.n
        if core.role is not Role.ACTING or core.coordinator != n.name or core.epoch < 1:
            return False
        held = n.domain_loss.held.get(wf)
        if held is None or held is msg.final or (proven and msg.held_epoch >= core.epoch):
            return False
        n.stats["found end of an older epoch left: a told end of ours stands"] += 1
        return True

    def _original_below(self, wf: str, src: str, core: Takeover,
                        msg: ClaimAnswerMsg) -> bool:
        """Is `msg`, a denial with the end of our claim for a workflow ended here, the
        original coordinator's, as the holder of epoch 0, with our very end, while this
        Node follows a later epoch (the header, "The original's end below the epoch
        followed")? Then its notices of epoch 0 are answered or refused here, so
        nothing but our end told on in our claimed epoch ends its wait."""
        n = self.n
        d = n.state
        followed = d.epochs.get(wf, (0, ""))
        if src != core.original or msg.holder != src or msg.held_epoch != 0 \
                or msg.final is not d.final.get(wf) or followed[0] <= msg.held_epoch:
            return False
        n.stats[ORIGINAL_BELOW] += 1
        return True

    def _ended_claim_denied(self, now: float, wf: str, core: Takeover) -> None:
        """Our claim of `core.epoch`, made for the open saga plan of a workflow that
        ended here, is denied with the end by a member that holds a lower epoch: the
        driver we claimed from is alive after all (or the saga is over there). The
        domains of the workflow that granted one of our claims meanwhile (`granters`:
        one back from a restart that never heard the end, say) follow us in that epoch
        and refuse the lower epoch's end and tells for ever, keeping what they hold
        (takeover soak seed 1601312). Nothing but a notice of our epoch or a later one
        moves them, and only its holder, us, may send one: so we tell the end on in
        our epoch, as a claimant that learns the end from a denial does (the core's
        Announce, takeover.py), and drive the saga in it (its plan adopted:
        compensating.ended); the driver of the lower epoch, told that later end,
        follows us and drives no more (Compensating.later_end), so there is still one
        driver, and each domain answers an attempt it recorded with its record. The
        end is the one end there is: ours is the one the driver told us. Our core is
        dropped with the plan: no more claims. Called only once a domain granted us
        (the caller): with none, nobody is held, the saga stays with its driver, and
        the claims end when the plan closes (the driver tells the saga over); or where
        the denier is the original below the epoch we follow (`_original_below`): it
        drives nothing we take, and only an end of our epoch moves it."""
        n = self.n
        d = n.state
        state = d.final[wf]
        n.stats["takeover claimant that ended told the end on"] += 1
        n.point("takeover epoch")
        # In the write of its notices: a restart tells them again (Takeovers.restore)
        # and adopts the plan (Compensating.restore).
        d.epochs[wf] = (core.epoch, n.name)
        n.note("coordinator_ended", wf, core.epoch, state)
        info = n.running.info(wf)
        for dst in sorted((n.replacement.domains_of(wf) | {info.coordinator}) - {n.name}):
            n.reliable(dst, ("final", wf, dst), FinalMsg(wf, state, core.epoch))
        n.compensating.ended(now, wf, state)
