"""Which of this agent's acceptor records are in memory: at most `limit`, the least
recently written evicted first, and only once durable.

Every record is on disk (the store's acceptor_records); the Acceptor core holds the
ones in memory. A record being written may not be evicted (counted before the write's
first await, runtime.record_writes), or a crash could lose what an answer already
told. Once any record may be on disk only (evicted, or from before a restart), an input
about a transaction not in memory first reads its record back (`bring_back`).

Part of the Paxos Commit shell (runtime.consensus), which owns one.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Iterator
from typing import TYPE_CHECKING

from fedorch.core.negotiation.acceptor import Acceptor, PersistAcceptor
from fedorch.core.negotiation.messages import Key
from fedorch.runtime import paxos_wire as wire
from fedorch.runtime.record_writes import RecordWrites

if TYPE_CHECKING:
    from fedorch.runtime.context import AgentContext


class AcceptorMemory:
    def __init__(self, agent: AgentContext, acceptor: Acceptor, limit: int,
                 writes: RecordWrites) -> None:
        self.agent = agent
        self.acceptor = acceptor
        self.limit = limit
        # The records in memory, least recently written first, and how many writes of
        # each are still on their way to disk: only a durable record may be evicted.
        self._resident: OrderedDict[Key, None] = OrderedDict()
        self._writes = writes
        self.on_disk_only = False

    async def recover(self) -> None:
        """After a restart every record is on disk only, until read back."""
        self.on_disk_only = await self.agent.store.has_acceptor_records()

    async def bring_back(self, key: Key) -> None:
        """Bring the acceptor's record of `key` back from disk if it is not in memory."""
        if not self.on_disk_only or self.acceptor.record(key) is not None:
            return
        row = await self.agent.store.get_acceptor_record(*key)
        # Checked again after the read: a record made meanwhile is newer than the disk's.
        if row is not None and self.acceptor.record(key) is None:
            self.acceptor.restore([wire.acceptor_record(row)])
            self._resident[key] = None
            self._evict()

    def touched(self, key: Key) -> None:
        """The record of `key` was written or changed in memory: the most recent."""
        self._resident[key] = None
        self._resident.move_to_end(key)
        self._evict()

    async def until_durable(self, key: Key) -> None:
        """Until no write of `key`'s record is on its way to disk."""
        await self._writes.until_durable(key)

    @contextlib.contextmanager
    def writing(self, actions: list) -> Iterator[None]:
        """The acceptor records among `actions` are being written: none may be evicted
        until the write is done (counted before the first await)."""
        persists = [x.key for x in actions if isinstance(x, PersistAcceptor)]
        try:
            with self._writes.writing(persists):
                yield
        finally:
            for key in persists:
                self._resident[key] = None
                self._resident.move_to_end(key)
            self._evict()

    def _evict(self) -> None:
        """Keep at most `limit` records in memory; evict the oldest durable ones."""
        while len(self._resident) > self.limit:
            key = next((k for k in self._resident if not self._writes.in_flight(k)), None)
            if key is None:
                return
            del self._resident[key]
            self.acceptor.evict(key)
            self.on_disk_only = True
