"""A workflow's page shows its compensations and this domain's audit records (agent
in-process, real HTTP on 127.0.0.1)."""

from __future__ import annotations

from aiohttp.test_utils import TestClient, TestServer
from fedorch.gen.fedorch.v1 import spec_pb2
from fedorch.runtime.console.app import make_app
from fedorch.runtime.store.store import StepRow, WorkflowRow

WID = "alpha.w9"


async def test_workflow_page_shows_compensation_and_audit_records(agent):
    spec = spec_pb2.WorkflowSpec(name="saga", steps=[
        spec_pb2.StepSpec(id="a", capability="x",
                          compensate=spec_pb2.Compensation(
                              retries=1, params_json='{"action":"drop","k":3}')),
        spec_pb2.StepSpec(id="b", capability="y", needs=["a"]),
    ])
    row = WorkflowRow(id=WID, name="saga", coordinator="alpha", state="FAILED",
                      spec=spec.SerializeToString(), placement={"a": "alpha", "b": "alpha"},
                      round=1, created_ms=1, updated_ms=2)
    await agent.store.save_workflow(row, [StepRow(WID, "a", "alpha", "SUCCEEDED", 1,
                                                  {"n": 12345678901234567890, "x": 1.5}),
                                          StepRow(WID, "b", "alpha", "FAILED", 1, {})])
    await agent.store.apply([(
        "INSERT INTO compensations(workflow_id, step_id, domain, state, attempts,"
        " max_attempts, error) VALUES(?, 'a', 'alpha', 'RUNNING', 1, 2, '')", (WID,))])
    await agent.audit.append("client_request", WID, request="cancel", principal="alice",
                             peer="console")
    async with TestClient(TestServer(make_app(agent), host="127.0.0.1")) as client:
        html = await (await client.get(f"/workflows/{WID}")).text()
        assert 'id="compensation-summary">RUNNING' in html
        assert 'data-compensation="RUNNING"' in html and "attempt 1 of 2" in html
        assert "Audit records of alpha" in html
        # Exact values: the big integer whole, the integer not turned into a float.
        assert "{&#34;n&#34;:12345678901234567890,&#34;x&#34;:1.5}" in html
        assert "{&#34;action&#34;:&#34;drop&#34;,&#34;k&#34;:3}" in html
        assert 'data-kind="client_request"' in html and 'principal=&#34;alice&#34;' in html

        # The compensation ends: the page says so, and the stream (which went on past the
        # workflow's end while it ran) ends now.
        await agent.store.apply([("UPDATE compensations SET state='COMPENSATED'"
                                  " WHERE workflow_id=?", (WID,))])
        html = await (await client.get(f"/workflows/{WID}")).text()
        assert 'id="compensation-summary">DONE' in html
        assert 'data-step="a" data-domain="alpha" data-state="COMPENSATED"' in html
        events = await (await client.get(f"/events/workflows/{WID}")).text()
        assert "event: ended" in events
