"""Self-fencing in the re-placement schedule with partitions (agent/sim/negotiation/fencing.py).

Workers are cut off for a while (alive, hearing nothing), the coordinator re-places
their steps, and each cut worker runs the agent's self-fencing rule. The check "no
step runs in two domains at once beyond one lease" (check_replacement) covers every
attempt's interval; with the rule turned off it must fire.
"""

from __future__ import annotations

from collections import Counter

import pytest
from fedorch.sim.negotiation.check import ReplacementFailure
from fedorch.sim.negotiation.fencing import run

SEEDS = 150
# Found by running seeds 0..99 with the rule off: a cut worker's idempotent step runs
# on past its lease beside its replacement.
OVERLAPPING_WITHOUT_FENCING = 25


@pytest.mark.parametrize("first", range(0, SEEDS, 50))
def test_partitions_with_self_fencing_hold_every_invariant(first: int) -> None:
    stats: Counter[str] = Counter()
    for seed in range(first, first + 50):
        stats.update(run(seed).stats)  # ReplacementFailure names the seed
    assert stats["partition"] > 0 and stats["fenced"] > 0 and stats["re-placed"] > 0, stats


def test_without_self_fencing_two_copies_run_longer_than_a_lease() -> None:
    with pytest.raises(ReplacementFailure, match=r"ran on w\d and w\d at once for"):
        run(OVERLAPPING_WITHOUT_FENCING, fencing=False)
    # The same schedule with the rule on: the cut worker stops its copy in time.
    world = run(OVERLAPPING_WITHOUT_FENCING)
    assert world.stats["fenced"] >= 1


def test_a_fenced_step_is_not_retried_where_it_was_fenced() -> None:
    world = run(OVERLAPPING_WITHOUT_FENCING)
    fenced = [r for r in world.runs if not r.completed and r.end is not None
              and r.domain in {w for w, x in world.workers.items() if x.alive}]
    assert fenced
    for r in fenced:
        later = [x for x in world.runs if (x.workflow, x.step, x.domain) ==
                 (r.workflow, r.step, r.domain) and x.attempt > r.attempt]
        assert later == [], (r, later)

