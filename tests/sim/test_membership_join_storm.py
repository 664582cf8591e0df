"""A join storm in the simulator: 50 members started within a few seconds of each other,
all joining through the same three seeds (the join-storm-50 scenario's shape).

Every member's alive claim carries its domain record (about 250 bytes of capabilities,
labels, endpoint and key). A joining member learns from the seeds' push-pull only the
members that had joined before it; the later ones reach it by gossip, piggy-backed on
probes. How many records one message can carry (``max_message_bytes``) therefore sets
how fast a storm converges: at 1,400 bytes (a UDP datagram's size, which gossip over
gRPC does not need) a message carried about four records and 50 members took 10-18 s
after the last join; with the ``lan`` profile's 8 KiB every seed converges well within
the 5 s target.
"""

from __future__ import annotations

import random

import pytest
from fedorch.core.membership import swim
from fedorch.core.membership.swim_profiles import SwimProfile, make_profile
from fedorch.core.membership.swim_types import MemberState
from fedorch.sim.membership import Simulation

MEMBERS = 50
RECORD_BYTES = 250
START_SPREAD_S = 3.0
TARGET_S = 5.0


def converged(sim: Simulation) -> bool:
    """Every member sees every other ALIVE, with its record."""
    for node in sim.nodes:
        for name in sim.names:
            if name == node.name:
                continue
            view = node.member(name)
            if view is None or view.state is not MemberState.ALIVE or not view.record:
                return False
    return True


def storm(profile: SwimProfile, seed: int, bound_s: float, service: float = 0.0
          ) -> tuple[float | None, Simulation]:
    """A storm of MEMBERS joining within START_SPREAD_S through three seeds (each member
    handling its events `service` seconds each: a starved host); seconds from the last
    join until every view is whole (None past the bound), and the simulation."""
    sim = Simulation(MEMBERS, seed=seed, profile=profile, service=service)
    seeds = sim.addresses[:3]
    rng = random.Random(seed)
    last_join = 0.0
    for node in sim.nodes:
        when = rng.uniform(0.0, START_SPREAD_S)
        last_join = max(last_join, when)

        def start(node=node) -> None:
            node.publish_record(sim.now, node.name.encode().ljust(RECORD_BYTES, b"."))
            sim.join(node.name, seeds)  # (schedules the member's next timer too)

        sim.at(when, start)
    sim.run_until(last_join)
    while sim.now < last_join + bound_s:
        if converged(sim):
            return sim.now - last_join, sim
        sim.run_for(0.1)
    return None, sim


def seconds_to_converge(profile: SwimProfile, seed: int, bound_s: float) -> float | None:
    """Seconds from the last member's join until every view is whole; None past the bound."""
    return storm(profile, seed, bound_s)[0]


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_a_storm_of_50_converges_within_the_target(seed: int) -> None:
    took = seconds_to_converge(make_profile("lan"), seed, bound_s=TARGET_S)
    assert took is not None, f"seed {seed}: not converged {TARGET_S}s after the last join"


def test_datagram_sized_messages_converge_too_slowly_on_gossip_alone(monkeypatch) -> None:
    # The contrast that shows what the bound is for: the same storms with messages of a
    # UDP datagram's size, repaired only by the periodic full-state exchange, miss the
    # target. (A member now exchanges full state soon after news of an unknown member,
    # which repairs them too: 2.6-3.7 s for these seeds. Both hold the target alone.)
    monkeypatch.setattr(swim, "SETTLE_PUSH_PULL_PERIODS", 10**6)
    small = make_profile("lan", max_message_bytes=1400)
    missed = [seed for seed in (1, 3, 5) if seconds_to_converge(small, seed, TARGET_S) is None]
    assert missed == [1, 3, 5]


@pytest.mark.parametrize("seed", [1, 3, 5])
def test_datagram_sized_messages_converge_with_the_early_exchange(seed: int) -> None:
    small = make_profile("lan", max_message_bytes=1400)
    assert seconds_to_converge(small, seed, TARGET_S) is not None
