"""A config reload (SIGHUP) reaching the node engine: the Node's policy, capacities and
labels, and the executors of the attempts it starts next.

Theory of operation
-------------------
The daemon's SIGHUP re-reads the config file and hands it to `Agent.reload`, which
applies what the Agent keeps (log level, trust, labels and capabilities in its
record, policy). With `engine: node`, the Node votes and reserves, so the reload must
reach it too; and it must reach it *in order*: a PREPARE stepped in the same turn
before the reload is judged by the old policy, every one after by the new. So the
reload is not applied to the Node from the signal handler's task: the engine posts a
`Reconfigure` input to the driver loop (`NodeAgent._config_reloaded`), built from what
`Agent.reload` left (copies: the Agent's own config objects change in place on the next
reload), and `ReconfiguringNode`, the outermost node the driver steps, applies it
between the turn's other inputs: `Node.reconfigure(policy=..., capacities=...,
labels=...)` (the labels a step's constraints are checked against; reservations
already granted stay, a capacity shrunk below what is reserved refuses new ones until
under), then the executors of attempts started from then on
(`NodeExecutors.reconfigure`; a running attempt keeps its own), then `on_applied` (the
engine re-offers its domain record, whose free capacity is the Node's). Every other
input goes on to the node it wraps, unchanged.

The Node's policy and labels are copies of the config's (engine.py builds them so):
nothing changes them but a Reconfigure stepped in a turn.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fedorch.gen.fedorch.v1 import config_pb2
from fedorch.runtime.executors.base import Executor
from fedorch.runtime.node_engine.layer import NodeLayer, Refuse, step_each

__all__ = ["Reconfigure", "ReconfiguringNode", "copied_policy", "reconfigure_of"]


@dataclass(frozen=True, eq=False)
class Reconfigure:
    """A driver input: the configuration the Node and the executors run by from now."""

    policy: config_pb2.Policy
    capacities: Mapping[str, int]
    executors: Mapping[str, Executor]
    labels: Mapping[str, str] | None = None  # None: unchanged


def copied_policy(policy: config_pb2.Policy) -> config_pb2.Policy:
    """A policy of the Node's own, which no later change to the config's touches."""
    copy = config_pb2.Policy()
    copy.CopyFrom(policy)
    return copy


def reconfigure_of(agent: Any) -> Reconfigure:
    """The Reconfigure of what a reload left in `agent` (its config's policy, its
    capacities and executors by capability, labels), as copies."""
    return Reconfigure(copied_policy(agent.config.policy), dict(agent.capacities),
                       dict(agent.executors), dict(agent.config.labels))


class ReconfiguringNode(NodeLayer):
    """The node the driver steps: a `Reconfigure` is applied here, in the turn; any
    other input is stepped by `inner` (the StorageGate, and through it the Node)."""

    def __init__(self, inner: Any, node: Any, executors: Any,
                 on_applied: Callable[[], None] | None = None) -> None:
        """`node`: the Node (`reconfigure`); `executors`: the NodeExecutors
        (`reconfigure`); `on_applied`: told after each one is applied."""
        super().__init__(inner)
        self.node = node
        self.executors = executors
        self.on_applied = on_applied
        self.applied = 0

    def step(self, now: float, event: object) -> None:
        if type(event) is Reconfigure:
            self.node.reconfigure(
                policy=event.policy, capacities=dict(event.capacities),
                labels=dict(event.labels) if event.labels is not None else None)
            self.executors.reconfigure(event.executors)
            self.applied += 1
            if self.on_applied is not None:
                self.on_applied()
            return
        self.inner.step(now, event)

    def step_batch(self, now: float, events: Sequence[object], refuse: Refuse) -> None:
        # A Reconfigure rules the inputs after it, not those before: a turn with one
        # (a reload's, rare) goes input by input; any other turn goes on whole.
        for event in events:
            if type(event) is Reconfigure:
                step_each(self.step, now, events, refuse)
                return
        self.pass_batch(now, events, refuse)
