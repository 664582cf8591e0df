"""Seeded schedules of domain deaths with step re-placement, each checked for the
invariants of agent/sim/negotiation/replacement_check.py (check_replacement): no step that is not
idempotent runs in two placements, no attempt twice, no two placements of a step at once
beyond one lease, every workflow terminal, no reservation left at a live domain.

A failure names its seed; `ReplacementWorld(seed).run()` replays it exactly."""

from __future__ import annotations

from collections import Counter

import pytest
from fedorch.sim.negotiation.replacement import ReplacementWorld, Run, run
from fedorch.sim.negotiation.replacement_check import (
    ReplacementFailure,
    check_replacement,
    replacement_deadline,
)

RUNS = 1_000
BLOCK = 250


@pytest.mark.parametrize("first", range(0, RUNS, BLOCK))
def test_seeded_schedules_hold_every_invariant(first: int) -> None:
    for seed in range(first, first + BLOCK):
        run(seed)  # raises ReplacementFailure("seed N: ...") on any violation


def test_the_schedules_reach_every_path() -> None:
    """Deaths before and while steps run, idempotent or not: every path happens."""
    stats: Counter[str] = Counter()
    for seed in range(300):
        stats.update(ReplacementWorld(seed).run().stats)
    for path in ("killed during a step", "replace before start",
                 "replace when it may have started", "re-placed", "loss FAIL_STARTED",
                 "loss FAIL_BY_SPEC"):
        assert stats[path] > 10, (path, stats)


def test_a_seed_replays_exactly() -> None:
    assert ReplacementWorld(77).run().runs == ReplacementWorld(77).run().runs


def test_the_checks_catch_a_step_run_twice() -> None:
    world = ReplacementWorld(5).run()
    world.runs.append(Run("co.99", "s0", "w0", 1, False, 0.0, 1.0, True))
    world.runs.append(Run("co.99", "s0", "w1", 1, False, 2.0, 3.0, True))
    with pytest.raises(ReplacementFailure, match="not idempotent and ran on"):
        check_replacement(world)


def test_the_checks_catch_two_placements_at_once_and_a_leak() -> None:
    world = ReplacementWorld(5).run()
    world.runs = [Run("co.0", "s0", "w0", 1, True, 0.0, None),
                  Run("co.0", "s0", "w1", 1, True, 1.0, None)]
    with pytest.raises(ReplacementFailure, match="at once"):
        check_replacement(world)
    world.runs = []
    live = next(w for w in world.workers.values() if w.alive)
    live.participant.prepare(0.0, workflow_id="co.9", round=1, coordinator="co",
                             data_labels={}, steps=[("s0", "work")])
    with pytest.raises(ReplacementFailure, match="reservations leaked"):
        check_replacement(world)


def test_every_workflow_ends_within_the_bound_after_the_last_fault() -> None:
    """The bound is checked in every seeded run; here it is shown to fire: a workflow
    that ended later than its deadline is a violation."""
    world = ReplacementWorld(5).run()
    flow = world.flows["co.0"]
    due = replacement_deadline(world, flow)
    assert flow.ended_at is not None and flow.ended_at <= due
    assert due >= max(world.last_fault, flow.submitted_at) + world.dead_after_s
    flow.ended_at = due + 0.01
    with pytest.raises(ReplacementFailure, match="ended at the coordinator at"):
        check_replacement(world)
