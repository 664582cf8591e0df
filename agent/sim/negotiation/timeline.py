"""The clock of the small simulated worlds (re-placement, successor): callbacks run in
time order, ties in the order they were scheduled, so a seed replays exactly."""

from __future__ import annotations

import heapq
from collections.abc import Callable


class Timeline:
    def __init__(self) -> None:
        self.now = 0.0
        self._queue: list[tuple[float, int, Callable[..., object], tuple]] = []
        self._seq = 0

    def at(self, when: float, fn: Callable[..., object], *args: object) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (when, self._seq, fn, args))

    def deliver(self, delay: float, src: str, dst: str, alive: Callable[[str], bool],
                fn: Callable[..., object], *args: object) -> None:
        """A message from `src` to `dst` arrives after `delay`, if both ends are alive
        then (a dead domain hears nothing, and a dead one's messages in flight are lost)."""
        def arrive() -> None:
            if alive(src) and alive(dst):
                fn(*args)
        self.at(self.now + delay, arrive)

    def run(self, until: float) -> None:
        """Run every callback due by `until` (those they schedule included)."""
        while self._queue and self._queue[0][0] <= until:
            self.now, _, fn, args = heapq.heappop(self._queue)
            fn(*args)
