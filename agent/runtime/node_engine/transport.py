"""The node engine's Transport port: one signed envelope per turn and peer, over gRPC.

Theory of operation
-------------------
`send(dst, msg)` never waits (runtime/ports.py). A message to this agent itself
does not come here: the engine's driver keeps it and steps it in its next turn
(`NodeDriver(loopback=)`); were one sent, it would be posted straight back to the
own driver loop as `Message(me, msg)`, never signed nor leaving the process. A message to a peer is held: the first one
of a turn schedules `_flush` (`loop.call_soon`), which runs once the driver's turn
is over and hands each peer's messages of that turn, in order, to that peer's
`PeerSender`.

A `PeerSender` is the one task per peer (owned by the engine's TaskGroup; no task
per message) that sends them: it encodes the messages with `NodeCodec` as one
tuple, seals them in ONE envelope signed with the domain's Ed25519 key (the same
`seal` every peer message of the daemon uses: sender, recipient, nonce, wall-clock
time), and makes one `NodeTurn` call with a deadline. One call per peer is out at a
time: the turns that end while it is out share the next envelope, so a busy agent
signs and sends one envelope per peer per round trip, an idle one one per turn.

Delivery is not promised (the Node resends what must arrive): a peer whose address
membership does not know, a call that fails or passes its deadline, and the messages
it carried are dropped and counted (`dropped`, by peer), never retried here.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from fedorch.core.identity.envelope import Signer, new_nonce, seal
from fedorch.core.node.inputs import Message
from fedorch.gen.fedorch.v1 import peer_pb2, peer_pb2_grpc
from fedorch.runtime.node_codec import NodeCodec
from fedorch.runtime.ports import Clock

__all__ = ["GrpcTransport", "NODE_TURN_TIMEOUT_S", "PeerSender"]

log = logging.getLogger("fedorch.node_engine")

# A NodeTurn call's deadline. Short: what it carried is resent by the Node anyway.
NODE_TURN_TIMEOUT_S = 2.0


class PeerSender:
    """The one sender task of one peer (see the header)."""

    def __init__(self, transport: GrpcTransport, peer: str) -> None:
        self.transport = transport
        self.peer = peer
        self._queue: list[object] = []
        self._wake = asyncio.Event()

    def put(self, msgs: list[object]) -> None:
        self._queue.extend(msgs)
        self._wake.set()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            msgs, self._queue = self._queue, []
            if msgs:
                await self.transport.deliver(self.peer, msgs)


class GrpcTransport:
    def __init__(self, domain: str, signer: Signer, clock: Clock, codec: NodeCodec,
                 post: Callable[[object], None],
                 endpoint_of: Callable[[str], str | None],
                 stub_of: Callable[[str], peer_pb2_grpc.PeerStub],
                 spawn: Callable[[Awaitable[None], str], Any]) -> None:
        """`post`: the own driver loop's; `endpoint_of`: a peer's address from
        membership; `stub_of`: a Peer stub on the shared channel of an address;
        `spawn`: a task of the engine's TaskGroup (None when it is stopping)."""
        self.domain = domain
        self.signer = signer
        self.clock = clock
        self.codec = codec
        self.post = post
        self.endpoint_of = endpoint_of
        self.stub_of = stub_of
        self.spawn = spawn
        self._held: dict[str, list[object]] = {}
        self._senders: dict[str, PeerSender] = {}
        self.dropped: Counter[str] = Counter()  # messages dropped, by peer
        self.sent: Counter[str] = Counter()     # messages a peer took, by peer
        self.envelopes = 0

    # ---- the port ----------------------------------------------------------------------

    def send(self, dst: str, msg: object) -> None:
        if dst == self.domain:
            self.post(Message(dst, msg))
            return
        if not self._held:  # the turn's first: hand them over once the turn is done
            asyncio.get_running_loop().call_soon(self._flush)
        self._held.setdefault(dst, []).append(msg)

    def _flush(self) -> None:
        held, self._held = self._held, {}
        for dst, msgs in held.items():
            sender = self._senders.get(dst)
            if sender is None:
                sender = PeerSender(self, dst)
                if self.spawn(sender.run(), f"node-turn sender {dst}") is None:
                    self.dropped[dst] += len(msgs)  # the engine is stopping
                    continue
                self._senders[dst] = sender
            sender.put(msgs)

    # ---- one envelope --------------------------------------------------------------------

    async def deliver(self, peer: str, msgs: list[object]) -> None:
        """One NodeTurn call carrying `msgs` (see the header); never raises for a peer's
        failure: the messages are dropped and counted."""
        endpoint = self.endpoint_of(peer)
        if endpoint is None:
            self.dropped[peer] += len(msgs)
            log.debug("no address known for %s: %d messages dropped", peer, len(msgs))
            return
        envelope = self.seal(peer, msgs)
        self.envelopes += 1
        try:
            await self.stub_of(endpoint).NodeTurn(envelope, timeout=NODE_TURN_TIMEOUT_S)
        except grpc.aio.AioRpcError as e:
            self.dropped[peer] += len(msgs)
            log.debug("NodeTurn to %s failed (%s): %d messages dropped", peer,
                      e.code().name, len(msgs))
            return
        self.sent[peer] += len(msgs)

    def seal(self, peer: str, msgs: list[object]) -> peer_pb2.Envelope:
        turn = peer_pb2.NodeTurn(messages=self.codec.encode(tuple(msgs)))
        return seal(self.signer, recipient=peer, now_ms=self.clock.wall_ms(),
                    nonce=new_nonce(), node_turn=turn)
