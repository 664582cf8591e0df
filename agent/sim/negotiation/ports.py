"""The simulated agent's ports: what the production driver (runtime/driver.py) needs
from the world, answered by the simulation.

- `SimClock`: `monotonic()` is the simulation's time plus this boot's offset, which
  never steps while the agent is up; a restart may be a reboot, whose monotonic clock
  is another (`reboot`: far below or far above the one the disk was written on).
  `wall_ms()` is the simulation's time plus this host's wall-clock offset, which a
  clock-step fault changes (simulation.py's `_clock_step`) and a reboot does not. Each
  agent has its own offsets, as each host its own clocks. `sim_time` turns an instant of the
  monotonic clock back into the simulation's, for the scheduler and the checker.
- `SimDisk` (Durable): before each write group a crash point (the simulation may
  stop the agent right there), then the group's ops applied to the agent's `Disk`,
  which survives crashes (the clock check sees the group just before: a takeover
  claim is judged against what the agent followed), then its notes handed to the
  invariant checker.
- `SimTransport`: a crash point before each send, then the simulated network. Each
  message goes as the daemon's wire would carry it: encoded by the node codec and
  decoded with its type checks (`NodeCodec.decode(checked=True)`, as the daemon's
  boundary decodes a peer's bytes), so a field the Node fills with another type than
  it declares fails the seeded runs rather than a federation, and no receiver shares
  an object with its sender.
- `SimExecutors`: an attempt's end is scheduled a seeded while later (its outcome is
  drawn when it ends, agent.py); stopping is dropping a finished workflow's ends on
  arrival, so `stop` has nothing to do.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from fedorch.core.node.ready import Write, apply
from fedorch.runtime.node_codec import node_codec
from fedorch.sim.negotiation.boundary import SIM_EPOCH_MS

if TYPE_CHECKING:
    from fedorch.sim.negotiation.world import World


# A reboot's monotonic clock, against the simulation's time: near zero (what a fresh
# boot reads, below what a long-running one wrote) or far above (a host up for days).
REBOOT_SHARE = 0.5  # of restarts: the rest are process restarts on the same clock
FAR_ABOVE_S = (10_000.0, 1_000_000.0)
# How long an attempt runs (drawn between the two); a targeted test may lengthen it.
STEP_S = (0.05, 0.6)


class SimClock:
    def __init__(self, sim: World) -> None:
        self.sim = sim
        self.offset_s = 0.0  # this host's wall clock minus true time (clock steps)
        self.boot_offset_s = 0.0  # this boot's monotonic clock minus true time

    def monotonic(self) -> float:
        return self.sim.now + self.boot_offset_s

    def wall_ms(self) -> int:
        return SIM_EPOCH_MS + int((self.sim.now + self.offset_s) * 1000)

    def wall_ms_at(self, monotonic: float) -> int:
        """The Node's `wall_ms(now)`: the wall clock's reading at that monotonic time."""
        return SIM_EPOCH_MS + int((self.sim_time(monotonic) + self.offset_s) * 1000)

    def sim_time(self, monotonic: float) -> float:
        """An instant of this boot's monotonic clock as the simulation's time: the
        first at which the clock reads it (rounding must not leave a deadline a hair
        ahead of the clock when the simulation wakes the agent for it)."""
        at = monotonic - self.boot_offset_s
        while at + self.boot_offset_s < monotonic:
            at = math.nextafter(at, math.inf)
        return at

    def reboot(self, rng: random.Random) -> None:
        """A restart: the same monotonic clock (a process restart), or a reboot's, which
        starts near zero or reads far above; the wall clock goes on as it was."""
        if rng.random() >= REBOOT_SHARE:
            return
        if rng.random() < 0.5:
            self.boot_offset_s = rng.uniform(0.0, 1.0) - self.sim.now
            self.sim.stats["reboot: monotonic clock near zero"] += 1
        else:
            self.boot_offset_s = rng.uniform(*FAR_ABOVE_S)
            self.sim.stats["reboot: monotonic clock far above"] += 1


class SimDisk:
    def __init__(self, agent: Any) -> None:
        self.agent = agent

    def write(self, writes: Sequence[Write]) -> None:
        agent = self.agent
        sim = agent.sim
        checker = sim.checker
        for write in writes:
            sim.crash_point(agent, write.point)
            sim.clock_check.writing(agent.name, agent.durable, write)
            apply(agent.durable, write.ops)
            for what, *facts in write.notes:
                getattr(checker, what)(agent.name, *_in_sim_time(agent.clock, what, facts))
            sim.clock_check.written(agent.name, write)


# The notes (the Node's observations, ready.py) that carry instants of the Node's clock,
# and where: the checker reads them in the simulation's time.
NOTE_TIMES: dict[str, tuple[int, ...]] = {
    "yes_voted": (1, 2),     # (tx, lease, now)
    "decided": (2,),         # (key, value, now)
    "learned": (2,),         # (key, value, now)
    "released_at_end": (1,),  # (key, now): a re-placement YES, the workflow ended
    "released_void": (1,),   # (key, now): a re-placement YES, its round answered void
    "step_started": (1,),    # (run, now)
    "ended_here": (1,),      # (wf, now)
    "acting": (2,),          # (wf, epoch, now)
    "step_lost": (3,),       # ((wf, step), domain, action, now)
    "placed_again": (4,),    # ((wf, step), domain, epoch, idempotent, now)
    "compensation_started": (1,),  # (run, now)
}


def _in_sim_time(clock: SimClock, what: str, facts: list) -> list:
    for i in NOTE_TIMES.get(what, ()):
        facts[i] = clock.sim_time(facts[i])
    return facts


class SimTransport:
    def __init__(self, agent: Any) -> None:
        self.agent = agent
        self.codec = node_codec()

    def send(self, dst: str, msg: object) -> None:
        agent = self.agent
        agent.sim.crash_point(agent, f"send {type(msg).__name__}")
        codec = self.codec
        agent.sim.send(agent.name, dst, codec.decode(codec.encode(msg), checked=True))


class SimExecutors:
    def __init__(self, agent: Any) -> None:
        self.agent = agent

    def start(self, run: tuple[str, str, int]) -> None:
        agent = self.agent
        if len(run) == 3:  # a step's attempt; a compensation's is never fenced (nobody
            agent.sim.fences.started(agent.name, run)  # runs it elsewhere: no failover)
        agent.sim.schedule_step(agent, run, agent.rng.uniform(*STEP_S))

    def stop(self, run: tuple[str, str, int]) -> None:
        # Its end is dropped on arrival (agent.step_done): the attempt ends now.
        self.agent.sim.fences.ended(self.agent.name, run)
