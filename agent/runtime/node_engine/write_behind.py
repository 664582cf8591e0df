"""Keep running while node.db cannot be written: the writes kept in order and retried,
everything that waits on them held back, new work refused.

Theory of operation
-------------------
The driver (runtime/driver.py) does a turn's Ready in the Node's order: `send_now`,
ONE `Durable.write`, then `send_after_write`, step starts and stops, status changes,
and `advance`. A write that raises stops the driver for good (its Node has stepped
inputs the file does not hold). For a write that fails for the *storage* (disk full,
I/O error, read-only file system: SQLite's storage error codes, `is_storage_fault`)
this module keeps the agent running instead, by making the failure look, from the
outside, like a disk that has become very slow:

- `HeldDurable` (the Durable port) rolls the failed transaction back (SqliteDurable
  does) and keeps its write groups as *pending*; it returns normally, so the driver
  advances. Every later turn's groups are appended to the pending ones, in order, and
  not tried on their own. `retry()` writes all pending groups as ONE transaction,
  oldest first. Every op sets its key's outcome whatever was there (PUT upserts,
  DELETE and DISCARD remove, ADD inserts or ignores), so groups written again give
  the file they gave once: a commit whose outcome SQLite could not tell (an fsync
  error after the WAL frames were written) is safe to write again.
- While any write is pending, `HeldTransport`, `HeldExecutors` and `HeldStatus` (the
  other ports) hold back every effect, in the order the driver asked for it: the
  messages (`send_now` of later turns too, since the Node may say now what an earlier,
  unwritten turn decided), step starts and stops, and status changes (which also
  answer a submitter waiting for its workflow to be durable). Once `retry()` commits,
  the held effects are done in order, before anything of a later turn. So nothing
  leaves the process that depends on a write not yet on disk, exactly as the Ready's
  contract asks; only what the failed turn sent *before* its write (its `send_now`,
  which needs no write of its own and follows writes that were all durable) left.
- A process killed meanwhile loses only the pending writes and the held effects:
  nothing of them was acknowledged, so the restart (a Node restored from node.db) is
  that of a crash before those turns' writes, which the Node recovers from as from
  any crash.
- `StorageGate` (around the Node the driver steps) refuses new work while writes are
  pending: a PREPARE of a transaction this Node has not taken part in is answered at
  once with a NO vote naming the reason (a NO needs no record: presumed abort), never
  stepped into the Node; the client service refuses submissions with UNAVAILABLE and
  the reason (engine.py, `NodeAgent.write_fault`). Reads go on from the Node's
  state in memory, which may run ahead of the file by the pending writes (a status
  may show a step's end that a crash now would make the Node learn again).
- The gate refuses too while agent.db's writes fail (its store keeps and retries
  them: store/database.py), as the client service does. Both files share the data
  dir, and either may be the first to fail when the disk fills: a turn's audit
  records reach agent.db after node.db holds the turn, so an agent whose last turn
  before the disk filled was written may next fail on agent.db, with no write of
  node.db pending. A PREPARE let through then would be the Node's first write to
  fail: its YES held with the turn, the coordinator would hear nothing and abort
  with "no vote within …s" instead of the reason the agent already knew.
  Only a PREPARE that reaches an agent before any of its writes has failed is
  answered by silence (nothing tells a full disk before a write).
- `retry_until_written` is the one task (owned by the engine's TaskGroup) that calls
  `retry()` with a backoff (0.2 s doubling to 2 s) until it commits; the agent then
  takes new work again by itself.
- Bounded: past MAX_PENDING_OPS pending ops or MAX_HELD held effects the next write
  raises the storage error as it is, and the driver and the agent stop (with the one
  line of write_faults.py); memory does not grow without end on a disk that never
  comes back.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fedorch.core.node.inputs import Message
from fedorch.core.node.ready import Write
from fedorch.core.node.records import PrepareMsg, VoteMsg
from fedorch.runtime.node_engine.layer import NodeLayer, Refuse, step_each
from fedorch.runtime.node_engine.write_faults import is_storage_fault

__all__ = ["HeldDurable", "HeldExecutors", "HeldStatus", "HeldTransport", "StorageGate",
           "WriteFault", "retry_until_written"]

log = logging.getLogger("fedorch.node_engine")

MAX_PENDING_OPS = 200_000
MAX_HELD = 200_000
RETRY_FIRST_S = 0.2
RETRY_MAX_S = 2.0


class WriteFault:
    """What the held ports share: the failure, the pending groups, the held effects."""

    def __init__(self) -> None:
        self.error: BaseException | None = None
        self.pending: list[Write] = []
        self.pending_ops = 0
        self.held: deque[tuple[Callable[..., None], tuple]] = deque()
        self.faults = 0  # times writes began to fail (each ended by a write that succeeded)
        self.failed_writes = 0  # failed attempts, the retries included

    @property
    def active(self) -> bool:
        return self.error is not None

    @property
    def reason(self) -> str | None:
        if self.error is None:
            return None
        return " ".join(str(self.error).split()) or type(self.error).__name__

    def hold(self, do: Callable[..., None], *args: object) -> bool:
        """Hold `do(*args)` if writes are pending (True), else leave it to the caller."""
        if self.error is None:
            return False
        self.held.append((do, args))
        return True


class HeldDurable:
    """The Durable port (see the header)."""

    def __init__(self, durable: Any, fault: WriteFault,
                 on_fault: Callable[[], None] = lambda: None) -> None:
        self.durable = durable
        self.fault = fault
        self.on_fault = on_fault  # told once per fault: the engine starts the retries

    def write(self, writes: Sequence[Write]) -> None:
        f = self.fault
        if f.active:
            if f.pending_ops >= MAX_PENDING_OPS or len(f.held) >= MAX_HELD:
                raise f.error  # type: ignore[misc]  # too much waits: stop the agent
            self._keep(writes)
            return
        try:
            self.durable.write(writes)
        except Exception as e:
            if not is_storage_fault(e):
                raise
            f.error = e
            f.faults += 1
            f.failed_writes += 1
            self._keep(writes)
            log.error("cannot write the node store (%s): taking no new work, keeping %d"
                      " write groups and what waits on them until a write succeeds",
                      f.reason, len(writes))
            self.on_fault()

    def _keep(self, writes: Sequence[Write]) -> None:
        self.fault.pending.extend(writes)
        self.fault.pending_ops += sum(len(w.ops) for w in writes)

    def retry(self) -> bool:
        """Write every pending group as one transaction; on success do every held
        effect in order and return True. A storage fault again: False."""
        f = self.fault
        if not f.active:
            return True
        try:
            self.durable.write(f.pending)
        except Exception as e:
            if not is_storage_fault(e):
                raise
            f.error = e
            f.failed_writes += 1
            return False
        log.warning("the node store is writable again: wrote %d kept write groups, doing"
                    " %d held effects, taking new work", len(f.pending), len(f.held))
        f.pending, f.pending_ops, f.error = [], 0, None
        held, f.held = f.held, deque()
        for do, args in held:
            do(*args)
        return True


class HeldTransport:
    def __init__(self, transport: Any, fault: WriteFault) -> None:
        self.transport = transport
        self.fault = fault

    def send(self, dst: str, msg: object) -> None:
        # WriteFault.hold inlined: every message of every turn passes here, and writes
        # are pending almost never.
        fault = self.fault
        if fault.error is None:
            self.transport.send(dst, msg)
        else:
            fault.held.append((self.transport.send, (dst, msg)))


class HeldExecutors:
    def __init__(self, executors: Any, fault: WriteFault) -> None:
        self.executors = executors
        self.fault = fault

    def start(self, run: object) -> None:
        if not self.fault.hold(self.executors.start, run):
            self.executors.start(run)

    def stop(self, run: object) -> None:
        if not self.fault.hold(self.executors.stop, run):
            self.executors.stop(run)


class HeldStatus:
    def __init__(self, status: Any, fault: WriteFault) -> None:
        self.status = status
        self.fault = fault

    def status_changed(self, workflow_id: str, state: object) -> None:
        if not self.fault.hold(self.status.status_changed, workflow_id, state):
            self.status.status_changed(workflow_id, state)


class StorageGate(NodeLayer):
    """The node the driver steps: NO to a new PREPARE while writes are pending, of
    node.db or of agent.db (see the header)."""

    def __init__(self, inner: Any, node: Any, fault: WriteFault, domain: str,
                 send: Callable[[str, object], None],
                 database_fault: Callable[[], str | None] = lambda: None) -> None:
        """`inner`: what the driver would step (the AuthorizedNode); `node`: the Node,
        read to tell a new transaction; `send`: the transport, not held (a NO waits
        for no write); `database_fault`: what agent.db's store says while its writes
        fail (`Store.write_fault`), else None."""
        super().__init__(inner)
        self.node = node
        self.fault = fault
        self.domain = domain
        self.send = send
        self.database_fault = database_fault
        self.refused = 0

    def step(self, now: float, event: object) -> None:
        # Every input of every turn passes here: the types first, the stores only
        # for a PREPARE.
        if type(event) is Message and type(event.msg) is PrepareMsg:
            tx = event.msg.tx
            if event.src == tx.coordinator and tx.key not in self.node.state.info:
                cannot = self._cannot_write()
                if cannot is not None:
                    self.refused += 1
                    self.send(event.src, VoteMsg(
                        tx.key, self.domain, False,
                        f"{self.domain} cannot write {cannot}; it takes no new work"
                        " until it can"))
                    return
        self.inner.step(now, event)

    def step_batch(self, now: float, events: Sequence[object], refuse: Refuse) -> None:
        # While both stores can be written the gate refuses nothing: the turn goes on
        # whole. Asked once a turn, as if the turn were stepped at its start (a write
        # fails in the commit, never in a step); else each PREPARE is asked about.
        if self.fault.error is None and self.database_fault() is None:
            self.pass_batch(now, events, refuse)
        else:
            step_each(self.step, now, events, refuse)

    def _cannot_write(self) -> str | None:
        """Which store cannot be written and what SQLite said; node.db's first (the
        Node's own file), None while both can."""
        if self.fault.error is not None:
            return f"its node store ({self.fault.reason})"
        database = self.database_fault()
        if database is not None:
            return f"its database ({database})"
        return None


async def retry_until_written(durable: HeldDurable,
                              sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
                              ) -> None:
    """Retry the pending writes with a backoff until they are written."""
    delay = RETRY_FIRST_S
    while True:
        await sleep(delay)
        if durable.retry():
            return
        delay = min(delay * 2, RETRY_MAX_S)
