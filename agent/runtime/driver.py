"""The one driver around a Node: inputs in, one transaction, messages out.

Theory of operation
-------------------
A `Node` (agent/core/node) decides everything and does nothing; a driver does what it
decided. `NodeDriver` is that driver, written against the ports alone
(runtime/ports.py: `Clock`, `Durable`, `Transport`, `Executors`, `StatusSink`), so
that the daemon and the negotiation simulator run the same code: the simulator plugs
in its simulated disk, network, executors and clock (agent/sim/negotiation/agent.py),
the daemon will plug in SQLite, gRPC and its executors.

One *turn* (`turn(inputs)`):

1. `now = clock.monotonic()`, once: every input of the turn is stepped at the same
   instant. The Node only ever sees monotonic time, so a wall-clock step (NTP, an
   operator's `date -s`) can neither fire a lease early nor make time go backwards
   for it; wall time reaches it only through the `wall_ms` it was built with
   (envelope timestamps, ids, the submission window).
2. `node.step(now, input)` for *every* input of the turn, in order. A
   `RemoteProtocolError` refuses that input only: it is logged, counted in
   `refused` (and passed to `on_refused`), and the turn goes on (what the Node
   decided before the refusal was decided on good input). Any other exception is a
   broken invariant of this agent: the driver stops for good and raises
   `DriverStopped` naming the input; nothing is swallowed.
3. The Ready, in the Node's order: `send_now` (messages that need no write), then
   `writes` as ONE `Durable.write` (one transaction however many inputs the turn
   had: the write combining that makes a busy agent cheap), then `send_after_write`
   (votes after their reservation, decisions after their record), then step attempts
   to start and to stop, then status changes for watchers.
4. `node.advance(ready)`.

An exception from a port (a failed commit, a simulated crash) propagates as it is,
and the driver is stopped too: the Node no longer matches what is durable, and only
a restart (a new Node from the disk, `Node.restore`) may go on.

`next_deadline()` is `node.get_timer()`: the earliest monotonic instant at which a
`Tick` input must be stepped. The driver has no timers and no tasks of its own.

`DriverLoop` is the thin asyncio adapter the daemon will use: an inbox that gRPC
handlers and executors `post` inputs to (a plain deque: posting never blocks nor
awaits), and one task, owned by the caller (`run()` awaited, or `start(task_group)`),
that on each wake-up drains *every* queued input into one `turn`, then arms one
`loop.call_at` at the earliest deadline, re-armed only when that deadline changes.
When it passes, the loop wakes and steps a `Tick`. Nothing polls: with no input and
no deadline the task sleeps on an event. A `DriverStopped` ends the task with that
error (so the TaskGroup, and the daemon, stop with it); cancelling the task ends it
cleanly (its timer handle is cancelled).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, deque
from collections.abc import Callable, Iterable
from typing import Any

from fedorch.core.negotiation.errors import RemoteProtocolError
from fedorch.core.node.inputs import Tick
from fedorch.core.node.ready import Ready
from fedorch.runtime.ports import Clock, Durable, Executors, StatusSink, Transport

__all__ = ["DriverLoop", "DriverStopped", "NodeDriver"]

log = logging.getLogger(__name__)


class DriverStopped(RuntimeError):
    """A broken invariant stopped the driver: the agent must stop (and restart from
    its disk). The message names the input that broke it."""

    def __init__(self, message: str, input: object = None) -> None:
        super().__init__(message)
        self.input = input


class NoStatus:
    """A status sink for drivers nobody watches."""

    def status_changed(self, workflow_id: str, state: object) -> None:
        return None


class NodeDriver:
    def __init__(self, node: Any, clock: Clock, durable: Durable, transport: Transport,
                 executors: Executors, status: StatusSink | None = None, *,
                 on_refused: Callable[[object, RemoteProtocolError], None] | None = None
                 ) -> None:
        """`node`: a fedorch.core.node.Node (or anything with its RawNode interface).
        `on_refused(input, error)`: told of each refused input, after it is counted."""
        self.node = node
        self.clock = clock
        self.durable = durable
        self.transport = transport
        self.executors = executors
        self.status = status if status is not None else NoStatus()
        self.on_refused = on_refused
        self.refused: Counter[str] = Counter()  # refused inputs by input type
        self.turns = 0
        self.stopped: BaseException | None = None

    # ---- a turn ----------------------------------------------------------------------

    def turn(self, inputs: Iterable[object] = ()) -> None:
        """Step every input at one `now`, then do the Ready (see the header)."""
        if self.stopped is not None:
            raise DriverStopped(f"driver stopped earlier: {self.stopped}") from self.stopped
        now = self.clock.monotonic()
        node = self.node
        for event in inputs:
            try:
                node.step(now, event)
            except RemoteProtocolError as e:
                self.refused[type(event).__name__] += 1
                log.info("refused %s: %s", _name(event), e)
                if self.on_refused is not None:
                    self.on_refused(event, e)
            except Exception as e:
                stop = DriverStopped(f"broken invariant on input {_name(event)}: "
                                     f"{type(e).__name__}: {e}", event)
                self.stopped = stop
                log.error("%s", stop)
                raise stop from e
        self.flush()

    def flush(self) -> None:
        """Do what the Node has produced (a turn with no input: after a restore)."""
        node = self.node
        ready = node.ready()
        self.turns += 1
        try:
            self._do(ready)
        except BaseException as e:
            self.stopped = e  # half done: the Node no longer matches the disk
            raise
        node.advance(ready)

    def _do(self, ready: Ready) -> None:
        send = self.transport.send
        for out in ready.send_now:
            send(out.to, out.msg)
        if ready.writes:
            self.durable.write(ready.writes)
        for out in ready.send_after_write:
            send(out.to, out.msg)
        for run in ready.start_steps:
            self.executors.start(run)
        for run in ready.stop_steps:
            self.executors.stop(run)
        for wf, state in ready.status_changes:
            self.status.status_changed(wf, state)

    def next_deadline(self) -> float | None:
        """The monotonic instant a Tick is due (None: no timer)."""
        return self.node.get_timer()


def _name(event: object) -> str:
    """An input, named for a log line (a message by its type and sender)."""
    msg = getattr(event, "msg", None)
    if msg is not None:
        return f"{type(event).__name__}({type(msg).__name__} from {event.src})"
    wf = getattr(event, "workflow_id", None)
    return f"{type(event).__name__}({wf})" if wf is not None else type(event).__name__


class DriverLoop:
    """The asyncio adapter around a NodeDriver (see the header)."""

    def __init__(self, driver: NodeDriver) -> None:
        self.driver = driver
        self._inbox: deque[object] = deque()
        self._wake = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None
        self._armed_at: float | None = None  # the deadline the timer is armed for
        self._tick_due = False

    def post(self, event: object) -> None:
        """Queue an input for the next turn (from a handler, an executor, a test), on
        the loop's thread (a thread's result comes back via call_soon_threadsafe)."""
        self._inbox.append(event)
        self._wake.set()

    def start(self, group: asyncio.TaskGroup) -> asyncio.Task[None]:
        """Run the loop as a task of the caller's TaskGroup (the group owns it)."""
        return group.create_task(self.run(), name="node-driver")

    async def run(self) -> None:
        """Turn until cancelled or stopped (DriverStopped propagates)."""
        loop = asyncio.get_running_loop()
        try:
            while True:  # the first turn: what a restored Node has to say, and the inbox
                self._wake.clear()
                self._turn(loop)
                await self._wake.wait()
        finally:
            self._disarm()

    def _turn(self, loop: asyncio.AbstractEventLoop) -> None:
        inputs = list(self._inbox)
        self._inbox.clear()
        if self._tick_due:
            self._tick_due = False
            inputs.append(Tick())
        self.driver.turn(inputs)
        self._arm(loop)

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        deadline = self.driver.next_deadline()
        if deadline == self._armed_at and (deadline is None or self._timer is not None):
            return  # unchanged: the armed timer stands
        self._disarm()
        if deadline is None:
            return
        # The driver's clock and the loop's clock are both monotonic but may differ in
        # origin: convert through "how long from now".
        delay = max(0.0, deadline - self.driver.clock.monotonic())
        self._armed_at = deadline
        self._timer = loop.call_at(loop.time() + delay, self._on_deadline)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._armed_at = None

    def _on_deadline(self) -> None:
        self._timer = None
        self._armed_at = None
        self._tick_due = True
        self._wake.set()
