"""Wakes the watchers of a workflow when its status changes (no polling)."""

from __future__ import annotations

import asyncio


class Changes:
    """Wakes the watchers of a workflow when its status changes (no polling).

    Each workflow has a version number and, while anyone waits on it, one future
    that its next change resolves: a change wakes that workflow's watchers only
    (one shared condition woke every watcher of every workflow on each change).
    """

    def __init__(self) -> None:
        self._version: dict[str, int] = {}
        self._next: dict[str, asyncio.Future] = {}  # workflow -> resolved by its next bump
        self._waiting: dict[str, int] = {}

    def version(self, workflow_id: str) -> int:
        return self._version.get(workflow_id, 0)

    async def bump(self, workflow_id: str) -> None:
        self._version[workflow_id] = self.version(workflow_id) + 1
        future = self._next.pop(workflow_id, None)
        if future is not None and not future.done():
            future.set_result(None)

    async def wait_past(self, workflow_id: str, seen: int, timeout: float) -> int:
        """Wait until the version is past `seen` or `timeout` passes; the version."""
        if self.version(workflow_id) > seen:
            return self.version(workflow_id)
        future = self._next.get(workflow_id)
        if future is None:
            future = self._next[workflow_id] = asyncio.get_running_loop().create_future()
        self._waiting[workflow_id] = self._waiting.get(workflow_id, 0) + 1
        try:
            async with asyncio.timeout(timeout):  # shielded: the future is shared
                await asyncio.shield(future)
        except TimeoutError:
            pass
        finally:
            left = self._waiting.pop(workflow_id) - 1
            if left:
                self._waiting[workflow_id] = left
            elif self._next.get(workflow_id) is future:  # nobody waits on it any more
                del self._next[workflow_id]
        return self.version(workflow_id)

    def forget(self, workflow_id: str) -> None:
        """Drop a long-finished workflow's version (a late watcher reads its status)."""
        self._version.pop(workflow_id, None)
