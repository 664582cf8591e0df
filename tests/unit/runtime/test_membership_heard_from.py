"""Every authenticated peer message is a sign of life for membership (Swim.heard_from):
a call that reaches the peer service, and the answer to a call of ours. A message that
does not authenticate, or an answer signed by someone other than the peer called, is no
sign of life of anyone."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fedorch.core.identity.envelope import Signer, new_nonce, open_message, seal
from fedorch.core.identity.replay import ReplayGuard
from fedorch.core.identity.trust import TrustStore
from fedorch.gen.fedorch.v1 import peer_pb2_grpc, swim_pb2
from fedorch.runtime.agent import Agent, run_until_stopped
from fedorch.runtime.peer_service import PeerService
from fedorch.runtime.peers import PeerCallError, PeerChannels

from tests.unit.runtime.test_peer_service_startup import Aborted, Context, _gossip_from_self

A_KEY, B_KEY = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
A, B = Signer("alpha", A_KEY), Signer("beta", B_KEY)
TRUST = TrustStore({"alpha": A_KEY.public_key(), "beta": B_KEY.public_key()})


class Beta(peer_pb2_grpc.PeerServicer):
    async def Swim(self, request, context):
        body = open_message(request, TRUST, ReplayGuard(60_000), me="beta",
                            now_ms=int(time.time() * 1000), expect="swim")
        return seal(B, recipient=body.sender, now_ms=int(time.time() * 1000),
                    nonce=new_nonce(), swim=swim_pb2.SwimBatch())


async def test_an_answer_that_authenticates_is_a_sign_of_life_of_its_signer() -> None:
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    peer_pb2_grpc.add_PeerServicer_to_server(Beta(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    heard: list[str] = []
    channels = None
    try:
        channels = PeerChannels(A, TRUST, ReplayGuard(60_000), on_heard=heard.append)
        await channels.call(f"127.0.0.1:{port}", "Swim", recipient="beta",
                            expect="swim", timeout=5.0, swim=swim_pb2.SwimBatch())
        assert heard == ["beta"]
        # Signed by beta, but we called "gamma": no sign of life of anyone.
        with pytest.raises(PeerCallError):
            await channels.call(f"127.0.0.1:{port}", "Swim", recipient="gamma",
                                expect="swim", timeout=5.0, swim=swim_pb2.SwimBatch())
        assert heard == ["beta"]
    finally:
        if channels is not None:
            await channels.close()
        await server.stop(None)


async def test_a_call_that_authenticates_is_a_sign_of_life_of_its_sender(
        agent: Agent, monkeypatch) -> None:
    await agent.open()
    heard: list[str] = []
    monkeypatch.setattr(agent.membership, "heard_from", heard.append)
    service = PeerService(agent)
    runner = asyncio.create_task(run_until_stopped(agent))
    try:
        async with asyncio.timeout(30):
            await agent.ready.wait()
        await service.Swim(_gossip_from_self(agent), Context())
        assert heard == ["alpha"]
        forged = _gossip_from_self(agent)
        forged.signature = bytes(64)
        with pytest.raises(Aborted):
            await service.Swim(forged, Context())
        assert heard == ["alpha"]
    finally:
        agent.stop()
        await runner


def test_the_core_ignores_its_own_name_and_unknown_members() -> None:
    from tests.unit.core.membership.test_swim import make_members

    _, members = make_members(["a", "b"])
    a = members["a"]
    a.heard_from(1.0, "a")
    a.heard_from(1.0, "zed")
    assert a.member("zed") is None
    a.heard_from(2.0, "b")
    assert a.member("b").last_heard == 2.0
