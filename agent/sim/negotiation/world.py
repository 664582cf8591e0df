"""What the simulator's parts see of each other, as Protocols.

The run (simulation.py) builds the agents, the checker and the liar, and they call
back into it; the boundary checks an agent's inputs. Typing those call-backs against
these Protocols, not against the classes, keeps the imports one way (the simulation
imports its parts, never the reverse).
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Protocol

from fedorch.core.negotiation.coordinator import Coordinator
from fedorch.core.negotiation.messages import Key, TxInfo
from fedorch.core.node.retention import Retention
from fedorch.gen.fedorch.v1 import spec_pb2
from fedorch.sim.negotiation.disk import Disk

# Retention in the seeded runs: short enough that every run forgets most of its ended
# workflows (runs end at 110 s; workflows end within the first 40) and keeps at most a
# few beyond the count; never before 40 s since the last mark, above the oldest message
# a run delivers (a pause of up to 25 s plus a delay of up to 12 s).
SIM_RETENTION = Retention(keep_ended_s=30.0, max_ended_workflows=2, late_message_s=40.0)


class World(Protocol):
    """The simulation as its agents, checker and liar use it (simulation.Simulation)."""

    names: list[str]
    now: float
    config: Any  # config.Config: the seed's federation, workflows and faults
    agents: dict[str, Any]  # name -> agent.SimAgent
    checker: Any  # check.Checker
    keyring: Any  # keyring.Keyring: the domains' keys and genuine key records
    workflows: dict[str, str]  # workflow id -> its coordinator
    dead_forever: set[str]
    stats: Counter[str]
    clock_check: Any  # clock_check.ClockCheck: leases and timeouts against clock steps
    last_restart: dict[str, float]  # the last restart of each agent
    stated_rounds: set[TxInfo]  # every round a coordinator sent a PREPARE of
    membership: Any  # takeover.MembershipFeed: each agent's view, told to its Node
    fences: Any  # fence_check.FenceWatch: attempts, boots, pauses, deliveries

    def agent_seed(self, name: str, incarnation: int) -> int: ...
    def config_spec(self, workflow_id: str) -> spec_pb2.WorkflowSpec | None: ...
    def send(self, src: str, dst: str, msg: object) -> None: ...
    def crash_point(self, agent: Any, what: str) -> None: ...
    def schedule_step(self, agent: Any, run: tuple[str, str, int], delay: float) -> None: ...
    def calm_since(self, agents: tuple[str, ...]) -> float: ...
    def member_state(self, observer: str, name: str) -> str: ...


class Member(Protocol):
    """A simulated agent as the input boundary checks it (agent.SimAgent: a driver around
    a Node; `disk` is the Node's view of its tables while it is up)."""

    name: str
    sim: World
    disk: Disk
    coordinators: dict[str, Coordinator]
    node: Any  # its core.node.Node: the authority table reads it (core/node/authority.py)

    def _tx_of(self, key: Key) -> TxInfo | None: ...
