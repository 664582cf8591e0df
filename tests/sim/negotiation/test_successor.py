"""The successor places a lost step again (agent/sim/negotiation/successor.py): the
coordinator dies after the commit, then the domain of a step not yet started; seeded
schedules on the real cores and real signatures, checked for one acting coordinator
per epoch, no step run twice, one decision per round, certificates verified, and a
round only on a fresh majority of the electorate (the step FAILS without one)."""

from __future__ import annotations

import pytest
from fedorch.core.workflow.epoch_certificate import round_range
from fedorch.core.workflow.progress import Outcome
from fedorch.sim.negotiation.successor import SuccessorWorld, run

SEEDS = range(90)


@pytest.mark.parametrize("seed", SEEDS)
def test_seeded_schedule_holds_every_invariant(seed):
    run(seed)


def test_the_schedules_cover_every_case_and_the_forged_certificate():
    worlds = [run(seed) for seed in SEEDS]
    replaced = [w for w in worlds if w.acting and w.replaced_on is not None]
    failed = [w for w in worlds if w.acting and w.replaced_on is None]
    stuck = [w for w in worlds if not w.acting]
    assert replaced and failed and stuck, (len(replaced), len(failed), len(stuck))
    for w in replaced:  # co came back and granted again: a fresh majority (a, co)
        assert w.co_back_at is not None and w.mandate.fresh == {"a", "co"}
        assert w.ended is not None and w.ended[0] is Outcome.SUCCEEDED
        assert [(name, epoch) for name, epoch, _ in w.acting] == [("a", 1)]
        assert all(r in round_range(1) for r in w.decided)
    for w in failed:  # co and b dead: the grant b gave for the takeover counts for no round
        second = w.nodes["a"].progress.steps["second"]
        assert w.ended is not None and w.ended[0] is Outcome.FAILED
        assert second.error.startswith(
            "domain b was lost (DEAD) before the step started; could not place the step"
            " again: no majority of the takeover electorate (a, b, co)"), second.error
        assert w.yes_to == [] and w.decided == {}
    for w in stuck:  # b died before its grant reached a (and co is not back yet)
        assert w.replaced_on is None and w.yes_to == []
    assert any(w.liar_answers for w in worlds)
    assert all(not any(w.liar_answers) for w in worlds)


def test_a_world_deterministic_per_seed():
    a, b = SuccessorWorld(7).run(), SuccessorWorld(7).run()
    assert (a.acting, a.replaced_on, a.decided) == (b.acting, b.replaced_on, b.decided)
