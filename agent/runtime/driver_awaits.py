"""What the driver's asyncio loop awaits besides its inbox: a turn's commit in a
worker thread, and the callbacks the event loop holds ready.

Part of the driver (runtime/driver.py, whose header tells the split turn and the own
messages' turn). `ThreadedWrite` runs a Durable's write in one thread of its own, so
the event loop receives while the transaction's fsync waits (`AsyncWrite` is what
`DriverLoop` takes for it); `behind_ready` returns once what the event loop held
ready has run, and what that woke. Their own module because they only wrap asyncio
and a thread around a Durable: they step no Node and hold no turn's state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from fedorch.core.node.ready import Write
from fedorch.runtime.ports import Durable

__all__ = ["AsyncWrite", "ThreadedWrite", "behind_ready"]


class ThreadedWrite:
    """A Durable's `write` run in one worker thread of its own, so that the event loop
    runs while the transaction's fsync waits (see the header). One write at a time (the
    driver never has two turns out). `after()`, if given, is called on the loop's
    thread once a write returned (a status view's "a turn is durable")."""

    def __init__(self, durable: Durable, after: Callable[[], None] | None = None) -> None:
        self.durable = durable
        self.after = after
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="node-commit")

    async def write(self, writes: Sequence[Write]) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._pool, self.durable.write, writes)
        if self.after is not None:
            self.after()

    def close(self) -> None:
        """Wait for a write still in its thread (a cancelled turn's), then end the
        thread: the durable may be closed after this."""
        self._pool.shutdown(wait=True)


class AsyncWrite(Protocol):
    async def write(self, writes: Sequence[Write]) -> None:
        """Make one Ready's writes durable (as `Durable.write`), the loop running."""
        ...


async def behind_ready(loop: asyncio.AbstractEventLoop) -> None:
    """Return once the callbacks the event loop holds ready have run, and those they
    made ready (the tasks they woke): two passes of the loop (see "Own messages" in the
    driver's header)."""
    behind = loop.create_future()
    loop.call_soon(loop.call_soon, _resolve, behind)
    await behind


def _resolve(future: asyncio.Future) -> None:
    if not future.done():  # not cancelled meanwhile
        future.set_result(None)
