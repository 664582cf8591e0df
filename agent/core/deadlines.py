"""Deadlines of a keyed table, earliest first, without walking the table.

Theory of operation
-------------------
A Node asks for its earliest deadline after every turn (`Node.get_timer`) and fires
what is due at each tick; a table that is walked for both costs each turn as much as
its size (the workflows in flight), however little the turn touched. `LazyHeap` keeps
`(deadline, n, key)` items in a binary heap instead, one pushed whenever a key gets a
deadline. Items are never updated or removed in place: the table stays the truth, and
an item counts only while the table still gives its key that very deadline
(`current(key) == deadline`). A key whose deadline changed, or that left the table,
leaves a stale item behind, dropped when it comes to the top. So:

- `earliest` is the top's deadline once the stale tops are popped: the least deadline
  in the table (every live deadline has an item, and no stale one is counted).
- `due(now)` pops every item due by `now` and hands each key that is still due once
  (a key set twice to one deadline has two live items: counted once). The keys handed
  out are pushed again as they are: a caller that leaves one unchanged finds it due
  again at the next tick, as a walk would, and one it changes leaves a stale item.
- The stale items are bounded: when the heap holds more than twice the table and a
  margin, it is rebuilt from the table (`compact`), so its size stays within a
  constant of the table's, at an amortised constant cost per push.

The order in which due keys are handed out is the table's, not the heap's: a walk
handed them in the table's order, and what the caller does with each (a resend, a
stop) leaves in that order. `DeadlineTable` is a `dict` of key -> deadline that keeps
the number each key got when it was first put (a dict keeps its keys in that order:
a key set again keeps its place; one deleted and put again goes last) and sorts its
due keys by it. Pending (node/pending.py) keeps the same numbers in its index.
Termination (negotiation/termination.py) keeps each transaction in doubt's deadline in
one; the module sits in core/ so that the negotiation cores need not import the Node.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from heapq import heapify, heappop, heappush

_missing = object()


class LazyHeap:
    __slots__ = ("_heap", "_n")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Hashable]] = []
        self._n = 0

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, deadline: float, key: Hashable) -> None:
        heappush(self._heap, (deadline, self._n, key))
        self._n += 1

    def earliest(self, current: Callable[[Hashable], float | None]) -> float | None:
        """The least live deadline (`current(key)`: the key's deadline in the table, None
        when it has none), or None when there is none."""
        heap = self._heap
        while heap:
            deadline, _, key = heap[0]
            if current(key) == deadline:
                return deadline
            heappop(heap)
        return None

    def due(self, now: float, current: Callable[[Hashable], float | None]) -> list:
        """The keys whose live deadline is `now` or earlier, each once, in no order."""
        heap = self._heap
        found: dict[Hashable, float] = {}
        while heap and heap[0][0] <= now:
            deadline, _, key = heappop(heap)
            if key not in found and current(key) == deadline:
                found[key] = deadline
        for key, deadline in found.items():
            self.push(deadline, key)
        return list(found)

    def crowded(self, live: int) -> bool:
        """More stale items than the bound allows for a table of `live` keys."""
        return len(self._heap) > 2 * live + 64

    def compact(self, live: Iterable[tuple[float, Hashable]]) -> None:
        """Rebuild from the table's live `(deadline, key)` pairs: the stale items go."""
        heap = []
        for deadline, key in live:
            heap.append((deadline, self._n, key))
            self._n += 1
        heapify(heap)
        self._heap = heap


class DeadlineTable(dict):
    """key -> deadline, with its earliest and its due keys (in the table's order) found
    through a LazyHeap. Every change goes through `__setitem__`, `__delitem__` or
    `pop`; the bulk changes of `dict` that would bypass the order kept are refused."""

    def __init__(self) -> None:
        super().__init__()
        self._heap = LazyHeap()
        self._order: dict[Hashable, int] = {}  # key -> its number when first put
        self._n = 0

    def __setitem__(self, key: Hashable, deadline: float) -> None:
        if key not in self:
            self._order[key] = self._n
            self._n += 1
        elif dict.__getitem__(self, key) == deadline:
            return  # unchanged: its item is live already
        super().__setitem__(key, deadline)
        self._heap.push(deadline, key)
        if self._heap.crowded(len(self)):
            self._heap.compact((t, k) for k, t in self.items())

    def __delitem__(self, key: Hashable) -> None:
        super().__delitem__(key)
        del self._order[key]

    def pop(self, key, default=_missing):
        if key in self:
            del self._order[key]
            return super().pop(key)
        if default is _missing:
            raise KeyError(key)
        return default

    def earliest(self) -> float | None:
        return self._heap.earliest(self.get)

    def due(self, now: float) -> list:
        """The keys whose deadline is `now` or earlier, in the table's order."""
        keys = self._heap.due(now, self.get)
        if len(keys) > 1:
            keys.sort(key=self._order.__getitem__)
        return keys

    def __reduce__(self):
        return _rebuilt_table, (list(self.items()),)

    def _refuse(self, *args, **kwargs):
        raise TypeError("deadlines: change them key by key, so the heap follows")

    update = setdefault = clear = popitem = __ior__ = _refuse  # type: ignore[assignment]


def _rebuilt_table(items: list[tuple[Hashable, float]]) -> DeadlineTable:
    table = DeadlineTable()
    for key, deadline in items:
        table[key] = deadline
    return table
