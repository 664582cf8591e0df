"""A simulated run's configuration: the federation, its workflows and the faults.

`Config.random(rng)` draws the fault mix of the seeded runs from one seed: 3-5
domains with random policies and capacities (so some votes are NO), 1-6 workflows
of 1-4 steps submitted at random agents, network loss, duplication and delay, a
partition that heals, a pause, crashes at random crash points, a coordinator that
dies for good, a lying domain, a wall clock that steps, and the wide draw
(agent.sim.negotiation.wide: more participants than acceptors). Each draw comes
after the ones that were there before it, so that a seed's run stays as it was.
A cut one way (`one_way`, `draw_one_way`) is drawn only when asked (run.py
`--one-way`), from a generator of its own: a seed's run without it is as before.
Targeted tests build a Config by hand. The run itself is agent.sim.negotiation.run.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace

from fedorch.gen.fedorch.v1 import config_pb2, spec_pb2
from fedorch.sim.negotiation import wide
from fedorch.sim.negotiation.clock_check import CLOCK_STEPS_S
from fedorch.sim.negotiation.disk import Timing
from fedorch.sim.negotiation.world import SIM_RETENTION

CLOCK_STEP_RATE = 0.1  # share of random runs with a clock step (the fault mix)


@dataclass
class Workflow:
    workflow_id: str
    coordinator: str
    at: float
    spec: spec_pb2.WorkflowSpec
    placement: dict[str, str] | None = None  # first choice of the placer (targeted tests)


@dataclass
class Config:
    names: list[str]
    policies: dict[str, config_pb2.Policy]
    capacities: dict[str, dict[str, int]]
    workflows: list[Workflow]
    timing: Timing = field(default_factory=Timing)
    loss: float = 0.0
    duplicate: float = 0.0
    slow: float = 0.0            # share of messages delayed up to max_delay (reordering)
    max_delay: float = 3.0
    partition: tuple[float, float, frozenset[str]] | None = None
    # The others' views of the partition's group go DEAD `dead_after_s` after it starts
    # (a cut long enough for a verdict), not only SUSPECT; the group's views of them stay
    # SUSPECT (no takeover from inside the group): hand-built configs only, never drawn.
    partition_dead: bool = False
    # A cut one way, (start, end, group): what the group's agents send out of it is
    # dropped, what the others send them arrives; the others' views of them go SUSPECT
    # then DEAD, and they hear that doubt of themselves (simulation.py).
    one_way: tuple[float, float, frozenset[str]] | None = None
    # (agent, its k-th crash point, seconds): the process pauses there (a long GC, a VM
    # migration): what it sends is held and nothing reaches it until it resumes.
    pause: tuple[str, int, float] | None = None
    crash_rate: float = 0.0      # chance of a crash at each crash point
    max_crashes: int = 0
    forever: tuple[str, int] | None = None  # (agent, its k-th crash point): dies for good
    chaos_end: float = 40.0
    end: float = 110.0
    liar: str | None = None      # a trusted domain that lies (agent.sim.negotiation.liar)
    # (agent, at, seconds): that agent's wall clock steps by that much then (clock_check)
    clock_steps: tuple[tuple[str, float, float], ...] = ()

    @classmethod
    def random(cls, rng: random.Random) -> Config:
        n = rng.randint(3, 5)
        names = [f"d{i}" for i in range(n)]
        policies, capacities = {}, {}
        for name in names:
            accept_from = ["*"] if rng.random() < 0.85 else rng.sample(names, 2)
            residency = [] if rng.random() < 0.75 else ["US"]
            policies[name] = config_pb2.Policy(
                accept_from=accept_from, residency=config_pb2.Residency(accept=residency))
            capacities[name] = {c: rng.randint(1, 2) for c in ("a", "b") if rng.random() < 0.85}
        workflows = [_workflow(rng, i, names) for i in range(rng.randint(1, 6))]
        partition = None
        if rng.random() < 0.3:
            start = rng.uniform(0.0, 25.0)
            group = frozenset(rng.sample(names, rng.randint(1, n - 1)))
            partition = (start, start + rng.uniform(1.0, 20.0), group)
        forever = None
        if rng.random() < 0.35:
            forever = (workflows[0].coordinator, rng.randint(1, 40))
        pause = None
        if rng.random() < 0.2:
            who = workflows[-1].coordinator if rng.random() < 0.8 else rng.choice(names)
            pause = (who, rng.randint(1, 30), rng.uniform(5.0, 25.0))
        liar = "liar" if rng.random() < 0.5 else None  # drawn last: the rest is as before
        config = cls(
            names, policies, capacities, workflows, liar=liar,
            timing=Timing(max_rounds=rng.randint(1, 3), retention=SIM_RETENTION),
            loss=rng.choice((0.0, 0.0, 0.02, 0.1)),
            duplicate=rng.choice((0.0, 0.05, 0.2)),
            slow=rng.choice((0.0, 0.05, 0.2)),
            max_delay=rng.choice((3.0, 12.0)),
            partition=partition,
            pause=pause,
            crash_rate=rng.choice((0.0, 0.005, 0.02, 0.05)),
            max_crashes=rng.randint(0, 6),
            forever=forever,
        )
        # Drawn after everything above, so that a seed's run is as before unless its
        # clock steps.
        if rng.random() < CLOCK_STEP_RATE:
            config.clock_steps = ((rng.choice(names), rng.uniform(0.0, 30.0),
                                   rng.choice(CLOCK_STEPS_S)),)
        config.widen(wide.draw(wide.stream(rng), names, len(workflows)))
        return config

    def widen(self, w: wide.Widening) -> None:
        """More participants than acceptors (agent.sim.negotiation.wide)."""
        self.timing = replace(self.timing, max_acceptors=w.max_acceptors)
        for name, policy, capacities in w.domains:
            self.names.append(name)
            self.policies[name] = policy
            self.capacities[name] = capacities
        if w.fan_out is not None:
            coordinator, at, spec = w.fan_out
            self.workflows.append(Workflow(f"{coordinator}.{spec.name}", coordinator, at, spec))

    @classmethod
    def clock_stepped(cls, rng: random.Random) -> Config:
        """The clock-step schedule: a random run in which two or three agents' wall
        clocks step (each by one of the four sizes, at a random moment while workflows
        are negotiated and run), and, half of the time, the first coordinator dies for
        good at its k-th point, so that participants stay in doubt until their leases."""
        config = cls.random(rng)
        who = rng.sample(config.names, rng.randint(2, 3))
        config.clock_steps = tuple((n, rng.uniform(0.0, 30.0), rng.choice(CLOCK_STEPS_S))
                                   for n in who)
        if config.forever is None and rng.random() < 0.5:
            config.forever = (config.workflows[0].coordinator, rng.randint(1, 40))
        return config


def draw_one_way(seed: int, names: list[str]) -> tuple[float, float, frozenset[str]]:
    """The seed's cut one way (`Config.one_way`), from a generator of its own (no draw
    of Config.random's moves): one or two agents cut off for 3-20 s from 0-25 s on,
    while workflows are negotiated and run."""
    rng = random.Random(f"one-way/{seed}")
    start = rng.uniform(0.0, 25.0)
    group = frozenset(rng.sample(names, rng.randint(1, min(2, len(names) - 1))))
    return start, start + rng.uniform(3.0, 20.0), group


def _workflow(rng: random.Random, i: int, names: list[str]) -> Workflow:
    steps = []
    for j in range(count := rng.randint(1, 4)):
        needs = [f"s{rng.randrange(j)}"] if j and rng.random() < 0.6 else []
        steps.append(spec_pb2.StepSpec(id=f"s{j}", capability=rng.choice("ab"), needs=needs,
                                       retries=rng.randint(0, 1)))
        # Re-placement (core/node/replacement.py): some steps idempotent, a few
        # `on_domain_loss: fail`, drawn apart so that the schedule drawn above stays.
        own = random.Random(f"{i}/{j}/{len(names)}")
        steps[-1].idempotent = own.random() < 0.4
        if own.random() < 0.1:
            steps[-1].on_domain_loss = "fail"
        if j < count - 1:  # sagas: every step but the last compensates (nothing drawn)
            steps[-1].compensate.retries = j % 2
    data = {"jurisdiction": "EU"} if rng.random() < 0.5 else {}
    coordinator = rng.choice(names)
    spec = spec_pb2.WorkflowSpec(name=f"w{i}", data=data, steps=steps)
    return Workflow(f"{coordinator}.w{i}", coordinator, rng.uniform(0.0, 15.0), spec)
