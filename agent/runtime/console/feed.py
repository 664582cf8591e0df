"""The console's one change feed: what every open page of the map and the list hears.

One task per agent, however many browsers are open. It sleeps until something a page
shows may have changed, and only while someone listens: membership applied a change (a
member's state or record: `AgentContext.on_members_change`), the store committed a
transaction (`Store.on_commit`), or the trusted domains changed (`on_trust_change`).
Then it compares the agent's in-memory member view and the store's commit count with
what it last saw, and tells every listener what changed. It looks at most once per
`tick_s`: a burst of commits under load is one look, not one per commit; an idle agent
is never looked at. The workflow list is read again only when the store has committed
something since. A listener keeps only the latest value of each kind: a slow browser
skips intermediate states, it never makes the agent queue them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

import fedorch.runtime.console.views as views
from fedorch.runtime.wakeups import Sleep

if TYPE_CHECKING:
    from fedorch.runtime.context import AgentContext

TICK_S = 0.5


class Listener:
    """One open page: the latest value of each kind of event not sent yet."""

    def __init__(self) -> None:
        self.pending: dict[str, object] = {}
        self.ready = asyncio.Event()

    def put(self, kind: str, data: object) -> None:
        self.pending[kind] = data
        self.ready.set()

    async def take(self, timeout: float) -> dict[str, object]:
        """What is pending (empty after `timeout` with nothing new)."""
        try:
            async with asyncio.timeout(timeout):
                await self.ready.wait()
        except TimeoutError:
            return {}
        self.ready.clear()
        taken, self.pending = self.pending, {}
        return taken


class Feed:
    """Events `members` (the map's fragment, rendered once for everyone) and
    `workflows` (something in the store changed: pages fetch their own filtered list)."""

    def __init__(self, agent: AgentContext, render_members: Callable[[list], str],
                 tick_s: float = TICK_S) -> None:
        self.agent = agent
        self.render_members = render_members
        self.tick_s = tick_s
        self.listeners: set[Listener] = set()
        self._someone = asyncio.Event()
        # Woken by the hooks below; parked with no deadline while nothing changes.
        self.sleep = Sleep("console feed", agent.metrics.loop_wakeups, agent.now)
        self._members: list | None = None
        self._commits: int | None = None
        agent.store.on_commit.append(self.changed)
        agent.on_members_change.append(self.changed)
        agent.on_trust_change.append(self.changed)

    def changed(self) -> None:
        """Something a page shows may have changed (a hook: cheap, no look now)."""
        self.sleep.wake()

    def listen(self) -> Listener:
        listener = Listener()
        if not self.listeners:
            self.changed()  # a first page after a quiet spell: look again at once
        self.listeners.add(listener)
        self._someone.set()
        return listener

    def leave(self, listener: Listener) -> None:
        self.listeners.discard(listener)
        if not self.listeners:
            self._someone.clear()

    async def run(self) -> None:
        """Until cancelled (the console owns this task and cancels it when it stops)."""
        loop = asyncio.get_running_loop()
        while True:
            if not self.listeners:
                # Nobody listens: forget what was seen, so the next page gets fresh values.
                self._members = self._commits = None
                await self._someone.wait()
            self.check()
            looked_at = loop.time()
            await self.sleep.until(None)  # no deadline: nothing changed, nothing to look at
            rest = looked_at + self.tick_s - loop.time()
            if rest > 0:  # at most one look per tick: the changes of a burst wait together
                await asyncio.sleep(rest)

    def check(self) -> None:
        """Compare the views with the last seen; tell every listener what changed."""
        members = views.members(self.agent)
        if members != self._members:
            first = self._members is None
            self._members = members
            if not first:
                self._send("members", self.render_members(members))
        commits = self.agent.store.commits
        if commits != self._commits:
            first = self._commits is None
            self._commits = commits
            if not first:
                self._send("workflows", str(commits))

    def _send(self, kind: str, data: str) -> None:
        for listener in self.listeners:
            listener.put(kind, data)
