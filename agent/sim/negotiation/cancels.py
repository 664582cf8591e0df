"""The seeded runs' cancels: a small share of the workflows is cancelled by its client.

Each seeded run (run.Simulation, with `cancels` on) draws, from a stream of its own
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
from fedorch.core.workflow.lifecycle import TERMINAL

CANCEL_SHARE = 0.15
LATEST_S = 8.0  # a cancel comes up to this long after its workflow's submission
SOON_S = 0.5
RETRY_S = 1.0   # the client's retry while the coordinator is down
HOP_S = 0.01    # an agent sends a cancel on to the epoch holder it names
TRIES = 120     # then the client gives up (a run's chaos is over by then)


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
    return holder if epoch >= 1 and agents[holder].alive else None


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
