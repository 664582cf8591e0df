"""A join storm of 50 on a starved host: every member slow to handle anything.

On a saturated machine each agent gets a few per cent of a core: it handles its messages
and timers one at a time, and what arrives meanwhile waits its turn. The simulator's
`service` models that (each event takes `service` seconds on average, one after the
other). With fixed probe timings the members' queues grow with their own probing:
answers come later than the probe timeout, indirect probes and suspicions add messages,
and live members are held SUSPECT somewhere all the time, so the federation's views are
never whole (at 0.05 s an event: not within 20 s for any of three seeds; they were whole
6.6-7.8 s after the last join with the changes below; at 0.03 s an event within 3 s
either way). Three things keep it whole:

- the probe timeout follows the measured round trip of direct probes (smoothed as TCP's
  retransmission timeout), and so does the probe period: a slow host probes less;
- updates still leave once a base probe period while probing is stretched;
- news of an unknown member brings the next full-state exchange forward (a busy member
  can miss a late joiner's gossip before its retransmissions run out).
"""

from __future__ import annotations

import pytest
from fedorch.core.membership import swim_detector
from fedorch.core.membership.swim_profiles import make_profile
from fedorch.sim.membership import Simulation

from tests.sim.test_membership_join_storm import storm

TARGET_S = 5.0


def starved_storm(seed: int, service: float, bound_s: float) -> tuple[float | None, Simulation]:
    """Seconds from the last join until every view is whole (None past the bound)."""
    return storm(make_profile("lan"), seed, bound_s, service=service)


# Each member gets a twentieth of what it would need to answer at once: the seeds, which
# every joiner exchanges full state with, fall seconds behind during the storm.
STARVED_S = 0.05
STARVED_BOUND_S = 10.0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_starved_storm_of_50_becomes_whole_and_declares_nobody_dead(seed: int) -> None:
    took, sim = starved_storm(seed, STARVED_S, bound_s=STARVED_BOUND_S)
    assert took is not None, f"seed {seed}: not whole {STARVED_BOUND_S}s after the last join"
    assert sim.dead_verdicts == []
    # The host was starved: round trips grew past the base probe timeout somewhere.
    assert max(node.timeout_scale for node in sim.nodes) > 1


@pytest.mark.parametrize("seed", [1, 2])
def test_a_mildly_starved_storm_converges_within_the_target(seed: int) -> None:
    took, sim = starved_storm(seed, 0.03, bound_s=TARGET_S)
    assert took is not None, f"seed {seed}: not whole {TARGET_S}s after the last join"
    assert sim.dead_verdicts == []


def test_with_timings_stretched_by_local_health_alone_it_stays_broken(monkeypatch) -> None:
    # The contrast: round trips not measured, so probing does not slow down with them.
    monkeypatch.setattr(swim_detector.LocalHealth, "sample_rtt", lambda self, rtt: None)
    missed = [seed for seed in (1, 2) if starved_storm(seed, STARVED_S, STARVED_BOUND_S)[0] is None]
    assert missed == [1, 2]


def test_the_starved_model_makes_members_wait_their_turn() -> None:
    # The model itself: with a service time, a member handles fewer events per second
    # than it is sent, so deliveries lag; without one, nothing waits.
    quick = Simulation(10, seed=4)
    quick.bootstrap()
    quick.run_for(5.0)
    slow = Simulation(10, seed=4, service=0.3)
    slow.bootstrap()
    slow.run_for(5.0)
    assert slow.delivered < quick.delivered
