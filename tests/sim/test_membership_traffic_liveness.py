"""A member slow to answer probes but still sending peer calls is not declared DEAD.

On a starved host the busiest agent (a coordinator of a 50-domain fan-out) answers SWIM
probes seconds late, yet keeps sending signed PREPAREs, COMMITs and acknowledgements to
the others. Every such message is proof of life (the shell passes its signer to
`Swim.heard_from`), so a member's last-chance check before a DEAD verdict waits another
period for a suspect that has talked to it since the last check. A member that crashed
sends nothing more and is judged as before.

The simulator stands in for the slow member with a stall (it answers nothing, its
messages wait), and for its peer calls with `heard_from` fed to every other member.
"""

from __future__ import annotations

from fedorch.core.membership.swim_profiles import suspicion_bounds
from fedorch.core.membership.swim_types import MemberState
from fedorch.sim.membership import Simulation

SLOW = "m0001"
MEMBERS = 6
STALL_S = 12.0
TRAFFIC_EVERY_S = 0.5


def settled(seed: int) -> Simulation:
    sim = Simulation(MEMBERS, seed=seed)
    sim.bootstrap()
    sim.run_for(2.0)
    return sim


def traffic_from(sim: Simulation, who: str, start: float, until: float) -> None:
    """`who` sends a peer call to every other member every TRAFFIC_EVERY_S until `until`."""
    t = start
    while t < until:
        def deliver() -> None:
            for node in sim.nodes:
                if node.name != who and not sim.crashed[sim.index[node.name]]:
                    node.heard_from(sim.now, who)
        sim.at(t, deliver)
        t += TRAFFIC_EVERY_S


def verdicts_about(sim: Simulation, name: str) -> list:
    return [v for v in sim.dead_verdicts if v.subject == name]


def suspected(sim: Simulation, name: str) -> bool:
    return any(sim.state_of(o, name) is MemberState.SUSPECT for o in sim.names if o != name)


def test_a_stalled_member_without_traffic_is_declared_dead() -> None:
    # The contrast: the stall alone is long enough for a verdict.
    sim = settled(seed=5)
    sim.stall(SLOW, STALL_S)
    sim.run_for(STALL_S)
    assert verdicts_about(sim, SLOW)


def test_a_stalled_member_that_keeps_sending_peer_calls_is_suspected_but_not_dead() -> None:
    for seed in (5, 6, 7):
        sim = settled(seed)
        sim.stall(SLOW, STALL_S)
        traffic_from(sim, SLOW, sim.now + TRAFFIC_EVERY_S, sim.now + STALL_S)
        seen_suspect = False
        end = sim.now + STALL_S
        while sim.now < end:
            sim.run_for(0.25)
            seen_suspect = seen_suspect or suspected(sim, SLOW)
        assert seen_suspect, f"seed {seed}: the stall never raised a suspicion"
        assert verdicts_about(sim, SLOW) == [], f"seed {seed}"
        # Once it answers again it refutes, and everyone holds it ALIVE.
        sim.run_for(3.0)
        assert all(sim.state_of(o, SLOW) is MemberState.ALIVE for o in sim.names if o != SLOW)


def test_a_member_whose_traffic_stops_is_judged_as_before() -> None:
    sim = settled(seed=6)
    sim.stall(SLOW, 60.0)
    last_call = sim.now + 6.0
    traffic_from(sim, SLOW, sim.now + TRAFFIC_EVERY_S, last_call)
    sim.run_until(last_call)
    assert verdicts_about(sim, SLOW) == []
    sim.crash(SLOW)  # no more calls, no more answers
    shortest, longest = suspicion_bounds(sim.profile, MEMBERS)
    sim.run_for(longest + 4 * sim.profile.probe_interval)
    [first, *_] = sorted(verdicts_about(sim, SLOW), key=lambda v: v.at)
    assert first.at - last_call <= longest + 4 * sim.profile.probe_interval
