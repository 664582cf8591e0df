"""The console's workflow page shows a fan-out step's instances with their waves (in the
steps table and in the DAG's data), on an agent in-process over real HTTP on 127.0.0.1."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient, TestServer
from fedorch.core.workflow import fanout
from fedorch.core.workflow.placement import Candidate
from fedorch.core.workflow.spec import spec_from_mapping
from fedorch.gen.fedorch.v1 import peer_pb2
from fedorch.runtime.console.app import make_app

from tests.unit.runtime.console.given_view import GivenView


@pytest.fixture
async def client(agent):
    agent.node_view = GivenView()
    async with TestClient(TestServer(make_app(agent), host="127.0.0.1")) as c:
        yield c


async def test_the_workflow_page_shows_instances_and_waves(agent, client):
    members = [Candidate(peer_pb2.DomainRecord(
        domain=d, capabilities=[peer_pb2.CapabilityInfo(name="app.deploy", capacity=1)]), True)
        for d in ("alpha", "beta")]
    spec = fanout.expand(spec_from_mapping({"name": "rollout", "steps": [
        {"id": "deploy", "capability": "app.deploy", "each": {},
         "waves": {"max_parallel": 1}}]}), members, coordinator="alpha")
    agent.node_view.show("alpha.w1", spec, "RUNNING",
                         placement={"deploy@alpha": "alpha", "deploy@beta": "beta"},
                         steps={"deploy@alpha": ("SUCCEEDED", 1, {"v": 2})})
    html = await (await client.get("/workflows/alpha.w1")).text()
    assert "<th>wave</th>" in html
    assert "deploy · wave 2" in html
    graph = await (await client.get("/api/workflows/alpha.w1/graph")).json()
    assert {s["id"]: s["wave"] for s in graph["steps"]} == {"deploy@alpha": 1,
                                                            "deploy@beta": 2}
    assert graph["edges"] == [["deploy@alpha", "deploy@beta"]]  # the wave barrier
