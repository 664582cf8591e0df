"""The node engine's Transport port (runtime/node_engine/transport.py): one signed
envelope per turn and peer, messages to itself posted back, and an unreachable or
failing peer's messages dropped and counted."""

from __future__ import annotations

import asyncio

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fedorch.core.identity.envelope import Signer, open_evidence
from fedorch.core.identity.trust import TrustStore
from fedorch.core.node import Message
from fedorch.core.node.records import AckMsg
from fedorch.runtime.node_codec import node_codec
from fedorch.runtime.node_engine.transport import GrpcTransport

from tests.unit.runtime.node_engine.test_boundary import Clock

KEY = Ed25519PrivateKey.generate()
WAIT_S = 10.0  # a deadline for conditions, not a timing


class Stub:
    """A Peer stub: records each NodeTurn envelope, or fails as told."""

    def __init__(self, calls: list, called: asyncio.Event,
                 fail: grpc.StatusCode | None = None) -> None:
        self.calls, self.called, self.fail = calls, called, fail

    async def NodeTurn(self, envelope, timeout):  # noqa: N802 - the RPC's name
        assert timeout > 0  # every call has a deadline
        self.called.set()
        if self.fail is not None:
            raise grpc.aio.AioRpcError(self.fail, grpc.aio.Metadata(), grpc.aio.Metadata(),
                                       "down")
        self.calls.append(envelope)


def ack(n: int, to: str) -> AckMsg:
    return AckMsg(("final", f"alpha.wf-{n}", to))


async def test_one_envelope_per_turn_and_peer_and_unreachable_peers_counted():
    posted: list[object] = []
    calls: dict[str, list] = {"beta": [], "gamma": []}
    endpoints = {"beta": "b:1", "gamma": "g:1", "epsilon": "e:1"}  # delta: no address

    called = asyncio.Event()

    def stub_of(endpoint: str) -> Stub:
        if endpoint == "e:1":
            return Stub([], called, fail=grpc.StatusCode.UNAVAILABLE)
        return Stub(calls["beta" if endpoint == "b:1" else "gamma"], called)

    senders: list[asyncio.Task] = []

    async with asyncio.TaskGroup() as group:
        def spawn(coro, name: str) -> asyncio.Task:
            senders.append(group.create_task(coro, name=name))
            return senders[-1]

        transport = GrpcTransport("alpha", Signer("alpha", KEY), Clock(), node_codec(),
                                  posted.append, endpoints.get, stub_of, spawn)
        # One turn: three messages to beta, two to gamma, one to itself, one to each of
        # two peers it cannot reach.
        for n in range(3):
            transport.send("beta", ack(n, "beta"))
        transport.send("alpha", ack(9, "alpha"))
        transport.send("gamma", ack(3, "gamma"))
        transport.send("gamma", ack(4, "gamma"))
        transport.send("delta", ack(5, "delta"))
        transport.send("epsilon", ack(6, "epsilon"))
        assert [type(p) for p in posted] == [Message]  # to itself: at once, unsigned
        async with asyncio.timeout(WAIT_S):
            while not (calls["beta"] and calls["gamma"]
                       and sum(transport.dropped.values()) == 2):
                called.clear()
                await called.wait()
        assert len(senders) == 4  # one sender task per peer
        for task in senders:  # they run until their owner stops them
            task.cancel()
    trust = TrustStore({"alpha": KEY.public_key()})
    for peer, count in (("beta", 3), ("gamma", 2)):
        (envelope,) = calls[peer]  # ONE envelope for the turn's messages to this peer
        body = open_evidence(envelope, trust, expect="node_turn")
        assert (body.sender, body.recipient) == ("alpha", peer)
        msgs = node_codec().decode(body.node_turn.messages)
        assert [m.msg_id[1] for m in msgs] == [f"alpha.wf-{n}" for n in
                                              (range(3) if peer == "beta" else (3, 4))]
        assert transport.sent[peer] == count
    assert transport.dropped == {"delta": 1, "epsilon": 1}
    assert transport.envelopes == 3  # beta, gamma, and the one epsilon refused
