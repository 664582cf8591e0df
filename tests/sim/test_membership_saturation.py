"""A saturated host in the simulator: every member slow to hear and to answer.

When every agent of a federation shares starved CPUs, peer calls time out (lost) and
the rest arrive late. Every member's own probes then fail without the expected Nacks, so
Lifeguard's local health rises everywhere; the suspicion timeouts, which count probe
periods, stretch with it. Without that stretch, members accused each other faster than
their refutations could arrive and live members were declared DEAD (4 verdicts for each
of these seeds).
"""

from __future__ import annotations

import pytest
from fedorch.core.membership.swim_types import MemberState
from fedorch.sim.membership import Simulation

ALIVE, SUSPECT, DEAD = MemberState.ALIVE, MemberState.SUSPECT, MemberState.DEAD

# Starved: 30% of messages lost (calls past their deadline), the rest 0.3 s to 1.3 s late.
SATURATED = {"loss": 0.30, "delay": 0.3, "jitter": 1.0}


def saturated(n: int, seed: int) -> Simulation:
    sim = Simulation(n, seed=seed)
    sim.bootstrap()
    sim.run_for(3.0)  # converged on a quiet host first, as in the join-storm scenario
    sim.loss, sim.delay, sim.jitter = (SATURATED[k] for k in ("loss", "delay", "jitter"))
    return sim


@pytest.mark.parametrize("seed", [1, 2])
def test_a_saturated_federation_of_50_declares_no_live_member_dead(seed: int) -> None:
    sim = saturated(50, seed)
    sim.run_for(100.0)
    assert sim.dead_verdicts == []
    # The saturation did bite: members grew sick and suspected each other.
    assert max(node.health for node in sim.nodes) > 0
    assert sum(node.stats["suspicions_raised"] for node in sim.nodes) > 0
    assert all(sim.state_of(o, s) in (ALIVE, SUSPECT) for o in sim.names for s in sim.names)


def test_a_crash_is_still_declared_dead_on_a_saturated_host() -> None:
    sim = saturated(30, seed=3)
    sim.run_for(20.0)  # every member sick first
    sim.crash("m0011")
    crashed_at = sim.now
    while not sim.all_see(DEAD, ["m0011"]) and sim.now - crashed_at < 120.0:
        sim.run_for(1.0)
    assert sim.all_see(DEAD, ["m0011"])
    assert {v.subject for v in sim.dead_verdicts} == {"m0011"}
