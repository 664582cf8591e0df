"""The Node's reliable sends (`Node.reliable`): kept until acknowledged, by workflow.

Theory of operation
-------------------
Each message a Node must deliver is kept under its id, `(kind, workflow, ...)`, with
`[to, msg, next resend, backoff]`, until its acknowledgement pops the id (resends are
in memory only: a restore reports again what is owed). The table is read by id (an
acknowledgement, "is the end still told to d?"), resent from in the order the ids were
first kept (the resend tick; `get_timer` wants the earliest next resend: see
Resends below), and cut by workflow: a workflow's ids of some kind are told no more
(its end, a void loss verdict, a saga's new driver, retention forgetting it).

Cutting used to rebuild the whole table, a walk of every workflow in flight for each
workflow that ends: work per workflow growing with the workflows in flight. The table
keeps an index of each workflow's ids (every id's second element names its workflow),
so a cut walks that workflow's ids only (`drop`, `of`). A cut deletes in place: the
ids left keep the order they had, as the rebuilt table kept it, so resends go out in
the same order as before. Every change goes through `__setitem__`, `__delitem__` or
`pop`, which keep the index; the bulk changes of `dict` that would bypass it are
refused.

Resends. `Node.get_timer` wants the earliest next resend and the tick the ids due,
in the table's order; both walked the whole table once per turn. The next resends are
kept in a LazyHeap (deadlines.py) instead: an entry's next resend is pushed when it is
kept and each time its deadline moves (`resend_due`; `restart`, as told_again.py does
for a domain back ALIVE), and an item counts only while its id is kept with that very
deadline: every kept id has a live item at its next resend, so none is missed, and a
tick hands each due id out once, so none goes twice. The due ids are sorted by the
number each got when first kept (kept in the index beside it: the dict's own order, since an id set again keeps its place and one cut and kept
again goes last), so resends leave in the order the walk sent them.

Generations
-----------
An id is kept again with another message while it may still be in flight: a report
replaced by a newer one, an end notice by a later epoch's, a saga's plan by its end.
An acknowledgement names an id, which its receiver builds from the message's fields;
an acknowledgement of the EARLIER message, late, used to pop the NEWER one, never
resent though its recipient never got it. So each send kept is a generation of its
own: `Node.reliable` stamps the message with a number drawn here (`generation`,
the message's `gen`), its receiver echoes it (`AckMsg.gen`), and `acked` pops the
entry only when the acknowledgement names the generation kept now. One that names
another is of an earlier send (a later one was never handed out: the number is drawn
as it is kept), so its recipient may hold nothing newer: the entry stays and is
resent until its own acknowledgement, and the Node counts it ("late acknowledgement
of an earlier send left the newer"). Safety: an entry is popped only by an
acknowledgement of its very message, so no message is forgotten unheard; liveness is
the resend's, as before (each resend carries the generation kept).

No agent draws a generation twice for one id while a send of it may be in flight:
numbers grow within a run, and a restart (resends are memory only: a restore reports
again what is owed, each a new send) draws from its wall clock's milliseconds times
1000 on, beyond any an earlier run drew unless that run kept a thousand sends a
millisecond throughout. Not built yet: a wall clock stepped back across a restart may
give an earlier run's number again; a late acknowledgement then pops a newer send of
the same id only if it names that very number too.

An acknowledgement naming no generation (0) pops whatever is kept, as every one did
before generations: a void answer to a re-placement COMMIT (replacement_new_domain.py:
the new domain holds nothing of that round, so every tell of its placement is done
with) names none, and so does a pop by the keeper itself (a result relayed elsewhere,
a tell the holder takes back). A placement's and its COMMIT's acknowledgement
(placed_here.py) names the tell's generation.
"""

from __future__ import annotations

from collections.abc import Callable

from fedorch.core.node.deadlines import LazyHeap

Entry = list  # [to, msg, next resend, backoff]

_missing = object()


class Pending(dict):
    def __init__(self, wall_ms: int = 0) -> None:
        super().__init__()
        self._gen = wall_ms * 1000  # the last generation drawn (see Generations above)
        # Workflow -> its ids kept here, in the order first kept, each with the number
        # it got then (the table's order across workflows).
        self._of: dict[str, dict[tuple, int]] = {}
        self._n = 0
        self._resends = LazyHeap()  # next resends (see Resends above)

    def __setitem__(self, key: tuple, value: Entry) -> None:
        ids = self._of.get(key[1])
        if ids is None:
            self._of[key[1]] = {key: self._n}
            self._n += 1
        elif key not in ids:
            ids[key] = self._n
            self._n += 1
        super().__setitem__(key, value)
        self._push(value[2], key)

    def __delitem__(self, key: tuple) -> None:
        super().__delitem__(key)
        self._unindex(key)

    def pop(self, key, default=_missing):
        if key in self:
            value = super().pop(key)
            self._unindex(key)
            return value
        if default is _missing:
            raise KeyError(key)
        return default

    def generation(self) -> int:
        """A number for the send about to be kept, none drawn before (Generations)."""
        self._gen += 1
        return self._gen

    def acked(self, key: tuple, gen: int) -> Entry | None | bool:
        """An acknowledgement of `key`'s send of generation `gen` (0: any): its entry,
        popped; False: the entry kept is of another generation, left; None: none kept."""
        entry = dict.get(self, key)
        if entry is None:
            return None
        if gen and getattr(entry[1], "gen", 0) != gen:
            return False
        return self.pop(key)

    def _unindex(self, key: tuple) -> None:
        ids = self._of[key[1]]
        del ids[key]
        if not ids:
            del self._of[key[1]]

    def of(self, wf: str) -> list[tuple]:
        """The ids kept for `wf`, in the order first kept."""
        ids = self._of.get(wf)
        return list(ids) if ids is not None else []

    def earliest(self) -> float | None:
        """The earliest next resend of any entry (None: none kept)."""
        return self._resends.earliest(self._deadline)

    def resend_due(self, now: float, most_s: float) -> list[Entry]:
        """The entries whose next resend is `now` or earlier, in the table's order, each
        moved on: its backoff doubled (at most `most_s`), its next resend that far from
        `now`."""
        keys = self._resends.due(now, self._deadline)
        if len(keys) > 1:
            keys.sort(key=lambda k: self._of[k[1]][k])
        entries = []
        for key in keys:
            entry = dict.__getitem__(self, key)
            entry[3] = min(entry[3] * 2, most_s)
            entry[2] = now + entry[3]
            self._push(entry[2], key)
            entries.append(entry)
        return entries

    def restart(self, key: tuple, now: float, first_s: float) -> Entry:
        """The entry of `key`, sent again `now` by its keeper: its backoff back to
        `first_s`, its next resend that far from `now`, its place in the order kept."""
        entry = dict.__getitem__(self, key)
        entry[3] = first_s
        entry[2] = now + first_s
        self._push(entry[2], key)
        return entry

    def _deadline(self, key: tuple) -> float | None:
        entry = dict.get(self, key)
        return entry[2] if entry is not None else None

    def _push(self, deadline: float, key: tuple) -> None:
        self._resends.push(deadline, key)
        if self._resends.crowded(len(self)):
            self._resends.compact((e[2], k) for k, e in self.items())

    def drop(self, wf: str, which: Callable[[tuple, Entry], bool] | None = None) -> None:
        """Delete the ids of `wf` that `which(id, entry)` names (every one: None)."""
        ids = self._of.get(wf)
        if ids is None:
            return
        for key in list(ids):
            if which is None or which(key, dict.__getitem__(self, key)):
                del self[key]

    def __reduce__(self):
        return _rebuilt, (list(self.items()), self._gen)

    def _refuse(self, *args, **kwargs):
        raise TypeError("reliable sends: change them id by id, so the index follows")

    update = setdefault = clear = popitem = __ior__ = _refuse  # type: ignore[assignment]


def _rebuilt(items: list[tuple[tuple, Entry]], gen: int = 0) -> Pending:
    table = Pending()
    table._gen = gen
    for key, entry in items:
        table[key] = entry
    return table
