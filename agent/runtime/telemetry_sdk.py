"""The OpenTelemetry half of fedorch's traces: the tracer, its exporters and the span
ids derived from what each span is (see telemetry.py for the trace layout).

Imported by telemetry.setup only when the config has `telemetry:`: the SDK (with psutil
for its resource detection) is a tenth of a second of CPU that an agent without tracing,
started fifty at once in a join storm, need not pay.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import os
import threading
from collections.abc import Iterator, Mapping, Sequence

from fedorch.runtime.trace_ids import TelemetryError, trace_id_of
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import NonRecordingSpan, SpanContext, Status, StatusCode, TraceFlags

EXPORT_DELAY_MS = 1000  # how long finished spans wait to leave together
OTLP_TIMEOUT_S = 5.0  # one export to the collector, retries included

# The workflow a root span being started belongs to (read by _WorkflowTraceIds).
_root_of: contextvars.ContextVar[str] = contextvars.ContextVar("fedorch_trace_root", default="")
# The span id a derived span being started gets (0: a random one).
_span_of: contextvars.ContextVar[int] = contextvars.ContextVar("fedorch_span_id", default=0)
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)


class _WorkflowTraceIds(RandomIdGenerator):
    """A root span of a workflow gets the workflow's trace id; a derived span the id
    derived from what it is (`span_id_of`); other span ids stay random."""

    def generate_trace_id(self) -> int:
        workflow_id = _root_of.get()
        return trace_id_of(workflow_id) if workflow_id else super().generate_trace_id()

    def generate_span_id(self) -> int:
        return _span_of.get() or super().generate_span_id()


def span_id_of(workflow_id: str, key: tuple) -> int:
    """The span id of the span `key` names in the workflow's trace (the node engine's
    spans: ("round", 2), ("vote", domain, 2), ...): every domain derives the same one,
    so a span's parent is known without carrying its context (8 bytes, never 0)."""
    text = "\x1f".join(str(part) for part in (workflow_id, *key))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") or 1


class JsonLinesSpanExporter(SpanExporter):
    """Finished spans appended to a file, one JSON object per line (the SDK's span JSON:
    name, context.trace_id and span_id, parent_id, attributes, resource, times)."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._lock = threading.Lock()
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in shutdown

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = "".join(span.to_json(indent=None) + "\n" for span in spans)
        with self._lock:
            if self._file.closed:
                return SpanExportResult.FAILURE
            self._file.write(lines)
            self._file.flush()
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        with self._lock:
            self._file.close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def otlp_exporter(endpoint: str) -> SpanExporter:
    """OTLP over gRPC; HOST:PORT or http://HOST:PORT in plain text, https:// with TLS."""
    try:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    except ImportError:
        raise TelemetryError(
            "telemetry.otlp_endpoint needs the OTLP exporter: pip install 'fedorch[otlp]'"
        ) from None
    # A collector that is down delays the agent's shutdown (the last export) by at most this.
    return OTLPSpanExporter(endpoint=endpoint, insecure=not endpoint.startswith("https://"),
                            timeout=OTLP_TIMEOUT_S)


class Tracing:
    """One agent's tracer; its spans' ids are derived (span_id_of), so it keeps none."""

    def __init__(self, domain: str, exporters: Sequence[SpanExporter],
                 export_delay_ms: int = EXPORT_DELAY_MS) -> None:
        self.domain = domain
        resource = Resource.create({"service.name": "fedorch", "service.instance.id": domain,
                                    "fedorch.domain": domain})
        self.provider = TracerProvider(resource=resource, id_generator=_WorkflowTraceIds())
        for exporter in exporters:
            self.provider.add_span_processor(
                BatchSpanProcessor(exporter, schedule_delay_millis=export_delay_ms))
        self.tracer = self.provider.get_tracer("fedorch")

    # ---- spans -----------------------------------------------------------------------

    def _start(self, name: str, workflow_id: str, parent: SpanContext | None,
               attributes: Mapping[str, object], start_ns: int | None = None) -> trace.Span:
        attrs = {"fedorch.domain": self.domain, "fedorch.workflow": workflow_id, **attributes}
        if parent is not None:
            context = trace.set_span_in_context(NonRecordingSpan(parent))
            return self.tracer.start_span(name, context=context, attributes=attrs,
                                          start_time=start_ns)
        token = _root_of.set(workflow_id)
        try:  # the top of the workflow's trace, under its trace id
            return self.tracer.start_span(name, context=trace.Context(), attributes=attrs,
                                          start_time=start_ns)
        finally:
            _root_of.reset(token)

    # ---- derived spans (the node engine's: no context travels) --------------------------

    def _start_derived(self, name: str, workflow_id: str, key: tuple,
                       parent_key: tuple | None, attributes: Mapping[str, object],
                       start_ns: int | None) -> trace.Span:
        parent = None if parent_key is None else SpanContext(
            trace_id_of(workflow_id), span_id_of(workflow_id, parent_key), is_remote=True,
            trace_flags=_SAMPLED)
        token = _span_of.set(span_id_of(workflow_id, key))
        try:
            return self._start(name, workflow_id, parent, attributes, start_ns)
        finally:
            _span_of.reset(token)

    def derived(self, name: str, workflow_id: str, key: tuple, parent_key: tuple | None,
                attributes: Mapping[str, object], *, start_ns: int | None = None,
                end_ns: int | None = None, error: str = "") -> None:
        """One finished span whose id is derived from (workflow, `key`), under the span
        `parent_key` names (None: the top of the trace), wherever that one is made."""
        span = self._start_derived(name, workflow_id, key, parent_key, attributes, start_ns)
        if error:
            span.set_status(Status(StatusCode.ERROR, error[:256]))
        span.end(end_time=end_ns)

    @contextlib.contextmanager
    def derived_span(self, name: str, workflow_id: str, key: tuple,
                     parent_key: tuple | None,
                     attributes: Mapping[str, object]) -> Iterator[_Attempt]:
        """A derived span around a block (an attempt); `.ended(ok, error)` its outcome."""
        span = self._start_derived(name, workflow_id, key, parent_key, attributes, None)
        traced = _Attempt(span)
        try:
            yield traced
        except BaseException as e:  # cancelled (the workflow ended, the agent stops)
            span.set_status(Status(StatusCode.ERROR, type(e).__name__))
            raise
        finally:
            span.end()

    def shutdown(self) -> None:
        self.provider.shutdown()  # exports what is left


class _Attempt:
    def __init__(self, span: trace.Span) -> None:
        self._span = span

    def ended(self, ok: bool, error: str) -> None:
        self._span.set_attribute("fedorch.ok", ok)
        if not ok:
            self._span.set_status(Status(StatusCode.ERROR, error[:256]))
