"""The Node's takeover part: coordinator takeover of its committed workflows.

Theory of operation
-------------------
Composed by the Node when `Timing.takeover_after_s` is set (the Node has none
otherwise: its original coordinator is the only one). Who takes over is decided by
the pure core agent/core/workflow/takeover.py (one `Takeover` per committed, running
workflow this agent takes part in); this part feeds it and does what it says, through
the Node, so that every change is a record of the same Ready as the input that caused
it.

Inputs and timers. Membership comes in as the Node's `MemberState(domain, state)`
input, posted by the driver whenever its membership view changes (the simulator from
`Simulation.member_state`, the daemon from its SWIM shell); the Node keeps that view
(`Node.members`). Each core is told how the view sees the coordinator it follows
(`Watch`): when the view of that coordinator, or of one of its participants, changes,
when the core is built, and when the core starts following another coordinator. A
domain the view has never named is "" to the core: not ALIVE, so silent (until the
view names it: then from its first word, core/workflow/takeover.py). Every core's
own deadline (`Takeover.get_timer`: the silence that makes a coordinator gone, the
claim timeout, the successor's claim again) is part of `Node.get_timer()`, and a
`Tick` steps `Timer` into the cores whose deadline has come: there is no periodic look.
A deadline still due after its Timer would wake the driver again at once, for ever: the
Node stops with a LocalProtocolError naming the workflow instead.

Cores. One per workflow in `Node.progress` (committed, not ended here) of which this
agent is a participant or the original coordinator, built when the workflow is
resumed (at its commit, and on restore from the tables, so a restarted agent rebuilds
them: the epoch and holder from `granted` and `epochs`, the electorate from the
committed round's acceptors, claiming or acting as below), and dropped when the
workflow ends here; or kept, for an ended workflow whose saga plan is open here
(`live`: its driver may die mid-saga, and a successor is elected to drive the plan:
saga_plans.py), until the plan closes. A restored successor that had acted ends the
workflow at once if every result is in, and tells its end again to whoever had not
acknowledged it.

Acting or claiming, on restore. Where the epoch held here is ours (e, us), the core is
rebuilt acting only if the tables hold the act of that very epoch: `epochs` holding
(e, us), which an `Act` writes with its certificate, or, for the original coordinator,
epoch 0 (no `epochs` entry: the commit made it the epoch-0 coordinator). Else our own
grant of e is a claim that had not won (`claiming`): claimed again at once, acting only
on a majority's grants as before the restart. Why by the epoch and not by the name:
`epochs` keeps the epoch followed or acted in, and a claim writes `granted` alone; the
original claiming past a gone holder without ever writing the holder's epoch (a proven
denial of the holder's epoch, its holder DEAD: the core claims the next epoch in the
same step) reads as (0, itself), and a successor that acted in e and claims past a
later holder keeps (e, itself). Rebuilt by name, either acted in an epoch no majority
granted it: never a certificate, its end told in an older epoch every elector refuses,
the workflow RUNNING for ever (takeover soak seed 11000176); and, every result in, it
would make the successor's end of an epoch a rival may yet win. Rebuilt claiming, it acts exactly when it would have, had it not
restarted; a claim again is safe (a member grants the same epoch to the same claimant
again, `may_grant`). It counts again the members' signed grants of that epoch it
held (`claim_grants`, written as each came, before it counted: takeover_claims.py),
and shows them with its claim; and a claim withdrawn is rebuilt as such
(`withdrawn`, the epoch withdrawn, written by `apply` with every Persist from the
core's own: so in the write of the withdrawal, and gone in that of the next claim or
epoch followed): core/workflow/takeover_claiming.py, Restarted, says why. And it knows
again the coordinator it claimed past: the one `epochs` holds, followed when it claimed
(a claim writes `granted` alone), which, gone, it does not wait for (takeover_claiming.py,
"The coordinator claimed past"; takeover soak seed 178100853).

Outputs. `Persist` is written to `granted` (and, for another holder, `epochs`: the
coordinator followed, to whom our results then go again) under the point "takeover
epoch", before any message of the same turn leaves (an epoch granted to another is
asked about if its holder never shows a win: takeover_late_grants.py `gave`); `Act`
writes `epochs` as our own under "takeover act" and notes `acting` (the simulator's
checker takes it); acting,
the Node judges the steps of the domains its view holds gone (domain_loss.py), holds
again a loss verdict on record that nothing holds (`verdict_stands`: one it made in an
older epoch, voided when it followed another's, its step given back to the lost
domain, back in the view: that domain, told the step was placed nowhere before it was
given back, never reports it, so nothing else would tell its end: the workflow RUNNING
for ever, 2PC takeover soak seed 200202472, one-way cut; a step the view still holds
gone is judged anew instead, placed again if it can be: seed 8101707), and
asks for a round for a step already waiting to be placed again (replacement.py):
one whose round an older epoch's coordinator, this Node too, cut short by following
another epoch, which nothing else would ask for again (takeover soak seed 8301778).
It is the ordinary successor's round, behind its fresh majority
(replacement_successor.py), so it is as safe as one asked on a loss seen while acting;
`SendClaim` is a `ClaimMsg` (takeover_claims.py). The ends an acting successor or a
claimant makes, and those it takes: takeover_ends.py (`ends`).

Claims received, answers to ours, and what a claim shows an acceptor that holds no
step: takeover_claims.py.

Proofs kept for denials (`proofs`). A denial naming a later epoch is followed only on
that epoch's certificate, so a member that granted it must be able to show it: the
winner sends its claim, with its certificate (`ClaimMsg.won`), once to every elector
that granted it as soon as it wins (the core's `_won`), and again with its periodic
claims; a proven denial relayed by another member shows it too. Each is checked
through the evidence port and kept (takeover_proofs.py), per workflow, the latest
epoch only, and a
denial naming that (epoch, holder) carries it (`ClaimAnswerMsg.won`). An end notice's
proof (`FinalMsg.won`) is not kept: the workflow ends here with it, and a claim of an
ended workflow is answered with its end, not a denial. In memory, not
in the tables: it is a copy of what the winner holds durably and shows again (after
its restart, before each of its claims again), a restart here loses it until then,
and a lost proof only delays (a denial without one is not followed; it never makes
two coordinators act). An acceptor holding no step keeps it too (it is the granter
an original coordinator cut off from the winner may still reach); as such a workflow
never ends here, at most `PROOFS_KEPT` workflows are kept, the oldest dropped first.

Evidence. Every grant this Node gives is a signed statement made through the signer
port it is given (`sign_grant`; takeover_grants.py: granter, workflow, epoch, holder,
electorate), carried by the grant's answer. A claimant counts a grant only once its
signature verifies as the voter's and it names our claim and our electorate (else the
answer is dropped and counted): so it acts exactly when it holds the signed grants of a
majority, and those grants, its own among them, are its epoch certificate, written in
`certificates` with the Act and carried by its claims, denials and end notices (`won`);
takeover_proofs.py keeps all of it.
What a claim or an answer shows is checked through the port the Node is handed
(`TakeoverEvidence`), as it is handed the acceptor's check that a round was stated by
its coordinator: a certificate against the electorate this agent holds (the
daemon's over its trust store, runtime/node_engine/evidence.py; the simulator's over
fake signatures only the granting agent can make, sim/negotiation/takeover.py); a
round proof (the committed round an acceptor holding no step is shown) against what
the port can check of it.
"""

from __future__ import annotations

from typing import Any

from fedorch.core.negotiation.errors import LocalProtocolError
from fedorch.core.node.domain_loss_verdict import was_lost
from fedorch.core.node.records import Disk
from fedorch.core.node.replacement_epochs import given_back
from fedorch.core.node.takeover_claims import Claims, held_of
from fedorch.core.node.takeover_ends import Ends
from fedorch.core.node.takeover_grants import Certificate, GrantSigner
from fedorch.core.node.takeover_late_grants import LateGrants
from fedorch.core.node.takeover_proofs import NoEvidence, Proofs, TakeoverEvidence
from fedorch.core.workflow.progress import TERMINAL_STEP_STATES
from fedorch.core.workflow.takeover import (
    GONE_AT_ONCE,
    Act,
    Persist,
    Proven,
    Role,
    SendClaim,
    Takeover,
    Timer,
    Watch,
)

__all__ = ["NoEvidence", "TakeoverEvidence", "Takeovers", "acceptors_of", "held_of"]
# NoEvidence and TakeoverEvidence live in takeover_proofs.py, re-exported here.


def acceptors_of(disk: Disk, wf: str) -> tuple[str, ...]:
    """The committed round's acceptors as written here at the commit (the coordinator's
    row, a participant's `electorates`): the takeover electorate. () under classic 2PC."""
    row = disk.rows.get(wf)
    if row is not None and row.committed:
        return row.acceptors
    return disk.electorates.get(wf, ())


class Takeovers:
    def __init__(self, node: Any, evidence: TakeoverEvidence | None = None,
                 sign: GrantSigner | None = None) -> None:
        # The Node that owns this part (typed loosely: the Node imports its parts,
        # never the reverse, so the import graph has no cycle).
        self.n = node
        self.after_s: float = node.t.takeover_after_s
        self.cores: dict[str, Takeover] = {}
        # The workflows whose core has a deadline (a dict: insertion-ordered), kept as
        # cores are built and stepped, so that a turn's get_timer() and a tick look at
        # those only, not at every running workflow (most follow a live coordinator).
        self.timed: dict[str, None] = {}
        self.claims = Claims(self)
        # Our signed grants, our certificates, and those shown to us (takeover_proofs.py).
        self.proof = Proofs(self, evidence, sign)
        self.ends = Ends(self)  # the ends it makes and takes (takeover_ends.py)
        self.late = LateGrants(self)  # granters held by a claim over (takeover_late_grants.py)

    # ---- restore ------------------------------------------------------------------------

    def reset(self) -> None:
        """What an agent holds only in memory: gone on restart (rebuilt by `resume`)."""
        self.cores = {}
        self.timed = {}
        self.claims.reset()
        self.proof.reset()
        self.late.reset()

    def restore(self, now: float) -> None:
        """After the Node's tables are read back: every running workflow has its core (a
        restored successor that acted ends it if it can), and the ends this agent made as
        a successor, or told to a claim's granters, go again to whoever has not
        acknowledged them (what it sent before was in memory only)."""
        n = self.n
        for wf in list(n.progress):
            core = self.core(wf)
            if core is not None and core.role is Role.ACTING and core.epoch > 0:
                self.ends.successor_outcome(now, wf)  # every result may be in already
        for wf in n.compensating.plans.open_plans():  # ended, its saga's driver may be gone
            self.resumed(now, wf)
        self.ends.restore()
        self.late.restore()  # ends told to a claim's granters (takeover_late_grants.py)
        self.late.restore_asks(now)  # and holders of our grants asked about them

    # ---- cores --------------------------------------------------------------------------

    def core(self, wf: str) -> Takeover | None:
        """The core of a running workflow this agent takes part in (built on first use,
        from the tables); None for any other."""
        n = self.n
        if not self.live(wf):
            return None
        core = self.cores.get(wf)
        if core is None:
            d = n.state
            info = n.running.info(wf)
            committed = set(info.placement.values())
            # The domains steps were placed again on (replacement.py) hear our claims
            # and ends (the core's audience: they send their results to the epoch's
            # holder); the electorate stays the committed round's, the same everywhere.
            participants = committed | n.replacement.domains_of(wf)
            if n.name not in participants | {info.coordinator}:
                return None
            epoch, holder = held_of(d, wf, info.coordinator)
            # Acting only in the epoch an Act (or the commit, epoch 0) wrote: see
            # "Acting or claiming, on restore".
            followed = d.epochs.get(wf, (0, info.coordinator))
            acting = followed == (epoch, n.name)
            claiming = holder == n.name and not acting
            # A claim's members' grants, and a claim withdrawn, as kept ("Withdrawn, and
            # the grants a claim holds, on restore"): only those of the epoch held.
            held = d.claim_grants.get(wf) if claiming else None
            grants = held[1] if held is not None and held[0] == epoch else ()
            core = Takeover(n.name, info.coordinator, participants,
                            acceptors=acceptors_of(d, wf) or committed | {info.coordinator},
                            epoch=epoch, coordinator=holder,
                            takeover_after_s=self.after_s,
                            claim_timeout_s=n.t.prepare_timeout_s,
                            claiming=claiming, withdrawn=d.withdrawn.get(wf),
                            granted_by=[g.granter for g in grants],
                            predecessor=followed[1] if claiming else None)
            for grant in grants:
                self.proof.collected.add(wf, epoch, grant)  # shown with our claim again
            self.cores[wf] = core
            self.retime(wf, core)
        return core

    def live(self, wf: str) -> bool:
        """Does `wf` have a core here: running, or ended with a saga plan open (its
        driver may die before the saga is over: a successor is elected to drive it)."""
        n = self.n
        return wf in n.progress and wf not in n.state.final \
            or n.compensating.plans.plan_open(wf)

    def resumed(self, now: float, wf: str) -> None:
        """`wf` is running here (committed, or restored): its core is told the view."""
        core = self.core(wf)
        if core is not None:
            self.watch(now, wf, core)

    def forget(self, wf: str) -> None:
        """`wf` ended here: its core has nothing left to do."""
        self.cores.pop(wf, None)
        self.timed.pop(wf, None)
        self.claims.forget(wf)
        self.proof.forget(wf)
        self.late.forget(wf)

    def placed(self, wf: str, domain: str) -> None:
        """A step of `wf` was placed again on `domain` (told here, or decided here): the
        core counts it among the participants that hear claims and ends."""
        core = self.cores.get(wf)
        if core is not None:
            core.joined(domain)
            self.retime(wf, core)

    def coordinator_now(self, wf: str) -> str:
        """The coordinator this agent reports to for `wf` (or is): the one it follows, or
        a claimant it granted since. A participant that had not learned the commit when a
        claim came answered it as an acceptor (a grant, no follow): its results go to
        that claimant, not to the coordinator it granted away."""
        return held_of(self.n.state, wf, self.n.running.info(wf).coordinator)[1]

    def acts(self, wf: str) -> bool:
        """Does this agent drive `wf` now: the epoch it holds is its own and the one an
        `Act` (or the commit, epoch 0) wrote? A claim's own grant is not (see "Acting or
        claiming, on restore")."""
        d = self.n.state
        original = self.n.running.info(wf).coordinator
        held = held_of(d, wf, original)
        return held[1] == self.n.name and d.epochs.get(wf, (0, original)) == held

    # ---- membership and timers ----------------------------------------------------------

    def member_changed(self, now: float, domains: set[str]) -> None:
        """The view of `domains` changed (all of one look, applied): the cores they
        concern are told, once each."""
        for wf in list(self.n.progress) + self.n.compensating.plans.open_plans():
            core = self.core(wf)
            if core is not None and (core.coordinator in domains
                                     or not domains.isdisjoint(core.participants)):
                self.watch(now, wf, core)

    def watch(self, now: float, wf: str, core: Takeover) -> None:
        # Acting too: who is gone (core/workflow/takeover_overtaken.py).
        if core.ended or not self.live(wf):
            return
        members = self.n.members
        dead = frozenset(p for p in core.participants if members.get(p) in GONE_AT_ONCE)
        self.step(now, wf, core, Watch(members.get(core.coordinator, ""), dead))

    def retime(self, wf: str, core: Takeover) -> None:
        """After `core` was built or stepped: is it one with a deadline?"""
        if self.cores.get(wf) is core and core.get_timer() is not None:
            self.timed[wf] = None
        else:
            self.timed.pop(wf, None)

    def timer(self) -> float | None:
        times = [t for wf in self.timed if self.live(wf)
                 and (core := self.cores.get(wf)) is not None
                 and (t := core.get_timer()) is not None]
        for again in (self.claims.timer(), self.late.timer()):
            if again is not None:
                times.append(again)
        return min(times) if times else None

    def tick(self, now: float) -> None:
        for wf in list(self.timed):
            core = self.cores.get(wf)
            if core is None or not self.live(wf):
                continue
            timer = core.get_timer()
            if timer is not None and timer <= now:
                self.step(now, wf, core, Timer())
                if self.live(wf) and core.get_timer() == timer:
                    # A deadline that stays due once fired would wake the driver again
                    # at once, for ever: a broken core, stopped here by name.
                    raise LocalProtocolError(f"takeover of {wf}: the deadline {timer} is"
                                             f" still due after its timer fired")
        self.claims.tick(now)
        self.late.tick(now)  # a holder of our grant that never acted is asked

    # ---- the core's actions -------------------------------------------------------------

    def step(self, now: float, wf: str, core: Takeover, event: object) -> None:
        """Step the core and do what it says; a core that starts following another
        coordinator is told at once how the view sees that one."""
        before = core.coordinator
        self.apply(now, wf, core, core.step(now, event))
        self.retime(wf, core)
        if core.coordinator != before and core.role is Role.FOLLOWING:
            self.watch(now, wf, core)

    def apply(self, now: float, wf: str, core: Takeover, actions: list) -> None:
        n = self.n
        d = n.state
        for x in actions:
            if isinstance(x, Persist):
                n.point("takeover epoch")
                d.granted[wf] = (x.epoch, x.coordinator)
                if core.withdrawn is not None:  # withdrawn, in the write that says so
                    d.withdrawn[wf] = core.withdrawn
                else:
                    d.withdrawn.pop(wf, None)
                if x.coordinator != n.name:
                    if wf in d.final and n.compensating.known(wf):  # saga_unproven_holder.py
                        before = n.compensating.driver(wf)
                        if before not in (n.name, x.coordinator):
                            d.drivers_before[wf] = before
                    d.epochs[wf] = (x.epoch, x.coordinator)
                    self.late.gave(now, wf, x.epoch, x.coordinator)
                    n.domain_loss.followed(wf)  # an end held here is void now
                    given_back(n, wf)  # steps we sent back: on their domain again
                    self.report_again(wf)
                    if wf in d.final:  # a saga's: its reports go to the new holder
                        n.compensating.plans.report_again(wf)
                    if wf in d.rows:  # the original coordinator: no longer acts for it
                        n.stats["old coordinator follows"] += 1
            elif isinstance(x, SendClaim):
                self.claims.send(wf, core, x)
            elif isinstance(x, Act):
                n.point("takeover act")
                d.epochs[wf] = (x.epoch, n.name)
                d.certificates[wf] = (x.epoch, self.proof.certificate_won(wf, core, x.epoch))
                n.stats["takeover"] += 1
                n.note("acting", wf, x.epoch, now)
                self.ends.successor_outcome(now, wf)
                # Acting now: the steps of the domains the view already says are gone
                # (the dead original's own among them) get their verdicts
                # (domain_loss.py).
                n.domain_loss.resolve_gone(now, wf)
                # A verdict of ours on record, voided while we followed, its step given
                # back to its lost domain (not judged anew just above): it stands, its
                # end told anew in this epoch (domain_loss.py; 2PC seed 200202472).
                if _verdict_given_back(n, wf):
                    n.domain_loss.verdict_stands(wf)
                # Placements told before we won, and steps still waiting for one
                # (replacement.py, `acting`: takeover soak seeds 4920841, 8301778).
                n.replacement.acting(now, wf)
                if wf in d.rows and wf not in d.final:  # the original, past a gone
                    n.replacement.told.retell(wf)  # holder: its placements, in its epoch
        if n.fencing is not None:  # a start held here: our claim won, or another holder
            n.fencing.asks.holder_stepped(now, wf)  # followed (start_asks.py)

    # ---- evidence (takeover_proofs.py) ---------------------------------------------------

    @property
    def evidence(self) -> TakeoverEvidence:
        return self.proof.evidence

    @property
    def proofs(self) -> dict[str, tuple[int, str, Certificate]]:
        return self.proof.proofs

    def proven(self, wf: str, epoch: int, holder: str, certificate: Certificate) -> bool:
        """Does `certificate` prove that `holder` won `epoch` (the authority table's
        check of an end notice's certificate)?"""
        return self.proof.proven(wf, epoch, holder, certificate)

    def electorate_of(self, wf: str, shown: Certificate = ()) -> frozenset[str] | None:
        """The electorate as this agent holds it: its core's, the committed round's
        acceptors written here, the one our own grant in a certificate `shown` names, or
        an acceptor's records of the workflow; None if none."""
        core = self.cores.get(wf)
        if core is not None:
            return core.electorate
        d = self.n.state
        acceptors = acceptors_of(d, wf)
        if acceptors:
            return frozenset(acceptors)
        if wf in d.rows or wf in d.committed:  # classic 2PC: participants and original
            info = self.n.running.info(wf)
            return frozenset(info.placement.values()) | {info.coordinator}
        # An acceptor holding no step grants only on a proof of the committed round,
        # naming its acceptors (takeover_claims.py): our grant in a certificate shown is
        # the electorate we judged then, which a record of a round never learned decided
        # does not outrank (an acceptor that accepted round 1's recovery ABORT, missed
        # its decision, and lost its Accept of the committed round 2, refused the
        # certificate of the epoch it granted on round 2's proof: takeover soak seed
        # 84000321).
        ours = self.proof.granted_in(wf, shown)
        if ours is not None:
            return ours
        # Not a re-placement round's (classic 2PC: its coordinator and new domain), nor
        # an aborted round's: it elects no one (an acceptor that recovered round 1 as
        # ABORT, its Accept of the committed round 2 lost, refused the certificate of
        # the epoch it granted on round 2's proof: takeover soak seed 43003501).
        named = {frozenset(rec.tx.acceptors) for (w, r), rec in d.acceptor.items()
                 if w == wf and rec.tx is not None and rec.tx.acceptors
                 and not getattr(d.info.get((w, r)), "lost", "")
                 and getattr(rec.decided or d.learned.get((w, r)), "commit", True)}
        return next(iter(named)) if len(named) == 1 else None

    def follow_proven(self, now: float, wf: str, winner: str, epoch: int,
                      certificate: Certificate) -> bool:
        """A certificate shown by `winner` (its claim, or its answer to ours): the core
        follows it if it holds and its epoch is not below ours (`Proven`)."""
        core = self.core(wf)
        if core is None or epoch < 1 \
                or not self.proof.saw_proof(wf, epoch, winner, certificate):
            return False
        before = (core.epoch, core.coordinator)
        self.step(now, wf, core, Proven(epoch, winner))
        if (core.epoch, core.coordinator) != before:
            self.n.stats["takeover proven winner followed"] += 1
        return (core.epoch, core.coordinator) == (epoch, winner)

    def report_again(self, wf: str) -> None:
        """A new coordinator is followed here: it collects the results, ours again."""
        p = self.n.progress.get(wf)
        if p is not None:
            for s in p.local_steps():
                if s.state in TERMINAL_STEP_STATES:
                    self.n.running.report(wf, s.id)

    def follow(self, wf: str, epoch: int, coordinator: str) -> None:
        """Follow `coordinator` at `epoch` where no core is kept (not running here)."""
        n = self.n
        n.point("takeover epoch")
        n.state.granted[wf] = (epoch, coordinator)
        n.state.epochs[wf] = (epoch, coordinator)
        n.domain_loss.followed(wf)
        self.report_again(wf)
        if wf in n.state.rows:  # the original coordinator: no longer acts for it
            n.stats["old coordinator follows"] += 1


def _verdict_given_back(n: Any, wf: str) -> bool:
    """Is a loss verdict of `wf` on record here for a step placed on its lost domain
    again (given back when this Node followed a later epoch), not waiting to be placed?"""
    p = n.progress.get(wf)
    return p is not None and any(
        step in p.steps and p.steps[step].domain and was_lost(p.steps[step].domain, st, err)
        for step, (_, st, _, err) in n.state.results.get(wf, {}).items())
