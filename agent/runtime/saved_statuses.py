"""What the last saves of each workflow wrote, kept in memory: watchers and status reads
are answered from it instead of from SQLite.

An entry of an active workflow exists only while it holds every step row on disk: a
save of every step makes a complete entry, and so does a save of the row before there
is any progress (results that came early stay in SQLite, unseen, until folded in and
saved with every step); a save of some steps only updates an entry that already holds
every step, and drops any other. When the workflow ends its entry becomes its final
one, kept for the watchers that come right then (the newest `limit` of them), until
something else writes it.

Part of the shared context (runtime.context), which owns one and says when a save is on
disk and when a workflow ends.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

from fedorch.runtime.store.store import StepRow, WorkflowRow


class SavedStatus(NamedTuple):
    """What the last saves of an active workflow wrote: its row, its step rows, and
    whether those are every step row it has on disk (a save of every step made them so)."""

    row: WorkflowRow
    steps: dict[str, StepRow]
    every_step: bool


class SavedStatuses:
    def __init__(self) -> None:
        # What the last saves of each active workflow wrote (row, steps).
        self.active: dict[str, SavedStatus] = {}
        # The last entry of each workflow that ended lately, until something else
        # writes it.
        self.final: OrderedDict[str, SavedStatus] = OrderedDict()

    def saved(self, written: WorkflowRow, rows: list[StepRow], *, progress: bool,
              every_step: bool) -> None:
        """A save of an active workflow is on disk: `written` (a copy of its row) and
        `rows`, every step's (`every_step`) or some; `progress`: it has any."""
        workflow_id = written.id
        saved = self.active.get(workflow_id)
        if not progress:
            self.active[workflow_id] = SavedStatus(written, {}, False)
        elif every_step:
            self.active[workflow_id] = SavedStatus(written, {r.step_id: r for r in rows}, True)
        elif saved is not None and saved.every_step:
            saved.steps.update((r.step_id, r) for r in rows)
            self.active[workflow_id] = SavedStatus(written, saved.steps, True)
        else:
            self.active.pop(workflow_id, None)

    def ended(self, workflow_id: str, limit: int) -> None:
        """The workflow ended: its entry, if complete, is its final one."""
        saved = self.active.pop(workflow_id, None)
        if saved is not None:
            self.final[workflow_id] = saved
            while len(self.final) > limit:
                self.final.popitem(last=False)
        else:  # ended without a save through here (written to SQLite directly): read it
            self.final.pop(workflow_id, None)

    def last(self, workflow_id: str, active: bool) -> SavedStatus | None:
        """What the last write of a workflow put on disk, if memory still holds it: its
        last save while active, else (not begun again since) the write that ended it."""
        saved = self.active.get(workflow_id)
        if saved is not None:
            return saved
        return self.final.get(workflow_id) if not active else None
