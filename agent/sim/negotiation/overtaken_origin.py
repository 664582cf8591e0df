"""A seeded schedule: the original coordinator, cut off, while its successor places a lost step.

Theory of operation
-------------------
The world of agent/sim/negotiation/overtaken.py (the same workflow `co.1`, electorate
{a, b, co, x, y}, candidates d and e, real cores and signatures), with other faults:

1. co does not die: a partition cuts co and the candidate d off from everyone else
   (alive). The others see co gone, and a, the lowest live participant, claims epoch 1
   and acts, granted by b, x and y (3 of 5).
2. co, cut off, sees every participant lost, c among them, which runs the idempotent
   `work`; later c really dies, and a (epoch 1) sees it lost too. Both would place
   `work` again: co can reach only d, a only e.

Before its round the original asks every other member whether it still holds epoch 0
for it (the shell's EpochCertificates.origin_mandate; a member answers from what it
holds and writes nothing), and the round mandate's rule for epoch 0 decides: fresh
answers meeting every majority (3 of 5, co's own included), or a later epoch named by a
member (co follows it), or neither within one lease. With it (the code now) co, cut
off, hears nothing and places nothing: `work` FAILS at co naming c, and a alone places
it. Without it (`mandate=False`, the code before: the original asked nothing) co places
`work` on d as soon as it sees c lost, a places it on e: the checks fire
(tests/sim/negotiation/test_overtaken.py).

A quarter of the seeds have no cut: co, alive with its electorate, gets its fresh
answers and places `work` once when c dies. The cut heals late in the run: co then
grants a's claim of epoch 1 (sent again until answered) and follows it.

A denial naming a later epoch is followed only on that epoch's proof: here, when the
member that denies is that epoch's holder and acted in it (the runtime's acting
successor shows its own certificate; the simulator signs nothing, the record of who
acted stands for it). With `liar` (an extra acceptor, x or y) that member answers every
ask with "epoch 1, held for a" and nothing to show, though no takeover happened in the
seeds without a cut: co does not follow it, and places `work` once on the others'
answers (`on_word=True`, the code before: co follows the lie, places nothing, and
nobody acts for it; the liar check fires).

Checks: those of the overtaken schedule (one coordinator acting per epoch, one
placement per loss, no two copies of `work` at once beyond one lease, every YES to a
round of an acting epoch), and with the mandate: co, cut off when it saw c lost,
placed nothing and `work` FAILED there naming c; with a liar and no cut, co still held
epoch 0 and placed `work` once.
"""

from __future__ import annotations

from fedorch.core.workflow import round_mandate
from fedorch.core.workflow.progress import Progress, StepState
from fedorch.core.workflow.round_mandate import Regranted, RoundMandate, Verdict
from fedorch.sim.negotiation.overtaken import (
    ELECTORATE,
    LEASE_S,
    STEP,
    Node,
    OvertakenFailure,
    OvertakenWorld,
)

ORIGIN = "co"


class OriginWorld(OvertakenWorld):
    def __init__(self, seed: int, *, liar: str | None = None, on_word: bool = False,
                 **kwargs) -> None:
        if liar not in (None, "x", "y"):
            raise ValueError("the liar is one of the extra acceptors, x or y")
        self.liar = liar
        self.on_word = on_word  # the code before: a denial followed on its signer's word
        super().__init__(seed, **kwargs)
        co = self.nodes[ORIGIN]
        co.progress = Progress(self.spec, dict(self.placement), ORIGIN)
        self.acting.append((ORIGIN, 0, 0.0))  # epoch 0 acts from the commit

    def _schedule(self) -> None:
        t_cut = self.rng.uniform(0.2, 1.0)
        t_c = t_cut + self.dead_after_s + self.rng.uniform(1.5, 3.0) + self.rng.uniform(0.0, 8.0)
        t_heal = t_c + self.rng.uniform(10.0, 20.0)
        self.cut_planned = self.seed % 4 != 3
        if self.cut_planned:  # a quarter of the seeds: no cut, co places `work` again
            self._at(t_cut, self._cut, (ORIGIN, "d"))
        self._at(t_c, self._kill, "c")
        self._at(t_heal, self._heal)
        self._at(0.5, self._tick)

    def _tick(self) -> None:
        co = self.nodes[ORIGIN]
        if co.alive and co.held == (0, ORIGIN) and self._lost_in_view(ORIGIN, "c"):
            self._lose_origin(co)
        self._mandate_timer(co)
        super()._tick()

    # ---- the original's ask before its round (the shell's origin_mandate) -----------------

    def _lose_origin(self, node: Node) -> None:
        if node.mandate is not None or node.round_core is not None:
            return
        node.progress.domain_lost("c", can_replace=True)
        if STEP not in node.progress.awaiting_placement():
            return
        if self.cut and ORIGIN in self.cut:
            self.lost_seen_cut.add(ORIGIN)
        if not self.mandate:  # the code before: the original placed at once
            self.fresh_at_place.append((ORIGIN, frozenset({ORIGIN})))
            self._round(node)
            return
        node.mandate = RoundMandate(ORIGIN, 0, ELECTORATE, self.now, LEASE_S)
        for member in sorted(set(ELECTORATE) - {ORIGIN}):
            self._send(ORIGIN, member, self._asked_at, member)
        self._mandate_over(node)

    def _asked_at(self, name: str) -> None:
        """A member answers the ask from what it holds; nothing changes here. The liar
        says it holds epoch 1 for a, whatever it holds."""
        held = self.nodes[name].held
        if name == self.liar:
            held = max(held, (1, "a"))
            self.stats["lying denial"] += 1
        self._send(name, ORIGIN, self._told_at, name, held)

    def _proven(self, voter: str, held: tuple[int, str]) -> bool:
        """Does the denial carry its epoch's certificate? Its holder's own does, once it
        acted in that epoch (the record of who acted stands for the signatures)."""
        epoch, holder = held
        return voter == holder and any((who, e) == (holder, epoch)
                                       for who, e, _ in self.acting)

    def _told_at(self, voter: str, held: tuple[int, str]) -> None:
        node = self.nodes[ORIGIN]
        m = node.mandate
        if m is None or m.verdict is not Verdict.ASKING:
            return
        if held == (0, ORIGIN):
            m.step(self.now, Regranted(voter))
        elif held[0] > 0:
            proven = self.on_word or self._proven(voter, held)
            m.step(self.now, round_mandate.Overtaken(*held, proven))
            if proven:
                node.held = max(node.held, held)  # followed: its core takes the denial
            else:
                self.stats["unproven denial not followed"] += 1
        self._mandate_over(node)

    def _claim_at(self, name: str, claimant: str, epoch: int) -> None:
        super()._claim_at(name, claimant, epoch)
        node = self.nodes[name]
        if name == ORIGIN and node.held[0] > 0 and node.mandate is not None \
                and node.mandate.verdict is Verdict.ASKING:
            # Granted a later epoch while asking: that epoch's coordinator places now.
            node.mandate.step(self.now, round_mandate.Overtaken(*node.held, True))
            self._mandate_over(node)

    # ---- the checks ----------------------------------------------------------------------

    def check(self) -> None:
        super().check()
        if self.liar is not None and self.mandate and not self.cut_planned:
            co = self.nodes[ORIGIN]
            if co.held != (0, ORIGIN):
                raise OvertakenFailure(f"seed {self.seed}: {ORIGIN} followed {co.held} on"
                                       f" {self.liar}'s word")
            if [by for by, _, _, _ in self.placed] != [ORIGIN]:
                raise OvertakenFailure(f"seed {self.seed}: with {self.liar} lying, {STEP}"
                                       f" was placed by {self.placed}, not once by {ORIGIN}")
        if not self.mandate or ORIGIN not in self.lost_seen_cut:
            return
        if any(by == ORIGIN for by, _, _, _ in self.placed):
            raise OvertakenFailure(f"seed {self.seed}: {ORIGIN} placed a step while cut off")
        step = self.nodes[ORIGIN].progress.steps[STEP]
        if step.state is not StepState.FAILED or "domain c was lost" not in step.error:
            raise OvertakenFailure(f"seed {self.seed}: at {ORIGIN}, cut off, {STEP} is"
                                   f" {step.state.name} ({step.error!r}), not FAILED naming c")


def run(seed: int, **kwargs) -> OriginWorld:
    """One seeded schedule, checked (OvertakenFailure names the seed)."""
    return OriginWorld(seed, **kwargs).run()
