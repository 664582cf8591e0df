"""Outgoing peer calls: one reused channel per endpoint, sealed requests, opened replies.

Every call carries a deadline, and every reply is itself a signed envelope that
goes through the same input boundary (open_message) as a request would.

`call()` is one RPC, on the caller's task, at most its timeout (DEADLINE_EXCEEDED):
membership's Swim calls are made with it. The node engine's NodeTurns streams
(`stub`, node_engine/transport.py) and forwarded client calls (`channel`) use these
channels too. A request cut short when the agent stops fails UNAVAILABLE, or CANCELLED
(a PeerCallError: gRPC ends a call cancelled by its channel's close with a
CancelledError, told apart here from the caller's own cancellation).

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
always harmless), and none is cut short by a fixed grace (each waits as long as its
own deadline says). The old channel is closed when its last call has ended, by a task
of the agent's, or by `close()` if the agent stops first. A channel younger than `REVIVE_MIN_AGE_S` is left to its own backoff (still
short then), so a peer that can reach this agent but not be reached costs one new
channel a second at most, not one per message; a peer that is fine (its channel
READY, IDLE or CONNECTING) costs nothing but the look at its channel's state.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import grpc
from fedorch.core.identity.envelope import (
    Signer,
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
        on_heard: Callable[[str], None] | None = None,
    ) -> None:
        """`spawn` (start a task its owner keeps; returns None when it will not) closes a
        revived channel once its calls end (without it, at `close()`). `clock` stamps envelopes
        (wall) and tells the replay guard how long it has held each nonce (monotonic)."""
        self._signer = signer
        self._trust = trust
        self._guard = guard
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._on_error = on_error or (lambda method, code: None)
        self._on_bytes = on_bytes or (lambda rpc, direction, n: None)
        self._spawn = spawn
        # Told the signer of each reply that authenticates: it was alive to answer.
        self._on_heard = on_heard or (lambda domain: None)
        self._channels: dict[str, _Conn] = {}
        self.revived = 0  # channels replaced on a sign of life (see `revive`)
        # Replaced by `revive`, closed by a task of the owner once their calls end.
        self._retiring: set[_Conn] = set()
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

        Returns the reply's body and the envelope as received."""
        request = seal(self._signer, recipient=recipient, now_ms=self._clock.wall_ms(),
                       nonce=new_nonce(), **payload)
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
            # handle, never a cancellation that would end the caller's task without a
            # word (its owner would then wait for it for ever).
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

