"""What a Node's sagas keep of a workflow from retention, and what goes with it, sans I/O.

Retention (retention.py) asks `kept_because` before it forgets a workflow: kept while
the core of its compensations has not ended here (as their driver), while its saga's
plan is open or not acknowledged by every participant, and while an attempt run here
(as a step's domain) is running or not acknowledged. Once it goes, `forget` drops
the sagas' rows of it (`compensations`, `comp_runs`, `extra_compensations`, `plans`,
`succeeded_here`, `result_domains`) in retention's write group.

Apart from compensating.py (whose theory of operation says what the sagas are) because
these are retention's questions about the sagas' state, asked and answered in one
place; the Node's Compensating holds this part (`Compensating.retention`).
"""

from __future__ import annotations

from typing import Any

from fedorch.core.node.saga_plans import SAGA


class SagaRetention:
    def __init__(self, compensating: Any) -> None:
        # The Node's saga part that owns this one (typed loosely: it imports this).
        self.c = compensating
        self.n = compensating.n

    def kept_because(self, wf: str) -> str | None:
        """Why retention may not forget `wf` yet (None: its sagas' rows may go)."""
        if wf in self.c.cores:
            return "its compensations have not ended"
        if self.n.state.plans.get(wf):
            return "its saga's plan is open (its driver has not told the saga over)"
        if any(k[0] == SAGA for k in self.n.pending.of(wf)):
            return "its saga's plan or end is not acknowledged by every participant"
        for key in self.n.state.comp_runs.of(wf):
            state, _, reported = self.n.state.comp_runs[key]
            if state == "running" or not reported:
                return "a compensation here runs or is not reported"
        return None

    def forget(self, wf: str) -> None:
        """Retention forgets `wf`: both tables' rows of it (in its write group)."""
        d = self.n.state
        for table in (d.compensations, d.comp_runs, d.extra_compensations):
            for key in table.of(wf):
                del table[key]
        d.plans.pop(wf, None)
        d.succeeded_here.pop(wf, None)
        d.result_domains.pop(wf, None)
