"""Ports: what the runtime needs from the world, as Protocols.

The daemon plugs in the system's; tests and simulators plug in fakes. Only the
clock is here so far.

Two clocks, for two different questions:

- `monotonic()` answers "how long ago / how long until": every core's `now`, timers,
  leases, timeouts, backoffs, records' ages in memory. It never steps, so an NTP step
  (or an operator's `date -s`) can neither fire a lease early nor freeze a timer, and a
  core that checks that time only moves forward never sees it go back.
- `wall_ms()` answers "when, in the calendar": envelope timestamps (peers compare them
  with their own wall clocks, see ReplayGuard), incarnations, workflow ids, and every
  time written for people or kept across a restart (`created_ms`, a lease's expiry on
  disk). A monotonic reading means nothing to another process or after a reboot.

Converting between them (`wall_ms_at`, `monotonic_at`) uses the offset of this moment:
a deadline that is still ahead is shown, or stored, as the wall time it would fall at
if the wall clock does not step meanwhile.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never steps; only differences mean anything."""
        ...

    def wall_ms(self) -> int:
        """Milliseconds since the Unix epoch, as the system's wall clock says (may step)."""
        ...


class SystemClock:
    """The daemon's clock: CLOCK_MONOTONIC and CLOCK_REALTIME."""

    def monotonic(self) -> float:
        return time.monotonic()

    def wall_ms(self) -> int:
        return time.time_ns() // 1_000_000


def wall_ms_at(clock: Clock, monotonic: float) -> int:
    """The wall time (ms) that a monotonic instant corresponds to at this moment."""
    return clock.wall_ms() + round((monotonic - clock.monotonic()) * 1000)


def monotonic_at(clock: Clock, wall_ms: int) -> float:
    """The monotonic instant that a wall time (ms) corresponds to at this moment."""
    return clock.monotonic() + (wall_ms - clock.wall_ms()) / 1000
