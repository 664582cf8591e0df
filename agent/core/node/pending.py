"""The Node's reliable sends (`Node.reliable`): kept until acknowledged, by workflow.

Theory of operation
-------------------
Each message a Node must deliver is kept under its id, `(kind, workflow, ...)`, with
`[to, msg, next resend, backoff]`, until its acknowledgement pops the id (resends are
in memory only: a restore reports again what is owed). The table is read by id (an
acknowledgement, "is the end still told to d?"), walked in the order the ids were
first kept (the resend tick and `get_timer`), and cut by workflow: a workflow's ids of
some kind are told no more (its end, a void loss verdict, a saga's new driver,
retention forgetting it).

Cutting used to rebuild the whole table, a walk of every workflow in flight for each
workflow that ends: work per workflow growing with the workflows in flight. The table
keeps an index of each workflow's ids (every id's second element names its workflow),
so a cut walks that workflow's ids only (`drop`, `of`). A cut deletes in place: the
ids left keep the order they had, as the rebuilt table kept it, so resends go out in
the same order as before. Every change goes through `__setitem__`, `__delitem__` or
`pop`, which keep the index; the bulk changes of `dict` that would bypass it are
refused.
"""

from __future__ import annotations

from collections.abc import Callable

Entry = list  # [to, msg, next resend, backoff]

_missing = object()


class Pending(dict):
    def __init__(self) -> None:
        super().__init__()
        # Workflow -> its ids kept here, in the order first kept (a dict as an ordered set).
        self._of: dict[str, dict[tuple, None]] = {}

    def __setitem__(self, key: tuple, value: Entry) -> None:
        super().__setitem__(key, value)
        ids = self._of.get(key[1])
        if ids is None:
            self._of[key[1]] = {key: None}
        else:
            ids[key] = None

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

    def _unindex(self, key: tuple) -> None:
        ids = self._of[key[1]]
        del ids[key]
        if not ids:
            del self._of[key[1]]

    def of(self, wf: str) -> list[tuple]:
        """The ids kept for `wf`, in the order first kept."""
        ids = self._of.get(wf)
        return list(ids) if ids is not None else []

    def drop(self, wf: str, which: Callable[[tuple, Entry], bool] | None = None) -> None:
        """Delete the ids of `wf` that `which(id, entry)` names (every one: None)."""
        ids = self._of.get(wf)
        if ids is None:
            return
        for key in list(ids):
            if which is None or which(key, dict.__getitem__(self, key)):
                del self[key]

    def _refuse(self, *args, **kwargs):
        raise TypeError("reliable sends: change them id by id, so the index follows")

    update = setdefault = clear = popitem = __ior__ = _refuse  # type: ignore[assignment]
