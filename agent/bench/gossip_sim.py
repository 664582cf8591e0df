"""Gossip benchmark, simulation part: dissemination speed and failure-detection accuracy.

Everything runs in the deterministic simulator (virtual time, seeded), so the numbers
describe the protocol, not the machine; a seed reproduces them exactly.

* Dissemination: one member publishes a new record; how many probe periods (and simulated
  seconds) until every member holds it, for N = 16, 64, 256, 1024 at 0% and 5% loss,
  beside ceil(log3 N), the ideal when each informed member informs two more per period.
* Detection: seconds from a crash to the first DEAD verdict about the crashed member
  (and, as ``sim_detection_all_s``, until every member holds it DEAD).
* Accuracy: DEAD verdicts reached about members that never crashed while 10% of members
  stall for 2 s at random moments.
"""

from __future__ import annotations

import math
import random

from fedorch.core.membership.swim_profiles import make_profile
from fedorch.core.membership.swim_types import MemberState
from fedorch.sim.membership import Simulation

SIZES = (16, 64, 256, 1024)
LOSSES = (0.0, 0.05)
_DISSEMINATION_CAP_S = 60.0


def ceil_log3(n: int) -> int:
    rounds, reach = 0, 1
    while reach < n:
        reach *= 3
        rounds += 1
    return rounds


def measure_dissemination(n: int, seed: int) -> list[dict]:
    """One bootstrapped federation per size; one publication per loss rate."""
    profile = make_profile("lan")
    sim = Simulation(n, seed=seed, profile=profile)
    sim.bootstrap()
    sim.run_for(3.0)  # let probe phases spread out before measuring
    rows = []
    for version_tag, loss in enumerate(LOSSES):
        sim.loss = loss
        origin = sim.names[(version_tag * 7) % n]
        published_at = sim.now
        sim.publish(origin, f"record of {origin} #{version_tag}".encode() + b"." * 120)
        finished = None
        while finished is None and sim.now - published_at < _DISSEMINATION_CAP_S:
            sim.run_for(0.5)
            finished = sim.dissemination_time(origin)
        seconds = (finished - published_at) if finished is not None else math.inf
        rows.append({
            "n": n, "loss": loss,
            "rounds": math.ceil(seconds / profile.probe_interval) if finished else None,
            "log3_n": ceil_log3(n), "seconds": round(seconds, 3),
        })
        sim.run_for(5.0)  # let the previous update's gossip fade out
    return rows


def measure_detection(seed: int, n: int = 64, crashes: int = 3) -> tuple[float, float]:
    """Mean seconds from a crash to the first DEAD verdict, and to DEAD everywhere."""
    sim = Simulation(n, seed=seed)
    sim.bootstrap()
    sim.run_for(5.0)
    rng = random.Random(seed)
    first, everywhere = [], []
    for victim in rng.sample(sim.names, crashes):
        crashed_at = sim.now
        sim.crash(victim)
        while sim.now - crashed_at < 120.0:
            sim.run_for(0.25)
            if sim.all_see(MemberState.DEAD, [victim]) or _reaped_everywhere(sim, victim):
                break
        verdicts = [v.at for v in sim.dead_verdicts if v.subject == victim]
        first.append(min(verdicts) - crashed_at if verdicts else math.inf)
        everywhere.append(sim.now - crashed_at)
        sim.run_for(10.0)
    return sum(first) / crashes, sum(everywhere) / crashes


def _reaped_everywhere(sim: Simulation, victim: str) -> bool:
    return all(sim.state_of(o, victim) in (MemberState.DEAD, None)
               for o in sim.live_names())


def measure_false_dead(seed: int, n: int = 100, duration: float = 120.0,
                       stall_s: float = 2.0, stalls_each: int = 5) -> int:
    """Original DEAD verdicts while 10% of members each stall ``stalls_each`` times."""
    sim = Simulation(n, seed=seed)
    sim.bootstrap()
    sim.run_for(5.0)
    rng = random.Random(seed)
    start = sim.now
    for name in rng.sample(sim.names, max(1, n // 10)):
        for _ in range(stalls_each):
            when = start + rng.random() * (duration - stall_s)
            sim.at(when, lambda name=name: sim.stall(name, stall_s))
    sim.run_for(duration + 30.0)  # and time for any suspicion to run out
    return sum(1 for v in sim.dead_verdicts if v.observer == v.accuser)


def run_gossip_sim_bench(seed: int = 1) -> dict:
    rows = []
    for n in SIZES:
        rows.extend(measure_dissemination(n, seed))
    detection_first, detection_all = measure_detection(seed)
    return {
        "simulation": rows,
        "sim_detection_s": round(detection_first, 3),
        "sim_detection_all_s": round(detection_all, 3),
        "sim_false_dead": measure_false_dead(seed),
    }
