"""The acceptor records on their way to disk, per transaction: how many writes of each
are in flight, and a wait for them to end.

Two rules of the consensus shell rest on it. A record may be evicted from memory only
once it is durable. And an answer the acceptor makes from memory alone (a repeated
PaxosPrepare or Accept: the same promise, the same ballot and value) leaves only once
the first copy's record is durable: counted by a proposer and then forgotten in a
crash, it could let a second value be chosen."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Iterator

from fedorch.core.negotiation.messages import Key


class RecordWrites:
    def __init__(self) -> None:
        self._in_flight: dict[Key, int] = {}
        # Resolved when a key's writes are all done (made only when someone waits).
        self._waiters: dict[Key, asyncio.Future[None]] = {}

    def in_flight(self, key: Key) -> bool:
        return bool(self._in_flight.get(key))

    def waited_on(self, key: Key) -> bool:
        return key in self._waiters

    @contextlib.contextmanager
    def writing(self, keys: Iterable[Key]) -> Iterator[None]:
        """These keys' records are being written until the block ends (counted at
        once, before the block's first await)."""
        keys = list(keys)
        for key in keys:
            self._in_flight[key] = self._in_flight.get(key, 0) + 1
        failed: BaseException | None = None
        try:
            yield
        except BaseException as e:
            failed = e
            raise
        finally:
            for key in keys:
                left = self._in_flight.pop(key) - 1
                if left:
                    self._in_flight[key] = left
                else:
                    self._wake(key, failed)

    async def until_durable(self, key: Key) -> None:
        """Return once no write of `key`'s record is in flight; raise if one failed
        (what it would have made durable is not)."""
        while self._in_flight.get(key):
            waiter = self._waiters.get(key)
            if waiter is None:
                waiter = self._waiters[key] = asyncio.get_running_loop().create_future()
            await asyncio.shield(waiter)  # a cancelled waiter leaves the others waiting

    def _wake(self, key: Key, failed: BaseException | None) -> None:
        waiter = self._waiters.pop(key, None)
        if waiter is None or waiter.done():
            return
        if failed is None:
            waiter.set_result(None)
        else:
            waiter.set_exception(RuntimeError(
                f"the acceptor record of {key[0]} round {key[1]} was not written: {failed}"))
