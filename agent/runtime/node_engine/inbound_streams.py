"""The peers' NodeTurns streams into this agent, ended at once when it stops.

A peer keeps one NodeTurns stream open into each agent it talks to (transport.py) for
up to `STREAM_ROTATE_S`, idle between envelopes. gRPC's graceful stop
(`server.stop(grace)`) waits for every call in progress to end, and an idle stream
ends only when its sender ends it: an agent that had exchanged work waited out the
whole drain grace (5 s) on every stop (about 7 s a stop against 1.3 s for an agent
that had talked to nobody), and a federation's agents, stopping together, each waited
so for the others' streams.

So each stream's handler reads its envelopes through `InboundStreams.envelopes`, which
knows which handlers are waiting for a next envelope. `stop()` ends those at once (their
wait is cancelled and the handler returns: the stream ends with OK, as when its sender
ends it) and makes every other stream end after the envelope it is taking (its answer
is written first), and a stream opened afterwards end before its first. Nothing is cut
off in the middle of an envelope: one that was on its way when its stream ended is
unanswered, and its sender counts it dropped, as for any failed write; the Node resends
what is unacknowledged (a peer's restart looks the same).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator
from typing import TypeVar

T = TypeVar("T")


class InboundStreams:
    def __init__(self) -> None:
        self.stopping = False
        self._waiting: set[asyncio.Task] = set()  # handlers waiting for a next envelope

    async def envelopes(self, stream: AsyncIterable[T]) -> AsyncIterator[T]:
        """The envelopes of one stream, until its sender ends it or the agent stops."""
        task = asyncio.current_task()
        assert task is not None
        incoming = None  # opened at the first read (not at all when stopping already)
        while not self.stopping:
            if incoming is None:
                incoming = stream.__aiter__()
            self._waiting.add(task)
            try:
                envelope = await incoming.__anext__()
            except StopAsyncIteration:
                return
            except asyncio.CancelledError:
                if not self.stopping:
                    raise  # cancelled by gRPC (the sender went, a deadline): as it was
                task.uncancel()  # ended by stop(): the stream ends as its sender would end it
                return
            finally:
                self._waiting.discard(task)
            yield envelope

    def stop(self) -> int:
        """End every stream: the waiting ones now, the others after their envelope.
        Returns how many were waiting."""
        self.stopping = True
        waiting = list(self._waiting)
        for task in waiting:
            task.cancel()
        return len(waiting)
