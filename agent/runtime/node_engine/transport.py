"""The node engine's Transport port: one signed envelope per turn and peer, on one
long-lived gRPC stream per peer.

Theory of operation
-------------------
`send(dst, msg)` never waits (runtime/ports.py). A message to this agent itself
does not come here: the engine's driver keeps it and steps it in its next turn
(`NodeDriver(loopback=)`); were one sent, it would be posted straight back to the
own driver loop as `Message(me, msg)`, never signed nor leaving the process. A
message to a peer is held: the first one of a turn schedules `_flush`
(`loop.call_soon`), which runs once the driver's turn is over and hands each peer's
messages of that turn, in order, to that peer's `PeerSender`.

A `PeerSender` is the one task per peer (owned by the engine's TaskGroup; no task
per message) that sends them: it encodes the messages it holds with `NodeCodec` as
one tuple, seals them in ONE envelope signed with the domain's Ed25519 key (the same
`seal` every peer message of the daemon uses: sender, recipient, nonce, wall-clock
time), and writes it to its `NodeTurns` stream to that peer. The receiver checks
each envelope on its own, as a `NodeTurn` call's (signature over the bytes as
received, trust, replay window: boundary.py), so a stream changes what travels
together, not what is checked. gRPC's per-call cost (a call object, its metadata,
a deadline timer at the sender; a handler task at the receiver) is paid once per
stream instead of once per envelope.

One envelope per peer is out at a time: the receiver answers each with an empty
Envelope once it has posted its messages, and the sender writes the next only then.
The turns that end while one is out share the next envelope, so a busy agent signs
and sends one envelope per peer per round trip (as with a NodeTurn call each), an
idle one one per turn. (A stream written without waiting for answers, tried first,
sent 2.5 times the envelopes per workflow at the commit bench's coordinator, and
its peers spent half as much CPU again verifying them: docs/benchmarks.md.)

Deadlines. Each envelope has one (`NODE_TURN_TIMEOUT_S`): its write and its answer
within that, or the peer is not reading (stuck, gone), and the stream is cancelled.
The stream has one too (`STREAM_DEADLINE_S`), which the receiver enforces, so a
sender that vanished without closing its connection holds a handler no longer than
that; the sender ends each stream itself after `STREAM_ROTATE_S` (it stops writing
and waits, within the envelope deadline, for the receiver to end it) and opens the
next one at its next envelope, so none goes out on a stream near its deadline.
Between envelopes the channel's keepalive (runtime/peers.py) watches the connection.

What nothing waits for rides along. A `DecisionAck` (the COMMIT is held here: the
coordinator may collect its record), an `AckMsg` of a step result (its sender may stop
resending it) and a step's start told its coordinator (a `ResultMsg` saying RUNNING:
best effort, shown in the coordinator's status only, core/node/running.py) are not
worth an envelope of their own: nothing waits for them but a record's collection, a
resend timer or a status read. Such a message waits for the next envelope to its peer
and goes in it, first (it was made before what the later turn sends, so a start still
comes before its step's result); it joins at once a sender that already holds
messages waiting for an envelope out; and it goes alone only if nothing else left for
that peer within `RIDE_ALONG_S` (one timer per peer, never per message). Holding a
message back never breaks a durability rule: the driver hands over only what may
leave (a message that follows a write, after the write is durable), and leaving later
is always allowed, as for a message the network delays; the delay is a tenth of the
Node's shortest resend (Timing's `resend_s`, `reliable_resend_s`: 1 s), so the peer
does not send again what was acknowledged. Every other acknowledgement leaves with
its turn: the end of a workflow is made only once its participants acknowledged it
told (core/node/domain_loss.py), and a new placement's, a saga's and a compensation's
acknowledgements move their flows on too, so holding them would hold the workflow.
Under load every turn sends to every peer and nothing waits; at a low rate these
messages ride on the next ones to their peer (a quick step's start on its result)
instead of costing an envelope each (a signature, a verification, a write and an
answer on the stream): docs/benchmarks.md has the numbers.

Backpressure. A sender holds at most `max_queued` messages; what a turn hands it
beyond that (the peer slower than this agent, waiting for an answer) is dropped and
counted, never queued without bound.

Delivery is not promised (the Node resends what must arrive): a peer whose address
membership does not know, a stream that cannot be opened, a write that fails or
passes its deadline, and the messages it carried are dropped and counted
(`dropped`, by peer), never retried here; the next envelope opens a new stream, so a
restarted peer is reached again by the next turn's messages after that. The stream
opens on the peer's shared channel, which fails at once while its dials back off from
the peer's downtime; the restarted peer's first message to this agent reopens that
channel (runtime/peers.py `revive`), so what answers its new life (a vote to its first
round) is not dropped until the backoff ends.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from fedorch.core.identity.envelope import Signer, new_nonce, seal
from fedorch.core.negotiation.messages import DecisionAck
from fedorch.core.node.inputs import Message
from fedorch.core.node.records import AckMsg, ResultMsg
from fedorch.core.workflow.progress import StepState
from fedorch.gen.fedorch.v1 import peer_pb2, peer_pb2_grpc
from fedorch.runtime.node_codec import NodeCodec
from fedorch.runtime.ports import Clock

__all__ = ["GrpcTransport", "MAX_QUEUED_MESSAGES", "NODE_TURN_TIMEOUT_S", "PeerSender",
           "RIDE_ALONG_S", "STREAM_DEADLINE_S", "STREAM_ROTATE_S", "rides_along"]

log = logging.getLogger("fedorch.node_engine")

# An envelope's deadline: written and answered within it. Short: what it carried is
# resent by the Node anyway.
NODE_TURN_TIMEOUT_S = 2.0
# A stream's deadline, enforced by the receiver too; the sender ends a stream itself
# after STREAM_ROTATE_S, well before its deadline.
STREAM_DEADLINE_S = 120.0
STREAM_ROTATE_S = 60.0
# How long a message that nothing waits for (see the header) waits at most for others
# to its peer to ride with: a tenth of the Node's shortest resend.
RIDE_ALONG_S = 0.1
# Messages one peer's sender holds at most (a few seconds of a busy agent's traffic).
MAX_QUEUED_MESSAGES = 20_000


def rides_along(msg: object) -> bool:
    """A message that may wait for the next envelope to its peer (see the header): a
    DecisionAck, a step result's AckMsg, or a step's start told (RUNNING)."""
    cls = msg.__class__
    if cls is AckMsg:
        return msg.msg_id[:1] == ("result",)
    return cls is DecisionAck or cls is ResultMsg and msg.state is StepState.RUNNING


_MAY_RIDE = frozenset({AckMsg, DecisionAck, ResultMsg})  # the classes rides_along names


_FAILED = (grpc.aio.AioRpcError, asyncio.InvalidStateError, TimeoutError)


class PeerSender:
    """The one sender task of one peer, and its stream (see the header)."""

    def __init__(self, transport: GrpcTransport, peer: str) -> None:
        self.transport = transport
        self.peer = peer
        self._queue: list[object] = []
        self._wake = asyncio.Event()
        self._call: Any = None       # the open NodeTurns stream, if any
        self._endpoint = ""          # where it goes
        self._opened_at = 0.0        # monotonic time it was opened

    def put(self, msgs: list[object]) -> None:
        room = self.transport.max_queued - len(self._queue)
        if len(msgs) > room:  # backpressure: the newest beyond the bound are dropped
            self.transport.dropped[self.peer] += len(msgs) - max(0, room)
            msgs = msgs[:max(0, room)]
        if msgs:
            self._queue.extend(msgs)
            self._wake.set()

    @property
    def queued(self) -> int:
        return len(self._queue)

    async def run(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                msgs, self._queue = self._queue, []
                if msgs:
                    await self.deliver(msgs)
        finally:
            self._drop_stream()

    async def deliver(self, msgs: list[object]) -> None:
        """One envelope carrying `msgs` on this peer's stream; never raises for a peer's
        failure: the messages are dropped and counted."""
        transport, peer = self.transport, self.peer
        endpoint = transport.endpoint_of(peer)
        if endpoint is None:
            transport.dropped[peer] += len(msgs)
            log.debug("no address known for %s: %d messages dropped", peer, len(msgs))
            return
        call = await self._stream(endpoint)
        envelope = transport.seal(peer, msgs)
        transport.envelopes += 1
        try:
            async with asyncio.timeout(NODE_TURN_TIMEOUT_S):
                await call.write(envelope)
                answer = await call.read()
            if answer is grpc.aio.EOF:  # ended by the receiver: refused, or stopping
                raise asyncio.InvalidStateError(f"ended ({(await call.code()).name})")
        except _FAILED as e:
            transport.dropped[peer] += len(msgs)
            log.debug("NodeTurns to %s failed (%s): %d messages dropped", peer,
                      _why(e), len(msgs))
            self._drop_stream()
            return
        transport.sent[peer] += len(msgs)

    async def _stream(self, endpoint: str) -> Any:
        """The stream to write to: the open one, or a new one if there is none, it
        ended (the peer restarted, refused an envelope, or its deadline passed), the
        peer's address changed, or it is due to be ended (STREAM_ROTATE_S)."""
        call = self._call
        now = self.transport.clock.monotonic()
        if call is not None and (call.done() or endpoint != self._endpoint):
            self._drop_stream()
            call = None
        elif call is not None and now - self._opened_at >= STREAM_ROTATE_S:
            await self._end_stream()
            call = None
        if call is None:
            call = self._call = self.transport.stub_of(endpoint).NodeTurns(
                timeout=STREAM_DEADLINE_S)
            self._endpoint, self._opened_at = endpoint, now
            self.transport.streams += 1
        return call

    async def _end_stream(self) -> None:
        """Stop writing and wait (within the envelope deadline) for the receiver to end
        the stream, so nothing is cut off in flight."""
        call, self._call = self._call, None
        try:
            async with asyncio.timeout(NODE_TURN_TIMEOUT_S):
                await call.done_writing()
                while await call.read() is not grpc.aio.EOF:
                    pass  # no envelope is out: nothing more is answered
        except _FAILED as e:
            log.debug("NodeTurns to %s ended with %s", self.peer, _why(e))
        call.cancel()  # ended already, or cut off at its deadline

    def _drop_stream(self) -> None:
        call, self._call = self._call, None
        if call is not None:
            call.cancel()


def _why(error: Exception) -> str:
    if isinstance(error, grpc.aio.AioRpcError):
        return error.code().name
    return "deadline" if isinstance(error, TimeoutError) else str(error) or "ended"


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
        self.max_queued = MAX_QUEUED_MESSAGES
        self._held: dict[str, list[object]] = {}
        # Messages nothing waits for, waiting for the next envelope to their peer, and
        # each peer's one timer that sends them alone (RIDE_ALONG_S).
        self._riding: dict[str, list[object]] = {}
        self._ride_timers: dict[str, asyncio.TimerHandle] = {}
        self._senders: dict[str, PeerSender] = {}
        self.dropped: Counter[str] = Counter()  # messages dropped, by peer
        self.sent: Counter[str] = Counter()     # messages a peer took, by peer
        self.envelopes = 0
        self.streams = 0  # NodeTurns streams opened

    # ---- the port ----------------------------------------------------------------------

    def send(self, dst: str, msg: object) -> None:
        if dst == self.domain:
            self.post(Message(dst, msg))
            return
        # rides_along asked only of the classes it may say yes to (every message passes).
        if msg.__class__ in _MAY_RIDE and rides_along(msg):
            self._ride(dst, msg)
            return
        if not self._held:  # the turn's first: hand them over once the turn is done
            asyncio.get_running_loop().call_soon(self._flush)
        self._held.setdefault(dst, []).append(msg)

    def _ride(self, dst: str, msg: object) -> None:
        """`msg`, which nothing waits for, waits for the next envelope to `dst` (see the
        header)."""
        sender = self._senders.get(dst)
        if sender is not None and sender.queued:  # an envelope is out: the next one
            sender.put([msg])
            return
        riding = self._riding.get(dst)
        if riding is not None:
            riding.append(msg)
            return
        self._riding[dst] = [msg]
        self._ride_timers[dst] = asyncio.get_running_loop().call_later(
            RIDE_ALONG_S, self._riders_due, dst)

    def _riders_due(self, dst: str) -> None:
        """Nothing else left for `dst` in time: what waited goes alone."""
        self._ride_timers.pop(dst, None)
        riding = self._riding.pop(dst, None)
        if riding:
            self._hand(dst, riding)

    def _flush(self) -> None:
        held, self._held = self._held, {}
        for dst, msgs in held.items():
            riding = self._riding.pop(dst, None)
            if riding is not None:  # they ride along, first
                self._ride_timers.pop(dst).cancel()
                msgs = riding + msgs
            self._hand(dst, msgs)

    def _hand(self, dst: str, msgs: list[object]) -> None:
        sender = self._senders.get(dst)
        if sender is None:
            sender = PeerSender(self, dst)
            if self.spawn(sender.run(), f"node-turn sender {dst}") is None:
                self.dropped[dst] += len(msgs)  # the engine is stopping
                return
            self._senders[dst] = sender
        sender.put(msgs)

    # ---- one envelope --------------------------------------------------------------------

    def seal(self, peer: str, msgs: list[object]) -> peer_pb2.Envelope:
        turn = peer_pb2.NodeTurn(messages=self.codec.encode(tuple(msgs)))
        return seal(self.signer, recipient=peer, now_ms=self.clock.wall_ms(),
                    nonce=new_nonce(), node_turn=turn)
