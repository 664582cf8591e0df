"""The peer service's interceptors on the node engine's NodeTurns stream
(runtime/interceptors.py): with mutual TLS every envelope of the stream is checked
against the connection's identity before the handler sees it, and bytes that do not
parse end the stream with INVALID_ARGUMENT. Real gRPC on 127.0.0.1; the connection's
TLS identity is fixed by the test (TLS itself is tested in tests/integration/test_mtls.py)."""

from __future__ import annotations

import time

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fedorch.core.identity.envelope import Signer, new_nonce, seal
from fedorch.core.identity.trust import TrustStore
from fedorch.gen.fedorch.v1 import peer_pb2, peer_pb2_grpc
from fedorch.runtime.interceptors import MalformedRequestInterceptor, PeerTlsInterceptor

KEYS = {name: Ed25519PrivateKey.generate() for name in ("beta", "gamma")}


class BetaConnection(PeerTlsInterceptor):
    """Every connection presents beta's certificate."""

    def tls_domain(self, context) -> str | None:
        return "beta"


class Recorder(peer_pb2_grpc.PeerServicer):
    def __init__(self) -> None:
        self.seen: list[str] = []

    async def NodeTurns(self, request_iterator, context):  # noqa: N802 - the RPC's name
        async for envelope in request_iterator:
            self.seen.append(peer_pb2.Body.FromString(envelope.body).sender)
            yield peer_pb2.Envelope()


def turn(sender: str) -> peer_pb2.Envelope:
    return seal(Signer(sender, KEYS[sender]), recipient="alpha",
                now_ms=int(time.time() * 1000), nonce=new_nonce(),
                node_turn=peer_pb2.NodeTurn(messages=b""))


@pytest.fixture
async def served():
    recorder = Recorder()
    server = grpc.aio.server(interceptors=[BetaConnection(TrustStore({})),
                                           MalformedRequestInterceptor()],
                             options=[("grpc.so_reuseport", 0)])
    peer_pb2_grpc.add_PeerServicer_to_server(recorder, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield recorder, channel
    finally:
        await channel.close()
        await server.stop(None)


async def test_an_envelope_claiming_another_sender_ends_the_stream(served):
    recorder, channel = served
    call = channel.stream_stream("/fedorch.v1.Peer/NodeTurns",
                                 request_serializer=peer_pb2.Envelope.SerializeToString,
                                 response_deserializer=peer_pb2.Envelope.FromString)(timeout=10)
    try:
        await call.write(turn("beta"))
        assert await call.read() == peer_pb2.Envelope()  # beta's own: taken
        await call.write(turn("gamma"))  # signed by gamma, over beta's connection
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call.read()
    finally:
        call.cancel()
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "TLS identity 'beta' is not the sender 'gamma'" in refused.value.details()
    assert recorder.seen == ["beta"]  # the handler never saw gamma's


async def test_bytes_that_do_not_parse_end_the_stream_as_invalid(served):
    recorder, channel = served
    call = channel.stream_stream("/fedorch.v1.Peer/NodeTurns", request_serializer=None,
                                 response_deserializer=peer_pb2.Envelope.FromString)(timeout=10)
    try:
        await call.write(turn("beta").SerializeToString())
        assert await call.read() == peer_pb2.Envelope()
        await call.write(b"\xff\xff\xff not an envelope")
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call.read()
    finally:
        call.cancel()
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert recorder.seen == ["beta"]
