"""A stopping agent ends its peers' NodeTurns streams (node_engine/inbound_streams.py):
an idle one at once, one taking an envelope after answering it, a new one before its
first; a stream cancelled by gRPC (not by the stop) stays cancelled. Real gRPC on
127.0.0.1."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from fedorch.gen.fedorch.v1 import peer_pb2, peer_pb2_grpc
from fedorch.runtime.node_engine.inbound_streams import InboundStreams

from tests.unit.runtime.waiting import until

DEADLINE_S = 10  # for a wait on a condition; no test result depends on it


class Turns(peer_pb2_grpc.PeerServicer):
    def __init__(self) -> None:
        self.inbound = InboundStreams()
        self.taken = 0
        self.taking = asyncio.Event()   # an envelope is being taken
        self.go_on = asyncio.Event()    # ... and may be answered
        self.hold = False

    async def NodeTurns(self, request_iterator, context):  # noqa: N802 (gRPC's name)
        async for _ in self.inbound.envelopes(request_iterator):
            self.taken += 1
            if self.hold:
                self.taking.set()
                await self.go_on.wait()
            yield peer_pb2.Envelope()


@pytest.fixture
async def served():
    service = Turns()
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    peer_pb2_grpc.add_PeerServicer_to_server(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield service, server, peer_pb2_grpc.PeerStub(channel)
    finally:
        await channel.close()
        await server.stop(None)


@pytest.mark.asyncio
async def test_an_idle_stream_ends_at_once_and_the_drain_waits_for_nothing(served):
    service, server, stub = served
    call = stub.NodeTurns(timeout=60)
    await call.write(peer_pb2.Envelope())
    assert await call.read() == peer_pb2.Envelope()
    await until(lambda: service.inbound._waiting, "the stream idle", DEADLINE_S)
    assert service.inbound.stop() == 1
    async with asyncio.timeout(DEADLINE_S):
        assert await call.read() is grpc.aio.EOF
        assert await call.code() == grpc.StatusCode.OK  # ended as its sender would end it
        # No call left in progress: the graceful stop's grace (an hour) is not waited.
        await server.stop(3600)


@pytest.mark.asyncio
async def test_a_stream_taking_an_envelope_answers_it_then_ends(served):
    service, _, stub = served
    service.hold = True
    call = stub.NodeTurns(timeout=60)
    await call.write(peer_pb2.Envelope())
    async with asyncio.timeout(DEADLINE_S):
        await service.taking.wait()
    assert service.inbound.stop() == 0  # not waiting: it is taking one
    service.go_on.set()
    async with asyncio.timeout(DEADLINE_S):
        assert await call.read() == peer_pb2.Envelope()  # answered first
        assert await call.read() is grpc.aio.EOF
    assert service.taken == 1


@pytest.mark.asyncio
async def test_a_stream_opened_after_the_stop_takes_nothing(served):
    service, _, stub = served
    service.inbound.stop()
    call = stub.NodeTurns(timeout=60)
    # Nothing written: the stream may be over before a write could go (it would fail).
    async with asyncio.timeout(DEADLINE_S):
        assert await call.read() is grpc.aio.EOF
        assert await call.code() == grpc.StatusCode.OK
    assert service.taken == 0


@pytest.mark.asyncio
async def test_a_stream_its_sender_cancels_is_not_taken_for_a_stop(served):
    service, _, stub = served
    call = stub.NodeTurns(timeout=60)
    await call.write(peer_pb2.Envelope())
    await call.read()
    await until(lambda: service.inbound._waiting, "the stream idle", DEADLINE_S)
    call.cancel()
    await until(lambda: not service.inbound._waiting, "the handler gone", DEADLINE_S)
    assert not service.inbound.stopping
