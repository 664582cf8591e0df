"""Outgoing peer calls: one reused channel per endpoint, sealed requests, opened replies.

Every call carries a deadline, and every reply is itself a signed envelope that
goes through the same input boundary (open_message) as a request would.

Batching and pipelining. Requests of the kinds in BATCHED_METHODS wait in a
lane per (endpoint, recipient, LANE_CLASS of the method); a lane sends at once
while fewer than MAX_IN_FLIGHT of its calls are out, and otherwise lets requests
gather until one returns, then sends them together in one signed Batch call (at
most MAX_BATCH_ITEMS requests and MAX_BATCH_BYTES of them). So an idle
agent pays no delay (one request goes out as its own RPC), and a busy one
sends one message per peer per round trip instead of one per workflow: the
prepares (and commits, Paxos messages, step results) of many workflows bound
for one peer share one signature, one replay check and one gRPC call. The
answers come back the same way; only votes are signed one by one, since each
goes into commit certificates on its own. A peer that does not know the Batch
RPC (UNIMPLEMENTED) is sent single calls from then on.

`call()` waits for its answer on the caller's task, at most its timeout
(DEADLINE_EXCEEDED, whether the request was still queued or out); a request cut short
when the agent stops fails UNAVAILABLE, or CANCELLED (a PeerCallError: gRPC ends a call
cancelled by its channel's close with a CancelledError, told apart here from the
caller's own cancellation).

A peer back from a restart. While a peer is down, the channel to it fails each dial
and backs off (up to `grpc.max_reconnect_backoff_ms`, with jitter); in that state
(TRANSIENT_FAILURE) gRPC fails every call made without wait_for_ready at once, and
keeps doing so until its backoff ends, even once the peer listens again. A message of
the peer's new life (its PREPARE, its gossip) can thus reach this agent while every
answer this agent sends back on its own channel fails: a vote dropped twice within a
2 s prepare timeout aborted the restarted coordinator's first round. So a sign of
life of the peer (an authenticated message it signed, told by the agent: `revive`)
replaces a channel in TRANSIENT_FAILURE with a new one, which dials at once.

Why replacing is safe. Only a channel in TRANSIENT_FAILURE is replaced: it has no
connection, so nothing is out on it; the only calls on it are ones made with
wait_for_ready, still waiting for a connection (other calls fail at once there, and a
stream or a forwarded call never waits), and every such call is made by `call()`,
which counts them per channel. Those calls are left to end where they are, each by
its own deadline or its answer once that channel dials again: none is cancelled and
sent again (it might have left in the meantime, and a request sent twice is not
always harmless), and none is cut short by a fixed grace (a Compensate call may wait
longer than any such grace for its step's undo). The old channel is closed when its
last call has ended, by a task of the agent's, or by `close()` if the agent stops
first. A channel younger than `REVIVE_MIN_AGE_S` is left to its own backoff (still
short then), so a peer that can reach this agent but not be reached costs one new
channel a second at most, not one per message; a peer that is fine (its channel
READY, IDLE or CONNECTING) costs nothing but the look at its channel's state.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import grpc
from fedorch.core.identity.envelope import (
    AuthError,
    Signer,
    check_kind,
    new_nonce,
    open_message,
    seal,
)
from fedorch.core.identity.replay import ReplayGuard
from fedorch.core.identity.trust import TrustStore
from fedorch.gen.fedorch.v1 import peer_pb2, peer_pb2_grpc
from fedorch.runtime.ports import Clock, SystemClock

log = logging.getLogger("fedorch.peers")

# A peer channel pings its connection after this long without activity, so a
# NodeTurns stream idle between turns notices a dead connection.
KEEPALIVE_MS = 30_000
# What every agent's server accepts of those pings (runtime/daemon.py SERVER_OPTIONS).
# gRPC's server default is one ping per 5 minutes without data and two strikes: a peer
# pinging every 30 s on an idle stream got a GOAWAY `too_many_pings` (ENHANCE_YOUR_CALM)
# after about 90 s, an error line in its log and a reconnect. A server takes a ping as
# often as half the keepalive time, and counts no strikes below that.
PING_POLICY = [
    ("grpc.http2.min_ping_interval_without_data_ms", KEEPALIVE_MS // 2),
    ("grpc.http2.max_ping_strikes", 2),
]

CHANNEL_OPTIONS = [
    ("grpc.keepalive_time_ms", KEEPALIVE_MS),
    # gRPC's default reconnect backoff grows to two minutes; a peer that was
    # down while we first dialled it must be usable again within seconds.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
    # Each channel dials on its own connection: with gRPC's process-wide subchannel
    # pool, a channel opened afresh to a peer back from a restart (`revive`) would
    # share the failing one's connection and wait out its backoff all the same.
    ("grpc.use_local_subchannel_pool", 1),
    ("grpc.max_receive_message_length", 8 * 1024 * 1024),
]

# The lane class of each batched method: a request waits only behind calls of its own
# class. Admission (a workflow's PREPAREs, its Paxos round, its decision notices) never
# waits for the step reports and end notices of workflows already running or ended:
# in the commit bench, one unloaded workflow in two had its PREPARE held ~2.5 ms (a
# round trip) behind the end notice of the workflow before it. Under load each class
# still sends one message per peer per round trip.
LANE_CLASS = {"Prepare": "admission", "Paxos": "admission", "Decide": "admission",
              "ReportStep": "progress", "CancelWorkflow": "progress"}
# QueryDecision stays a single call: its answer may carry a whole decision (spec and
# certificate), and a batch reply must stay small.
BATCHED_METHODS = frozenset(LANE_CLASS)
# Calls out per lane before requests start to gather. One: while a call is out, the
# next requests wait for it and leave together. At moderate load that is what makes
# batches at all (in the commit bench at 85 workflows/s, submit-to-committed p50 was
# 35-45 ms with one against 65-110 ms with four), and it costs an idle agent nothing.
MAX_IN_FLIGHT = 1
MAX_BATCH_ITEMS = 256  # the receiver refuses more than 1024 (peer_service)
# Request bytes in one batch: well under the 4 MiB a server accepts (daemon.py), since
# a PREPARE or a decision carries its workflow's spec (up to 1 MiB each).
MAX_BATCH_BYTES = 1024 * 1024

Spawn = Callable[[Awaitable, str], object]

# A channel is revived (replaced) at most once this long after it was opened: before
# that its own reconnect backoff is still shorter than a second.
REVIVE_MIN_AGE_S = 1.0


class PeerCallError(Exception):
    """A peer could not be reached or answered badly; `code` names why."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


@dataclass
class _Request:
    method: str
    kind: str
    msg: object
    expect: str | frozenset[str]
    deadline: float  # time.monotonic()
    future: asyncio.Future
    size: int  # the payload's serialized bytes


@dataclass(eq=False)  # kept in a set by identity
class _Conn:
    """One channel to an endpoint, and the calls `call()` has waiting or out on it."""
    channel: grpc.aio.Channel
    stub: peer_pb2_grpc.PeerStub
    opened_at: float  # monotonic
    calls: int = 0
    idle: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.idle.set()

    def started(self) -> None:
        self.calls += 1
        self.idle.clear()

    def ended(self) -> None:
        self.calls -= 1
        if self.calls == 0:
            self.idle.set()


@dataclass
class _Lane:
    endpoint: str
    recipient: str
    wait_for_ready: bool
    pending: deque[_Request] = field(default_factory=deque)
    in_flight: int = 0
    flush_scheduled: bool = False


class PeerChannels:
    def __init__(
        self,
        signer: Signer,
        trust: TrustStore,
        guard: ReplayGuard,
        clock: Clock | None = None,
        on_error: Callable[[str, str], None] | None = None,
        on_bytes: Callable[[str, str, int], None] | None = None,
        spawn: Spawn | None = None,
        on_batch: Callable[[int], None] | None = None,
        on_heard: Callable[[str], None] | None = None,
    ) -> None:
        """`spawn` (start a task its owner keeps; returns None when it will not) turns
        batching on; without it every request is its own RPC. `clock` stamps envelopes
        (wall) and tells the replay guard how long it has held each nonce (monotonic)."""
        self._signer = signer
        self._trust = trust
        self._guard = guard
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._on_error = on_error or (lambda method, code: None)
        self._on_bytes = on_bytes or (lambda rpc, direction, n: None)
        self._spawn = spawn
        self._on_batch = on_batch or (lambda n: None)
        # Told the signer of each reply that authenticates: it was alive to answer.
        self._on_heard = on_heard or (lambda domain: None)
        self._channels: dict[str, _Conn] = {}
        self.revived = 0  # channels replaced on a sign of life (see `revive`)
        # Replaced by `revive`, closed by a task of the owner once their calls end.
        self._retiring: set[_Conn] = set()
        self._lanes: dict[tuple[str, str, bool, str], _Lane] = {}
        self._no_batch: set[str] = set()  # endpoints that answered Batch with UNIMPLEMENTED
        # Mutual TLS: a source of (generation, credentials); None means plaintext.
        self._tls: Callable[[], tuple[int, grpc.ChannelCredentials]] | None = None
        self._tls_options: tuple[tuple[str, str], ...] = ()
        self._tls_generation = 0
        # Opened with a renewed-away certificate, or revived away with no task to close it.
        self._retired: list[grpc.aio.Channel] = []

    def use_tls(self, credentials: Callable[[], tuple[int, grpc.ChannelCredentials]],
                options: tuple[tuple[str, str], ...] = ()) -> None:
        """Open every channel from now on with mutual TLS. `credentials` gives the current
        (generation, credentials); when the generation changes (the certificate was
        renewed), channels are reopened with the new one."""
        self._tls = credentials
        self._tls_options = options

    def channel(self, endpoint: str) -> grpc.aio.Channel:
        return self._conn(endpoint).channel

    def stub(self, endpoint: str) -> peer_pb2_grpc.PeerStub:
        return self._conn(endpoint).stub

    def _conn(self, endpoint: str) -> _Conn:
        credentials = None
        if self._tls is not None:
            generation, credentials = self._tls()
            if generation != self._tls_generation:  # renewed: calls in flight finish
                self._tls_generation = generation
                self._retired.extend(conn.channel for conn in self._channels.values())
                self._channels.clear()
        conn = self._channels.get(endpoint)
        if conn is None:
            if credentials is None:
                channel = grpc.aio.insecure_channel(endpoint, options=CHANNEL_OPTIONS)
            else:
                channel = grpc.aio.secure_channel(endpoint, credentials,
                                                  options=CHANNEL_OPTIONS + list(self._tls_options))
            conn = _Conn(channel, peer_pb2_grpc.PeerStub(channel), self._clock.monotonic())
            self._channels[endpoint] = conn
        return conn

    def revive(self, endpoint: str) -> bool:
        """The peer at `endpoint` showed a sign of life: if the channel to it is in
        TRANSIENT_FAILURE (failing every call at once until its backoff ends), the next
        call opens a new one, which dials at once (see the header). True if replaced."""
        conn = self._channels.get(endpoint)
        if conn is None:
            return False
        if conn.channel.get_state() is not grpc.ChannelConnectivity.TRANSIENT_FAILURE:
            return False
        if self._clock.monotonic() - conn.opened_at < REVIVE_MIN_AGE_S:
            return False
        del self._channels[endpoint]
        self.revived += 1
        log.info("channel to %s reopened on a sign of life of its peer (%d call(s) left"
                 " waiting on the old one)", endpoint, conn.calls)
        self._retiring.add(conn)
        if self._spawn is None or self._spawn(self._retire(conn),
                                              f"retired channel to {endpoint}") is None:
            self._retiring.discard(conn)  # no owner, or it is stopping: closed at close()
            self._retired.append(conn.channel)
        return True

    async def _retire(self, conn: _Conn) -> None:
        """Close a replaced channel once the calls waiting on it have ended (each by its
        own deadline, or its answer: see the header), never cutting one short."""
        # Cancelled (the agent stopping), it stays in `_retiring` for close().
        await conn.idle.wait()
        self._retiring.discard(conn)
        await conn.channel.close()

    async def call(
        self,
        endpoint: str,
        method: str,
        *,
        recipient: str,
        expect: str | frozenset[str],
        timeout: float,
        wait_for_ready: bool = True,
        **payload: object,
    ) -> tuple[peer_pb2.Body, peer_pb2.Envelope]:
        """Seal, send with a deadline, verify the signed reply; PeerCallError on any failure.

        Returns the reply's body and the envelope as received: the reply's own,
        or for an answer that came unsigned in a batch, the batch reply's (votes
        always come signed alone: they go into commit certificates byte for byte)."""
        if (self._spawn is None or method not in BATCHED_METHODS or not recipient
                or endpoint in self._no_batch):
            return await self._call_one(endpoint, method, recipient, expect, timeout,
                                        wait_for_ready, payload)
        if len(payload) != 1:
            raise TypeError(f"call() takes exactly one payload keyword, got {sorted(payload)}")
        ((kind, msg),) = payload.items()
        key = (endpoint, recipient, wait_for_ready, LANE_CLASS[method])
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane(endpoint, recipient, wait_for_ready)
        request = _Request(method, kind, msg, expect, time.monotonic() + timeout,
                           asyncio.get_running_loop().create_future(), msg.ByteSize())
        lane.pending.append(request)
        self._schedule_flush(lane)
        try:
            # The future is this caller's alone (the shared call sets it, never awaits
            # it): a caller that gives up cancels only its own request.
            async with asyncio.timeout(timeout):
                return await request.future
        except TimeoutError:
            self._on_error(method, "DEADLINE_EXCEEDED")
            raise PeerCallError("DEADLINE_EXCEEDED", "deadline exceeded") from None
        finally:
            if not request.future.done():  # never sent, or its answer is no longer wanted
                request.future.cancel()

    # ---- lanes ---------------------------------------------------------------------

    def _schedule_flush(self, lane: _Lane) -> None:
        # After the current callbacks: requests made in the same turn of the loop
        # leave together.
        if not lane.flush_scheduled:
            lane.flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush, lane)

    def _flush(self, lane: _Lane) -> None:
        lane.flush_scheduled = False
        now = time.monotonic()
        while lane.pending and lane.in_flight < MAX_IN_FLIGHT:
            requests: list[_Request] = []
            size = 0
            while lane.pending and len(requests) < MAX_BATCH_ITEMS:
                r = lane.pending[0]
                if requests and size + r.size > MAX_BATCH_BYTES:
                    break  # the next batch takes it (one request alone always goes)
                lane.pending.popleft()
                if not r.future.done() and r.deadline > now:  # else its caller gave up
                    requests.append(r)
                    size += r.size
            if not requests:
                break
            assert self._spawn is not None
            lane.in_flight += 1
            if self._spawn(self._send(lane, requests), f"peer calls to {lane.recipient}") is None:
                lane.in_flight -= 1  # the owner is stopping: nothing more goes out
                for r in requests:
                    _fail(r, PeerCallError("UNAVAILABLE", "the agent is stopping"))

    async def _send(self, lane: _Lane, requests: list[_Request]) -> None:
        try:
            if len(requests) == 1:  # no gather: one task less on an idle agent's path
                await self._send_one(lane, requests[0])
            elif lane.endpoint in self._no_batch:
                await asyncio.gather(*(self._send_one(lane, r) for r in requests))
            else:
                await self._send_batch(lane, requests)
        finally:
            lane.in_flight -= 1
            for r in requests:  # cancelled before an answer: the callers must not hang
                _fail(r, PeerCallError("CANCELLED", "the call was cancelled"))
            if lane.pending:
                self._schedule_flush(lane)

    async def _send_one(self, lane: _Lane, r: _Request) -> None:
        try:
            result = await self._call_one(
                lane.endpoint, r.method, lane.recipient, r.expect,
                max(0.001, r.deadline - time.monotonic()), lane.wait_for_ready,
                {r.kind: r.msg})
        except PeerCallError as e:
            _fail(r, e)
        else:
            if not r.future.done():
                r.future.set_result(result)

    async def _send_batch(self, lane: _Lane, requests: list[_Request]) -> None:
        self._on_batch(len(requests))
        batch = peer_pb2.BatchRequest(items=[peer_pb2.Body(**{r.kind: r.msg}) for r in requests])
        timeout = max(0.001, max(r.deadline for r in requests) - time.monotonic())
        try:
            body, envelope = await self._call_one(lane.endpoint, "Batch", lane.recipient,
                                                  "batch_reply", timeout, lane.wait_for_ready,
                                                  {"batch": batch})
        except PeerCallError as e:
            if e.code == grpc.StatusCode.UNIMPLEMENTED.name:  # an agent without batching
                self._no_batch.add(lane.endpoint)
                await asyncio.gather(*(self._send_one(lane, r) for r in requests))
                return
            for r in requests:
                _fail(r, e)
            return
        results = body.batch_reply.results
        if len(results) != len(requests):
            for r in requests:
                _fail(r, PeerCallError("BAD_REPLY", f"{len(results)} answers to "
                                                    f"{len(requests)} requests"))
            return
        for r, result in zip(requests, results, strict=True):
            if result.error_code:
                self._on_error(r.method, result.error_code)
                _fail(r, PeerCallError(result.error_code, result.error))
                continue
            try:
                if result.HasField("body"):  # vouched for by the BatchReply's signature
                    item, item_envelope = result.body, envelope
                    item.sender, item.recipient = body.sender, body.recipient
                    try:
                        check_kind(item, r.expect)
                    except AuthError as e:
                        self._on_error(r.method, "BAD_REPLY")
                        raise PeerCallError("BAD_REPLY", e.reason) from None
                else:  # signed alone (a vote): evidence as received
                    item_envelope = result.reply
                    item = self._open_reply(r.method, lane.recipient, r.expect, item_envelope)
            except PeerCallError as e:
                _fail(r, e)
                continue
            if not r.future.done():
                r.future.set_result((item, item_envelope))

    # ---- one RPC ---------------------------------------------------------------------

    async def _call_one(self, endpoint: str, method: str, recipient: str,
                        expect: str | frozenset[str], timeout: float, wait_for_ready: bool,
                        payload: dict[str, object]) -> tuple[peer_pb2.Body, peer_pb2.Envelope]:
        request = seal(self._signer, recipient=recipient, now_ms=self._clock.wall_ms(),
                       nonce=new_nonce(),
                       **payload)
        conn = self._conn(endpoint)
        rpc = getattr(conn.stub, method)
        self._on_bytes(method, "out", request.ByteSize())
        conn.started()
        try:
            # wait_for_ready: ride out a reconnect instead of failing fast;
            # the deadline still bounds the call.
            reply = await rpc(request, timeout=timeout, wait_for_ready=wait_for_ready)
        except grpc.aio.AioRpcError as e:
            self._on_error(method, e.code().name)
            raise PeerCallError(e.code().name, e.details() or "") from None
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is None or task.cancelling():
                raise  # this caller was cancelled: not the call's failure
            # gRPC cancelled the call itself: its channel was closed under it (the agent
            # stopping, a renewed certificate). A failure like any other, which callers
            # handle (a saga's Compensate call is made again), never a cancellation that
            # would end the caller's task without a word (a saga then waits for ever).
            self._on_error(method, "CANCELLED")
            raise PeerCallError("CANCELLED", "its channel was closed") from None
        finally:
            conn.ended()
        self._on_bytes(method, "in", reply.ByteSize())
        return self._open_reply(method, recipient, expect, reply), reply

    def _open_reply(self, method: str, recipient: str, expect: str | frozenset[str],
                    reply: peer_pb2.Envelope) -> peer_pb2.Body:
        try:
            body = open_message(reply, self._trust, self._guard, me=self._signer.domain,
                                now_ms=self._clock.wall_ms(), expect=expect,
                                mono_ms=int(self._clock.monotonic() * 1000))
        except Exception as e:  # AuthError: a reply we cannot trust counts as no reply
            self._on_error(method, "BAD_REPLY")
            raise PeerCallError("BAD_REPLY", str(e)) from None
        if recipient and body.sender != recipient:
            raise PeerCallError("BAD_REPLY", f"reply signed by {body.sender}, not {recipient}")
        self._on_heard(body.sender)
        return body

    async def close(self) -> None:
        for conn in self._channels.values():
            await conn.channel.close()
        self._channels.clear()
        # Replaced channels whose calls had not ended: the agent stops, so do they (the
        # task that would have closed them may have been cancelled with the others).
        for conn in list(self._retiring):
            await conn.channel.close()
        self._retiring.clear()
        for channel in self._retired:
            await channel.close()
        self._retired.clear()


def _fail(request: _Request, error: Exception) -> None:
    if not request.future.done():
        request.future.set_exception(error)
        request.future.exception()  # retrieved: a caller that gave up leaves no warning
