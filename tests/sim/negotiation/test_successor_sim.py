"""The successor places a lost step again (agent/sim/negotiation/successor.py): the
coordinator dies after the commit, then the domain of a step not yet started; seeded
schedules on the real cores and real signatures, checked for one acting coordinator
per epoch, no step run twice, one decision per round, certificates verified."""

from __future__ import annotations

import pytest
from fedorch.core.workflow.epoch_certificate import round_range
from fedorch.core.workflow.progress import Outcome
from fedorch.sim.negotiation.successor import SuccessorWorld, run

SEEDS = range(60)


@pytest.mark.parametrize("seed", SEEDS)
def test_seeded_schedule_holds_every_invariant(seed):
    run(seed)


def test_the_schedules_cover_both_cases_and_the_forged_certificate():
    worlds = [run(seed) for seed in SEEDS]
    replaced = [w for w in worlds if w.acting]
    stuck = [w for w in worlds if not w.acting]
    assert replaced and stuck, (len(replaced), len(stuck))
    for w in replaced:
        assert w.ended is not None and w.ended[0] is Outcome.SUCCEEDED
        assert [(name, epoch) for name, epoch, _ in w.acting] == [("a", 1)]
        assert all(r in round_range(1) for r in w.decided)
    for w in stuck:  # b died before its grant reached a: no majority is left
        assert w.replaced_on is None and w.yes_to == [] and w.ended is None
    assert any(w.liar_answers for w in worlds)
    assert all(not any(w.liar_answers) for w in worlds)


def test_a_world_deterministic_per_seed():
    a, b = SuccessorWorld(7).run(), SuccessorWorld(7).run()
    assert (a.acting, a.replaced_on, a.decided) == (b.acting, b.replaced_on, b.decided)
