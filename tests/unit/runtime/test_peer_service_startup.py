"""No peer message reaches a half-built agent: membership exists before the port serves
(Agent.open), and until recovery is done the peer service answers UNAVAILABLE (what a
peer retries on) without looking at the message."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from fedorch.core.identity.envelope import Signer, new_nonce, seal
from fedorch.core.identity.keys import load_private_key
from fedorch.gen.fedorch.v1 import swim_pb2
from fedorch.runtime.agent import Agent, run_until_stopped
from fedorch.runtime.peer_service import PeerService


class Aborted(Exception):
    pass


class Context:
    def peer(self) -> str:
        return "ipv4:127.0.0.1:9"

    async def abort(self, code: grpc.StatusCode, details: str):
        raise Aborted(code, details)


def _gossip_from_self(agent: Agent):
    # The agent trusts its own key: a well-signed message it would accept once ready.
    signer = Signer(agent.domain, load_private_key(agent.config.key_file))
    return seal(signer, recipient="", now_ms=agent.now_ms(), nonce=new_nonce(),
                swim=swim_pb2.SwimBatch(reply_to="127.0.0.1:9"))


async def test_a_peer_message_before_the_agent_is_ready_is_answered_unavailable(
        agent: Agent, monkeypatch) -> None:
    service = PeerService(agent)
    handled = []
    with pytest.raises(Aborted) as refused:
        await service.Swim(_gossip_from_self(agent), Context())
    assert refused.value.args == (grpc.StatusCode.UNAVAILABLE, "the agent is starting")
    assert agent.guard.remembered == 0  # not even opened

    await agent.open()  # what the daemon does before its port serves
    assert agent.membership is not None
    monkeypatch.setattr(agent.membership, "handle_batch",
                        lambda sender, batch, **_: handled.append(sender) or swim_pb2.SwimBatch())
    with pytest.raises(Aborted):  # recovery not done yet
        await service.Swim(_gossip_from_self(agent), Context())
    assert handled == []

    runner = asyncio.create_task(run_until_stopped(agent))
    try:
        async with asyncio.timeout(30):
            await agent.ready.wait()
        reply = await service.Swim(_gossip_from_self(agent), Context())
        assert reply.signature and handled == ["alpha"]
    finally:
        agent.stop()
        await runner


async def test_open_builds_membership_once_with_a_rising_incarnation(agent: Agent) -> None:
    await agent.open()
    first = agent.membership
    await agent.open()
    assert agent.membership is first
    incarnation = int(await agent.store.get_meta("incarnation"))
    assert incarnation >= agent.now_ms() - 60_000
    again = Agent(agent.config, agent.store)  # a restart on the same data dir
    await again.open()
    assert int(await again.store.get_meta("incarnation")) > incarnation
