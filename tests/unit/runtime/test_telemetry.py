"""Traces and JSON logs, in one process: the SDK's in-memory exporter, one Tracing per
domain, trace contexts carried in real (serialized) peer messages."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest
from fedorch.gen.fedorch.v1 import peer_pb2, status_pb2
from fedorch.runtime import logs, telemetry
from fedorch.runtime.config import ConfigError, parse_config_text
from fedorch.runtime.telemetry import JsonLinesSpanExporter, Tracing, trace_id_of
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

WF = "coord.0123456789abcdef0123"
SUCCEEDED = status_pb2.StepState.Value("STEP_STATE_SUCCEEDED")


def _wire(message):
    """What the receiver parses: the message as serialized (as inside a signed body)."""
    return type(message).FromString(message.SerializeToString())


@pytest.fixture
def domains():
    made = {}
    for name in ("coord", "part"):
        exporter = InMemorySpanExporter()
        made[name] = (Tracing(name, [exporter]), exporter)
    yield made
    for tracing, _ in made.values():
        tracing.shutdown()


def _finished(domains) -> list:
    spans = []
    for tracing, exporter in domains.values():
        tracing.provider.force_flush()
        spans += exporter.get_finished_spans()
    return spans


def test_spans_of_two_domains_form_one_trace(domains):
    coord, part = domains["coord"][0], domains["part"][0]
    coord.submitted(WF, "demo")
    coord.round_started(WF, 1, {"a": "part"})
    prepare = _wire(peer_pb2.PrepareRequest(workflow_id=WF, round=1, steps=["a"],
                                            trace_parent=coord.round_parent(WF)))
    part.voted(prepare, peer_pb2.Vote(workflow_id=WF, round=1, yes=True))
    coord.admission_ended(WF, "committed", "")
    with part.step_attempt(WF, "a", 1) as traced:
        traced.ended(True, "")
    result = _wire(peer_pb2.StepResult(workflow_id=WF, step_id="a", attempt=1, domain="part",
                                       state=SUCCEEDED, trace_parent=part.result_parent(WF, "a")))
    coord.result_received("part", result)

    spans = {s.name: s for s in _finished(domains)}
    assert set(spans) == {"fedorch.submit", "fedorch.negotiation.round",
                          "fedorch.negotiation.vote", "fedorch.step.attempt",
                          "fedorch.step.result"}
    assert {s.context.trace_id for s in spans.values()} == {trace_id_of(WF)}
    chain = ["fedorch.submit", "fedorch.negotiation.round", "fedorch.negotiation.vote",
             "fedorch.step.attempt", "fedorch.step.result"]
    assert spans["fedorch.submit"].parent is None
    for parent, child in zip(chain, chain[1:], strict=False):
        assert spans[child].parent.span_id == spans[parent].context.span_id, child
    assert spans["fedorch.negotiation.vote"].resource.attributes["service.instance.id"] == "part"
    assert spans["fedorch.negotiation.vote"].attributes["fedorch.verdict"] == "yes"
    assert spans["fedorch.negotiation.round"].attributes["fedorch.outcome"] == "committed"


def test_a_new_round_ends_the_one_before(domains):
    coord = domains["coord"][0]
    coord.submitted(WF, "demo")
    coord.round_started(WF, 1, {"a": "part"})
    coord.round_started(WF, 2, {"a": "coord"})
    coord.admission_ended(WF, "aborted", "nobody can run a")
    rounds = sorted((s for s in _finished(domains) if s.name == "fedorch.negotiation.round"),
                    key=lambda s: s.attributes["fedorch.round"])
    assert [s.attributes["fedorch.outcome"] for s in rounds] == ["redone", "aborted"]
    assert rounds[1].attributes["fedorch.reason"] == "nobody can run a"
    assert coord.round_parent(WF) == ""


@pytest.mark.parametrize("carried", [
    "not a traceparent",
    # Well formed, but another workflow's trace: a peer cannot graft spans onto it.
    f"00-{trace_id_of('other.0123456789abcdef0123'):032x}-00f067aa0ba902b7-01",
])
def test_a_bad_or_foreign_context_starts_at_the_workflows_trace(domains, carried):
    part = domains["part"][0]
    part.voted(peer_pb2.PrepareRequest(workflow_id=WF, round=1, trace_parent=carried),
               peer_pb2.Vote(workflow_id=WF, round=1, yes=False, reason="policy"))
    (vote,) = _finished(domains)
    assert vote.parent is None
    assert vote.context.trace_id == trace_id_of(WF)
    assert vote.attributes["fedorch.verdict"] == "no"


def test_an_attempt_cut_short_is_an_error_span(domains):
    part = domains["part"][0]
    with pytest.raises(RuntimeError), part.step_attempt(WF, "a", 2):
        raise RuntimeError("cancelled")
    (attempt,) = _finished(domains)
    assert attempt.status.is_ok is False
    assert attempt.attributes["fedorch.attempt"] == 2


def test_a_compensation_attempt_is_a_span_under_the_attempt_it_undoes(domains):
    part = domains["part"][0]
    with part.step_attempt(WF, "a", 1) as traced:
        traced.ended(True, "")
    with part.compensation_attempt(WF, "a", 1, "x.undo") as traced:
        traced.ended(False, "undo failed")
    spans = {s.name: s for s in _finished(domains)}
    undone, compensation = spans["fedorch.step.attempt"], spans["fedorch.compensation.attempt"]
    assert compensation.parent.span_id == undone.context.span_id
    assert compensation.context.trace_id == trace_id_of(WF)
    assert compensation.attributes["fedorch.ok"] is False
    assert compensation.attributes["fedorch.capability"] == "x.undo"
    assert compensation.status.description == "undo failed"


def test_a_compensation_this_agent_has_no_attempt_for_starts_at_the_trace(domains):
    part = domains["part"][0]  # e.g. restarted since the step ran
    with part.compensation_attempt(WF, "a", 1, "x") as traced:
        traced.ended(True, "")
    (compensation,) = _finished(domains)
    assert compensation.parent is None and compensation.context.trace_id == trace_id_of(WF)


def test_off_by_default_hooks_do_nothing():
    telemetry.install(None)
    telemetry.submitted(WF, "demo")
    telemetry.round_started(WF, 1, {})
    assert telemetry.round_parent(WF) == ""
    with telemetry.step_attempt(WF, "a", 1) as traced:
        traced.ended(False, "boom")
    assert telemetry.result_parent(WF, "a") == ""
    with telemetry.compensation_attempt(WF, "a", 1, "x") as traced:
        traced.ended(True, "")


def test_file_exporter_writes_one_json_object_per_span(tmp_path):
    path = tmp_path / "spans" / "out.jsonl"
    tracing = Tracing("coord", [JsonLinesSpanExporter(str(path))])
    tracing.submitted(WF, "demo")
    tracing.round_started(WF, 1, {"a": "coord"})
    tracing.admission_ended(WF, "committed")
    tracing.shutdown()
    lines = path.read_text().splitlines()
    assert [json.loads(line)["name"] for line in lines] == \
        ["fedorch.submit", "fedorch.negotiation.round"]


# ---- config --------------------------------------------------------------------------

BASE = "domain: d1\nlisten: 127.0.0.1:7101\ndata_dir: data\nkey_file: d1.key\n"


def test_config_telemetry_and_log_format(tmp_path):
    config = parse_config_text(BASE + "log_format: json\ntelemetry: {otlp_endpoint: "
                               "'http://127.0.0.1:4317', file: spans.jsonl}\n", "c.yaml", tmp_path)
    assert config.log_format == "json"
    assert config.telemetry.file == str(tmp_path / "spans.jsonl")
    plain = parse_config_text(BASE, "c.yaml", tmp_path)
    assert plain.log_format == "text" and not plain.HasField("telemetry")


@pytest.mark.parametrize(("extra", "problem"), [
    ("log_format: xml\n", "log_format: must be one of: text, json, got 'xml'"),
    ("telemetry: {}\n", "telemetry: set otlp_endpoint"),
    ("telemetry: {otlp_endpoint: nowhere}\n", "telemetry.otlp_endpoint: must be HOST:PORT"),
])
def test_config_refuses_bad_telemetry_and_log_format(tmp_path, extra, problem):
    with pytest.raises(ConfigError, match=problem.replace("(", r"\(")):
        parse_config_text(BASE + extra, "c.yaml", tmp_path)


def test_setup_builds_the_otlp_exporter(tmp_path):
    config = parse_config_text(BASE + "telemetry: {otlp_endpoint: 127.0.0.1:4317}\n",
                               "c.yaml", tmp_path)
    tracing = telemetry.setup(config)
    try:
        assert tracing is not None and tracing.domain == "d1"
        assert telemetry._tracing is tracing  # what the hooks use
    finally:
        telemetry.shutdown()  # no span was made: nothing waits to be sent
    assert telemetry._tracing is None


# ---- JSON logs -----------------------------------------------------------------------


def _format(record: logging.LogRecord) -> dict:
    line = logs.JsonFormatter("d1").format(record)
    assert "\n" not in line
    return json.loads(line)


def _record(msg: str, *args, exc_info=None, **extra) -> logging.LogRecord:
    record = logging.LogRecord("fedorch.test", logging.ERROR, __file__, 1, msg, args, exc_info)
    record.__dict__.update(extra)
    return record


def test_json_record_has_workflow_trace_and_traceback_on_one_line():
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        exc_info = sys.exc_info()
    out = _format(_record("refused %s round %d", WF, 1, exc_info=exc_info))
    assert out["domain"] == "d1" and out["level"] == "error" and out["logger"] == "fedorch.test"
    assert out["message"] == f"refused {WF} round 1"
    assert out["workflow"] == WF and out["trace_id"] == f"{trace_id_of(WF):032x}"
    assert "ValueError: bad\nthing" in out["traceback"]
    assert out["time"].endswith("Z")


def test_json_record_names_the_step_of_the_attempt_it_is_logged_in():
    with logs.about(WF, "train"):
        out = _format(_record("executor said something"))
    assert (out["workflow"], out["step"]) == (WF, "train")
    outside = _format(_record("nothing about a workflow"))
    assert "workflow" not in outside and "step" not in outside
    explicit = _format(_record("x", workflow="w.0123456789abcdef0123", step="s"))
    assert (explicit["workflow"], explicit["step"]) == ("w.0123456789abcdef0123", "s")


def test_an_unwritable_span_file_is_a_telemetry_error(tmp_path):
    (tmp_path / "file").write_text("")
    config = parse_config_text(BASE + "telemetry: {file: file/spans.jsonl}\n", "c.yaml", tmp_path)
    with pytest.raises(telemetry.TelemetryError, match="telemetry.file: cannot open"):
        telemetry.setup(config)
    assert telemetry._tracing is None


def test_an_uncaught_exception_in_json_mode_is_one_line():
    """Python's own traceback printing goes through the JSON formatter once set up."""
    code = ("from fedorch.runtime import logs\n"
            "logs.setup('d1', 'info', 'json')\n"
            "raise ValueError('first\\nsecond')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60,
                          check=False)
    assert done.returncode == 1
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    record = json.loads(lines[0])
    assert record["level"] == "critical" and record["domain"] == "d1"
    assert record["traceback"].endswith("ValueError: first\nsecond")
