"""An older successor cut off from the later epoch (agent/sim/negotiation/overtaken.py):
a, acting in epoch 1, is cut off with one candidate; b takes epoch 2; c, running an
idempotent step, dies. Seeded schedules on the real cores and real signatures, checked
for one acting coordinator per epoch, one placement per loss, no two copies of the
step at once beyond one lease. With the round mandate a re-placement round runs only on
a fresh majority of the electorate; without it (the rule before: the grants kept from
the takeover count once no fresh answer came) the checks fire.

The epoch-0 variant (agent/sim/negotiation/overtaken_origin.py): the original
coordinator co cut off with d, a elected in epoch 1, c lost. With co's ask of its
electorate before its round co places nothing; asking nothing (the code before) co and
a both place the step."""

from __future__ import annotations

from collections import Counter

import pytest
from fedorch.core.workflow.progress import StepState
from fedorch.sim.negotiation import overtaken_origin as origin
from fedorch.sim.negotiation.overtaken import OvertakenFailure, OvertakenWorld, run

SEEDS = 1000


def _cut_off_failed(run_seed, cut_off: str, why: str) -> tuple[Counter[str], int]:
    """The stats of seeds 0..39 summed, and in how many `cut_off` saw c lost while cut
    off and failed `work` (its error starting as a loss of c for `why`)."""
    stats: Counter[str] = Counter()
    failed = 0
    for seed in range(40):
        world = run_seed(seed)
        stats.update(world.stats)
        if cut_off in world.lost_seen_cut:
            step = world.nodes[cut_off].progress.steps["work"]
            assert step.state is StepState.FAILED
            assert step.error.startswith("domain c was lost (DEAD) while the step ran;"
                                         " could not place the step again: " + why), \
                step.error
            failed += 1
    return stats, failed


def _broken_without_the_mandate(run_seed) -> int:
    """How many of seeds 0..19 fail their checks without the mandate; the seeds with no
    cut must pass."""
    broken = 0
    for seed in range(20):
        if seed % 4 == 3:  # no cut: nothing to break
            run_seed(seed, mandate=False)
            continue
        with pytest.raises(OvertakenFailure):
            run_seed(seed, mandate=False)
        broken += 1
    return broken


@pytest.mark.parametrize("first", range(0, SEEDS, 250))
def test_seeded_schedules_hold_every_invariant(first: int) -> None:
    for seed in range(first, first + 250):
        run(seed)  # raises OvertakenFailure("seed N: ...") on any violation


def test_the_schedules_reach_both_cases() -> None:
    stats, cut_off_failed = _cut_off_failed(run, "a", "no majority of the takeover"
                                            " electorate")
    # Cut off: a places nothing, b (epoch 2, a fresh majority: b, x, y) places once.
    assert cut_off_failed == stats["cut"] == stats["placed by b"] > 0, stats
    # No cut: a, in epoch 1, has its fresh majority and places once.
    assert stats["placed by a"] > 0 and stats["no fresh majority"] == stats["cut"], stats


def test_without_the_mandate_two_epochs_place_the_step_and_it_runs_twice() -> None:
    with pytest.raises(OvertakenFailure, match=r"placed work again 2 times: .*epoch 1.*"
                                               r"epoch 2|placed work again 2 times: "
                                               r".*epoch 2.*epoch 1"):
        run(0, mandate=False)
    # The same schedule, not checked: the two copies overlap for longer than a lease.
    world = OvertakenWorld(0, mandate=False)
    world.timeline.run(60.0)
    assert {(x, y) for x, y, _ in world.overlaps()} & {("d", "e"), ("e", "d")}, \
        world.overlaps()
    # With it: one copy.
    assert run(0).overlaps() == [] and [on for _, _, on, _ in run(0).placed] == ["e"]


def test_every_cut_seed_breaks_without_the_mandate() -> None:
    assert _broken_without_the_mandate(run) == 15


def test_a_world_is_deterministic_per_seed() -> None:
    a, b = run(7), run(7)
    assert (a.acting, a.placed, a.stats) == (b.acting, b.placed, b.stats)


# ---- the epoch-0 variant: the original coordinator cut off (overtaken_origin.py) -------------


@pytest.mark.parametrize("first", range(0, SEEDS, 250))
def test_origin_seeded_schedules_hold_every_invariant(first: int) -> None:
    for seed in range(first, first + 250):
        origin.run(seed)  # raises OvertakenFailure("seed N: ...") on any violation


def test_origin_schedules_reach_both_cases() -> None:
    stats, cut_off_failed = _cut_off_failed(origin.run, "co", "no set of members meeting"
                                            " every majority")
    # Cut off: co places nothing, a (epoch 1, a fresh majority) places once.
    assert cut_off_failed == stats["cut"] == stats["placed by a"] > 0, stats
    # No cut: co, alive with its electorate, asks, has its answers and places once.
    assert stats["placed by co"] == 40 - stats["cut"] > 0, stats
    assert stats["no fresh majority"] == stats["cut"], stats


def test_origin_asking_nothing_two_epochs_place_the_step() -> None:
    with pytest.raises(OvertakenFailure, match=r"placed work again 2 times: by co in epoch 0"
                                               r" on d .* by a in epoch 1 on e"):
        origin.run(0, mandate=False)
    assert _broken_without_the_mandate(origin.run) == 15
    # With the ask: one placement, by a, on e.
    assert [(by, on) for by, _, on, _ in origin.run(0).placed] == [("a", "e")]


@pytest.mark.parametrize("liar", ["x", "y"])
def test_origin_seeded_schedules_with_a_lying_denier_hold_every_invariant(liar: str) -> None:
    """An extra acceptor answers every ask "epoch 1, held for a", with nothing to show:
    co never follows it; without a cut it places `work` once on the others' answers."""
    stats: Counter[str] = Counter()
    for seed in range(SEEDS // 2):
        stats.update(origin.run(seed, liar=liar).stats)  # raises on any violation
    assert stats["lying denial"] == SEEDS // 8 > 0, stats
    assert stats["placed by co"] == SEEDS // 8, stats
    assert stats["unproven denial not followed"] > 0, stats


def test_origin_following_a_lying_denial_stops_the_original_for_nothing() -> None:
    """The code before (a denial followed on its signer's word): co follows the liar's
    epoch 1, which nobody holds, and `work` is never placed again."""
    with pytest.raises(OvertakenFailure, match=r"co followed \(1, 'a'\) on y's word"):
        origin.run(7, liar="y", on_word=True)
    broken = 0
    for seed in range(3, 100, 4):  # the seeds without a cut
        try:
            origin.run(seed, liar="y", on_word=True)
        except OvertakenFailure:
            broken += 1
    assert broken > 0


def test_origin_world_is_deterministic_per_seed() -> None:
    x, y = origin.run(11), origin.run(11)
    assert (x.acting, x.placed, x.stats) == (y.acting, y.placed, y.stats)
