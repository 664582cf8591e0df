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
2. Every input of the turn stepped, in order, as ONE call `node.step_batch(now,
   inputs, refuse)` down the node engine's layers (node_engine/layer.py: each layer
   does its per-input rule in its own loop, the innermost steps the Node input by
   input); a node without `step_batch` (the simulator's bare Node) is stepped by the
   same loop, `node.step(now, input)` for each. A `RemoteProtocolError` refuses that
   input only: it is logged, counted in `refused` (and passed to `on_refused`), and
   the turn goes on (what the Node decided before the refusal was decided on good
   input). Any other exception is a broken invariant of this agent: the driver stops
   for good and raises `DriverStopped` naming the input; nothing is swallowed.
3. The Ready, in the Node's order: `send_now` (messages that need no write), then
   `writes` as ONE `Durable.write` (one transaction however many inputs the turn
   had: the write combining that makes a busy agent cheap), then `send_after_write`
   (votes after their reservation, decisions after their record), then step attempts
   to start and to stop, then status changes for watchers. One kind goes with
   `send_now` instead: `status_now`, a Paxos Commit coordinator's RUNNING once its
   COMMIT is chosen (durable at a majority of the acceptors, so not lost whatever this
   write does: core/node/ready.py); `finish` does not tell it twice.
4. `node.advance(ready)`.

An exception from a port (a failed commit, a simulated crash) propagates as it is,
and the driver is stopped too: the Node no longer matches what is durable, and only
a restart (a new Node from the disk, `Node.restore`) may go on.

A message the Node addresses to itself (a coordinator's PREPARE to its own
participant, its own acceptor's vote) need not cross the transport: with `loopback`
set to the Node's name, the driver keeps it as a `Message` input and steps it first in
the next turn (`DriverLoop` takes that turn at once). It is sent where the transport
would have been handed it (a `send_after_write` one after the write), so it never
reaches the Node before what it depends on is durable. The simulator leaves
`loopback` unset: its network delivers, delays, duplicates and drops a Node's messages
to itself like any other, and its crash points stay where they were.

`next_deadline()` is `node.get_timer()`: the earliest monotonic instant at which a
`Tick` input must be stepped. The driver has no timers and no tasks of its own.

`DriverLoop` is the thin asyncio adapter the daemon uses: an inbox that gRPC
handlers and executors `post` inputs to (a plain deque: posting never blocks nor
awaits), and one task, owned by the caller (`run()` awaited, or `start(task_group)`),
that on each wake-up drains *every* queued input into one turn, then arms one
`loop.call_at` at the earliest deadline, re-armed only when that deadline changes.
When it passes, the loop wakes and steps a `Tick`. Nothing polls: with no input and
no deadline the task sleeps on an event. A `DriverStopped` ends the task with that
error (so the TaskGroup, and the daemon, stop with it); cancelling the task ends it
cleanly (its timer handle is cancelled).

The split turn (group commit). Given a `ThreadedWrite` (driver_awaits.py;
`DriverLoop(driver, write=...)`), the loop's turn is cut at the commit: `step_all(inputs)` steps the
inputs, `begin()` takes the Ready and sends `send_now`; the transaction then runs in the ThreadedWrite's
one worker thread while the event loop goes on (gRPC receives, executors report,
`post` queues: an fsync no longer stops the process); when it returns, `finish(ready)`
sends `send_after_write`, starts and stops steps, tells watchers, and advances. Only
then is the next turn taken, of every input queued meanwhile: the slower the disk, the
more inputs one transaction serves. The guarantees are the synchronous turn's: the
Node is never stepped between `ready()` and `advance()` (inputs wait in the inbox),
nothing of `send_after_write` or `start_steps` is handed out before the commit
returned, and a failed commit stops the driver with `DriverStopped` (the port's error
as its cause; the file is as before the turn, SqliteDurable rolls back). Without a
ThreadedWrite the loop turns synchronously, as the simulator's `NodeDriver.turn` does.

Own messages. A turn whose Node sent itself messages (`loopback`) is followed at once
by a turn of their own, but only once what the turn handed out has gone: the loop
first lets the event loop run what that made ready (the transport's flush and the peer
senders it wakes, which seal and write the turn's envelopes; the watchers told of a
status) and what those woke in turn, then takes the own messages with whatever was
posted meanwhile. Taken at once, the own turn ran first and the peers' envelopes
waited for its stepping and for its commit thread's encoding: a participant's Accepted
behind its own learner record, a RUNNING behind the coordinator's own participant's
turn (about half a millisecond each on the commit bench's unloaded path,
docs/benchmarks.md; a coordinator's PREPAREs are sealed sooner too, but their bytes
still cross gRPC while its own vote runs). Only the order changes: the own messages
are still stepped before any other turn, and never before their write.

Chained own turns. In the split turn, a Ready whose writes are all that its own
messages wait for (its `send_after_write` goes to this Node alone; no step to start or
stop, no status to tell) does not end the turn: the driver advances the Node, steps
those own messages at once, and takes the next Ready, while the same holds, so their
writes go in the SAME transaction (`chained`); what the chained Readies would send at
once was decided on writes not yet durable, so it waits for that transaction too, as
everything else of theirs. A coordinator's proposal cell and its own acceptor's
record, which that cell must precede, so take one forced write instead of two in
sequence before its Accepts leave (docs/benchmarks.md, "Unloaded latency"). The order
on disk is kept (one transaction holds both or neither: a crash loses the acceptor's
record with the cell, as a crash before the cell's write would), and nothing leaves
the process, nor reaches an executor or a watcher, before it is durable. A Ready
that waits for its write to send to a peer is not chained: its peers' messages leave
after its own write, not after a longer one.

Idle. A turn after which nothing is queued schedules one `call_soon` check behind what
the event loop already has ready (gRPC receives that will post); if the loop is still
idle then (`idle()`: no input, no Tick, no commit out, no timer due within
IDLE_MARGIN_S) it calls its `on_idle` port: the daemon's young garbage collection
(gc_tuning.IdleCollector, which daemon.main hands through `serve` and the NodeAgent to
the loop it builds), so that its stop falls between bursts, not inside a workflow's
path. Without a hook nothing is done (an engine built outside the daemon's main, as a
bench's, collects at the threshold); the simulator runs `NodeDriver`, not this loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, deque
from collections.abc import Callable, Iterable
from typing import Any

from fedorch.core.negotiation.errors import RemoteProtocolError
from fedorch.core.node.inputs import Message, Tick
from fedorch.core.node.ready import Ready
from fedorch.runtime.driver_awaits import AsyncWrite, ThreadedWrite, behind_ready
from fedorch.runtime.node_engine.layer import StepBroken, batch_of
from fedorch.runtime.ports import Clock, Durable, Executors, StatusSink, Transport

# ThreadedWrite (driver_awaits.py): the daemon, the bench and tests take it from here.
__all__ = ["DriverLoop", "DriverStopped", "NodeDriver", "ThreadedWrite"]

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
                 on_refused: Callable[[object, RemoteProtocolError], None] | None = None,
                 loopback: str | None = None) -> None:
        """`node`: a fedorch.core.node.Node (or anything with its RawNode interface).
        `on_refused(input, error)`: told of each refused input, after it is counted.
        `loopback`: this Node's own name: a message it addresses to itself is not
        handed to the transport (nothing to encode, sign, or verify) but kept, and
        stepped first in the next turn (see `looped`); None: every message goes to the
        transport (the simulator's network delivers, delays or drops them too)."""
        self.node = node
        self.clock = clock
        self.durable = durable
        self.transport = transport
        self.executors = executors
        self.status = status if status is not None else NoStatus()
        self.on_refused = on_refused
        self.refused: Counter[str] = Counter()  # refused inputs by input type
        self.turns = 0
        self.inputs = 0  # inputs stepped (refused ones, the one that broke, looped ones)
        self.stopped: BaseException | None = None
        self.loopback = loopback
        self.looped: list[Message] = []  # own messages, for the next turn's start
        self.looped_back = 0  # own messages kept off the transport, in all

    # ---- a turn ----------------------------------------------------------------------

    def turn(self, inputs: Iterable[object] = ()) -> None:
        """Step every input at one `now`, then do the Ready (see the header)."""
        self.step_all(inputs)
        self.flush()

    def step_all(self, inputs: Iterable[object]) -> None:
        """Step every input at one `now` (a refused one is counted; any other error
        stops the driver)."""
        if self.stopped is not None:
            raise DriverStopped(f"driver stopped earlier: {self.stopped}") from self.stopped
        now = self.clock.monotonic()
        if self.looped:  # what this Node sent itself last turn (after its write, if any)
            looped, self.looped = self.looped, []
            inputs = [*looped, *inputs]
        elif type(inputs) is not list:
            inputs = list(inputs)
        if not inputs:
            return
        try:  # the turn as one call down the layers (node_engine/layer.py)
            batch_of(self.node)(now, inputs, self._refuse)
        except Exception as e:  # one input's step, or a layer's rule for the turn
            event = e.input if type(e) is StepBroken else None
            if event is not None:  # counted: the inputs up to the one that broke (at its
                # first place: never one not stepped). A layer's rule for the whole turn
                # runs before it hands the turn on: none counted
                self.inputs += next((i for i, x in enumerate(inputs, 1) if x is event), 0)
            cause = e.__cause__ if type(e) is StepBroken else e
            where = f"input {_name(event)}" if event is not None \
                else f"a turn of {len(inputs)} inputs"
            stop = DriverStopped(f"broken invariant on {where}: "
                                 f"{type(cause).__name__}: {cause}", event)
            self.stopped = stop
            log.error("%s", stop)
            raise stop from cause
        self.inputs += len(inputs)

    def _refuse(self, event: object, error: RemoteProtocolError) -> None:
        """An input refused: counted, logged, told; the turn goes on."""
        self.refused[type(event).__name__] += 1
        log.info("refused %s: %s", _name(event), error)
        if self.on_refused is not None:
            self.on_refused(event, error)

    def flush(self) -> None:
        """Do what the Node has produced (a turn with no input: after a restore)."""
        ready = self.begin()
        if ready.writes:
            try:
                self.durable.write(ready.writes)
            except BaseException as e:
                self.stopped = e  # the Node no longer matches the disk
                raise
        self.finish(ready)

    # ---- the turn cut at its commit (DriverLoop with a ThreadedWrite) -----------------

    def begin(self) -> Ready:
        """The Ready of what was stepped, its `send_now` sent. Until `finish(ready)` the
        Node may not be stepped (it refuses to), and `ready.writes` are to be made
        durable in between."""
        if self.stopped is not None:
            raise DriverStopped(f"driver stopped earlier: {self.stopped}") from self.stopped
        ready = self.node.ready()
        self.turns += 1
        try:
            self._send_all(ready.send_now)
            for wf, state in ready.status_now:  # a COMMIT chosen: told before the write
                self.status.status_changed(wf, state)
        except BaseException as e:
            self.stopped = e
            raise
        return ready

    def write_failed(self, error: BaseException) -> DriverStopped:
        """The driver stopped by a failed commit of the Ready begun: the error to raise."""
        stop = DriverStopped(f"commit failed: {type(error).__name__}: {error}")
        self.stopped = stop
        log.error("%s", stop)
        return stop

    def finish(self, ready: Ready, last: Ready | None = None) -> None:
        """Once `ready.writes` are durable: send what waited for them, start and stop
        steps, tell watchers, advance the Node (past `last`, the Ready it handed out
        last, when `ready` is a chain's: see `chained`)."""
        try:
            self._send_all(ready.send_after_write)
            for run in ready.start_steps:
                self.executors.start(run)
            for run in ready.stop_steps:
                self.executors.stop(run)
            told = ready.status_now  # told in `begin`
            for change in ready.status_changes:
                if not told or change not in told:
                    self.status.status_changed(*change)
            for w in ready.writes:
                for note in w.notes:
                    if note[0] in _LOGGED_NOTES:
                        _LOGGED_NOTES[note[0]](*note[1:])
        except BaseException as e:
            self.stopped = e  # half done: the Node no longer matches what was done
            raise
        self.node.advance(ready if last is None else last)

    def chained(self, ready: Ready) -> tuple[Ready, Ready]:
        """The Ready begun, with the turns of its own messages chained to it while all
        that waits for its writes is messages to itself (see "Chained own turns" in the
        header): (what to write and then do, the Node's last Ready to advance past)."""
        first, writes, held = ready, list(ready.writes), []
        for _ in range(MAX_CHAINED):
            after = ready.send_after_write
            if not (ready.writes and after) or ready.start_steps or ready.stop_steps \
                    or ready.status_changes or any(o.to != self.loopback for o in after):
                break
            self.node.advance(ready)  # its writes go with the chain's, before any effect
            self.looped = [*self.looped, *(Message(o.to, o.msg) for o in after)]
            self.looped_back += len(after)
            self.step_all(())
            ready = self.node.ready()
            writes += ready.writes
            held += ready.send_now  # decided on writes not yet durable: after the write
        if ready is first:
            return first, first
        return Ready(tuple(writes), (), (*held, *ready.send_after_write), ready.start_steps,
                     ready.stop_steps, ready.status_changes), ready

    def _send_all(self, outs: Iterable[Any]) -> None:
        """Each of a turn's messages to the transport, or to the loopback when it is the
        Node's own. One call per batch, not per message: every message of every turn
        passes here."""
        loopback, looped, transport_send = self.loopback, self.looped, self.transport.send
        for out in outs:
            if out.to == loopback:
                looped.append(Message(out.to, out.msg))
                self.looped_back += 1
            else:
                transport_send(out.to, out.msg)

    def next_deadline(self) -> float | None:
        """The monotonic instant a Tick is due (None: no timer)."""
        return self.node.get_timer()


def _log_placed_again(step: tuple, domain: str, epoch: int, idempotent: bool,
                      now: float) -> None:
    log.info("%s: step %s placed again on %s (placement epoch %d)", step[0], step[1],
                domain, epoch)


def _log_placement_refused(step: tuple, src: str, epoch: int, current: int) -> None:
    log.info("%s: refused a result of step %s from %s: its placement epoch %d is over"
                " (the step is at epoch %d)", step[0], step[1], src, epoch, current)


def _log_acting(workflow_id: str, epoch: int, now: float) -> None:
    log.info("%s: took over as coordinator in epoch %d", workflow_id, epoch)


# The Node's notes (ready.py) the driver logs: a step placed again, fencing's refusals
# of an older placement's results (core/node/replacement.py), and a takeover won
# (core/node/takeover.py: this Node acts as the workflow's coordinator from then on).
_LOGGED_NOTES = {"placed_again": _log_placed_again,
                 "placement_refused": _log_placement_refused,
                 "acting": _log_acting}


def _name(event: object) -> str:
    """An input, named for a log line (a message by its type and sender)."""
    msg = getattr(event, "msg", None)
    if msg is not None:
        return f"{type(event).__name__}({type(msg).__name__} from {event.src})"
    wf = getattr(event, "workflow_id", None)
    return f"{type(event).__name__}({wf})" if wf is not None else type(event).__name__


# Own turns chained to one commit at most (they end on their own: an own acceptor's
# record, then its answer to its own proposer).
MAX_CHAINED = 4
# An idle loop calls its `on_idle` only if no Tick is due sooner than this (seconds).
IDLE_MARGIN_S = 0.05


class DriverLoop:
    """The asyncio adapter around a NodeDriver (see the header)."""

    def __init__(self, driver: NodeDriver, *, write: AsyncWrite | None = None,
                 on_idle: Callable[[], object] | None = None) -> None:
        """`write`: the commit of each turn off the loop's thread (a ThreadedWrite, or
        what wraps one); None: `driver.durable.write` inside the turn, the loop
        waiting for it. `on_idle`: called when a turn left the loop idle (see the
        header); None: nothing is done when idle."""
        self.driver = driver
        self.write = write
        self.on_idle = on_idle
        self._idle_check: asyncio.Handle | None = None
        self._inbox: deque[object] = deque()
        self._wake = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None
        self._armed_at: float | None = None  # the deadline the timer is armed for
        self._tick_due = False
        self.committing = False  # a turn's transaction is out (for tests and metrics)

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
                if self.write is None:
                    self.driver.turn(self._drain())
                else:
                    await self._split_turn()
                self._arm(loop)
                if self.driver.looped:  # its own messages: a turn of their own, next
                    await behind_ready(loop)  # after what this turn handed out
                    continue
                if self.on_idle is not None and self._idle_check is None \
                        and not self._wake.is_set():
                    self._idle_check = loop.call_soon(self._on_idle)
                await self._wake.wait()
        finally:
            self._disarm()
            if self._idle_check is not None:
                self._idle_check.cancel()

    def idle(self) -> bool:
        """Nothing for the loop to do soon: no input queued, no Tick, no commit out,
        and no timer due within IDLE_MARGIN_S."""
        if self._inbox or self._tick_due or self._wake.is_set() or self.committing \
                or self.driver.looped:
            return False
        return self._armed_at is None or \
            self._armed_at - self.driver.clock.monotonic() >= IDLE_MARGIN_S

    def _on_idle(self) -> None:
        self._idle_check = None
        if self.on_idle is not None and self.idle():
            self.on_idle()

    def _drain(self) -> list[object]:
        inputs = list(self._inbox)
        self._inbox.clear()
        if self._tick_due:
            self._tick_due = False
            inputs.append(Tick())
        return inputs

    async def _split_turn(self) -> None:
        driver = self.driver
        driver.step_all(self._drain())
        ready = driver.begin()
        ready, last = driver.chained(ready)
        if ready.writes:
            self.committing = True
            try:
                await self.write.write(ready.writes)
            except asyncio.CancelledError:
                driver.stopped = asyncio.CancelledError("cancelled during a commit")
                raise
            except Exception as e:
                raise driver.write_failed(e) from e
            finally:
                self.committing = False
        driver.finish(ready, last)

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
