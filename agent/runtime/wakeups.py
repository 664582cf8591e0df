"""One background loop's sleep: until the earliest deadline its cores report, or until
an event wakes it. Never a fixed tick: a loop with nothing due sleeps until told.

Each loop owns one `Sleep`. Events (a member's state changed, a key record came, a
workflow ended) call `wake()`; the loop calls `until(deadline)` at the end of each
turn with the earliest of its cores' `get_timer()` (None: nothing is due, so only an
event ends the sleep). Every return is counted in fedorch_loop_wakeups_total{loop},
and what the loop sleeps towards is readable (`deadline`, `parked`), so an idle
agent can be shown not to wake.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from prometheus_client import Counter


class Sleep:
    def __init__(self, loop: str, wakeups: Counter, now: Callable[[], float]) -> None:
        self.loop = loop
        self._counter = wakeups.labels(loop)
        self._now = now
        self._event = asyncio.Event()
        self.deadline: float | None = None  # what the current (or last) sleep waits for
        self.parked = False  # asleep right now
        self.wakeups = 0

    def wake(self) -> None:
        """Something happened that the loop must look at: end its sleep (or the next)."""
        self._event.set()

    def woken(self) -> bool:
        return self._event.is_set()

    async def until(self, deadline: float | None) -> bool:
        """Sleep until `deadline` (monotonic seconds, as `now`) or a wake. True when woken
        by an event, False when the deadline came. A wake that came while the loop was
        busy ends the sleep at once, so none is lost."""
        self.deadline = deadline
        wait = None if deadline is None else max(0.0, deadline - self._now())
        woken = True
        self.parked = True
        try:
            async with asyncio.timeout(wait):  # no task per wait, unlike wait_for
                await self._event.wait()
        except TimeoutError:
            woken = False
        finally:
            self.parked = False
        # Cleared before the turn looks at anything: a wake during the turn is kept.
        self._event.clear()
        self.wakeups += 1
        self._counter.inc()
        return woken
