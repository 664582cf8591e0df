"""The CLI's AgentClient signs each spec for the coordinator it submits to: the
principal's home domain, else the agent key's domain, else the domain the agent says it
is (GetAgent, asked once per connection); an agent too old to answer GetAgent gets the
spec unbound, as before; a refused GetAgent submits nothing."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from fedorch.cli.client import AgentClient
from fedorch.core.identity.clients import init_client_keys, load_identity
from fedorch.core.identity.keys import init_keys
from fedorch.core.workflow.spec import parse_spec_text
from fedorch.gen.fedorch.v1 import client_pb2, client_pb2_grpc

SPEC = parse_spec_text("name: one\nsteps:\n  - {id: s, capability: test.echo}\n", "test")


class _OldAgent(client_pb2_grpc.ClientServicer):
    """An agent without GetAgent (the generated servicer answers UNIMPLEMENTED)."""

    def __init__(self) -> None:
        self.submits: list[client_pb2.SubmitRequest] = []
        self.asked = 0

    async def Submit(self, request, context):
        self.submits.append(request)
        return client_pb2.SubmitReply(id=f"w{len(self.submits)}")


class _Agent(_OldAgent):
    def __init__(self, domain: str, refuse: bool = False) -> None:
        super().__init__()
        self.domain = domain
        self.refuse = refuse

    async def GetAgent(self, request, context):
        self.asked += 1
        if self.refuse:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED,
                                "principal 'bob' is not allowed 'submit'")
        return client_pb2.AgentInfo(domain=self.domain)


@pytest.fixture
async def serve():
    servers = []

    async def start(servicer) -> str:
        server = grpc.aio.server()
        client_pb2_grpc.add_ClientServicer_to_server(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        servers.append(server)
        return f"127.0.0.1:{port}"

    yield start
    for server in servers:
        await server.stop(None)


def _identity(tmp_path: Path, principal: str):
    return load_identity(init_client_keys(principal, tmp_path / "clients")[0])


async def _submit_twice(peer: str, identity, agent_key: str = "") -> None:
    async with AgentClient(peer, 5, identity, agent_key) as client:
        await client.submit(SPEC, "r1")
        await client.submit(SPEC, "r2")


async def test_a_principal_without_a_home_signs_for_the_domain_the_agent_names(
        serve, tmp_path) -> None:
    agent = _Agent("eu-west")
    await _submit_twice(await serve(agent), _identity(tmp_path, "alice"))
    assert [r.signed_spec.coordinator for r in agent.submits] == ["eu-west", "eu-west"]
    assert agent.asked == 1  # once per connection


async def test_a_home_domain_or_an_agent_key_needs_no_question(serve, tmp_path) -> None:
    agent = _Agent("eu-west")
    peer = await serve(agent)
    await _submit_twice(peer, _identity(tmp_path, "alice@us-east"))
    init_keys("partner", tmp_path / "keys")
    async with AgentClient(peer, 5, _identity(tmp_path, "bob"),
                           str(tmp_path / "keys" / "partner.pub")) as client:
        assert await client.coordinator() == "partner"
    assert [r.signed_spec.coordinator for r in agent.submits] == ["us-east", "us-east"]
    assert agent.asked == 0


async def test_an_agent_without_get_agent_takes_the_spec_unbound(serve, tmp_path) -> None:
    agent = _OldAgent()
    await _submit_twice(await serve(agent), _identity(tmp_path, "alice"))
    assert [r.signed_spec.coordinator for r in agent.submits] == ["", ""]
    assert all(r.signed_spec.signature for r in agent.submits)


async def test_a_refused_get_agent_submits_nothing(serve, tmp_path) -> None:
    agent = _Agent("eu-west", refuse=True)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await _submit_twice(await serve(agent), _identity(tmp_path, "bob"))
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "'submit'" in refused.value.details()
    assert agent.submits == []


async def test_unsigned_submissions_ask_nothing(serve, tmp_path) -> None:
    agent = _Agent("eu-west")
    await _submit_twice(await serve(agent), None)
    assert [r.spec.name for r in agent.submits] == ["one", "one"]
    assert agent.asked == 0
