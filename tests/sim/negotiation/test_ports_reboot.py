"""Restarts on another monotonic clock in the seeded runs (ports.SimClock.reboot): half
of the restarts are reboots, whose clock starts near zero or reads far above the one
the disk was written on. The runs hold every invariant, leases included (clock_check:
no first query sooner than a lease after its reservation, in true time); a Node that
read its stored lease instants back on the new clock fails them."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from fedorch.core.node import negotiation
from fedorch.sim.negotiation.run import Simulation

SEEDS = range(100, 150)


def _run_seeds() -> tuple[Counter[str], list[str]]:
    stats: Counter[str] = Counter()
    violations: list[str] = []
    for seed in SEEDS:
        report = Simulation(seed).run()
        stats.update(report.stats)
        violations += [f"seed {seed}: {v}" for v in report.violations]
    return stats, violations


def test_runs_with_reboots_hold_every_invariant():
    stats, violations = _run_seeds()
    assert violations == []
    assert stats["reboot: monotonic clock near zero"] > 0
    assert stats["reboot: monotonic clock far above"] > 0


def test_a_node_reading_its_leases_back_on_a_rebooted_clock_is_caught(monkeypatch):
    """The runs can fail: leases taken from the disk as they were written (on the
    clock of a boot that is gone) fire early after a reboot far above."""

    def as_written(hold, now, lease_s):
        return replace(hold, steps=list(hold.steps))

    monkeypatch.setattr(negotiation, "restarted", as_written)
    _, violations = _run_seeds()
    assert any("lease fired early" in v for v in violations), violations
