"""Ports: what the runtime needs from the world, as Protocols.

The daemon plugs in the system's; tests and simulators plug in fakes. The driver
(driver.py) is written against these alone: `Clock`, `Durable` (one Ready's writes as
one transaction), `Transport` (a message to a peer), `Executors` (step attempts) and
`StatusSink` (workflow state changes, for watchers).

Two clocks, for two different questions:

- `monotonic()` answers "how long ago / how long until": every core's `now`, timers,
  leases, timeouts, backoffs, records' ages in memory. It never steps, so an NTP step
  (or an operator's `date -s`) can neither fire a lease early nor freeze a timer, and a
  core that checks that time only moves forward never sees it go back.
- `wall_ms()` answers "when, in the calendar": envelope timestamps (peers compare them
  with their own wall clocks, see ReplayGuard), incarnations, workflow ids, and every
  time written for people or kept across a restart (`created_ms`, a lease's expiry on
  disk). A monotonic reading means nothing to another process or after a reboot.

Converting a monotonic instant to wall time (`wall_ms_at`) uses the offset of this
moment: a deadline that is still ahead is shown, or stored, as the wall time it would
fall at if the wall clock does not step meanwhile.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from fedorch.core.node.ready import Write


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


def wall_ms_of(clock: Clock) -> Callable[[float], int]:
    """`wall_ms_at` over `clock`, as one function of the instant (the Node's `wall_ms`,
    asked several times a workflow). The system clock's is flattened: the time functions
    called directly, not through wall_ms_at and the clock's two methods."""
    if type(clock) is SystemClock:
        time_ns, monotonic = time.time_ns, time.monotonic
        return lambda now: time_ns() // 1_000_000 + round((now - monotonic()) * 1000)
    return lambda now: wall_ms_at(clock, now)


class Durable(Protocol):
    def write(self, writes: Sequence[Write]) -> None:
        """Make one Ready's write groups durable as ONE transaction, in order; return
        only once they are. Before each group is a point where the process may stop
        (the simulator crashes there): a group is all or nothing, and a later group is
        never durable without the earlier ones. Each group's `notes` are observations
        (for an audit log, metrics, or an invariant checker) that hold once it is
        durable. An exception means nothing after the failing group is durable; the
        driver then stops (its Node no longer matches the disk)."""
        ...


class Transport(Protocol):
    def send(self, dst: str, msg: object) -> None:
        """Hand `msg` to the network for `dst`; never waits for the peer (delivery is
        not promised: the Node resends what must arrive)."""
        ...


class Executors(Protocol):
    def start(self, run: tuple[str, str, int]) -> None:
        """Start attempt (workflow, step, attempt); its end comes back as a StepEnded
        input. The attempt's start record is durable already (its idempotency key)."""
        ...

    def stop(self, run: tuple[str, str, int]) -> None:
        """Stop that attempt if it still runs (its workflow ended); its end, if it still
        comes, changes nothing."""
        ...


class StatusSink(Protocol):
    def status_changed(self, workflow_id: str, state: object) -> None:
        """A workflow's state changed (a WorkflowState), durably: watchers may see it."""
        ...
