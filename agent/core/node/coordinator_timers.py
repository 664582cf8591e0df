"""The coordinators of one Node, with their deadlines kept in a heap.

Theory of operation
-------------------
A Node keeps a Coordinator core for every workflow it coordinates, ended ones
included (they answer late votes, acknowledgements and queries). Asking every core
for its deadline on each turn, and looking at every core on each tick, made a turn
cost grow with every workflow the agent had ever coordinated: after 300 workflows
the simulator spent half its time in `Coordinator.get_timer` (95 calls a turn).

`Coordinators` is the dict of those cores (workflow id -> core), and it remembers
which cores were looked up since the deadlines were last brought up to date: every
change to a core goes through a lookup here (a message, a submission, a restore, a
tick), so a core nobody looked up has the deadline it had. `refresh()` asks only
those cores again and pushes their deadlines onto a heap; entries a later deadline
replaced stay in the heap and are skipped when they come up (`_current`). `earliest()`
is the first current deadline; `due(now)` hands out, once each, the cores whose
deadline has come, each then looked up (and so asked again at the next refresh).
A turn thus costs what its own inputs touched, plus O(log n) per deadline.

`preparing_with(domain)` (membership's DEAD or LEFT, member_loss.py) looks only at
the cores that have a deadline: a round in preparation always has one (its prepare
timeout), so the scan is over the live cores, not every one ever kept.

Ended cores. A core whose workflow's end is settled has nothing left to do but answer
(coordinator_ended.py), and it is most of the cores kept: at each refresh a core
looked up (or `touch`ed: the Node's marks of its workflow) is offered to `settle`,
the Node's rule (ended_cores.py), once its round is done (COMMITTED or ABORTED: no
other core settles, and a live core offered costs a call per lookup, some ten per
workflow at a busy coordinator), and one it settles is kept as its `Ended` record
instead. A lookup of such a workflow (`get`, `[]`) brings its core back with
`revive`, the same in every answer, live until a later refresh settles it again; `in`
and `del` see ended cores as kept ones, so what asks whether a core is kept, or
forgets one (retention), needs no change. What the record answers itself revives
nothing: `tx` (the round as a transaction: what the authority table checks a message
against) and the late messages ended_cores.py answers; so a refused message, or one
an ended core only answers, costs no core.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator

from fedorch.core.negotiation.coordinator import Coordinator, Phase
from fedorch.core.negotiation.coordinator_ended import Ended
from fedorch.core.negotiation.messages import TxInfo

# Only a core whose round is decided and done can be settled (ended_cores.py's first
# rule): a live one, most of those a busy turn looks up, is not offered at all.
_DONE = (Phase.COMMITTED, Phase.ABORTED)


class Coordinators(dict[str, Coordinator]):
    """workflow id -> Coordinator; lookups mark the core for a deadline refresh."""

    def __init__(self) -> None:
        super().__init__()
        self._looked_up: set[str] = set()
        self._heap: list[tuple[float, str]] = []
        self._deadline: dict[str, float] = {}
        # Settled cores, each as its record; and the Node's rule both ways (None: the
        # Node sets none, every core stays whole).
        self.ended: dict[str, Ended] = {}
        self.settle: Callable[[str, Coordinator], Ended | None] | None = None
        self.revive: Callable[[str, Ended], Coordinator] | None = None
        self.record_tx: Callable[[str, Ended], TxInfo | None] | None = None

    # ---- lookups (each may be followed by a change to the core) -------------------

    def __getitem__(self, workflow_id: str) -> Coordinator:
        self._looked_up.add(workflow_id)
        if workflow_id in self.ended:
            return self._revived(workflow_id)
        return super().__getitem__(workflow_id)

    def get(self, workflow_id: str, default: Coordinator | None = None
            ) -> Coordinator | None:  # type: ignore[override]
        self._looked_up.add(workflow_id)
        if workflow_id in self.ended:
            return self._revived(workflow_id)
        return super().get(workflow_id, default)

    def tx(self, workflow_id: str) -> TxInfo | None:
        """The current round of the workflow's core as a transaction (Coordinator.tx),
        an ended core's from its record: no core is revived for it."""
        record = self.ended.get(workflow_id)
        if record is not None:
            assert self.record_tx is not None
            return self.record_tx(workflow_id, record)
        core = self.get(workflow_id)
        return core.tx() if core is not None else None

    def __contains__(self, workflow_id: object) -> bool:
        return super().__contains__(workflow_id) or workflow_id in self.ended

    def __len__(self) -> int:  # the cores kept, whole or as their records
        return super().__len__() + len(self.ended)

    def __setitem__(self, workflow_id: str, core: Coordinator) -> None:
        self._looked_up.add(workflow_id)
        self.ended.pop(workflow_id, None)
        super().__setitem__(workflow_id, core)

    def __delitem__(self, workflow_id: str) -> None:
        self._looked_up.add(workflow_id)
        if self.ended.pop(workflow_id, None) is None:
            super().__delitem__(workflow_id)

    def touch(self, workflow_id: str) -> None:
        """Something of `workflow_id` changed outside its core (an end, an
        acknowledgement, a record collected): offered to `settle` at the next refresh."""
        if super().__contains__(workflow_id):
            self._looked_up.add(workflow_id)

    def _revived(self, workflow_id: str) -> Coordinator:
        assert self.revive is not None
        core = self.revive(workflow_id, self.ended.pop(workflow_id))
        super().__setitem__(workflow_id, core)
        return core

    def values(self):  # type: ignore[override]
        raise TypeError("iterating every coordinator is what this class avoids;"
                        " use due(now) or look one up")

    # ---- deadlines ------------------------------------------------------------------

    def refresh(self) -> None:
        """Ask the cores looked up since the last refresh for their deadlines."""
        settle = self.settle
        for workflow_id in self._looked_up:
            core = dict.get(self, workflow_id)
            if core is not None and settle is not None and core.phase in _DONE \
                    and (record := settle(workflow_id, core)) is not None:
                super().__delitem__(workflow_id)
                self.ended[workflow_id] = record
                core = None
            deadline = core.get_timer() if core is not None else None
            if deadline is None:
                self._deadline.pop(workflow_id, None)
            elif self._deadline.get(workflow_id) != deadline:
                self._deadline[workflow_id] = deadline
                heapq.heappush(self._heap, (deadline, workflow_id))
        self._looked_up.clear()

    def earliest(self) -> float | None:
        """The first deadline of any coordinator (after a refresh)."""
        self.refresh()
        heap = self._heap
        while heap and not self._current(heap[0]):
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def due(self, now: float) -> Iterator[tuple[str, Coordinator]]:
        """Each coordinator whose deadline has come, once, in deadline order."""
        self.refresh()
        heap = self._heap
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)
            if not self._current(entry):
                continue
            del self._deadline[entry[1]]
            yield entry[1], self[entry[1]]  # looked up: asked again at the next refresh

    def preparing_with(self, domain: str) -> list[Coordinator]:
        """The coordinators preparing a round that asked `domain` (by workflow id),
        each looked up."""
        self.refresh()
        found = []
        for workflow_id in self._deadline:
            core = dict.get(self, workflow_id)
            if core is not None and core.phase is Phase.PREPARING \
                    and domain in core.placement.values():
                found.append(workflow_id)
        return [self[workflow_id] for workflow_id in sorted(found)]

    def _current(self, entry: tuple[float, str]) -> bool:
        return self._deadline.get(entry[1]) == entry[0]
