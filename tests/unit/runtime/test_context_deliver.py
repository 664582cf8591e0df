"""Agent.deliver: resend until acknowledged; a refusal for good ends it, a refusal
for now (retry_later) is sent again. An agent object in this process talks to a
small Peer server on 127.0.0.1."""

from __future__ import annotations

import time

import grpc
import pytest
from fedorch.core.identity.envelope import Signer, new_nonce, open_message, seal
from fedorch.core.identity.keys import init_keys, load_private_key
from fedorch.core.identity.replay import ReplayGuard
from fedorch.core.identity.trust import TrustStore
from fedorch.gen.fedorch.v1 import peer_pb2, peer_pb2_grpc
from fedorch.runtime.agent import Agent
from fedorch.runtime.config import parse_config_text
from fedorch.runtime.store.store import Store


class Refusing(peer_pb2_grpc.PeerServicer):
    """Answers ReportStep with the acks given, in turn (the last one from then on)."""

    def __init__(self, signer: Signer, trust: TrustStore, acks: list[peer_pb2.Ack]) -> None:
        self.signer, self.trust, self.acks = signer, trust, acks
        self.guard = ReplayGuard(60_000)
        self.calls = 0

    async def ReportStep(self, request, context):
        body = open_message(request, self.trust, self.guard, me="beta",
                            now_ms=int(time.time() * 1000), expect="step_result")
        ack = self.acks[min(self.calls, len(self.acks) - 1)]
        self.calls += 1
        return seal(self.signer, recipient=body.sender, now_ms=int(time.time() * 1000),
                    nonce=new_nonce(), ack=ack)


@pytest.fixture
async def setup(tmp_path):
    keys = tmp_path / "keys"
    for domain in ("alpha", "beta"):
        init_keys(domain, keys)
    config = parse_config_text(
        "domain: alpha\nlisten: 127.0.0.1:1\ndata_dir: data\nkey_file: keys/alpha.key\n"
        "trust: {key_files: [keys/beta.pub]}\nnegotiation: {batching: false}\n",
        "alpha.yaml", tmp_path)
    store = await Store.open(tmp_path / "data")
    agent = Agent(config, store)
    beta = Signer("beta", load_private_key(keys / "beta.key"))
    trust = TrustStore.from_files([keys / "alpha.pub"])
    servers = []

    async def peer(acks: list[peer_pb2.Ack]) -> tuple[Refusing, str]:
        servicer = Refusing(beta, trust, acks)
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        peer_pb2_grpc.add_PeerServicer_to_server(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        servers.append(server)
        return servicer, f"127.0.0.1:{port}"

    yield agent, peer
    for server in servers:
        await server.stop(None)
    await agent.peers.close()
    await store.close()


RESULT = peer_pb2.StepResult(workflow_id="alpha.1", step_id="s", attempt=1, domain="alpha")


async def test_a_refusal_for_now_is_sent_again_until_acknowledged(setup):
    agent, peer = setup
    later = peer_pb2.Ack(ok=False, retry_later=True, error="too many results")
    servicer, endpoint = await peer([later, later, peer_pb2.Ack(ok=True)])
    ack = await agent.deliver("beta", "ReportStep", endpoints={"beta": endpoint},
                              give_up_after=30, step_result=RESULT)
    assert ack is not None and ack.ok
    assert servicer.calls == 3


async def test_a_refusal_for_good_ends_at_once(setup):
    agent, peer = setup
    servicer, endpoint = await peer([peer_pb2.Ack(ok=False, error="not placed there")])
    ack = await agent.deliver("beta", "ReportStep", endpoints={"beta": endpoint},
                              give_up_after=30, step_result=RESULT)
    assert ack is not None and not ack.ok and ack.error == "not placed there"
    assert servicer.calls == 1


async def test_refusals_for_now_past_the_patience_give_up(setup):
    agent, peer = setup
    later = peer_pb2.Ack(ok=False, retry_later=True, error="busy")
    servicer, endpoint = await peer([later])
    assert await agent.deliver("beta", "ReportStep", endpoints={"beta": endpoint},
                               give_up_after=0.5, step_result=RESULT) is None
    assert servicer.calls >= 2
