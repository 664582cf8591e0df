"""A cut both ways that heals in the negotiation simulator (simulation.py, with
`Config.partition_dead`: the others' views of the cut-off group go DEAD, as a cut long
enough for a verdict makes them; the group's views of the others go SUSPECT). d1 is
cut off from 2 s to 5.5 s. d0 coordinates d0.w0: s1
on d2, then s2 on d1 (not idempotent). s1's result is slow to d0 and to d1 (there at
8 s and 6 s), so d0, seeing d1 DEAD at 3.5 s, judges s2 not started and places it
again; the new domain runs it, and d0's news of that to d1 is lost. A copy of a
message d0 sent d1 before the cut comes again at 5.9 s (a resend, a duplicate): without
the start rule's lapse (core/node/start_asks.py, "A cut that heals") d1, its view of
d0 ALIVE again since 5.5 s, took it as contact at 6 s and ran s2 too: the checker's
"started twice". With it, d1's view of d0 left ALIVE during the cut, so d1 asks d0
first, and s2 never starts on d1."""

from __future__ import annotations

from fedorch.core.node.records import PrepareMsg
from fedorch.core.node.start_asks import HELD
from fedorch.sim.negotiation import simulation
from fedorch.sim.negotiation.simulation import Simulation

from tests.sim.negotiation.cut_stories import WF, chain_with_d1_cut, slow_result_lost_placement


def scenario() -> tuple[Simulation, list[object]]:
    sim = chain_with_d1_cut(30.0, partition=(2.0, 5.5, frozenset({"d1"})),
                            partition_dead=True)
    resent: list[object] = []

    def intercept(src: str, dst: str, msg: object, now: float) -> object:
        shared = slow_result_lost_placement(src, dst, msg, now, result_at_d1=6.0)
        if shared is not None:
            return shared
        if src == "d0" and dst == "d1" and not resent and now < 2.0 \
                and not isinstance(msg, PrepareMsg) and WF in repr(msg):
            resent.append(msg)  # arrives now, and a copy again after the cut
            sim._push(5.9, simulation._DELIVER, sim.agents["d1"], (src, msg))
        return None
    sim.intercept = intercept
    return sim, resent


def test_a_domain_cut_off_both_ways_never_runs_a_step_placed_elsewhere_after_the_heal(
) -> None:
    sim, resent = scenario()
    report = sim.run()
    assert resent
    assert report.violations == [], report.violations
    epoch, domain, lost = sim.agents["d0"].disk.placements[WF]["s2"]
    assert lost == "d1" and domain not in ("d1", "") and epoch > 0
    assert sim.agents["d1"].node.stats[HELD] >= 1
    assert all(run[:2] != (WF, "s2") for run in sim.checker.runs
               if sim.checker.runs[run] == "d1")
