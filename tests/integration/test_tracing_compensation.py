"""The compensation span on real agents: a workflow that fails compensates a step that
ran in another domain, and that domain's compensation attempt is a span of the
workflow's trace, under the step attempt it undoes, with its outcome.

The spans go over OTLP to a receiver the test runs on 127.0.0.1 (as in test_tracing.py).
"""

from __future__ import annotations

import grpc
import pytest
from fedorch.gen.fedorch.v1 import status_pb2
from fedorch.runtime.telemetry import trace_id_of
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from tests.integration.conftest import DOMAINS
from tests.integration.federation import started_federation, state_name, wait_for
from tests.integration.test_tracing import Receiver, _named

pytestmark = pytest.mark.integration

# publish runs at partner (the only domain with report.publish); break fails at eu-west,
# the coordinator; publish is then compensated at partner.
SPEC = """
name: compensated
data: {jurisdiction: EU}
steps:
  - id: publish
    capability: report.publish
    compensate: {params: {action: unpublish}}
  - id: break
    capability: test.flaky
    needs: [publish]
"""


async def test_a_compensation_attempt_is_a_span_under_the_attempt_it_undoes(tmp_path):
    receiver = Receiver()
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    telemetry = {"otlp_endpoint": f"127.0.0.1:{port}"}
    domains = {name: {**body, "telemetry": dict(telemetry)} for name, body in DOMAINS.items()}
    try:
        async with started_federation(tmp_path / "fed", domains) as fed:
            wid = await fed.submit("eu-west", SPEC)
            status = await fed.wait_state("eu-west", wid)
            assert state_name(status) == "FAILED", status

            async def compensated():
                s = await fed.status("eu-west", wid)
                return s if s.compensation == status_pb2.COMPENSATION_SUMMARY_DONE else None

            status = await wait_for(compensated, 60, f"the compensation of {wid}")
            (publish,) = [s for s in status.steps if s.id == "publish"]
            assert publish.state == status_pb2.STEP_STATE_COMPENSATED, status

            async def exported():
                spans = receiver.of(wid)
                return (_named(spans, "fedorch.compensation.attempt")
                        and len(_named(spans, "fedorch.step.attempt")) == 2)

            await wait_for(exported, 30, f"the compensation span of {wid} at the receiver")
            spans = receiver.of(wid)
    finally:
        await server.stop(None)

    by_id = {s["span_id"]: s for s in spans}
    (compensation,) = _named(spans, "fedorch.compensation.attempt")
    attempts = {a["attributes"]["fedorch.step"]: a for a in _named(spans, "fedorch.step.attempt")}
    # In the compensating domain, in the workflow's one trace, under the attempt it undoes.
    assert compensation["domain"] == "partner"
    assert compensation["trace_id"] == f"{trace_id_of(wid):032x}"
    assert by_id[compensation["parent_id"]] is attempts["publish"]
    assert attempts["publish"]["domain"] == "partner"
    assert compensation["attributes"]["fedorch.step"] == "publish"
    assert compensation["attributes"]["fedorch.attempt"] == 1
    assert compensation["attributes"]["fedorch.capability"] == "report.publish"
    assert compensation["attributes"]["fedorch.ok"] is True and not compensation["error"]
    # The failed attempt that set it off is in the trace too, marked as an error.
    assert attempts["break"]["domain"] == "eu-west" and attempts["break"]["error"]
