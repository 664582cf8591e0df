"""Traces and JSON logs, in one process: the SDK's in-memory exporter, one Tracing per
domain, each naming its spans' parents by the ids derived from what they are."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest
from fedorch.runtime import logs, telemetry
from fedorch.runtime.config import ConfigError, parse_config_text
from fedorch.runtime.telemetry import JsonLinesSpanExporter, Tracing, trace_id_of
from fedorch.runtime.telemetry_sdk import span_id_of
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

WF = "coord.0123456789abcdef0123"


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


def test_derived_spans_of_two_domains_form_one_trace(domains):
    # Each domain names its span's parent by what the parent is: nothing travels.
    coord, part = domains["coord"][0], domains["part"][0]
    coord.derived("fedorch.submit", WF, ("submit",), None, {"fedorch.workflow_name": "demo"})
    coord.derived("fedorch.negotiation.round", WF, ("round", 1), ("submit",),
                  {"fedorch.round": 1})
    part.derived("fedorch.negotiation.vote", WF, ("vote", "part", 1), ("round", 1),
                 {"fedorch.verdict": "yes"})
    with part.derived_span("fedorch.step.attempt", WF, ("attempt", "part", "a", 1),
                           ("vote", "part", 1), {"fedorch.step": "a"}) as traced:
        traced.ended(True, "")
    coord.derived("fedorch.step.result", WF, ("result", "coord", "a", 1),
                  ("attempt", "part", "a", 1), {"fedorch.from": "part"})

    spans = {s.name: s for s in _finished(domains)}
    chain = ["fedorch.submit", "fedorch.negotiation.round", "fedorch.negotiation.vote",
             "fedorch.step.attempt", "fedorch.step.result"]
    assert set(spans) == set(chain)
    assert {s.context.trace_id for s in spans.values()} == {trace_id_of(WF)}
    assert spans["fedorch.submit"].parent is None
    for parent, child in zip(chain, chain[1:], strict=False):
        assert spans[child].parent.span_id == spans[parent].context.span_id, child
    assert spans["fedorch.step.attempt"].context.span_id == span_id_of(
        WF, ("attempt", "part", "a", 1))
    assert spans["fedorch.negotiation.vote"].resource.attributes["service.instance.id"] == "part"
    assert spans["fedorch.step.attempt"].attributes["fedorch.ok"] is True


def test_an_attempt_cut_short_is_an_error_span(domains):
    part = domains["part"][0]
    with pytest.raises(RuntimeError), part.derived_span(
            "fedorch.step.attempt", WF, ("attempt", "part", "a", 2), None,
            {"fedorch.attempt": 2}):
        raise RuntimeError("cancelled")
    (attempt,) = _finished(domains)
    assert attempt.status.is_ok is False
    assert attempt.attributes["fedorch.attempt"] == 2


def test_off_by_default_spans_cost_nothing():
    telemetry.install(None)
    assert telemetry.tracing() is None
    traced = telemetry.derived_span(WF, "fedorch.step.attempt", ("attempt", "d", "a", 1),
                                    None, {})
    assert traced is telemetry.NO_TRACE
    with traced as attempt:
        attempt.ended(False, "boom")


def test_file_exporter_writes_one_json_object_per_span(tmp_path):
    path = tmp_path / "spans" / "out.jsonl"
    tracing = Tracing("coord", [JsonLinesSpanExporter(str(path))])
    tracing.derived("fedorch.submit", WF, ("submit",), None, {})
    tracing.derived("fedorch.negotiation.round", WF, ("round", 1), ("submit",), {})
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
