"""The simulator's retention (agent/sim/negotiation/world.py, SIM_RETENTION: keep_ended_s
30 s, late_message_s 40 s) is shorter than the doubt of a participant that is paused,
restarted or cut off. With acceptor records forgotten with their workflow, the seeds
below decided a round both COMMIT and ABORT (docs/retention.md, "Forgetting acceptor
records: not built yet"); each must hold every invariant."""

from __future__ import annotations

import pytest
from fedorch.sim.negotiation.run import Simulation, run

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
    assert d0.acceptor[key].accepted_value.commit  # ...but not the COMMIT it accepted
    assert sim.agents["d2"].node.state.learned[key].commit
