"""Outgoing peer calls: one reused channel per endpoint, sealed requests, opened replies.

Every call carries a deadline, and every reply is itself a signed envelope that
goes through the same input boundary (open_message) as a request would.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import grpc

from agent.gen.fedorch.v1 import peer_pb2, peer_pb2_grpc
from agent.identity.envelope import Signer, new_nonce, open_message, seal
from agent.identity.replay import ReplayGuard
from agent.identity.trust import TrustStore

CHANNEL_OPTIONS = [
    ("grpc.keepalive_time_ms", 30_000),
    # gRPC's default reconnect backoff grows to two minutes; a peer that was
    # down while we first dialled it must be usable again within seconds.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
    ("grpc.max_receive_message_length", 8 * 1024 * 1024),
]


class PeerCallError(Exception):
    """A peer could not be reached or answered badly; `code` names why."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


class PeerChannels:
    def __init__(
        self,
        signer: Signer,
        trust: TrustStore,
        guard: ReplayGuard,
        clock: Callable[[], float] = time.time,
        on_error: Callable[[str, str], None] | None = None,
        on_bytes: Callable[[str, str, int], None] | None = None,
    ) -> None:
        self._signer = signer
        self._trust = trust
        self._guard = guard
        self._clock = clock
        self._on_error = on_error
        self._on_bytes = on_bytes or (lambda rpc, direction, n: None)
        self._channels: dict[str, tuple[grpc.aio.Channel, peer_pb2_grpc.PeerStub]] = {}

    def channel(self, endpoint: str) -> grpc.aio.Channel:
        return self._entry(endpoint)[0]

    def stub(self, endpoint: str) -> peer_pb2_grpc.PeerStub:
        return self._entry(endpoint)[1]

    def _entry(self, endpoint: str) -> tuple[grpc.aio.Channel, peer_pb2_grpc.PeerStub]:
        entry = self._channels.get(endpoint)
        if entry is None:
            channel = grpc.aio.insecure_channel(endpoint, options=CHANNEL_OPTIONS)
            entry = (channel, peer_pb2_grpc.PeerStub(channel))
            self._channels[endpoint] = entry
        return entry

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

        Returns the reply's body and the envelope as received (votes go into
        commit certificates byte for byte)."""
        now_ms = int(self._clock() * 1000)
        request = seal(self._signer, recipient=recipient, now_ms=now_ms, nonce=new_nonce(),
                       **payload)
        rpc = getattr(self.stub(endpoint), method)
        self._on_bytes(method, "out", request.ByteSize())
        try:
            # wait_for_ready: ride out a reconnect instead of failing fast;
            # the deadline still bounds the call.
            reply = await rpc(request, timeout=timeout, wait_for_ready=wait_for_ready)
        except grpc.aio.AioRpcError as e:
            if self._on_error:
                self._on_error(method, e.code().name)
            raise PeerCallError(e.code().name, e.details() or "") from None
        self._on_bytes(method, "in", reply.ByteSize())
        try:
            body = open_message(reply, self._trust, self._guard, me=self._signer.domain,
                                now_ms=int(self._clock() * 1000), expect=expect)
        except Exception as e:  # AuthError: a reply we cannot trust counts as no reply
            if self._on_error:
                self._on_error(method, "BAD_REPLY")
            raise PeerCallError("BAD_REPLY", str(e)) from None
        if recipient and body.sender != recipient:
            raise PeerCallError("BAD_REPLY", f"reply signed by {body.sender}, not {recipient}")
        return body, reply

    async def close(self) -> None:
        for channel, _ in self._channels.values():
            await channel.close()
        self._channels.clear()
