"""What the store last wrote of each workflow row and its step rows, so that a save
writes only what changed.

A workflow is saved several times on its way (placed, negotiating, running, each step's
start and end, its end), and each save used to rewrite the whole row, spec and signed
submission included, and every step row it named. With the last written values in
memory a save becomes an UPDATE of the columns that changed and the step rows that
changed; the spec and the submission go to disk once, in the INSERT.

The memory is only trusted when it is certainly what is on disk:
- it is set when a write has committed (not when it is asked for), and dropped when a
  write of that workflow fails;
- while a write of a workflow is on its way, the next save of it writes in full (an
  upsert of every column, every named step), whatever order the two commit in;
- a write that changes these rows by other means (a step result kept before its
  workflow is known, retention deleting ended workflows) calls `forget`, which also
  keeps writes already on their way from setting what they wrote;
- it holds at most LIMIT workflows, the least recently saved dropped first (a dropped
  one is written in full next time).

Step rows while writes are on their way. A wide workflow's coordinator saves every step
at each result, and the results of a 40-domain fan-out come close together: with a write
always on its way, every save wrote every step row (1,700 rows and 3,400 JSON encodings
per workflow). So a save writes a step row when it differs from what is certainly on
disk, or when a write still on its way writes that row (`step_base`, `writing`): if that
write fails, this one puts the row right; if it succeeds, this one writes after it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field

LIMIT = 4096


@dataclass
class Entry:
    row: tuple  # the workflow row's column values, in workflow_table.WF_COLS order
    steps: dict[str, tuple] = field(default_factory=dict)  # step id: workflow_table.step_values


class Written:
    def __init__(self, limit: int = LIMIT) -> None:
        self._limit = limit
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._in_flight: dict[str, int] = {}
        self._forgotten = 0  # bumped by every forget: a write begun before sets nothing
        # Step rows that writes on their way write: workflow -> step id -> how many of
        # them, and the values and encoded row of the last.
        self._writing: dict[str, dict[str, tuple[int, tuple[tuple, tuple]]]] = {}

    def begin(self, workflow_id: str) -> tuple[Entry | None, int]:
        """A write of this workflow is asked for: what is certainly on disk of it (None:
        write in full), and the token to pass to `end`."""
        entry = None if self._in_flight.get(workflow_id) else self._entries.get(workflow_id)
        self._in_flight[workflow_id] = self._in_flight.get(workflow_id, 0) + 1
        return entry, self._forgotten

    def step_base(self, workflow_id: str
                  ) -> tuple[dict[str, tuple] | None, dict[str, tuple[tuple, tuple]]]:
        """What is certainly on disk of the workflow's step rows (None: nothing known),
        and the step rows that writes on their way write (to be written again), each with
        the values and the encoded row the last of them writes."""
        entry = self._entries.get(workflow_id)
        writing = self._writing.get(workflow_id)
        return (entry.steps if entry is not None else None,
                {step_id: latest for step_id, (_, latest) in writing.items()}
                if writing else {})

    def writing(self, workflow_id: str, rows: Iterable[tuple[str, tuple, tuple]]) -> None:
        """The write just begun writes these step rows, (step id, values, encoded row)
        each (`end` with `wrote`, their step ids, ends it)."""
        writing = self._writing.setdefault(workflow_id, {})
        for step_id, values, encoded in rows:
            n = writing[step_id][0] if step_id in writing else 0
            writing[step_id] = (n + 1, (values, encoded))
        if not writing:
            del self._writing[workflow_id]

    def end(self, workflow_id: str, token: int, row: tuple | None,
            steps: Iterable[tuple[str, tuple]] = (), wrote: Iterable[str] = ()) -> None:
        """The write begun with `token` committed these values (row None: it failed, or
        what it did is not known); `wrote`: the step rows it was said to write."""
        writing = self._writing.get(workflow_id)
        if writing is not None:
            for step_id in wrote:
                n, latest = writing.get(step_id, (1, ()))
                if n > 1:
                    writing[step_id] = (n - 1, latest)
                else:
                    writing.pop(step_id, None)
            if not writing:
                del self._writing[workflow_id]
        left = self._in_flight[workflow_id] - 1
        if left:
            self._in_flight[workflow_id] = left
        else:
            del self._in_flight[workflow_id]
        if row is None or token != self._forgotten:
            self._entries.pop(workflow_id, None)
            return
        entry = self._entries.get(workflow_id)
        if entry is None:
            entry = self._entries[workflow_id] = Entry(row)
            if len(self._entries) > self._limit:
                self._entries.popitem(last=False)
        else:
            entry.row = row
            self._entries.move_to_end(workflow_id)
        entry.steps.update(steps)

    def forget(self, workflow_ids: Iterable[str]) -> None:
        """These workflows' rows are changed by some other write: write them in full
        next time, and let no write already on its way set what it wrote."""
        self._forgotten += 1
        for workflow_id in workflow_ids:
            self._entries.pop(workflow_id, None)
