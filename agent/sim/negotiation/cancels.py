"""The seeded runs' cancels: a small share of the workflows is cancelled by its client.

Each seeded run (simulation.Simulation, with `cancels` on) draws, from a stream of its own
(so that the rest of a seed's run is drawn as before), which of its workflows a client
cancels and when: `CANCEL_SHARE` of them, each a random while after its submission, so
that a cancel finds its workflow negotiating, deciding a COMMIT, running or ended. The
cancel goes to the workflow's coordinator (core/node/cancel.py), routed as the node
engine's client service routes it (`route`): with coordinator takeover on, an agent
that names a later epoch's holder (it follows one) sends it on there, and while the
agent asked is down, the holder of the highest epoch the live agents hold is asked
(the status path's `_asked_of_members`); while none can take it the client tries
again every `RETRY_S`. Under the takeover schedule a cancel taken is asked again
every `RETRY_S` until its workflow ended there (the service's wait on the cancel):
one made void by a later epoch meanwhile is then refused, naming the holder, and
sent on. The checker (check.py, `Checker.check_cancels`) then holds every cancel a
coordinator took to its outcome, or to its note that it was void.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from fedorch.core.node.cancel import holder_elsewhere
from fedorch.core.node.takeover_claims import held_of
from fedorch.core.workflow.lifecycle import TERMINAL, WorkflowState

CANCEL_SHARE = 0.15
LATEST_S = 8.0  # a cancel comes up to this long after its workflow's submission
SOON_S = 0.5
RETRY_S = 1.0   # the client's retry while the coordinator is down
HOP_S = 0.01    # an agent sends a cancel on to the epoch holder it names
TRIES = 120     # then the client gives up (a run's chaos is over by then)
AFTER_DEATH_SHARE = 0.3  # takeover runs: a running workflow cancelled after its coordinator died
AFTER_DEATH_S = (0.5, 12.0)  # that long after the death (before and after a successor acts)


def route(agents: Mapping[str, Any], asked: str, wf: str, *, takeover: bool) -> str | None:
    """Who takes the cancel of `wf` asked of `asked` now: `asked` itself, the later
    epoch's holder it names, or (`asked` down) the holder of the highest epoch a live
    agent holds; None while none is known (asked again later)."""
    agent = agents[asked]
    if not takeover:
        return asked if agent.alive else None
    if agent.alive:
        later = holder_elsewhere(agent.node, wf)
        return asked if later is None else later[1]
    held = [held_of(a.node.state, wf, asked) for a in agents.values()
            if a.alive and (wf in a.node.state.final or wf in a.node.progress)]
    epoch, holder = max(held, default=(0, asked))
    return holder if epoch >= 1 and (holder not in agents or agents[holder].alive) else None


def waiting(agent: Any, wf: str) -> bool:
    """The cancel is on record at `agent` and its workflow has not ended there."""
    d = agent.node.state
    row = d.rows.get(wf)
    return wf in d.cancels and wf not in d.final \
        and (row is None or row.state not in TERMINAL)


def draw(seed: int, workflows: Sequence[Any]) -> list[tuple[float, str, str]]:
    """(at, workflow id, coordinator) of each cancel of the run."""
    rng = random.Random(f"cancels {seed}")
    out = []
    for w in workflows:
        if rng.random() < CANCEL_SHARE:
            # Half of them soon, while most workflows negotiate or run (a negotiation
            # takes tens of milliseconds, an attempt up to 0.6 s), the rest up to
            # LATEST_S later (during faults, or after the end: refused).
            late = rng.random() < 0.5
            after = rng.uniform(0.0, LATEST_S if late else SOON_S)
            out.append((w.at + after, w.workflow_id, w.coordinator))
    return out


class Client:
    """The clients' side of a run's cancels: each asked, routed, asked again (`ask`);
    and, under the takeover schedule, cancels of workflows that run on while their
    coordinator is dead (`coordinator_died`), drawn from a stream of their own so that
    the rest of a seed's run is drawn as before."""

    def __init__(self, sim: Any, push: Any) -> None:
        self.sim = sim
        self.push = push  # push(at, agent, workflow id, tries): a _CANCEL event
        self.rng = random.Random(f"cancels after a death {sim.seed}")

    def ask(self, at: float, agent: Any, wf: str, tries: int) -> None:
        """A client's cancel asked of `agent`: sent on to the epoch holder it names (or,
        `agent` down, the one the live members name), asked again while none is found,
        and, once taken, asked again until its workflow ended there (the client
        service's wait: a cancel made void meanwhile is sent on to the later holder)."""
        sim = self.sim
        if tries > TRIES:
            return
        takeover = sim.config.timing.takeover_after_s is not None
        to = route(sim.agents, agent.name, wf, takeover=takeover)
        if to is not None and to not in sim.agents:
            # The holder named is the lying domain, which won an epoch as any member
            # may: it answers no client, so the client asks again later, as a real one
            # whose cancel to it went unanswered would.
            sim.stats["cancel sent on to the liar: unanswered"] += 1
            to = None
        if to is None:
            self.push(at + RETRY_S, agent, wf, tries + 1)
        elif to != agent.name:
            sim.stats["cancel sent on to the epoch holder"] += 1
            self.push(at + HOP_S, sim.agents[to], wf, tries + 1)
        else:
            sim._handle(agent, agent.cancel, wf)
            if takeover and waiting(agent, wf):
                self.push(at + RETRY_S, agent, wf, tries + 1)

    def coordinator_died(self, agent: Any) -> None:
        """`agent` just crashed: a share of the committed workflows it coordinates that
        still run is cancelled by its client a while later (asked of `agent`, and so,
        while it is down, of the epoch holder the live members name)."""
        d = agent.durable
        for wf in sorted(d.rows):
            row = d.rows[wf]
            if row.state is WorkflowState.RUNNING and self.rng.random() < AFTER_DEATH_SHARE:
                self.sim.stats["cancel drawn after its coordinator died"] += 1
                self.push(self.sim.now + self.rng.uniform(*AFTER_DEATH_S), agent, wf, 0)

