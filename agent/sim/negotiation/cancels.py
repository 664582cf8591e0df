"""The seeded runs' cancels: a small share of the workflows is cancelled by its client.

Each seeded run (run.Simulation, with `cancels` on) draws, from a stream of its own
(so that the rest of a seed's run is drawn as before), which of its workflows a client
cancels and when: `CANCEL_SHARE` of them, each a random while after its submission, so
that a cancel finds its workflow negotiating, deciding a COMMIT, running or ended. The
cancel goes to the workflow's coordinator (core/node/cancel.py); while the coordinator
is down the client tries again every `RETRY_S`. The checker (check.py,
`Checker.check_cancels`) then holds every cancel the coordinator took to its outcome.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

CANCEL_SHARE = 0.15
LATEST_S = 8.0  # a cancel comes up to this long after its workflow's submission
SOON_S = 0.5
RETRY_S = 1.0   # the client's retry while the coordinator is down


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
