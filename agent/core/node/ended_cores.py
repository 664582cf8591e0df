"""The Node's rule for its Coordinator cores whose workflow's end is settled.

Theory of operation
-------------------
A Node keeps the Coordinator core of each workflow it coordinates until retention
forgets the workflow: by default a week, up to 100,000 of them. Once the workflow's
end is settled here, the core has nothing left to do but answer late messages, and
`Coordinators` (coordinator_timers.py) keeps it as an `Ended` record instead
(coordinator_ended.py), reviving the core from the record and the tables when a
message or a part of the Node looks it up. A core is settled (`settle`) when:

- its workflow's row has finished in a terminal state, in the core's last round, and
  nothing of the workflow runs here (no progress);
- as a committed workflow, every participant acknowledged the COMMIT (its record is
  collected: the core keeps no COMMIT) and the end notice (`final_acked`);
- the core itself is done (coordinator_ended.ended: COMMITTED and collected, or
  ABORTED; no timer, nothing to send);
- no successor took it over here and no step of it was placed again (`epochs`,
  `granted`, `placements`, `replaced_rounds`): those parts read the core in ways
  not worth following for the few workflows they touch;
- what the revived core takes from the tables is what the core holds: the round's
  placement and acceptors (the workflow's row), its proposal cells (`cells`), its
  refusals (`refusals`).

Every row it reads stays until retention forgets the workflow, and with it the
record (`del` on `Coordinators`). A restart restores every core from the tables
(negotiation_restore.py) and the first refresh settles the settled ones again.
"""

from __future__ import annotations

from typing import Any

from fedorch.core.negotiation.coordinator import Coordinator, Phase
from fedorch.core.negotiation.coordinator_ended import Ended, ended, revive
from fedorch.core.workflow.lifecycle import TERMINAL

__all__ = ["revive_core", "settle"]

_DONE = (Phase.COMMITTED, Phase.ABORTED)


def settle(n: Any, wf: str, core: Coordinator) -> Ended | None:
    """The record `core` may be kept as, or None while it must stay whole. `n`: the
    Node (typed loosely: the Node imports its parts, never the reverse). Looks up no
    core: it runs inside `Coordinators.refresh`."""
    if core.phase not in _DONE:
        return None
    d = n.state
    row = d.rows.get(wf)
    if row is None or not row.finished or row.state not in TERMINAL \
            or row.round != core.round or wf in n.progress:
        return None
    if wf in d.epochs or wf in d.granted or wf in d.placements or wf in d.replaced_rounds:
        return None
    if row.committed and set(row.info.placement.values()) - {n.name} \
            - d.final_acked.get(wf, set()):
        return None  # its end notice is still owed to a participant
    if row.round and (core.placement != row.info.placement
                      or core.tx() is not None and core.tx().acceptors != row.acceptors):
        return None
    cells = d.cells
    return ended(core, lambda r: cells.get((wf, r)), d.refusals.get(wf, ()))


def revive_core(n: Any, wf: str, record: Ended) -> Coordinator:
    """The core `record` was made from (the same in every answer), from the tables."""
    d = n.state
    row = d.rows[wf]
    t = n.t
    cells = d.cells
    n.stats["coordinator revived after its end"] += 1
    return revive(record, wf, placement=row.info.placement, acceptors=row.acceptors,
                  cells=lambda r: cells.get((wf, r)), refusals=d.refusals.get(wf, ()),
                  placer=n.placer(row.info.spec), max_rounds=t.max_rounds,
                  prepare_timeout_s=t.prepare_timeout_s,
                  consensus=n.consensus() if record.consensus else None, me=n.name,
                  resend_s=t.resend_s, decision_resend_s=t.decision_resend_s, now=n.now)
