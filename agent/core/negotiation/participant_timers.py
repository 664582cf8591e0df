"""The participant core's timers: its holds by deadline, in heaps, sans I/O.

Timers without a scan: the leases of RESERVED holds (Participant.expiry_timer, expire)
and the next queries of classic PREPARED holds (get_timer, due_queries) are each kept
in a heap of (deadline, insertion number, hold), pushed when a hold enters that state
or its deadline moves. An entry goes stale when its hold leaves the state, is dropped
or replaced; stale entries are popped when they reach the top (and the heap is
rebuilt when they outnumber the live ones), so a timer costs O(log n) amortised, not a
walk of every hold on each driver turn. A hold's `lease_expires` is fixed when it is
made (participant.restarted makes a new Hold) and its `next_query` moves only in
due_queries(): no deadline changes behind a heap's back.

Apart from participant.py because the heaps are bookkeeping, not protocol: which hold
is in which heap, and until when, is the participant's rule (`leased` and `queried`,
passed in); what the heaps hold stays true only while the participant pushes each
hold here (`timed`) whenever it enters a timed state or its deadline moves.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping
from typing import Generic, Protocol, TypeVar

from fedorch.core.negotiation.messages import Key


class _Keyed(Protocol):
    @property
    def key(self) -> Key: ...


# participant.Hold (not imported: participant.py imports this module).
Hold = TypeVar("Hold", bound=_Keyed)


class HoldTimers(Generic[Hold]):
    def __init__(self, holds: Mapping[Key, Hold],
                 leased: Callable[[Hold], float | None],
                 queried: Callable[[Hold], float | None]) -> None:
        # The participant's own map of holds (never rebound there): an entry is live
        # only while its hold is still the one held under its key.
        self._holds = holds
        self._leased = leased
        self._queried = queried
        # (deadline, n, hold): RESERVED holds by lease, classic PREPARED holds by next
        # query; _pushed numbers the entries so no two compare holds.
        self._leases: list[tuple[float, int, Hold]] = []
        self._queries: list[tuple[float, int, Hold]] = []
        self._pushed = 0

    def timed(self, h: Hold) -> None:
        """Push `h`'s deadline onto the heap of the state it is now in, if any."""
        for heap, still in ((self._leases, self._leased), (self._queries, self._queried)):
            deadline = still(h)
            if deadline is not None:
                self._pushed += 1
                heapq.heappush(heap, (deadline, self._pushed, h))
                if len(heap) > 2 * len(self._holds) + 64:  # mostly stale: rebuild
                    heap[:] = [e for e in heap if self._live(e, still)]
                    heapq.heapify(heap)

    def first_lease(self) -> float | None:
        return self._first(self._leases, self._leased)

    def first_query(self) -> float | None:
        return self._first(self._queries, self._queried)

    def due_leases(self, now: float) -> list[Hold]:
        return self._due(self._leases, self._leased, now)

    def due_queries(self, now: float) -> list[Hold]:
        return self._due(self._queries, self._queried, now)

    def _live(self, entry: tuple[float, int, Hold],
              still: Callable[[Hold], float | None]) -> bool:
        deadline, _, h = entry
        return self._holds.get(h.key) is h and still(h) == deadline

    def _first(self, heap: list[tuple[float, int, Hold]],
               still: Callable[[Hold], float | None]) -> float | None:
        while heap and not self._live(heap[0], still):
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def _due(self, heap: list[tuple[float, int, Hold]],
             still: Callable[[Hold], float | None], now: float) -> list[Hold]:
        due: dict[int, Hold] = {}  # by identity: a hold added twice has two entries
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)
            if self._live(entry, still):
                due[id(entry[2])] = entry[2]
        return list(due.values())
