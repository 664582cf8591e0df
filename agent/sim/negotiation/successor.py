"""A seeded schedule: the coordinator dies, then the domain of a step not yet started.

Theory of operation
-------------------
A small discrete-event world of its own, on the real cores: the takeover core
(agent/core/workflow/takeover.py) at the two participants, the negotiation
Coordinator core for the re-placement round at the acting successor, the Participant
core at the candidates, Progress everywhere, and real signatures: every grant is a
TakeoverAnswer sealed with its domain's key, and every candidate checks the PREPARE's
epoch certificate with `epoch_certificate.verify` against a trust store before its
Participant core sees the PREPARE.

One workflow `co.1` (its electorate: co, a, b): `first` on a (long), `second` on b,
needing `first`. co is killed at random soon after the commit, b at random a little
later (before or after it granted the takeover; `second` has not started: its input
is still running). Membership says DEAD `dead_after_s` after a death. Messages are
delayed at random; a dead domain neither sends nor receives. The successor (a, the
lowest live participant) claims epoch 1; once acting and b is DEAD, it asks its
electorate again before a round (agent/core/workflow/round_mandate.py): only grants
given now count, the one b gave for the takeover not. With co and b dead no fresh
majority comes: `second` FAILS naming b (not placed again) and the workflow ends
FAILED once `first` ends. In a third of the seeds co restarts a little after b died
(with what it wrote: it never granted another epoch) and grants epoch 1 when asked:
with that fresh majority (a, co) a places `second` again through a round numbered in
epoch 1's range, its PREPARE and decision carrying its certificate, unless co came
back after the mandate's bound. When b dies before its grant reaches a, no majority
is left until co is back: nobody acts, and nothing may be placed again. In a third
of the seeds b, before it dies, also sends a candidate a PREPARE for the step with a
certificate of its own grant only (a minority): it must be refused.

Checks (`check`, successor_check.py): at most one domain acted in each epoch; no step
attempt ran twice and `second` ran on one domain only, never b; every candidate's
decision is the coordinator's, and no live candidate holds a reservation at the end;
every YES went to a PREPARE whose certificate verified, of the acting epoch, its
round in that epoch's range; once a acted (with b's grant, or co's once back):
`second` placed again only on a fresh majority (a and co), the workflow then
SUCCEEDED; otherwise nothing placed, `second` FAILED naming b and the workflow FAILED;
when nobody acted nothing was placed again.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

from fedorch.core.negotiation.coordinator import (
    Coordinator,
    Finished,
    PersistDecision,
    SendDecision,
    SendPrepare,
    VoteIn,
)
from fedorch.core.negotiation.participant import Participant
from fedorch.core.workflow import round_mandate
from fedorch.core.workflow.domain_loss import not_replaced_reason
from fedorch.core.workflow.epoch_certificate import CertificateError, round_range, verify
from fedorch.core.workflow.placement import place
from fedorch.core.workflow.progress import Outcome, Progress, StepState
from fedorch.core.workflow.round_mandate import Regranted, RoundMandate, Verdict
from fedorch.core.workflow.takeover import (
    Act,
    Adopted,
    Grant,
    Persist,
    Role,
    SendClaim,
    Takeover,
    Timer,
    Watch,
    may_grant,
)
from fedorch.gen.fedorch.v1 import config_pb2, peer_pb2, spec_pb2
from fedorch.sim.negotiation.epoch_pieces import (
    candidate,
    certificate,
    domain_keys,
    sealed_grant,
)
from fedorch.sim.negotiation.replacement import OneStep
from fedorch.sim.negotiation.successor_check import check_successor
from fedorch.sim.negotiation.timeline import Timeline

WF = "co.1"
CAP = "work"
ELECTORATE = ("a", "b", "co")
PARTICIPANTS = ("a", "b")
CANDIDATES = ("c", "d")
COMMITTED_ROUND = 1


@dataclass
class Node:
    name: str
    alive: bool = True
    core: Takeover | None = None
    progress: Progress | None = None
    participant: Participant | None = None
    held: tuple[int, str] = (0, "co")  # the highest epoch granted or followed, durable
    grants: dict[str, peer_pb2.Envelope] = field(default_factory=dict)  # to us, as sent


class SuccessorWorld:
    def __init__(self, seed: int, *, dead_after_s: float = 1.0) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.timeline = Timeline()
        self.dead_after_s = dead_after_s
        names = ("co", *PARTICIPANTS, *CANDIDATES)
        self.signers, self.trust = domain_keys(names)
        self.nodes = {n: Node(n) for n in names}
        policy = config_pb2.Policy(accept_from=["*"])
        for n in CANDIDATES:
            self.nodes[n].participant = Participant(n, policy, {CAP: 2}, lease_s=4.0,
                                                    query_interval_s=1.0)
        self.spec = spec_pb2.WorkflowSpec(name="chain", steps=[
            spec_pb2.StepSpec(id="first", capability=CAP),
            spec_pb2.StepSpec(id="second", capability=CAP, needs=["first"])])
        self.placement = {"first": "a", "second": "b"}
        self.dead_seen: set[str] = set()
        self.acting: list[tuple[str, int, float]] = []
        self.runs: Counter[tuple[str, str, int]] = Counter()  # (step, domain, attempt)
        self.yes_to: list[tuple[str, int, int]] = []  # (candidate, round, certified epoch)
        self.decided: dict[int, bool] = {}  # round -> the coordinator's decision
        self.learned: list[tuple[str, int, bool]] = []
        self.refused: list[str] = []
        self.liar_answers: list[bool] = []  # the candidate's votes on b's forged PREPARE
        self.replaced_on: str | None = None
        self.ended: tuple[Outcome, float] | None = None
        self.round_core: Coordinator | None = None
        self.mandate: RoundMandate | None = None  # a's re-ask before its round
        self.won_with: set[str] = set()  # the grants a's takeover won with
        self.co_back_at: float | None = None
        for n in PARTICIPANTS:
            node = self.nodes[n]
            node.core = Takeover(n, "co", PARTICIPANTS, acceptors=ELECTORATE,
                                 takeover_after_s=3.0, claim_timeout_s=1.0)
            node.progress = Progress(self.spec, dict(self.placement), n)
        t_co = self.rng.uniform(0.2, 3.0)
        t_b = t_co + self.rng.uniform(0.3, 8.0)
        self._at(t_co, self._kill, "co")
        self._at(t_b, self._kill, "b")
        if seed % 3 == 0:
            self._at(t_b - 0.1, self._liar_prepare)
        if seed % 3 == 1:  # co restarts (its own random: the rest of the schedule is kept)
            self.co_back_at = t_b + dead_after_s + random.Random(seed + 10**6).uniform(0.5, 6.0)
            self._at(self.co_back_at, self._restart, "co")
        self._start_ready("a")
        self._at(0.5, self._tick)

    # ---- the world -------------------------------------------------------------------

    def run(self, until: float = 90.0) -> SuccessorWorld:
        self.timeline.run(until)
        self.check()
        return self

    @property
    def now(self) -> float:
        return self.timeline.now

    def _at(self, when: float, fn, *args) -> None:
        self.timeline.at(when, fn, *args)

    def _send(self, src: str, dst: str, fn, *args) -> None:
        self.timeline.deliver(self.rng.uniform(0.005, 0.3), src, dst,
                              lambda name: self.nodes[name].alive, fn, *args)

    def _kill(self, name: str) -> None:
        self.nodes[name].alive = False
        self._at(self.now + self.dead_after_s, self._dead, name)

    def _restart(self, name: str) -> None:
        """Back with what it wrote (`held`); the others see it ALIVE again."""
        self.nodes[name].alive = True
        self.dead_seen.discard(name)

    def _dead(self, name: str) -> None:
        self.dead_seen.add(name)
        if name == "b" and self._acting_node() is not None:
            self._lose("b")

    def _acting_node(self) -> Node | None:
        node = self.nodes["a"]
        return node if node.alive and node.core.role is Role.ACTING else None

    # ---- takeover ----------------------------------------------------------------------

    def _tick(self) -> None:
        for n in PARTICIPANTS:
            node = self.nodes[n]
            if not node.alive:
                continue
            coordinator = node.core.coordinator
            state = "DEAD" if coordinator in self.dead_seen else "ALIVE"
            dead = frozenset(self.dead_seen & set(PARTICIPANTS))
            self._apply(node, node.core.step(self.now, Watch(state, dead)))
            timer = node.core.get_timer()
            if timer is not None and timer <= self.now:
                self._apply(node, node.core.step(self.now, Timer()))
        self._reask()
        self._at(self.now + 0.5, self._tick)

    def _apply(self, node: Node, actions: list) -> None:
        for action in actions:
            if isinstance(action, Persist):
                node.held = (action.epoch, action.coordinator)
            elif isinstance(action, SendClaim):
                self._send(node.name, action.to, self._claim_at, action.to, node.name,
                           action.epoch)
            elif isinstance(action, Act):
                self.acting.append((node.name, action.epoch, self.now))
                self.won_with = set(node.grants)
                if "b" in self.dead_seen:
                    self._lose("b")

    def _claim_at(self, name: str, claimant: str, epoch: int) -> None:
        node = self.nodes[name]
        if not may_grant(*node.held, epoch, claimant):
            return
        node.held = (epoch, claimant)  # durable before the answer leaves
        if node.core is not None:
            node.core.step(self.now, Adopted(epoch, claimant))
        envelope = sealed_grant(self.signers[name], workflow_id=WF, claimant=claimant,
                                epoch=epoch, now=self.now, committed_round=COMMITTED_ROUND,
                                electorate=ELECTORATE)
        self._send(name, claimant, self._granted, claimant, name, epoch, envelope)

    def _granted(self, name: str, voter: str, epoch: int, envelope: peer_pb2.Envelope) -> None:
        node = self.nodes[name]
        if node.core.epoch == epoch and node.core.coordinator == name:
            node.grants[voter] = envelope
            if self.mandate is not None and self.mandate.epoch == epoch:
                self.mandate.step(self.now, Regranted(voter))
        self._apply(node, node.core.step(self.now, Grant(voter, epoch)))
        self._mandate_over(node)

    def _certificate(self, node: Node) -> peer_pb2.EpochCertificate:
        return certificate(self.signers[node.name], node.grants.values(), workflow_id=WF,
                           epoch=node.core.epoch, now=self.now,
                           committed_round=COMMITTED_ROUND, electorate=ELECTORATE)

    # ---- re-placement at the successor ---------------------------------------------------

    def _lose(self, lost: str) -> None:
        node = self._acting_node()
        if node is None or self.round_core is not None or self.ended is not None:
            return
        if self.mandate is not None:
            return
        node.progress.domain_lost(lost, can_replace=True)
        if "second" not in node.progress.awaiting_placement():
            return
        # Before the round, the electorate is asked again, and only grants given now
        # count (agent/core/workflow/round_mandate.py): the grant b gave for the takeover
        # counts for no round (b is dead; from here a cut-off b looks the same).
        node.grants = {}
        self.mandate = RoundMandate(node.name, node.core.epoch, ELECTORATE, self.now, 4.0)
        self._reask()

    def _reask(self) -> None:
        """The claim again to the members whose fresh grant a lacks (as the shell resends
        a claim until it is answered), and the mandate's deadline."""
        node, m = self.nodes["a"], self.mandate
        if m is None or m.verdict is not Verdict.ASKING or not node.alive:
            return
        if m.step(self.now, round_mandate.Timer()) is not Verdict.ASKING:
            self._mandate_over(node)
            return
        for member in sorted(set(ELECTORATE) - m.fresh):
            self._send(node.name, member, self._claim_at, member, node.name, m.epoch)

    def _mandate_over(self, node: Node) -> None:
        m = self.mandate
        if node.name != "a" or m is None or m.verdict is Verdict.ASKING \
                or self.round_core is not None or self.ended is not None:
            return
        if m.verdict is Verdict.PLACE:
            self._place(node)
        elif m.verdict is Verdict.NO_MAJORITY:
            node.progress.replacement_failed("second", not_replaced_reason(
                "b", False, m.why_not()))
            self._after_progress(node)

    def _place(self, node: Node) -> None:
        cert = self._certificate(node)
        epoch = node.core.epoch

        def placer(excluded):
            candidates = [candidate(c, CAP, 2, c not in self.dead_seen) for c in CANDIDATES]
            refused = {k: set(v) for k, v in excluded.items()}
            refused.setdefault("second", set()).update({"a", "b", "co"})
            return place(self.spec, candidates, coordinator=node.name, excluded=refused,
                         fixed={"first": "a"})

        core = Coordinator(WF, placer=lambda ex: OneStep("second", placer(ex)), max_rounds=2,
                           prepare_timeout_s=1.0, first_round=round_range(epoch).start)
        self.round_core = core
        core.start(self.now)
        self._act(node, core, cert)

    def _act(self, node: Node, core: Coordinator, cert: peer_pb2.EpochCertificate) -> None:
        for action in core.next_actions():
            if isinstance(action, SendPrepare):
                self._send(node.name, action.domain, self._prepare_at, action.domain,
                           node.name, action, cert)
            elif isinstance(action, PersistDecision):
                self.decided[action.round] = action.commit
                if action.commit:
                    new = action.placement["second"]
                    node.progress.placed_again("second", new, action.round, "b")
                    self.replaced_on = new
            elif isinstance(action, SendDecision):
                commit = self.decided[action.round]
                self._send(node.name, action.domain, self._decide_at, action.domain,
                           action.round, commit)
            elif isinstance(action, Finished):
                if not action.committed:
                    node.progress.replacement_failed("second", action.reason)
                    self._after_progress(node)
        timer = core.get_timer()
        if timer is not None:
            self._at(timer, self._round_timer, node, core, cert)

    def _round_timer(self, node: Node, core: Coordinator, cert) -> None:
        if node.alive and (core.get_timer() or 0) <= self.now:
            core.handle_timer(self.now)
            self._act(node, core, cert)

    def _prepare_at(self, name: str, sender: str, action: SendPrepare,
                    cert: peer_pb2.EpochCertificate) -> None:
        node = self.nodes[name]
        try:
            certified = verify(cert, self.trust, workflow_id=WF, claimant=sender)
            if action.round not in round_range(certified.epoch):
                raise CertificateError("bad_certificate", "round outside its epoch's range")
        except CertificateError as e:
            self.refused.append(e.reason)
            vote = VoteIn(action.round, name, False, e.detail, b"")
        else:
            out = node.participant.prepare(
                self.now, workflow_id=WF, round=action.round, coordinator=sender,
                data_labels={}, steps=[(s, CAP) for s in action.steps])
            if out.yes:
                self.yes_to.append((name, action.round, certified.epoch))
            vote = VoteIn(action.round, name, out.yes, out.reason, b"")
        if sender == "b":
            self.liar_answers.append(vote.yes)
        elif self.round_core is not None:
            self._send(name, sender, self._vote_at, sender, vote, cert)

    def _vote_at(self, name: str, vote: VoteIn, cert) -> None:
        core = self.round_core
        if core is None:
            return
        try:
            core.receive_vote(self.now, vote)
        except Exception:  # a late vote of a decided round: nothing to do  # noqa: BLE001
            return
        self._act(self.nodes[name], core, cert)

    def _decide_at(self, name: str, round_: int, commit: bool) -> None:
        node = self.nodes[name]
        if node.participant.status((WF, round_)) is None:
            return
        node.participant.decide(self.now, WF, round_, commit)
        self.learned.append((name, round_, commit))
        if commit:
            placement = {"first": "a", "second": name}
            node.progress = Progress(self.spec, placement, name)
            node.progress.placed_again("second", name, round_, "b")
            first = self.nodes["a"].progress.steps["first"]
            if first.state is StepState.SUCCEEDED:
                node.progress.apply_result("first", first.attempts, StepState.SUCCEEDED, {}, "")
            self._start_ready(name)

    def _liar_prepare(self) -> None:
        """b, before it dies, claims epoch 2 with its own grant alone (a minority)."""
        liar = self.nodes["b"]
        cert = certificate(self.signers["b"], [], workflow_id=WF, epoch=2, now=self.now,
                           committed_round=COMMITTED_ROUND, electorate=ELECTORATE)
        action = SendPrepare("c", round_range(2).start, ["second"], {"second": "c"})
        if liar.alive:
            self._send("b", "c", self._prepare_at, "c", "b", action, cert)

    # ---- steps -------------------------------------------------------------------------

    def _start_ready(self, name: str) -> None:
        node = self.nodes[name]
        if not node.alive or node.progress is None:
            return
        for attempt in node.progress.start_ready():
            self.runs[(attempt.step_id, name, attempt.attempt)] += 1
            took = self.rng.uniform(15.0, 25.0) if attempt.step_id == "first" else 0.5
            self._at(self.now + took, self._step_done, name, attempt.step_id, attempt.attempt)

    def _step_done(self, name: str, step: str, attempt: int) -> None:
        node = self.nodes[name]
        if not node.alive:
            return
        node.progress.attempt_ended(step, attempt, True, {}, "")
        if node.participant is not None:
            node.participant.step_ended(WF, step)
        s = node.progress.steps[step]
        # To the coordinator (a, acting or not, keeps its own) and to downstream owners.
        for dst in sorted({"a", *node.progress.result_recipients(step, "a")} - {name}):
            self._send(name, dst, self._result_at, dst, name, step, s.attempts, s.epoch)
        if name == "a":
            self._after_progress(node)
            acting = self._acting_node()
            if acting is not None and self.replaced_on is not None:
                self._send("a", self.replaced_on, self._result_at, self.replaced_on, "a",
                           step, s.attempts, s.epoch)

    def _result_at(self, name: str, src: str, step: str, attempt: int, epoch: int) -> None:
        node = self.nodes[name]
        if node.progress is None or node.progress.refuse_result(step, src, epoch) is not None:
            return
        if node.progress.apply_result(step, attempt, StepState.SUCCEEDED, {}, ""):
            self._start_ready(name)
            if name == "a":
                self._after_progress(node)

    def _after_progress(self, node: Node) -> None:
        if node.core.role is not Role.ACTING or self.ended is not None:
            return
        outcome = node.progress.outcome()
        if outcome is not None:
            self.ended = (outcome, self.now)
            for c in CANDIDATES:
                self._send("a", c, self._end_at, c)

    def _end_at(self, name: str) -> None:
        node = self.nodes[name]
        node.participant.release_workflow(WF)
        for hold in list(node.participant.holds()):  # an ABORTed round's: released
            node.participant.decide(self.now, hold.workflow_id, hold.round, False)

    # ---- the checks ----------------------------------------------------------------------

    def check(self) -> None:
        check_successor(self, CANDIDATES)  # successor_check.py


def run(seed: int) -> SuccessorWorld:
    """One seeded schedule, checked (SuccessorFailure names the seed)."""
    return SuccessorWorld(seed).run()
