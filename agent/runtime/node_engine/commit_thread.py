"""The node engine's commit: node.db's transaction in the driver's commit thread, its
storage faults handled on the event loop's thread.

Theory of operation
-------------------
The driver loop splits each turn at its commit (runtime/driver.py, `ThreadedWrite`):
the SQLite transaction runs in one worker thread while the event loop keeps
receiving. The node engine also keeps running while node.db cannot be written
(write_behind.py, `HeldDurable`): a write that fails for the storage is kept, what
waits on it is held, and a task retries. Those two meet here, and only the SQLite
work leaves the loop's thread:

- no fault active: `SqliteDurable.write` runs in the commit thread; its outcome
  (returned, or the exception) is then handed to `HeldDurable.write` on the loop's
  thread, whose inner Durable (`Replayed`, under the status view's `WriteNotice`)
  returns or raises that outcome instead of writing again. So `HeldDurable` sees what
  it would have seen writing itself: it keeps the groups on a storage fault, it
  propagates any other error, the status view hears of a durable turn, all on the
  loop's thread (they touch asyncio futures and the engine's TaskGroup);
- a fault active: `HeldDurable.write` keeps the groups without any I/O, on the loop's
  thread, in order behind the pending ones;
- `HeldDurable.retry()` (the retry task, on the loop's thread) writes through
  `Replayed` with no outcome set: synchronously, as before. While a fault is active
  the driver's writes do no I/O, so the retry and the commit thread never use the
  connection at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fedorch.core.node.ready import Write
from fedorch.runtime.driver import ThreadedWrite

__all__ = ["EngineCommit", "Replayed"]

_NONE = object()


class Replayed:
    """A Durable over the store that, once told the outcome of a write the commit
    thread made, gives that outcome for the next write instead of writing again."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self._outcome: object = _NONE

    def expect(self, outcome: BaseException | None) -> None:
        self._outcome = outcome

    def write(self, writes: Sequence[Write]) -> None:
        outcome, self._outcome = self._outcome, _NONE
        if outcome is _NONE:  # not the driver's commit: a retry, written here
            self.store.write(writes)
        elif outcome is not None:
            raise outcome  # type: ignore[misc]


class EngineCommit:
    """The DriverLoop's `write` for the node engine (see the header)."""

    def __init__(self, store: Any, replayed: Replayed, held: Any, fault: Any) -> None:
        """`store`: the SqliteDurable; `replayed`: the Replayed over it that `held`
        (a write_behind.HeldDurable) writes through; `fault`: their WriteFault."""
        self.thread = ThreadedWrite(store)
        self.replayed = replayed
        self.held = held
        self.fault = fault

    async def write(self, writes: Sequence[Write]) -> None:
        if not self.fault.active:
            try:
                await self.thread.write(writes)
            except Exception as e:  # HeldDurable decides: keep it, or stop the driver
                self.replayed.expect(e)
            else:
                self.replayed.expect(None)
        self.held.write(writes)

    def close(self) -> None:
        self.thread.close()
