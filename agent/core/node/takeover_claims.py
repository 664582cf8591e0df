"""The Node's takeover claims: what it sends, how it answers, what it makes of answers.

Theory of operation
-------------------
Part of the Node's takeover part (takeover.py, whose header tells the whole). Claims
and answers are the Node's messages (`ClaimMsg`, `ClaimAnswerMsg`, records.py); every
grant is written (`granted`, and `epochs` when it follows) before its answer leaves,
as both are records and messages of the same Ready.

Sending. A claim carries, to an acceptor that holds no step, the proof of the round
(takeover_claim_proof.py), and from a claimant that won (it acts in that epoch) its
certificate (`won`).

Answering a claim (`on_claim`):
- of a workflow unknown here but for our vote (no decision learned): "in doubt", no
  grant, no refusal (the claimant asks again `CLAIM_AGAIN_S` later);
- of a workflow with no step here: as an acceptor of its round, on the claim's proof
  checked against our records (agent/core/workflow/acceptor_grant.py decides), the
  grant kept in `granted` before the answer (takeover_acceptor_claims.py);
- of a workflow ended here: its end, no grant (an ended workflow is not taken over);
- of a workflow whose end this Node told as its coordinator and has not made yet
  (domain_loss.py, `held`), once a member other than the claimant took it or may have
  (`DomainLoss.kept_elsewhere`): that end, no grant, as that member answers;
- from a claimant outside the committed round (a re-placement's new domain), where
  the electors that could grant it, not gone in our view, are no majority: denied with
  what we hold (`_cannot_win`). An acceptor holding no step grants only on a proof of
  the committed round, which such a claimant never holds: only the round's
  participants and the original coordinator can. Granted, the claim could never win,
  yet we would follow it and refuse the older epoch: the original, alive, stopped
  driving, and the workflow stayed RUNNING for ever (takeover soak seed 108549). Safe:
  a denial grants nothing (grants alone decide who acts), and liveness is kept: asked
  again once a gone elector is back, we grant as before. Denied so by the coordinator
  it claimed past, the claimant withdraws its claim and follows it again (its results
  and a restart's placement question go to it: takeover_claiming.py, Withdrawn);
- otherwise by `may_grant`: at most one claimant per epoch, never below the held one.
  A claim that may not be granted but shows a certificate of the epoch held is
  followed (`Proven`); a refusal names what we hold, and shows our own certificate
  when we act in that epoch (a rival claimant of it follows us at once). A grant is
  `Adopted` by our core (or followed where no core is kept).

Answers to our claim (`on_claim_answer`), and the ends found in them (against an end
told here, below a won epoch): takeover_claim_answers.py, whose header tells them.

Grants. A grant's answer carries the granter's signed statement of it
(`ClaimAnswerMsg.grant`, takeover_grants.py), naming the electorate it counts in: a
participant's core's, an acceptor's the proof's round's. A claimant counts only a grant
whose statement verifies as its voter's, of its claim, in its own electorate. It
carries the granter's placements on record too (`placements`), taken by the claimant
before the grant counts (placed_here.py), so a successor knows every new placement
whose COMMIT left (restart_check.py says why that holds); so too a grant carrying the
end (its granter's saga plan open), before the end is told on, which so reaches the new
domains: told nothing, one followed a rival claimant that had yielded, and its run of
the step was never compensated (takeover soak seed 163301080, `--keep-ended-s 5`).

Ends in denials. A member that ended the workflow, its saga's plan closed, denies a
claim with its end and its placements on record, as a grant carries them; a claimant
that takes that end takes them first, so its end told on reaches a step's new domain.
Told nothing, that domain never followed the claimant's epoch nor reported its
SUCCEEDED run to it: the claimant drove a saga owing nothing, and once the original,
whose saga had that run's compensation, followed it and forgot the workflow, no saga
held it (simulator seed 167100188 with `--commit 2pc`). Placements are the original's
word, carried unchanged; taking one changes whom the end and the saga are told.

Proofs in denials. `ClaimAnswerMsg.won` on a denial carries a verified certificate of
`held_epoch` for `holder` that the answerer holds: its own (it acts in that epoch)
or the holder's, shown to it by the holder's claim (the winner sends it once to every
elector that granted it, at once on winning: the core's `_won`) or by another member's
proven denial, and kept by the takeover part (`Takeovers.proofs`). A denial is
`proven` only if the claim says so and the evidence port confirms that certificate
(the runtime: the certificate carried verifies here); else the core takes it as the
voter's word (`Unproven`) and nobody follows it.
"""

from __future__ import annotations

from typing import Any

from fedorch.core.negotiation.messages import VoteIn
from fedorch.core.node.authority_steps import epoch_of
from fedorch.core.node.records import ClaimAnswerMsg, ClaimMsg, Disk
from fedorch.core.node.takeover_acceptor_claims import answer_as_acceptor
from fedorch.core.node.takeover_claim_answers import (
    CLAIM_AGAIN_S,
    TAKEN_UP_AGAIN,
    WITHDRAWN,
    ClaimAnswers,
)
from fedorch.core.node.takeover_claim_proof import round_proof
from fedorch.core.node.takeover_grants import StatedRound
from fedorch.core.workflow.acceptor_grant import Round
from fedorch.core.workflow.takeover import (
    Adopted,
    Role,
    SendClaim,
    Takeover,
    may_grant,
)
from fedorch.core.workflow.takeover_events import majority

# A claim outside the committed round not denied for the grants it shows (`_cannot_win`).
GRANTED_ON_SHOWN = "takeover claim not denied: the grants it shows make a majority"

__all__ = ["CLAIM_AGAIN_S", "GRANTED_ON_SHOWN", "TAKEN_UP_AGAIN", "WITHDRAWN", "Claims",
           "held_of"]


class Claims:
    """Our claims sent and others' answered here; the answers to ours are its part
    `answers` (takeover_claim_answers.py)."""

    def __init__(self, takeovers: Any) -> None:
        # The takeover part that owns this one (takeover.py imports it, not the reverse).
        self.tk = takeovers
        self.n = takeovers.n
        # Claims answered "in doubt here" by a participant, sent again at `again_at`
        # (workflow -> members).
        self.again: dict[str, set[str]] = {}
        self.again_at: float | None = None
        # The workflow's domains that granted one of our claims (any epoch): they
        # follow us since (workflow -> domains; of a workflow ended here, written in
        # `late_grants` too and read back on restore: takeover_late_grants.py).
        self.granters: dict[str, set[str]] = {}
        self.answers = ClaimAnswers(self)

    def on_claim_answer(self, now: float, src: str, msg: ClaimAnswerMsg) -> None:
        self.answers.on_claim_answer(now, src, msg)  # takeover_claim_answers.py

    def reset(self) -> None:
        self.again = {}
        self.again_at = None
        self.granters = {}

    def forget(self, wf: str) -> None:
        self.again.pop(wf, None)
        self.granters.pop(wf, None)

    def timer(self) -> float | None:
        return self.again_at if self.again else None

    def tick(self, now: float) -> None:
        if self.again_at is None or now < self.again_at:
            return
        again, self.again, self.again_at = self.again, {}, None
        for wf, members in sorted(again.items()):
            core = self.tk.cores.get(wf)
            if core is None or not self.tk.live(wf) or core.ended \
                    or core.coordinator != self.n.name:
                continue  # the claim is over
            for dst in sorted(members):
                self.n.stats["takeover claim sent again to a participant in doubt"] += 1
                self.send(wf, core, SendClaim(dst, core.epoch))

    # ---- sending --------------------------------------------------------------------------

    def send(self, wf: str, core: Takeover, x: SendClaim) -> None:
        """A claim, with the proof of the round for an acceptor holding no step, and, from
        a claimant that won (it acts in that epoch), its certificate."""
        won = self.tk.proof.own_certificate(wf, x.epoch) \
            if core.role is Role.ACTING and x.epoch == core.epoch >= 1 else ()
        proof, stated, commit = self._round_proof(wf, core, x.to)
        self.n.send(x.to, ClaimMsg(wf, x.epoch, proof, won=won, stated=stated,
                                   commit=commit,
                                   grants=self.tk.proof.held_grants(wf, core, x.epoch)))

    def _round_proof(self, wf: str, core: Takeover, to: str
                     ) -> tuple[Round | None, StatedRound | None, tuple[VoteIn, ...]]:
        """What our claim shows `to` of the committed round (takeover_claim_proof.py)."""
        return round_proof(self.n, self.tk.proof.sign, wf, core, to)

    # ---- a claim received -------------------------------------------------------------------

    def on_claim(self, now: float, src: str, msg: ClaimMsg) -> None:
        n, tk = self.n, self.tk
        wf = msg.workflow_id
        d = n.state
        if wf not in d.committed and wf not in d.rows and wf not in d.final:
            if any(not getattr(d.info.get(k), "lost", "") for k in n.participant.keys_of(wf)):
                # A vote of ours, no decision learned: "in doubt here", no grant, no
                # refusal (the runtime's TakeoverAnswer.in_doubt); asked again soon. Not
                # for a re-placement round's vote only (replacement.py): in doubt on it
                # for as long as its coordinator is gone, we answer as the acceptor we
                # are of the committed round, or the claim could never win (takeover
                # soak seed 3400228).
                n.stats["takeover claim answered in doubt"] += 1
                n.send(src, ClaimAnswerMsg(wf, msg.epoch, False, 0, "", in_doubt=True))
                return
            if n.retain is not None and (end := n.retain.ends.claim_answer(wf)):
                n.send(src, ClaimAnswerMsg(wf, msg.epoch, False, *end))  # ended_records.py
                return  # forgotten here: its end, as when kept
            answer_as_acceptor(tk, src, msg)  # takeover_acceptor_claims.py
            return
        original = n.running.info(wf).coordinator if wf in d.committed or wf in d.rows \
            else wf.rpartition(".")[0]
        epoch, holder = held_of(d, wf, original)
        if wf in d.final and not n.compensating.plans.plan_open(wf):
            # An ended workflow is not taken over: its end instead (unless its saga's
            # plan is open here: then a successor may be elected to drive it)
            n.send(src, ClaimAnswerMsg(wf, msg.epoch, False, epoch, holder, d.final[wf],
                                       **n.placed_here.carried(wf)))
            return
        if not may_grant(epoch, holder, msg.epoch, src) and msg.won \
                and tk.follow_proven(now, wf, src, msg.epoch, msg.won):
            epoch, holder = held_of(d, wf, original)  # it won the epoch held: follow it
        if may_grant(epoch, holder, msg.epoch, src) and (epoch, holder) != (msg.epoch, src) \
                and self._cannot_win(wf, src, msg):
            # A claimant outside the committed round whose claim no majority could grant
            # (the header): denied with what we hold, so we drive or follow on.
            n.stats["takeover claim denied: no majority could grant it"] += 1
            n.send(src, ClaimAnswerMsg(wf, msg.epoch, False, epoch, holder,
                                       won=tk.proof.proof_of(wf, epoch, holder)))
            return
        if not may_grant(epoch, holder, msg.epoch, src):
            # Our proof if we act in the epoch held (a rival of our epoch follows us at
            # once), else the holder's if verified here: a claimant of an earlier epoch
            # follows a later one only on its proof.
            n.send(src, ClaimAnswerMsg(wf, msg.epoch, False, epoch, holder,
                                       won=tk.proof.proof_of(wf, epoch, holder)))
            return
        told = n.domain_loss.held.get(wf)
        if told is not None and n.domain_loss.drives(wf) \
                and n.domain_loss.kept_elsewhere(wf, src):
            # Our own end, told and not made yet (domain_loss.py), and a member took it
            # already, or may have: answered with it, no grant, as that member answers.
            # Granted, our end would be void while the member keeps it, and the
            # claimant, deciding its own, made a second end; a later end replaces the
            # kept one only where it reaches it (told_ends.py), never at a member dead
            # for good (takeover soak seed 18100834: the original's SUCCEEDED, every
            # result in, taken by a participant that then died, against the
            # successor's FAILED verdict on that participant's step). Kept by no
            # member, it is void as the grant makes this Node follow the claimant
            # (domain_loss.py, `tick`).
            n.stats["takeover claim answered with the end told here"] += 1
            n.send(src, ClaimAnswerMsg(wf, msg.epoch, False, epoch, holder, told))
            return
        if msg.won:  # the claimant won and shows it: checked, kept for our denials
            tk.proof.saw_proof(wf, msg.epoch, src, msg.won)
        core = tk.core(wf)
        electorate = core.electorate if core is not None else tk.electorate_of(wf)
        if core is not None:
            tk.step(now, wf, core, Adopted(msg.epoch, src))
        else:
            tk.follow(wf, msg.epoch, src)
        grant = tk.proof.grant(wf, msg.epoch, src, electorate) if electorate else None
        # Ended here (its saga's plan open: a successor is elected to drive it): the
        # end goes with the grant, so a claimant that never learned it makes that end
        # its own (there is one end), never one of its own results (a step that ended
        # after a loss verdict's end was made).
        n.send(src, ClaimAnswerMsg(wf, msg.epoch, True, msg.epoch, src,
                                   final=d.final.get(wf), grant=grant,
                                   **n.placed_here.carried(wf)))

    def _cannot_win(self, wf: str, src: str, msg: ClaimMsg) -> bool:
        """Is `src` a claimant outside the committed round (a re-placement's new domain)
        whose claim the electors that could grant it, not gone in our view, and those
        whose signed grants of it the claim shows, are too few to win? An acceptor
        holding no step grants only on a proof of the committed round, which such a
        claimant never holds (takeover_claim_proof.py): only the round's participants and the
        original coordinator could. A grant shown is given, whether its granter is
        gone or not (one that granted and died for good: see the header)."""
        n = self.n
        info = n.running.info(wf)
        if info.lost or src == info.coordinator or src in info.placement.values():
            return False  # ours is no committed round's view, or it is of that round
        electorate = self.tk.electorate_of(wf)
        if not electorate:
            return False
        granting = (epoch_of(n.state, wf)[1] or set()) | {info.coordinator}
        live = {m for m in granting & set(electorate) if not n.member_loss.gone(m)}
        shown = self.tk.proof.shown_grants(wf, msg.epoch, src, msg.grants,
                                           frozenset(electorate)) if msg.grants else set()
        if len(live) < majority(electorate) <= len(live | shown):
            n.stats[GRANTED_ON_SHOWN] += 1
        return len(live | shown) < majority(electorate)



def held_of(disk: Disk, wf: str, original: str) -> tuple[int, str]:
    """The epoch and coordinator an agent holds: the higher of followed and granted."""
    followed = disk.epochs.get(wf, (0, original))
    granted = disk.granted.get(wf, (0, ""))
    return granted if granted[0] > followed[0] else followed
