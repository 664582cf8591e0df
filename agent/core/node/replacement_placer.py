"""Where a re-placement round may place its step: the Node's placer, narrowed.

Part of the Node's re-placement (replacement.py, whose header tells the round). The
round asks the Node's own placement (a daemon's: capabilities, labels, residency, free
capacity) for the lost step alone, and leaves out every domain the step was lost on,
every member the view says is gone, and this Node. It is its own module because it is
the one rule of where the step may go, apart from the round that runs it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fedorch.core.workflow.placement import Placement


def round_placer(n: Any, wf: str, step: str, lost: set[str]) -> Callable[..., Placement]:
    """The Node `n`'s own placement, for `step` alone, its lost domains, gone members and
    this Node left out: the coordinator's progress is its participant's too, and would
    start the step before the new placement is told and its COMMIT learned."""
    whole = n.placer(n.running.info(wf).spec)

    def place(excluded) -> Placement:
        refused = {k: set(v) for k, v in excluded.items()}
        refused.setdefault(step, set()).update(lost | {n.name})
        full = whole(refused)
        domain = full.assignment.get(step)
        if domain is None or domain in lost or n.member_loss.gone(domain):
            return Placement({}, {step: full.unplaceable.get(
                step, "every domain refused or was lost")})
        return Placement({step: domain}, {})
    return place
