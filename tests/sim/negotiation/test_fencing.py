"""Self-fencing in the re-placement schedule with partitions (agent/sim/negotiation/fencing.py).

Workers are cut off for a while (alive, hearing nothing), the coordinator re-places
their steps, and each cut worker runs the agent's self-fencing rule. The check "no
step runs in two domains at once beyond one lease" (check_replacement) covers every
attempt's interval; with the rule turned off it must fire.
"""

from __future__ import annotations

from collections import Counter

import pytest
from fedorch.sim.negotiation.fencing import run
from fedorch.sim.negotiation.replacement_check import ReplacementFailure

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


# Seeds beyond SEEDS that broke the invariants. 371, 501: a step placed again ran its
# attempt 1 twice on its new domain, which had learned that placement first from a later
# round's COMMIT (its whole placement) and started it, then restarted it at its own
# round's COMMIT (Progress.placed_again). 813: the world looked at the rule every
# FENCE_LOOK_S instead of at its deadline as the agent's timer does, so an attempt was
# fenced late or, failing just past its deadline, retried with a whole lease beside its
# replacement. 1202, 5707: an overlap of exactly one lease, a rounding above it. 15340:
# the next step of a chain on a cut worker, started there while cut off, got a whole
# lease from its start, and the one after it too; the cut healed within it and the step
# ran on beside its replacement until the workflow ended (8.7 s with a 4 s lease). The
# lease now counts from the last contact with the workflow, whenever a step starts.
REGRESSION_SEEDS = (371, 501, 813, 1202, 5707, 15340)


@pytest.mark.parametrize("seed", REGRESSION_SEEDS)
def test_seeds_that_broke_the_invariants_hold_them(seed: int) -> None:
    run(seed)  # ReplacementFailure names the seed and the invariant


def test_a_cut_worker_fences_at_the_rules_deadline_not_at_its_next_poll() -> None:
    # As the agent's timer at the rule's next look: the lease after the later of the
    # workflow's heard moment and the last message heard, not up to a poll interval
    # after it (an attempt that would start past it ends as it starts).
    fenced = 0
    for seed in range(50):
        world = run(seed)
        for r, heard, heard_at in world.fences:
            due = max(heard_at, heard if heard is not None else heard_at) + world.lease_s
            assert r.end == pytest.approx(max(due, r.start), abs=1e-9), (seed, r, heard)
            fenced += 1
    assert fenced > 0


def test_a_step_started_while_cut_off_gets_only_what_is_left_of_the_lease() -> None:
    # Seed 15340: w0, cut off, ends s0 of co.0 and starts s1 there; it is fenced at the
    # lease after w0's last message, not a lease after its start.
    world = run(15340)
    late = [(r, heard) for r, heard, _ in world.fences
            if heard is not None and r.start > heard]
    assert late, world.fences
    for r, heard in late:
        assert r.end == pytest.approx(heard + world.lease_s, abs=1e-9)
        assert r.end < r.start + world.lease_s


def test_a_step_past_its_lease_since_the_last_contact_is_never_started() -> None:
    # Seed 3 (found by the sweep of seeds 0..19,999): an attempt that would start on a
    # cut worker after its workflow's lease since the last contact ends as it starts.
    world = run(3)
    assert world.stats["fenced before it started"] == 1
    never = [r for r, heard, _ in world.fences if r.end == r.start]
    assert len(never) == 1 and not never[0].completed


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


# Found by running seeds 0..4,999 with the restart rule off: w0, cut off, restarts; its
# idempotent step's retry starts at once with a whole lease (the start counted as
# contact), the cut heals within it, and the retry runs on beside its replacement on w2.
RESTART_OVERLAP = 4576


def test_a_restarted_worker_starts_nothing_before_it_hears_from_the_workflow() -> None:
    with pytest.raises(ReplacementFailure, match=r"ran on w\d and w\d at once for"):
        run(RESTART_OVERLAP, restart_rule=False)
    # With the rule: held back until the coordinator answers, whose answer says the
    # step was placed elsewhere (its epoch moved on), so nothing of it starts there.
    world = run(RESTART_OVERLAP)
    assert world.stats["restart while cut"] == 1
    assert world.stats["restart: steps placed elsewhere, none started"] > 0
    assert [r.domain for r in world.runs if (r.workflow, r.step) == ("co.1", "s0")] \
        == ["w0", "w2"]  # the copy killed by the restart, and the replacement


# Found by running seeds 0..1,499 with answers that are contact whatever they say: w0,
# restarted while cut, hears the coordinator once healed and retries s1 of co.2, which
# had been placed again on w2 meanwhile; the two run at once for 6 s (4 s lease).
ANSWER_WITHOUT_EPOCHS = 1219


def test_an_answer_is_contact_only_while_the_steps_are_still_placed_there() -> None:
    with pytest.raises(ReplacementFailure, match=r"ran on w\d and w\d at once for"):
        run(ANSWER_WITHOUT_EPOCHS, answer_epochs=False)
    world = run(ANSWER_WITHOUT_EPOCHS)
    assert world.stats["restart: steps placed elsewhere, none started"] > 0


def test_restarts_hold_back_and_then_start_what_is_still_placed_there() -> None:
    stats: Counter[str] = Counter()
    for seed in range(100):
        stats.update(run(seed).stats)
    assert stats["restart while cut"] > 0, stats
    assert stats["restart: heard, started"] > 0, stats  # live: heard, then started


# ---- a COMMIT learned from the acceptors (commit_cuts: a worker cut at its COMMIT) -----

@pytest.mark.parametrize("first", range(0, SEEDS, 50))
def test_a_commit_learned_from_the_acceptors_waits_for_the_coordinators_epochs(
        first: int) -> None:
    stats: Counter[str] = Counter()
    for seed in range(first, first + 50):
        stats.update(run(seed, commit_cuts=True).stats)  # ReplacementFailure names the seed
    assert stats["cut at its COMMIT"] > 0 and stats["COMMIT learned from the acceptors"] > 0, \
        stats


# Found by the sweep of seeds 0..2,999 with commit_cuts and the rule off (16 of them):
# the cut worker learns the COMMIT from the acceptors after its step was placed again
# elsewhere and, the COMMIT taken for contact, starts it with a whole lease beside the
# replacement (seed 84: for 6.5 s with a 4 s lease).
LEARNED_COMMIT_SEEDS = (84, 368, 382)


@pytest.mark.parametrize("seed", LEARNED_COMMIT_SEEDS)
def test_a_commit_from_the_acceptors_taken_for_contact_breaks_the_check(seed: int) -> None:
    with pytest.raises(ReplacementFailure, match="at once"):
        run(seed, commit_cuts=True, learned_commit_rule=False)
    world = run(seed, commit_cuts=True)  # under the rule: nothing starts on it alone
    assert world.stats["COMMIT learned from the acceptors"] > 0
