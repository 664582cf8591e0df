"""A workflow's page shows its compensations and this domain's audit records (agent
in-process, real HTTP on 127.0.0.1)."""

from __future__ import annotations

from aiohttp.test_utils import TestClient, TestServer
from fedorch.gen.fedorch.v1 import spec_pb2
from fedorch.runtime.console.app import make_app

from tests.unit.runtime.console.given_view import GivenView

WID = "alpha.w9"


async def test_workflow_page_shows_compensation_and_audit_records(agent):
    spec = spec_pb2.WorkflowSpec(name="saga", steps=[
        spec_pb2.StepSpec(id="a", capability="x",
                          compensate=spec_pb2.Compensation(
                              retries=1, params_json='{"action":"drop","k":3}')),
        spec_pb2.StepSpec(id="b", capability="y", needs=["a"]),
    ])
    agent.node_view = GivenView()
    agent.node_view.show(WID, spec, "FAILED", placement={"a": "alpha", "b": "alpha"},
                         steps={"a": ("SUCCEEDED", 1, {"n": 12345678901234567890, "x": 1.5}),
                                "b": ("FAILED", 1, {})}, compensation="RUNNING")
    await agent.audit.append("client_request", WID, request="cancel", principal="alice",
                             peer="console")
    async with TestClient(TestServer(make_app(agent), host="127.0.0.1")) as client:
        html = await (await client.get(f"/workflows/{WID}")).text()
        assert 'id="compensation-summary">RUNNING' in html
        assert "Audit records of alpha" in html
        # Exact values: the big integer whole, the integer not turned into a float.
        assert "{&#34;n&#34;:12345678901234567890,&#34;x&#34;:1.5}" in html
        assert "{&#34;action&#34;:&#34;drop&#34;,&#34;k&#34;:3}" in html
        assert 'data-kind="client_request"' in html and 'principal=&#34;alice&#34;' in html

        # The compensation ends: the page says so, and the stream (which went on past the
        # workflow's end while it ran) ends now.
        agent.node_view.show(WID, spec, "FAILED", placement={"a": "alpha", "b": "alpha"},
                             steps={"a": ("COMPENSATED", 1, {}), "b": ("FAILED", 1, {})},
                             compensation="DONE")
        html = await (await client.get(f"/workflows/{WID}")).text()
        assert 'id="compensation-summary">DONE' in html
        assert 'data-step="a" data-domain="alpha" data-state="COMPENSATED"' in html
        events = await (await client.get(f"/events/workflows/{WID}")).text()
        assert "event: ended" in events
