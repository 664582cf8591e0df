"""The simulator's retention (agent/sim/negotiation/world.py, SIM_RETENTION: keep_ended_s
30 s, late_message_s 40 s; so a round lives 50 s, and its acceptor records go 90 s after
it began) is shorter than the doubt of a participant that is paused, restarted or cut
off. With acceptor records forgotten with their workflow (and no round life), the seeds
below decided a round both COMMIT and ABORT (docs/retention.md, "Forgetting acceptor
records"); each must hold every invariant, and a participant in doubt past its round's
life stays in doubt, never decides it again."""

from __future__ import annotations

import pytest
from fedorch.sim.negotiation.run import Simulation, run, seeded_config

# (seed, --takeover seconds or None): the runs a forgotten decision failed.
DECIDED_TWICE_WHEN_FORGOTTEN = [(201539, None)]


@pytest.mark.parametrize("seed, takeover", DECIDED_TWICE_WHEN_FORGOTTEN)
def test_a_decision_outlives_the_doubt_of_its_participants(seed: int,
                                                           takeover: float | None) -> None:
    run(seed, takeover_after_s=takeover)  # raises SimulationFailure on any violation


def test_seed_201539_is_an_extra_acceptor_remembering_for_a_paused_participant() -> None:
    """d1 coordinates d1.w0 (one step, on d2; d0 an extra acceptor) and dies for good
    once its COMMIT reached d0; d2, in doubt, is paused and restarted, and asks only
    after d0 forgot the workflow: d0's acceptor record must still hold the COMMIT."""
    sim = Simulation(201539, cancels=True)
    report = sim.run()
    assert report.violations == []
    assert report.dead_forever == ["d1"] and sim.config.pause[0] == "d2"
    key = ("d1.w0", 1)
    d0 = sim.agents["d0"].node.state
    assert "d1.w0" not in d0.endings  # forgotten by retention...
    assert d0.acceptor[key].tx.participants == ("d2",)
    # ...but not the COMMIT it accepted: d2 asked 45 s after the round began, within
    # its life, and d0's wall clock is an hour behind, so the record is still due.
    assert d0.acceptor[key].accepted_value.commit
    assert sim.agents["d2"].node.state.learned[key].commit


def test_seed_201539_with_the_participant_paused_past_the_rounds_life_stays_in_doubt() -> None:
    """The same run, d0's clock not stepped and d2 paused for 120 s (the run going on to
    400 s): d0 forgets the round's acceptor record 90 s after it began, before d2 asks.
    d0 refuses d2's recovery ballot (below its horizon of d1's rounds) instead of
    promising it blank: d2 stays in doubt, its reservation held, the round decided
    COMMIT alone. The checker exempts d2 (in doubt past the round's life), nothing
    else."""
    config = seeded_config(201539, None)
    config.clock_steps, config.pause, config.end = (), ("d2", 4, 120.0), 400.0
    sim = Simulation(201539, config, cancels=True)
    report = sim.run()
    assert report.violations == []
    key = ("d1.w0", 1)
    d0 = sim.agents["d0"].node.state
    assert key not in d0.acceptor and key not in d0.learned  # forgotten, in memory too
    assert sim.agents["d0"].node.acceptor.record(key) is None
    assert d0.horizons["d1"] == sim.checker.txs[key].created_ms
    assert key not in sim.agents["d2"].node.state.learned
    assert sim.agents["d2"].participant.status(key) == "prepared"  # in doubt, held
    assert sim.checker._decisions[key] == {True}  # COMMIT, and never ABORT
    assert sim.checker.past_life == {("d2", key)}
    assert report.stats["in doubt past the round's life"] == 1
