"""A seeded schedule: an older successor, cut off, while a later epoch places a lost step.

Theory of operation
-------------------
A small discrete-event world of its own, on the real cores: the takeover core
(agent/core/workflow/takeover.py) at the participants a, b and c, the round mandate
(agent/core/workflow/round_mandate.py) before each re-placement round, the negotiation
Coordinator core for the round, the Participant core at the candidates d and e,
Progress at the coordinators, and real signatures: every grant is a TakeoverAnswer
sealed by its member, and a candidate checks a PREPARE's epoch certificate with
`epoch_certificate.verify` before its Participant core sees it.

One workflow `co.1`: `zero` on a, `one` on b (both short), `work` on c (idempotent, no
inputs, long). The committed round's acceptors, the takeover electorate, are co, a, b
and two extra acceptors x and y that hold no step (c is a participant beyond
`max_acceptors`: it may claim, its grant counts for nothing). Membership at a domain
says DEAD `dead_after_s` after a death, or after a cut between the two.

1. co dies soon after the commit: a, the lowest live participant, claims epoch 1 and
   acts with the grants of a majority (3 of 5).
2. Later, a partition: a and the candidate d are cut off from everyone else (alive).
   b sees a gone after `takeover_after_s` and claims epoch 2, granted by x, y (and c),
   and acts: 3 of 5.
3. c dies while `work` runs there, before or after b acted. Both a (acting in epoch 1
   as far as it knows) and b (epoch 2) see c lost and would place `work` again: a can
   reach only d, b only e.

Before its round each successor asks its electorate again (`SendClaim` to every other
member). With the mandate (the code now) a round runs only on a fresh majority: b
gets one (x, y answer), a hears nothing and places nothing: `work` FAILS at a with the
mandate's reason, naming c. Without it (`mandate=False`, the code before) the grants a
kept from its takeover count once `fresh_s` passed with no answer, and a places `work`
on d while b places it on e: two copies of an idempotent step run at once, and the
checks fire (tests/sim/negotiation/test_overtaken.py).

The cut heals at a random time late in the run: a then hears b's claim of epoch 2
(resent by b until answered) and follows it.

Checks (`check`): at most one domain acted in each epoch; the loss of c placed `work`
again at most once (no two epochs place the same step); `work` never ran on two domains
at once beyond one lease; every YES went to a PREPARE whose certificate verified;
and with the mandate, a successor that placed had a fresh majority, and a, cut off when
it saw c lost, placed nothing (`work` FAILED there naming c).
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
from fedorch.core.workflow.progress import Progress, StepState
from fedorch.core.workflow.round_mandate import Regranted, RoundMandate, Verdict
from fedorch.core.workflow.takeover import (
    Act,
    Adopted,
    Deny,
    Grant,
    Persist,
    Role,
    SendClaim,
    Takeover,
    Timer,
    Watch,
    majority,
    may_grant,
)
from fedorch.gen.fedorch.v1 import config_pb2, peer_pb2, spec_pb2
from fedorch.sim.negotiation.epoch_pieces import (
    acted_twice,
    candidate,
    certificate,
    domain_keys,
    sealed_grant,
    yes_outside_acted,
)
from fedorch.sim.negotiation.replacement import OneStep
from fedorch.sim.negotiation.timeline import Timeline

WF = "co.1"
CAP = "work"
PARTICIPANTS = ("a", "b", "c")
ELECTORATE = ("a", "b", "co", "x", "y")
CANDIDATES = ("d", "e")
COMMITTED_ROUND = 1
LEASE_S = 4.0
STEP = "work"


class OvertakenFailure(AssertionError):
    """An invariant broken; the message names the seed."""


@dataclass
class Run:
    domain: str
    start: float
    end: float | None = None


@dataclass
class Node:
    name: str
    alive: bool = True
    core: Takeover | None = None
    progress: Progress | None = None
    participant: Participant | None = None
    held: tuple[int, str] = (0, "co")  # the highest epoch granted or followed, durable
    grants: dict[str, tuple[int, peer_pb2.Envelope]] = field(default_factory=dict)
    mandate: RoundMandate | None = None
    round_core: Coordinator | None = None
    kept: dict[str, tuple[int, peer_pb2.Envelope]] = field(default_factory=dict)
    decided: dict[int, bool] = field(default_factory=dict)  # round -> COMMIT?


class OvertakenWorld:
    def __init__(self, seed: int, *, mandate: bool = True, dead_after_s: float = 1.0,
                 fresh_s: float = 1.0) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.mandate = mandate
        self.timeline = Timeline()
        self.dead_after_s = dead_after_s
        self.fresh_s = fresh_s  # the old rule: kept grants count after this
        self.lease_s = LEASE_S
        names = ("co", *PARTICIPANTS, "x", "y", *CANDIDATES)
        self.signers, self.trust = domain_keys(names)
        self.nodes = {n: Node(n) for n in names}
        policy = config_pb2.Policy(accept_from=["*"])
        for n in CANDIDATES:
            self.nodes[n].participant = Participant(n, policy, {CAP: 2}, lease_s=LEASE_S,
                                                    query_interval_s=1.0)
        self.spec = spec_pb2.WorkflowSpec(name="cut", steps=[
            spec_pb2.StepSpec(id="zero", capability=CAP),
            spec_pb2.StepSpec(id="one", capability=CAP),
            spec_pb2.StepSpec(id=STEP, capability=CAP, idempotent=True)])
        self.placement = {"zero": "a", "one": "b", STEP: "c"}
        for n in PARTICIPANTS:
            node = self.nodes[n]
            node.core = Takeover(n, "co", PARTICIPANTS, acceptors=ELECTORATE,
                                 takeover_after_s=3.0, claim_timeout_s=1.0)
            node.progress = Progress(self.spec, dict(self.placement), n)
        self.killed: dict[str, float] = {}
        self.cut: set[str] = set()  # the side cut off from the rest, while the cut holds
        self.cut_at: float | None = None
        self.acting: list[tuple[str, int, float]] = []
        self.placed: list[tuple[str, int, str, float]] = []  # (by, epoch, on, at)
        self.yes_to: list[tuple[str, int, int]] = []  # (candidate, round, certified epoch)
        self.fresh_at_place: list[tuple[str, frozenset[str]]] = []
        self.lost_seen_cut: set[str] = set()  # successors that saw c lost while cut off
        self.runs: list[Run] = [Run("c", 0.0)]  # `work` started on c at the commit
        self.stats: Counter[str] = Counter()
        self._schedule()

    def _schedule(self) -> None:
        """The faults, drawn from the seed (overtaken_origin.py draws its own)."""
        dead_after_s, seed = self.dead_after_s, self.seed
        t_co = self.rng.uniform(0.2, 1.0)
        t_cut = t_co + dead_after_s + self.rng.uniform(1.5, 3.0)
        t_c = t_cut + self.rng.uniform(0.0, 8.0)
        t_heal = t_c + self.rng.uniform(10.0, 20.0)
        self._at(t_co, self._kill, "co")
        if seed % 4 != 3:  # a quarter of the seeds: no cut, a alone places `work` again
            self._at(t_cut, self._cut, ("a", "d"))
        self._at(t_c, self._kill, "c")
        self._at(t_heal, self._heal)
        self._at(0.5, self._tick)

    # ---- the world -------------------------------------------------------------------

    def run(self, until: float = 60.0) -> OvertakenWorld:
        self.timeline.run(until)
        for r in self.runs:  # still running at the end: until then
            if r.end is None:
                r.end = self.now
        self.check()
        return self

    @property
    def now(self) -> float:
        return self.timeline.now

    def _at(self, when: float, fn, *args) -> None:
        self.timeline.at(when, fn, *args)

    def _apart(self, x: str, y: str) -> bool:
        return bool(self.cut) and ((x in self.cut) != (y in self.cut))

    def _send(self, src: str, dst: str, fn, *args) -> None:
        """A message, lost if either end is dead or the cut parts them, at sending or
        at arrival."""
        if self._apart(src, dst):
            return

        def arrive() -> None:
            if not self._apart(src, dst):
                fn(*args)
        self.timeline.deliver(self.rng.uniform(0.005, 0.3), src, dst,
                              lambda n: self.nodes[n].alive, arrive)

    def _lost_in_view(self, observer: str, target: str) -> bool:
        """Membership at `observer`: DEAD once `dead_after_s` passed since `target` died
        or since the cut between them."""
        since = self.killed.get(target)
        if self._apart(observer, target) and self.cut_at is not None:
            since = self.cut_at if since is None else min(since, self.cut_at)
        return since is not None and self.now - since >= self.dead_after_s

    def _kill(self, name: str) -> None:
        node = self.nodes[name]
        node.alive = False
        self.killed[name] = self.now
        for r in self.runs:  # its step processes die with it
            if r.domain == name and r.end is None:
                r.end = self.now

    def _cut(self, side: tuple[str, ...]) -> None:
        self.cut, self.cut_at = set(side), self.now
        self.stats["cut"] += 1

    def _heal(self) -> None:
        self.cut, self.cut_at = set(), None

    # ---- takeover ----------------------------------------------------------------------

    def _tick(self) -> None:
        for n in PARTICIPANTS:
            node = self.nodes[n]
            if not node.alive:
                continue
            state = "DEAD" if self._lost_in_view(n, node.core.coordinator) else "ALIVE"
            dead = frozenset(p for p in PARTICIPANTS if self._lost_in_view(n, p))
            if node.core.role is not Role.ACTING:
                self._apply(node, node.core.step(self.now, Watch(state, dead)))
            timer = node.core.get_timer()
            if timer is not None and timer <= self.now:
                self._apply(node, node.core.step(self.now, Timer()))
            if node.core.role is Role.ACTING and self._lost_in_view(n, "c"):
                self._lose(node)
            self._mandate_timer(node)
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
        if node.mandate is not None and node.mandate.verdict is Verdict.ASKING and (
                node.core.role is not Role.ACTING or node.core.epoch != node.mandate.epoch):
            node.mandate.step(self.now, round_mandate.Overtaken(node.core.epoch,
                                                                node.core.coordinator))
            self._mandate_over(node)

    def _claim_at(self, name: str, claimant: str, epoch: int) -> None:
        node = self.nodes[name]
        if not may_grant(*node.held, epoch, claimant):
            self._send(name, claimant, self._answer_at, claimant, name, epoch, None,
                       node.held)
            return
        node.held = (epoch, claimant)  # durable before the answer leaves
        if node.core is not None:
            self._apply(node, node.core.step(self.now, Adopted(epoch, claimant)))
        envelope = sealed_grant(self.signers[name], workflow_id=WF, claimant=claimant,
                                epoch=epoch, now=self.now, committed_round=COMMITTED_ROUND,
                                electorate=ELECTORATE)
        self._send(name, claimant, self._answer_at, claimant, name, epoch, envelope,
                   (epoch, claimant))

    def _answer_at(self, name: str, voter: str, epoch: int,
                   envelope: peer_pb2.Envelope | None, held: tuple[int, str]) -> None:
        node = self.nodes[name]
        if envelope is None:
            self._apply(node, node.core.step(self.now, Deny(voter, epoch, *held)))
            return
        if node.core.epoch == epoch and node.core.coordinator == name:
            node.grants[voter] = (epoch, envelope)
            if node.mandate is not None and node.mandate.epoch == epoch:
                node.mandate.step(self.now, Regranted(voter))
        self._apply(node, node.core.step(self.now, Grant(voter, epoch)))
        self._mandate_over(node)

    def _certificate(self, node: Node) -> peer_pb2.EpochCertificate:
        epoch = node.core.epoch
        grants = [env for voter, (e, env) in sorted(node.grants.items()) if e == epoch
                  and voter != node.name]
        return certificate(self.signers[node.name], grants, workflow_id=WF, epoch=epoch,
                           now=self.now, committed_round=COMMITTED_ROUND,
                           electorate=ELECTORATE)

    # ---- the re-ask before a round (the shell's fresh_certificate) -----------------------

    def _lose(self, node: Node) -> None:
        """The acting successor sees c lost: `work` goes back to be placed again, and the
        electorate is asked again before the round."""
        if node.mandate is not None or node.round_core is not None:
            return
        node.progress.domain_lost("c", can_replace=True)
        if STEP not in node.progress.awaiting_placement():
            return
        if self.cut and node.name in self.cut:
            self.lost_seen_cut.add(node.name)
        node.kept = {v: g for v, g in node.grants.items() if g[0] == node.core.epoch}
        node.grants = {}
        node.mandate = RoundMandate(node.name, node.core.epoch, ELECTORATE, self.now,
                                    LEASE_S)
        for member in sorted(set(ELECTORATE) - {node.name}):
            self._send(node.name, member, self._claim_at, member, node.name,
                       node.core.epoch)
        if not self.mandate:  # the old rule: after fresh_s the kept grants count too
            self._at(self.now + self.fresh_s, self._count_kept, node)
        self._mandate_over(node)

    def _count_kept(self, node: Node) -> None:
        if node.alive and node.mandate is not None and node.mandate.verdict is Verdict.ASKING:
            for voter, grant in node.kept.items():
                node.grants.setdefault(voter, grant)
                node.mandate.step(self.now, Regranted(voter))
            self._mandate_over(node)

    def _mandate_timer(self, node: Node) -> None:
        m = node.mandate
        if m is not None and m.verdict is Verdict.ASKING and (m.get_timer() or 0) <= self.now:
            m.step(self.now, round_mandate.Timer())
            self._mandate_over(node)

    def _mandate_over(self, node: Node) -> None:
        m = node.mandate
        if m is None or m.verdict is Verdict.ASKING or node.round_core is not None:
            return
        if m.verdict is Verdict.OVERTAKEN:
            self.stats["overtaken"] += 1
            return
        if m.verdict is Verdict.NO_MAJORITY:
            self.stats["no fresh majority"] += 1
            node.progress.replacement_failed(STEP, not_replaced_reason(
                "c", True, m.why_not()))
            return
        self.fresh_at_place.append((node.name, frozenset(m.fresh)))
        self._round(node)

    # ---- the round ---------------------------------------------------------------------

    def _epoch(self, node: Node) -> int:
        """The epoch `node` coordinates in (the original, with no takeover core: 0)."""
        return node.core.epoch if node.core is not None else 0

    def _round(self, node: Node) -> None:
        epoch = self._epoch(node)
        cert = self._certificate(node) if epoch else None  # the original needs none
        me = node.name

        def placer(excluded):
            candidates = [candidate(c, CAP, 2, True) for c in CANDIDATES
                          if not self._lost_in_view(me, c)]
            refused = {k: set(v) for k, v in excluded.items()}
            refused.setdefault(STEP, set()).update(PARTICIPANTS)
            return place(self.spec, candidates, coordinator=me, excluded=refused,
                         fixed={"zero": "a", "one": "b"})

        core = Coordinator(WF, placer=lambda ex: OneStep(STEP, placer(ex)), max_rounds=2,
                           prepare_timeout_s=1.0,
                           first_round=max(round_range(epoch).start, COMMITTED_ROUND + 1))
        node.round_core = core
        core.start(self.now)
        self._act(node, core, cert, epoch)

    def _act(self, node: Node, core: Coordinator, cert, epoch: int) -> None:
        for action in core.next_actions():
            if isinstance(action, SendPrepare):
                self._send(node.name, action.domain, self._prepare_at, action.domain,
                           node.name, action, cert)
            elif isinstance(action, PersistDecision):
                node.decided[action.round] = action.commit
                if action.commit:
                    new = action.placement[STEP]
                    node.progress.placed_again(STEP, new, action.round, "c")
                    self.placed.append((node.name, epoch, new, self.now))
                    self.stats[f"placed by {node.name}"] += 1
            elif isinstance(action, SendDecision):
                self._send(node.name, action.domain, self._decide_at, action.domain,
                           action.round, node.decided[action.round])
            elif isinstance(action, Finished) and not action.committed:
                node.progress.replacement_failed(STEP, action.reason)
        timer = core.get_timer()
        if timer is not None:
            self._at(timer, self._round_timer, node, core, cert, epoch)

    def _round_timer(self, node: Node, core: Coordinator, cert, epoch: int) -> None:
        if node.alive and (core.get_timer() or 0) <= self.now:
            core.handle_timer(self.now)
            self._act(node, core, cert, epoch)

    def _prepare_at(self, name: str, sender: str, action: SendPrepare,
                    cert: peer_pb2.EpochCertificate | None) -> None:
        node = self.nodes[name]
        try:
            if cert is None:  # epoch 0: the coordinator the workflow id names only
                if sender != "co":
                    raise CertificateError("bad_certificate", "no certificate")
                certified_epoch = 0
            else:
                certified_epoch = verify(cert, self.trust, workflow_id=WF,
                                         claimant=sender).epoch
            if action.round not in round_range(certified_epoch):
                raise CertificateError("bad_certificate", "round outside its epoch's range")
        except CertificateError as e:
            vote = VoteIn(action.round, name, False, e.detail, b"")
        else:
            out = node.participant.prepare(
                self.now, workflow_id=WF, round=action.round, coordinator=sender,
                data_labels={}, steps=[(s, CAP) for s in action.steps])
            if out.yes:
                self.yes_to.append((name, action.round, certified_epoch))
            vote = VoteIn(action.round, name, out.yes, out.reason, b"")
        self._send(name, sender, self._vote_at, sender, vote, cert)

    def _vote_at(self, name: str, vote: VoteIn, cert) -> None:
        node = self.nodes[name]
        core = node.round_core
        if core is None:
            return
        try:
            core.receive_vote(self.now, vote)
        except Exception:  # a late vote of a decided round: nothing to do  # noqa: BLE001
            return
        self._act(node, core, cert, self._epoch(node))

    def _decide_at(self, name: str, round_: int, commit: bool) -> None:
        node = self.nodes[name]
        if node.participant.status((WF, round_)) is None:
            return
        node.participant.decide(self.now, WF, round_, commit)
        if commit:  # `work` has no inputs: it starts at once, and runs long
            self.runs.append(Run(name, self.now))

    # ---- the checks ----------------------------------------------------------------------

    def overlaps(self) -> list[tuple[str, str, float]]:
        """Two runs of `work` on two domains at once for longer than a lease."""
        found = []
        for i, x in enumerate(self.runs):
            for y in self.runs[i + 1:]:
                end_x = x.end if x.end is not None else self.now
                end_y = y.end if y.end is not None else self.now
                overlap = min(end_x, end_y) - max(x.start, y.start)
                if x.domain != y.domain and overlap > self.lease_s + 1e-9:
                    found.append((x.domain, y.domain, overlap))
        return found

    def check(self) -> None:
        def fail(what: str) -> None:
            raise OvertakenFailure(f"seed {self.seed}: {what}")

        for what in acted_twice(self.acting):
            fail(what)
        if len(self.placed) > 1:
            fail(f"the loss of c placed {STEP} again {len(self.placed)} times: "
                 + ", ".join(f"by {by} in epoch {e} on {on} at {t:.2f}"
                             for by, e, on, t in self.placed))
        for x, y, overlap in self.overlaps():
            fail(f"{STEP} ran on {x} and {y} at once for {overlap:.2f} s"
                 f" (lease {self.lease_s} s)")
        for what in yes_outside_acted(self.acting, self.yes_to):
            fail(what)
        if not self.mandate:
            return
        for name, fresh in self.fresh_at_place:
            if len(fresh & set(ELECTORATE)) < majority(ELECTORATE):
                fail(f"{name} placed with the fresh grants of {sorted(fresh)} only")
        if "a" in self.lost_seen_cut:
            if any(by == "a" for by, _, _, _ in self.placed):
                fail("a placed a step while cut off from the later epoch")
            step = self.nodes["a"].progress.steps[STEP]
            if step.state is not StepState.FAILED or "domain c was lost" not in step.error:
                fail(f"at a, cut off, {STEP} is {step.state.name} ({step.error!r}), not"
                     " FAILED naming c")


def run(seed: int, **kwargs) -> OvertakenWorld:
    """One seeded schedule, checked (OvertakenFailure names the seed)."""
    return OvertakenWorld(seed, **kwargs).run()
