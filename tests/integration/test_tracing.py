"""One trace per workflow across three real agents, exported over OTLP.

The test runs an OTLP/gRPC trace receiver on 127.0.0.1 (the collector's TraceService,
from opentelemetry-proto) and points every agent's `telemetry.otlp_endpoint` at it, so the
spans travel the path an operator's collector would see. One agent also writes its spans
to a file (`telemetry.file`), which must hold the same spans as it sent over OTLP.
"""

from __future__ import annotations

import json

import grpc
import pytest
from fedorch.runtime.telemetry import trace_id_of
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from tests.integration.conftest import DOMAINS
from tests.integration.federation import started_federation, state_name, wait_for
from tests.integration.test_workflows import DEMO

pytestmark = pytest.mark.integration


def _value(any_value):
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in any_value.array_value.values]
    return getattr(any_value, kind) if kind else None


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """Keeps every span it is sent, flattened: name, ids, attributes, resource."""

    def __init__(self) -> None:
        self.spans: list[dict] = []

    async def Export(self, request, context):
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope in resource_spans.scope_spans:
                for span in scope.spans:
                    self.spans.append({
                        "name": span.name,
                        "trace_id": span.trace_id.hex(),
                        "span_id": span.span_id.hex(),
                        "parent_id": span.parent_span_id.hex(),
                        "domain": resource.get("service.instance.id"),
                        "attributes": {a.key: _value(a.value) for a in span.attributes},
                        "error": span.status.code == span.status.STATUS_CODE_ERROR,
                    })
        return trace_service_pb2.ExportTraceServiceResponse()

    def of(self, workflow_id: str) -> list[dict]:
        return [s for s in self.spans if s["attributes"].get("fedorch.workflow") == workflow_id]


def _named(spans: list[dict], name: str, **attributes) -> list[dict]:
    return [s for s in spans if s["name"] == name
            and all(s["attributes"].get(k) == v for k, v in attributes.items())]


async def test_one_trace_across_three_domains(tmp_path):
    receiver = Receiver()
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    span_file = tmp_path / "eu-west-spans.jsonl"
    telemetry = {"otlp_endpoint": f"127.0.0.1:{port}"}
    domains = {name: {**body, "telemetry": dict(telemetry)} for name, body in DOMAINS.items()}
    domains["eu-west"]["telemetry"]["file"] = str(span_file)
    try:
        async with started_federation(tmp_path / "fed", domains) as fed:
            wid = await fed.submit("eu-west", DEMO)
            status = await fed.wait_state("eu-west", wid)
            assert state_name(status) == "SUCCEEDED", status

            # Round 1 puts train on us-east, which refuses it; round 2 on eu-west. Wait
            # for every span the run makes (agents export once a second).
            async def all_exported():
                spans = receiver.of(wid)
                return (len(_named(spans, "fedorch.submit")) == 1
                        and len(_named(spans, "fedorch.negotiation.round")) == 2
                        and len(_named(spans, "fedorch.negotiation.vote")) == 5
                        and len(_named(spans, "fedorch.step.attempt")) == 3
                        and len(_named(spans, "fedorch.step.result")) >= 2)

            await wait_for(all_exported, 30, f"the spans of {wid} at the receiver")
            spans = receiver.of(wid)
            file_spans = [json.loads(line) for line in span_file.read_text().splitlines()]
    finally:
        await server.stop(None)

    # One trace, the workflow's, with spans from all three domains.
    assert {s["trace_id"] for s in spans} == {f"{trace_id_of(wid):032x}"}
    assert {s["domain"] for s in spans} == {"eu-west", "us-east", "partner"}
    by_id = {s["span_id"]: s for s in spans}
    assert len(by_id) == len(spans)
    # One root, the submit; every other span's parent is in the trace.
    roots = [s for s in spans if not s["parent_id"]]
    assert [(r["name"], r["domain"]) for r in roots] == [("fedorch.submit", "eu-west")]
    for s in spans:
        if s["parent_id"]:
            assert s["parent_id"] in by_id, f"{s['name']} at {s['domain']}: parent missing"

    def parent(span: dict) -> dict:
        return by_id[span["parent_id"]]

    # Rounds hang off the submit; round 1 was redone, round 2 committed.
    rounds = {r["attributes"]["fedorch.round"]: r for r in _named(spans, "fedorch.negotiation.round")}
    assert sorted(rounds) == [1, 2]
    assert all(parent(r)["name"] == "fedorch.submit" for r in rounds.values())
    assert rounds[1]["attributes"]["fedorch.outcome"] == "redone"
    assert rounds[2]["attributes"]["fedorch.outcome"] == "committed"

    # Each vote continues the round whose PREPARE it answers, with the policy's verdict.
    votes = _named(spans, "fedorch.negotiation.vote")
    assert sorted((v["domain"], v["attributes"]["fedorch.round"], v["attributes"]["fedorch.verdict"])
                  for v in votes) == [("eu-west", 1, "yes"), ("eu-west", 2, "yes"),
                                      ("partner", 1, "yes"), ("partner", 2, "yes"),
                                      ("us-east", 1, "no")]
    for v in votes:
        assert parent(v) is rounds[v["attributes"]["fedorch.round"]]
    (refusal,) = _named(votes, "fedorch.negotiation.vote", **{"fedorch.verdict": "no"})
    assert "residency" in refusal["attributes"]["fedorch.reason"]

    # Each attempt runs under its domain's vote of the committed round.
    attempts = {a["attributes"]["fedorch.step"]: a for a in _named(spans, "fedorch.step.attempt")}
    assert {k: a["domain"] for k, a in attempts.items()} == \
        {"extract": "eu-west", "train": "eu-west", "report": "partner"}
    for a in attempts.values():
        vote = parent(a)
        assert vote["name"] == "fedorch.negotiation.vote" and vote["domain"] == a["domain"]
        assert vote["attributes"]["fedorch.round"] == 2
        assert a["attributes"]["fedorch.ok"] is True and not a["error"]

    # Result hand-offs: train's result at partner (report needs it), report's at the
    # coordinator; each continues the attempt that produced it, in another domain.
    handoffs = {(h["attributes"]["fedorch.step"], h["domain"]): h
                for h in _named(spans, "fedorch.step.result")}
    for step, receiver_domain in (("train", "partner"), ("report", "eu-west")):
        hand_off = handoffs[(step, receiver_domain)]
        assert parent(hand_off) is attempts[step]
        assert hand_off["attributes"]["fedorch.state"] == "SUCCEEDED"
        assert hand_off["attributes"]["fedorch.from"] == attempts[step]["domain"]

    # The file exporter wrote what eu-west sent over OTLP, one JSON object per line.
    eu_west = {s["span_id"] for s in spans if s["domain"] == "eu-west"}
    in_file = {s["context"]["span_id"].removeprefix("0x") for s in file_spans
               if s["attributes"].get("fedorch.workflow") == wid}
    assert eu_west <= in_file
