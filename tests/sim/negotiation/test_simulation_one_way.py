"""A cut one way in the negotiation simulator (simulation.py, `Config.one_way`): d1's
messages get out to nobody from 2 s to 12 s, while everyone's reach d1. d0 coordinates
d0.w0: s1 on d2, then s2 on d1 (not idempotent). d1 votes YES before the cut, but the
workflow's decision is slow on its way to it (there at 4.8 s, from d0 too), and s1's
result is slow to d0 and to d1 (there at 8 s and 5 s). So d0, seeing d1 DEAD at 3.5 s
with its COMMIT maybe still on its way, judges s2 not started and places it again; the
new domain runs it, and d0's news of that to d1 is lost. Without the start rule's doubt
(core/node/start_asks.py, "A cut one way") d1, having heard d0 at 4.8 s, took that as
contact at 5 s and ran s2 too: the checker's "started twice". With it, d1 heard its
own doubt as the cut began and asks d0; the query never gets out, and s2 never
starts on d1."""

from __future__ import annotations

from fedorch.core.node.records import PrepareMsg
from fedorch.core.node.start_asks import HELD
from fedorch.sim.negotiation.config import draw_one_way
from fedorch.sim.negotiation.run import seeded_config
from fedorch.sim.negotiation.simulation import Simulation

from tests.sim.negotiation.cut_stories import WF, chain_with_d1_cut, slow_result_lost_placement


def scenario() -> Simulation:
    sim = chain_with_d1_cut(3.0, one_way=(2.0, 12.0, frozenset({"d1"})))

    def intercept(src: str, dst: str, msg: object, now: float) -> object:
        shared = slow_result_lost_placement(src, dst, msg, now, result_at_d1=5.0)
        if shared is not None:
            return shared
        if dst == "d1" and not isinstance(msg, PrepareMsg) and WF in repr(msg) \
                and now < 4.8:
            return 4.8 - now  # the decision, from anyone, there at 4.8 s
        return None
    sim.intercept = intercept
    return sim


def test_a_domain_cut_off_one_way_never_runs_a_step_placed_elsewhere() -> None:
    sim = scenario()
    report = sim.run()
    assert report.violations == [], report.violations
    epoch, domain, lost = sim.agents["d0"].disk.placements[WF]["s2"]
    assert lost == "d1" and domain not in ("d1", "") and epoch > 0
    d1 = sim.agents["d1"].node
    assert d1.stats[HELD] >= 1  # asked at 5 s; the workflow's end came before an answer
    assert sim.agents["d1"].disk.final[WF] is sim.agents["d0"].disk.final[WF]
    assert all(run[:2] != (WF, "s2") for run in sim.checker.runs
               if sim.checker.runs[run] == "d1")


def test_the_one_way_draw_leaves_a_seeds_run_as_it_was() -> None:
    """The cut is drawn apart (its own generator): the rest of the seed's config is
    the same with it or without it, and it is off unless asked."""
    plain, cut = seeded_config(7, 3.0), seeded_config(7, 3.0, one_way=True)
    assert plain.one_way is None
    assert cut.one_way == draw_one_way(7, plain.names)
    cut.one_way = None
    assert cut == plain


def test_the_network_is_calm_only_once_the_cut_one_way_healed() -> None:
    """The checker's deadlines (every workflow terminal within `takeover_after_s` and a
    negotiation after the last fault) count from `calm_since`: a cut one way is a fault
    until it heals (seed 134000369 with `--one-way`: a successor cut off one way ended
    its workflow as soon as its end could get out, 4 s after a deadline counted from
    before the cut)."""
    sim = scenario()
    assert sim.calm_since(("d0", "d2")) == 12.0
    assert sim.calm_since(("d1",)) == 12.0
