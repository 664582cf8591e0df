"""Wakes the watchers of a workflow when its status changes (no polling)."""

from __future__ import annotations

import asyncio


class Changes:
    """Wakes the watchers of a workflow when its status changes (no polling).

    Each workflow has a version number and, while anyone waits on it, the futures of its
    waiters, which its next change resolves: a change wakes that workflow's watchers only
    (one shared condition woke every watcher of every workflow on each change). Each
    waiter has a future of its own and one timer that resolves it at its timeout: no
    shield and no timeout context per wait, which a busy coordinator paid on every
    change of every workflow a client follows.

    Versions are numbers from one counter for all workflows, so a workflow's version
    only ever rises even after it is forgotten: forgotten (long ended, or removed by
    retention), its version reads as the highest ever forgotten, and its next change
    gets a newer number. A watcher of a forgotten workflow is woken once more than
    needed (it reads a status that did not change), never once too few. So the map
    holds only workflows not yet forgotten (see AgentContext.finished and forget).
    """

    def __init__(self) -> None:
        self._version: dict[str, int] = {}
        self._counter = 0  # the last version given out, to any workflow
        self._floor = 0  # the highest version forgotten: what a forgotten one reads
        self._next: dict[str, list[asyncio.Future]] = {}  # workflow -> its waiters
        self._waiting: dict[str, int] = {}

    def version(self, workflow_id: str) -> int:
        return self._version.get(workflow_id, self._floor)

    async def bump(self, workflow_id: str) -> None:
        self._counter += 1
        self._version[workflow_id] = self._counter
        for future in self._next.pop(workflow_id, ()):
            if not future.done():
                future.set_result(None)

    async def wait_past(self, workflow_id: str, seen: int, timeout: float) -> int:
        """Wait until the version is past `seen` or `timeout` passes; the version."""
        if self.version(workflow_id) > seen:
            return self.version(workflow_id)
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._next.setdefault(workflow_id, []).append(future)
        self._waiting[workflow_id] = self._waiting.get(workflow_id, 0) + 1
        timer = loop.call_later(timeout, _wake, future)
        try:
            await future
        finally:
            timer.cancel()
            left = self._waiting.pop(workflow_id) - 1
            if left:
                self._waiting[workflow_id] = left
            waiters = self._next.get(workflow_id)
            if waiters is not None and future in waiters:  # timed out, or cancelled
                waiters.remove(future)
                if not waiters:
                    del self._next[workflow_id]
        return self.version(workflow_id)

    def forget(self, workflow_id: str) -> None:
        """Drop a long-finished workflow's version (a late watcher reads its status)."""
        version = self._version.pop(workflow_id, None)
        if version is not None:
            self._floor = max(self._floor, version)

    def __len__(self) -> int:
        """How many workflows have a version held."""
        return len(self._version)


def _wake(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)
