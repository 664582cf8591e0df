"""The simulated agent's ports: what the production driver (runtime/driver.py) needs
from the world, answered by the simulation.

- `SimClock`: `monotonic()` is the simulation's time, which never steps; `wall_ms()`
  is that time plus this agent's wall-clock offset, which a clock-step fault changes
  (run.py's `clock_step`). Each agent has its own offset, as each host its own clock.
- `SimDisk` (Durable): before each write group a crash point (the simulation may
  stop the agent right there), then the group's ops applied to the agent's `Disk`,
  which survives crashes (the clock check sees the group just before: a takeover
  claim is judged against what the agent followed), then its notes handed to the
  invariant checker.
- `SimTransport`: a crash point before each send, then the simulated network.
- `SimExecutors`: an attempt's end is scheduled a seeded while later (its outcome is
  drawn when it ends, agent.py); stopping is dropping a finished workflow's ends on
  arrival, so `stop` has nothing to do.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from fedorch.core.node.ready import Write, apply
from fedorch.sim.negotiation.boundary import SIM_EPOCH_MS

if TYPE_CHECKING:
    from fedorch.sim.negotiation.world import World


class SimClock:
    def __init__(self, sim: World) -> None:
        self.sim = sim
        self.offset_s = 0.0  # this host's wall clock minus true time (clock steps)

    def monotonic(self) -> float:
        return self.sim.now

    def wall_ms(self) -> int:
        return SIM_EPOCH_MS + int((self.sim.now + self.offset_s) * 1000)

    def wall_ms_at(self, monotonic: float) -> int:
        """The Node's `wall_ms(now)`: the wall clock's reading at that monotonic time."""
        return SIM_EPOCH_MS + int((monotonic + self.offset_s) * 1000)


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
                getattr(checker, what)(agent.name, *facts)
            sim.clock_check.written(agent.name, write)


class SimTransport:
    def __init__(self, agent: Any) -> None:
        self.agent = agent

    def send(self, dst: str, msg: object) -> None:
        agent = self.agent
        agent.sim.crash_point(agent, f"send {type(msg).__name__}")
        agent.sim.send(agent.name, dst, msg)


class SimExecutors:
    def __init__(self, agent: Any) -> None:
        self.agent = agent

    def start(self, run: tuple[str, str, int]) -> None:
        agent = self.agent
        agent.sim.schedule_step(agent, run, agent.rng.uniform(0.05, 0.6))

    def stop(self, run: tuple[str, str, int]) -> None:
        return None  # ends of a finished workflow are dropped on arrival (agent.step_done)
