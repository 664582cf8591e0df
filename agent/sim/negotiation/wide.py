"""Wider worlds for the random runs: participants beyond the bounded acceptor set.

A round's acceptors are its coordinator and participants up to `max_acceptors`
(agent/core/negotiation/coordinator.py); a participant beyond the bound only learns
the decision. The base draw (config.Config.random: 3-5 domains, 1-4 steps) seldom has
more than four participants, so some runs are widened, from a stream of their own
(the base draw is left as it was):

* `max_acceptors` 3: with three or more participants besides the coordinator, some
  are learners only;
* a federation of 7-9 domains with a fan-out workflow of 6-8 independent steps,
  with `max_acceptors` 5 or 3.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from fedorch.gen.fedorch.v1 import config_pb2, spec_pb2

NARROW_RATE = 0.2  # share of runs with max_acceptors 3 in the base world
WIDE_RATE = 0.2    # share of runs with the wide federation and its fan-out


@dataclass(frozen=True)
class Widening:
    max_acceptors: int = 5
    # The domains added: name -> (policy, capacities)
    domains: tuple[tuple[str, config_pb2.Policy, dict[str, int]], ...] = ()
    fan_out: tuple[str, float, spec_pb2.WorkflowSpec] | None = None  # coordinator, at, spec


def stream(rng: random.Random) -> random.Random:
    """A generator of its own, seeded from `rng`'s state without drawing from it."""
    copy = random.Random()
    copy.setstate(rng.getstate())
    return random.Random(copy.getrandbits(64) ^ 0x5EED_ACC5)


def draw(rng: random.Random, names: list[str], index: int) -> Widening:
    """How this run is widened (index: the fan-out's workflow number)."""
    p = rng.random()
    if p < NARROW_RATE:
        return Widening(max_acceptors=3)
    if p >= NARROW_RATE + WIDE_RATE:
        return Widening()
    added = [f"d{i}" for i in range(len(names), rng.randint(7, 9))]
    domains = tuple((name, config_pb2.Policy(accept_from=["*"]), {"a": 2, "b": 2})
                    for name in added)
    everyone = [*names, *added]
    steps = [spec_pb2.StepSpec(id=f"s{j}", capability=rng.choice("ab"))
             for j in range(rng.randint(6, 8))]
    spec = spec_pb2.WorkflowSpec(name=f"w{index}", steps=steps)
    return Widening(max_acceptors=rng.choice((3, 5)), domains=domains,
                    fan_out=(rng.choice(everyone), rng.uniform(0.0, 15.0), spec))
